"""TLS over TCP and MPTCP with a throwaway CA."""

from __future__ import annotations

import ssl
from typing import Any

import anyio
import pytest
import trustme

from tests.backends.conftest import needs_mptcp, raw, round_trip
from wskit.backends import (
    create_tcp_listeners,
    describe,
    open_tcp_stream,
    wrap_client_tls,
    wrap_server_tls,
)
from wskit.backends.errors import TransportClosed

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def client_context(ca):
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


async def _tls_pair(server_context, client_context, hostname, *, mptcp=False):
    """Connect over TCP and run both TLS handshakes; the server's outcome is returned too."""
    (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=mptcp)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        outcome: dict[str, Any] = {}

        async def serve():
            stream = await listener.accept()
            try:
                outcome["server"] = await wrap_server_tls(stream, server_context)
            except (ssl.SSLError, TransportClosed) as exc:
                outcome["server_error"] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            stream, _ = await open_tcp_stream("127.0.0.1", port, mptcp=mptcp)
            try:
                outcome["client"] = await wrap_client_tls(stream, client_context, hostname)
            except ssl.SSLError as exc:
                outcome["client_error"] = exc
                outcome["client_socket"] = raw(stream)
    return outcome


@pytest.mark.parametrize("mptcp", [False, pytest.param(True, marks=needs_mptcp)])
async def test_tls_round_trip(server_context, client_context, mptcp):
    with anyio.fail_after(5):
        outcome = await _tls_pair(server_context, client_context, "localhost", mptcp=mptcp)
        async with outcome["client"] as client, outcome["server"] as server:
            await round_trip(client, server)
            for stream in (client, server):
                info = await describe(stream)
                assert info.tls
                assert info.mptcp is mptcp
                assert not info.unix
                assert isinstance(info.peer, tuple)
                assert info.peer[0] == "127.0.0.1"


async def test_certificate_mismatch_fails_and_closes_the_transport(server_context, client_context):
    with anyio.fail_after(5):
        outcome = await _tls_pair(server_context, client_context, "wrong.example")
    assert isinstance(outcome["client_error"], ssl.SSLCertVerificationError)
    assert "server_error" in outcome
    assert outcome["client_socket"].fileno() == -1  # closed by wrap_client_tls
