"""Helpers for the backend tests: real sockets on loopback, both event loops."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import pytest

from wskit.backends import options, sockets

MPTCP = 262
LOGGER = "wskit.backends"


def mptcp_available() -> bool:
    """True if this kernel lets us create an MPTCP socket."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP).close()
    except OSError:
        return False
    return True


def ipv6_loopback_available() -> bool:
    """True if ::1 can be bound (the host has an IPv6 loopback)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_mptcp = pytest.mark.skipif(
    not mptcp_available(), reason="this kernel refuses IPPROTO_MPTCP sockets (net.mptcp.enabled=0?)"
)
needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="the host has no IPv6 loopback (::1)"
)


@pytest.fixture(autouse=True)
def fresh_log_once_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no "already logged" MPTCP or option notices."""
    monkeypatch.setattr(sockets, "_fallback_notices", set())
    monkeypatch.setattr(options, "_logged_refusals", set())


def fallback_notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The MPTCP fallback notices logged so far."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == LOGGER
        and record.levelno == logging.INFO
        and "MPTCP is unavailable" in record.getMessage()
    ]


async def accept_while(
    listener: anyio.abc.SocketListener,
    connect: Callable[[], Awaitable[object]],
) -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    """Run ``connect`` while the listener accepts; return (client, server) streams.

    ``connect`` returns a stream, or ``(stream, info)`` like ``open_tcp_stream``.
    """
    accepted: list[anyio.abc.SocketStream] = []

    async def accept() -> None:
        accepted.append(await listener.accept())

    async with anyio.create_task_group() as tg:
        tg.start_soon(accept)
        result = await connect()
    client = result[0] if isinstance(result, tuple) else result
    assert isinstance(client, anyio.abc.SocketStream)
    return client, accepted[0]


async def round_trip(client: anyio.abc.ByteStream, server: anyio.abc.ByteStream) -> None:
    """Send bytes both ways and check they arrive intact."""
    await client.send(b"ping from client")
    assert await server.receive() == b"ping from client"
    await server.send(b"pong from server")
    assert await client.receive() == b"pong from server"


def raw(stream: anyio.TypedAttributeProvider) -> socket.socket:
    """The socket under a stream."""
    sock: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    return sock


def proto(sock: socket.socket) -> int:
    """The socket's SO_PROTOCOL (6 TCP, 262 MPTCP)."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)


class RefusingSocketModule:
    """Stands in for ``socket`` inside wskit.backends.sockets only.

    ``socket.socket(..., IPPROTO_MPTCP)`` raises ``OSError(code)``; everything
    else is the real socket module.
    """

    def __init__(self, code: int) -> None:
        self.code = code

    def __getattr__(self, name: str) -> object:
        return getattr(socket, name)

    def socket(self, family: int = -1, type: int = -1, proto: int = -1) -> socket.socket:
        if proto == MPTCP:
            raise OSError(self.code, errno.errorcode.get(self.code, "refused"))
        return socket.socket(family, type, proto)
