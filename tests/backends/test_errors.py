"""The one edge where transport exceptions become TransportClosed."""

from __future__ import annotations

import errno
import socket
import ssl
import struct

import anyio
import pytest

from tests.backends.conftest import accept_while, raw
from wskit.backends import create_tcp_listeners, open_tcp_stream
from wskit.backends.errors import TransportClosed, map_transport_errors


async def _pair():
    (listener,) = await create_tcp_listeners("127.0.0.1", 0)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        return await accept_while(listener, lambda: open_tcp_stream("127.0.0.1", port))


@pytest.mark.anyio
async def test_reading_after_a_reset_raises_transport_closed():
    with anyio.fail_after(5):
        client, server = await _pair()
        async with server:
            # SO_LINGER with a zero timeout makes close() send RST, not FIN.
            raw(client).setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await client.aclose()
            with pytest.raises(TransportClosed, match="broke") as info, map_transport_errors():
                await server.receive()
    assert isinstance(info.value.__cause__, anyio.BrokenResourceError | ConnectionResetError)


@pytest.mark.anyio
async def test_clean_eof_and_local_close_raise_transport_closed():
    with anyio.fail_after(5):
        client, server = await _pair()
        await client.aclose()
        with pytest.raises(TransportClosed, match="peer closed"), map_transport_errors():
            await server.receive()
        await server.aclose()
        with pytest.raises(TransportClosed, match="closed locally"), map_transport_errors():
            await server.send(b"late")


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionResetError(errno.ECONNRESET, "reset"),
        BrokenPipeError(errno.EPIPE, "broken pipe"),
        ConnectionAbortedError(errno.ECONNABORTED, "aborted"),
        TimeoutError(errno.ETIMEDOUT, "keepalive probes unanswered"),
        OSError(errno.EHOSTUNREACH, "no route"),
        ssl.SSLError(1, "bad record mac"),
        anyio.EndOfStream(),
        anyio.BrokenResourceError(),
        anyio.ClosedResourceError(),
    ],
    ids=type,
)
def test_transport_failures_are_mapped(exc):
    with pytest.raises(TransportClosed) as info, map_transport_errors():
        raise exc
    assert info.value.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("a bug"),
        OSError(errno.EBADF, "bad fd"),
        TimeoutError(),  # anyio.fail_after's, no errno: not a transport failure
        KeyboardInterrupt(),
    ],
    ids=repr,
)
def test_other_exceptions_pass_through(exc):
    with pytest.raises(type(exc)) as info, map_transport_errors():
        raise exc
    assert info.value is exc


@pytest.mark.anyio
async def test_cancellation_passes_through():
    with anyio.fail_after(5):
        client, server = await _pair()
        async with client, server:
            with anyio.move_on_after(0.05) as scope, map_transport_errors():
                await server.receive()
            assert scope.cancelled_caught
