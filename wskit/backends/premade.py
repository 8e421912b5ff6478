"""Sockets the caller made: ``serve(sock=...)`` and ``connect(sock=...)``.

A pre-made socket may be TCP, MPTCP (the usual reason to make one yourself
before wskit grew ``mptcp=True``) or Unix, connected or listening. Handing
the wrong kind to the wrong side is a usage error we report plainly, rather
than the ``ValueError`` AnyIO raises deep inside the first accept or read.
"""

from __future__ import annotations

import socket

import anyio.abc

from wskit.backends.lean import lean_stream
from wskit.backends.options import configure_accepted
from wskit.errors import UsageError

__all__ = ["listener_from_socket", "stream_from_socket"]


async def stream_from_socket(sock: socket.socket) -> anyio.abc.SocketStream:
    """Adopt a connected socket made by the caller (``connect(sock=...)``).

    Args:
        sock: a connected stream socket (TCP, MPTCP or Unix); the stream
            takes ownership of it.

    Returns:
        The stream (:func:`describe` says what it runs over).

    Raises:
        UsageError: the socket is not a stream socket, is listening, or is not
            connected; the socket is then left open, still the caller's.
    """
    if _check_stream_socket(sock):
        raise UsageError("sock is a listening socket; pass it to serve(sock=...), not connect()")
    try:
        sock.getpeername()
    except OSError:
        raise UsageError("sock is not connected; connect it before passing it") from None
    sock.setblocking(False)
    if sock.family == getattr(socket, "AF_UNIX", None):
        stream: anyio.abc.SocketStream = await anyio.abc.UNIXSocketStream.from_socket(sock)
    else:
        configure_accepted(sock, None)
        stream = lean_stream(await anyio.abc.SocketStream.from_socket(sock))
    return stream


async def listener_from_socket(sock: socket.socket) -> anyio.abc.SocketListener:
    """Adopt a listening socket made by the caller (``serve(sock=...)``).

    Args:
        sock: a bound, listening stream socket (TCP, MPTCP or Unix); the
            listener takes ownership of it.

    Returns:
        The listener.

    Raises:
        UsageError: the socket is not a stream socket or is not listening;
            the socket is then left open, still the caller's.
    """
    if not _check_stream_socket(sock):
        raise UsageError("sock is not listening; call sock.listen() before serve(sock=...)")
    sock.setblocking(False)
    return await anyio.abc.SocketListener.from_socket(sock)


def _check_stream_socket(sock: socket.socket) -> bool:
    """Reject non-stream sockets; return whether the socket is listening."""
    if sock.type != socket.SOCK_STREAM:
        raise UsageError(f"sock must be a SOCK_STREAM socket, not {sock.type!r}")
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        raise UsageError("sock is closed or not a socket") from None
