"""``wskit echo`` as a real process: it serves, echoes, and shuts down cleanly on a signal.

The server runs on the same event loop library as the test (``--backend`` is
the ``anyio_backend`` value), and the test talks to it with ``wskit.connect``.
"""

from __future__ import annotations

import signal

import anyio
import pytest

import wskit
from tests.io.support import EXIT, STARTUP, echo_process, needs_mptcp, wait_exit
from wskit import ConnectionClosedOK

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_echo_serves_and_a_signal_closes_every_connection_with_1001(anyio_backend, signum):
    with anyio.fail_after(STARTUP + EXIT + 5):
        async with echo_process(anyio_backend) as echo:
            url = f"ws://127.0.0.1:{echo.port}/cli"
            async with wskit.connect(url) as first, wskit.connect(url) as second:
                for ws, message in ((first, "héllo ✓"), (second, b"\x00\x01\x02")):
                    await ws.send(message)
                    assert await ws.recv() == message
                assert first.compression == "permessage-deflate"
                echo.process.send_signal(signum)
                for ws in (first, second):
                    with pytest.raises(ConnectionClosedOK) as caught:
                        await ws.recv()
                    assert caught.value.code == 1001
                    assert (ws.close_code, ws.close_reason) == (1001, "server shutting down")
            assert await wait_exit(echo) == 0
    name = signal.Signals(signum).name
    assert f"{name}: closing every connection with 1001" in echo.log
    assert echo.log.count("code=1001") == 2, echo.log
    assert "Traceback" not in echo.log, echo.log


async def test_an_idle_echo_server_exits_at_once_on_sigint(anyio_backend):
    with anyio.fail_after(STARTUP + EXIT + 5):
        async with echo_process(anyio_backend) as echo:
            # Served one client, which left: no connection is open.
            async with wskit.connect(f"ws://127.0.0.1:{echo.port}/") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
            started = anyio.current_time()
            echo.process.send_signal(signal.SIGINT)
            assert await wait_exit(echo) == 0
            assert anyio.current_time() - started < 2
    assert "SIGINT: closing every connection with 1001" in echo.log
    assert "Traceback" not in echo.log, echo.log


@needs_mptcp
async def test_echo_with_mptcp_serves_mptcp_and_tcp_clients(anyio_backend):
    with anyio.fail_after(STARTUP + EXIT + 5):
        async with echo_process(anyio_backend, "--mptcp") as echo:
            url = f"ws://127.0.0.1:{echo.port}/"
            async with wskit.connect(url, mptcp=True) as ws:
                await ws.send("over mptcp")
                assert await ws.recv() == "over mptcp"
                assert ws.transport.mptcp
            async with wskit.connect(url) as ws:
                await ws.send("over tcp")
                assert await ws.recv() == "over tcp"
                assert not ws.transport.mptcp
            echo.process.send_signal(signal.SIGINT)
            assert await wait_exit(echo) == 0
    assert "mptcp=True" in echo.log
    assert "mptcp=False" in echo.log
    assert "MPTCP is unavailable" not in echo.log
