"""Accepting on Trio straight from the listening socket.

AnyIO's Trio listener accepts through Trio's socket, which ends every accept
that did not have to wait with a scheduler pass (``cancel_shielded_checkpoint``),
so a burst of connections costs one pass each before any of them is served.
:func:`direct_accept` takes the connections the kernel holds with plain
``accept()`` calls, waits only when there are none, and yields once every
:data:`~wskit.backends.direct.CHECKPOINT_EVERY` accepts so that a flood of
connections cannot hold the loop. The accepted socket is wrapped as AnyIO's
own accept does: TCP_NODELAY, Trio's socket, AnyIO's Trio socket stream.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from wskit.backends.direct import CHECKPOINT_EVERY

__all__ = ["direct_accept"]

# AnyIO's Trio backend, whose TCP listener and socket stream this was written against.
_TRIO_BACKEND = "anyio._backends._trio"


def direct_accept(
    listener: anyio.abc.SocketListener,
) -> Callable[[], Awaitable[anyio.abc.SocketStream]] | None:
    """An ``accept()`` for ``listener`` that takes what the kernel holds without a scheduler pass.

    Errors are the kernel's (``OSError``: EMFILE and friends), where AnyIO
    raises ``BrokenResourceError`` from them; a listener closed while the
    accept waits ends it with ``ClosedResourceError``, as AnyIO's does.
    Cancelling it while it waits, or at its periodic checkpoint, accepts
    nothing.

    Args:
        listener: a listener wskit opened; it still owns the listening
            socket (closing it ends this accept).

    Returns:
        The accept function, or None unless ``listener`` is AnyIO's TCP
        listener on Trio: Unix listeners, asyncio, and listeners this was
        not written against keep their own ``accept()``.
    """
    backend = sys.modules.get(_TRIO_BACKEND)
    listener_kind: Any = getattr(backend, "TCPSocketListener", None)
    stream_kind: Any = getattr(backend, "SocketStream", None)
    if listener_kind is None or stream_kind is None or type(listener) is not listener_kind:
        return None
    trio = sys.modules["trio"]
    raw: socket.socket = listener._raw_socket
    taken = 0  # accepts since the last checkpoint

    async def accept() -> anyio.abc.SocketStream:
        nonlocal taken
        if taken >= CHECKPOINT_EVERY:
            # Before accepting, not after: cancelled here, nothing is lost.
            taken = 0
            await anyio.lowlevel.checkpoint()
        while True:
            try:
                sock, _ = raw.accept()
            except BlockingIOError:
                taken = 0  # waiting lets the others run
                await anyio.wait_readable(raw)
                continue
            break
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream: anyio.abc.SocketStream = stream_kind(trio.socket.from_stdlib_socket(sock))
        except BaseException:
            sock.close()
            raise
        taken += 1
        return stream

    return accept
