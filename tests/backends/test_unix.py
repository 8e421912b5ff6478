"""Unix domain sockets."""

from __future__ import annotations

import anyio
import pytest

from tests.backends.conftest import accept_while, round_trip
from wskit.backends import create_unix_listener, describe, open_unix_stream

pytestmark = pytest.mark.anyio


async def test_unix_round_trip(tmp_path):
    path = str(tmp_path / "ws.sock")
    with anyio.fail_after(5):
        listener = await create_unix_listener(path, mode=0o600)
        async with listener:
            assert (tmp_path / "ws.sock").stat().st_mode & 0o777 == 0o600
            client, server = await accept_while(listener, lambda: open_unix_stream(path))
            async with client, server:
                await round_trip(client, server)
                client_info = await describe(client)
                assert client_info.unix
                assert client_info.peer == path
                assert not client_info.tls
                assert not client_info.mptcp
                assert client_info.mptcp_info() is None
                server_info = await describe(server)
                assert server_info.unix
                assert server_info.local == path


async def test_unix_connect_to_nothing_raises_oserror(tmp_path):
    with anyio.fail_after(5), pytest.raises(FileNotFoundError):
        await open_unix_stream(str(tmp_path / "missing.sock"))
