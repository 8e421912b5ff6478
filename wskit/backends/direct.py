"""Writes and reads without a scheduler pass, on AnyIO's Trio socket streams.

On Trio, a ``send()`` or ``receive()`` that the kernel serves at once still
yields to the scheduler afterwards (Trio's ``cancel_shielded_checkpoint``),
and bytes handed to a writer task cost that task a wake-up too. With 1,000
connections each such pass cost 20 µs or more of CPU per message here. A
:class:`DirectSocket` lets the task that has bytes write them itself when
the socket takes them all at once, and read what the kernel already holds;
only what the kernel refuses goes the normal way, through the stream.

Only AnyIO's own Trio socket streams qualify: they keep no bytes of their own
in either direction, so a direct write cannot overtake bytes queued in the
stream, nor a direct read skip buffered ones. asyncio's streams (transport
buffers), TLS (a record layer) and any other stream get None from
:meth:`DirectSocket.of`.

A caller that never blocks never yields either, and would starve the other
tasks: :meth:`DirectSocket.due_checkpoint` says when to yield anyway.

The reading task may change over a connection's life (a server connection's
handler reads in its own ``recv()`` until a reader task takes over, see
:mod:`wskit.websocket`), but two tasks never read at once.
"""

from __future__ import annotations

import functools
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from types import ModuleType
from typing import cast, final

import anyio
import anyio.abc
import anyio.lowlevel

from .errors import TRANSPORT_ENDED
from .trio_poller import Poller

__all__ = [
    "CHECKPOINT_EVERY",
    "MAX_BUFFERS",
    "SEND_ALONE",
    "DirectSocket",
    "bytes_arrived",
    "remainder",
]

CHECKPOINT_EVERY = 32
"""Direct operations between two scheduler passes: often enough that a
connection whose peer keeps up cannot hold the loop for long, rare enough
that the pass costs under 1 µs per message."""

SEND_ALONE = 196608
"""Buffers this large are written by a ``send()`` of their own, not gathered
into one ``sendmsg()`` with the buffers around them: the rest of a payload
of 256 KiB or more, after the 64 KiB joined to its header
(``Connection.buffers_to_send()``).

The frame's header (and the payload's first 64 KiB, joined to it) then
leaves first, and the peer starts reading while the kernel copies the rest.
On loopback a 1 MiB round trip cost the server ~18% less CPU so (the
peer's share of the TCP work runs on its own core), as asyncio's transport
already did: it writes each buffer on its own."""

MAX_BUFFERS = 64
"""More buffers than this go the normal way: ``sendmsg`` takes at most
IOV_MAX (1024 on Linux) and a long list means large payloads anyway."""

# The module of AnyIO's Trio backend: its socket streams wrap a Trio socket
# and buffer nothing, which is what makes bypassing them safe.
_TRIO_BACKEND = "anyio._backends._trio"

Buffer = bytes | bytearray | memoryview


@final
class DirectSocket:
    """The socket under an AnyIO Trio socket stream, for nonblocking attempts.

    Use only from the one task that reads (for :meth:`try_receive`), and
    only while no other task is writing through the stream (for
    :meth:`try_send`): the bytes' order is the caller's to keep.
    """

    __slots__ = (
        "_clock",
        "_immediate",
        "_poller",
        "_sock",
        "_trio",
        "checkpoint_if_cancelled",
        "drained",
        "ended",
        "readable",
    )

    checkpoint_if_cancelled: Callable[[], Awaitable[None]]
    """Raise if the calling task is cancelled; otherwise return without yielding.

    Trio's rule for a call that may not wait: it still raises when
    cancelled. For a caller that then writes with :meth:`try_send`. Trio's
    own function, not a coroutine wrapping it."""

    readable: Callable[[], Awaitable[None]]
    """Wait until the socket has something to read (or is at its end).

    As :meth:`wait_readable`, but Trio's own wait with no coroutine around
    it (a connection waiting for its next message holds one frame less), so
    a close while waiting raises Trio's ``ClosedResourceError``: catch
    :attr:`ended`."""

    ended: tuple[type[Exception], ...]
    """What reading or waiting raises when the connection is over:
    :data:`~wskit.backends.errors.TRANSPORT_ENDED`, and Trio's
    ``ClosedResourceError`` from :attr:`readable`."""

    drained: bool
    """Whether the last :meth:`try_receive` found the kernel's buffer emptied
    by it (it read less than asked for, or nothing). A reader that has
    handled those bytes may then wait before reading again: a read now
    would most likely fail with ``EAGAIN``, an exception and a system call
    for nothing (waiting is safe either way: the wait returns at once for
    bytes already there)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poller: Poller | None = None
        self._immediate = 0  # direct operations since the last checkpoint
        self.drained = True  # nothing read yet: the handshake's reader read it all
        # Only Trio's streams qualify (see of()): its clock and its waits are
        # called directly, without AnyIO's look-up of the running backend on
        # every call (a few % of the CPU per message with many connections).
        trio = sys.modules.get("trio")
        self._trio: ModuleType | None = trio
        if trio is not None:
            self._clock = cast("Callable[[], float]", trio.current_time)
            self.checkpoint_if_cancelled = trio.lowlevel.checkpoint_if_cancelled
            self.readable = functools.partial(trio.lowlevel.wait_readable, sock)
            self.ended = _ended_on_trio(trio.ClosedResourceError)
        else:  # not reached through of(); kept whole for direct construction
            self._clock = anyio.current_time
            self.checkpoint_if_cancelled = anyio.lowlevel.checkpoint_if_cancelled
            self.readable = self.wait_readable
            self.ended = TRANSPORT_ENDED

    @staticmethod
    def of(stream: anyio.abc.AnyByteStream) -> DirectSocket | None:
        """The direct socket of ``stream``, or None when it does not qualify.

        Args:
            stream: any AnyIO byte stream.

        Returns:
            A :class:`DirectSocket` for a socket stream of AnyIO's Trio
            backend (TCP or Unix); None for everything else.
        """
        if not isinstance(stream, anyio.abc.SocketStream):
            return None
        if type(stream).__module__ != _TRIO_BACKEND:
            return None
        # The property AnyIO's own attribute table reads: extra() would
        # build that whole table (with a getpeername() call) to get it.
        sock: object = stream._raw_socket
        if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM:
            return None
        return DirectSocket(sock)

    @property
    def raw_socket(self) -> socket.socket:
        """The socket itself."""
        return self._sock

    def try_send(self, buffers: Sequence[Buffer]) -> int:
        """Write ``buffers`` (in order) as far as the kernel takes them now.

        Returns:
            The number of bytes taken: all of them in the common case, fewer
            (0 included) when the socket buffer is full. A failing socket
            reads what it took before it failed (0, mostly): the caller
            sends the rest through the stream, which meets the error again
            and reports it as AnyIO does.
        """
        if not buffers or len(buffers) > MAX_BUFFERS:
            return 0
        sock = self._sock
        try:
            if len(buffers) == 1:
                return sock.send(buffers[0])
            if not any(len(buffer) >= SEND_ALONE for buffer in buffers):
                return sock.sendmsg(buffers)
        except OSError:  # BlockingIOError included
            return 0
        # A large payload leaves in a call of its own, after what comes
        # before it (its header's call): see SEND_ALONE.
        taken = 0
        for buffer in buffers:
            try:
                count = sock.send(buffer)
            except OSError:
                return taken
            taken += count
            if count < len(buffer):
                break
        return taken

    def try_receive(self, max_bytes: int) -> bytes | None:
        """Read what the kernel holds now, up to ``max_bytes``.

        Returns:
            The bytes, or None when nothing has arrived yet (wait with
            :meth:`wait_readable`).

        Raises:
            anyio.EndOfStream: the peer closed its side.
            OSError: the connection broke (reset, for example) or was closed.
        """
        try:
            data = self._sock.recv(max_bytes)
        except BlockingIOError:
            self.drained = True
            return None
        if not data:
            raise anyio.EndOfStream
        self.drained = len(data) < max_bytes
        return data

    def try_receive_into(self, view: memoryview) -> int | None:
        """Read what the kernel holds now into ``view``, up to its length.

        Returns:
            The number of bytes written at the start of ``view``, or None
            when nothing has arrived yet (as :meth:`try_receive`).

        Raises:
            anyio.EndOfStream: the peer closed its side.
            OSError: the connection broke (reset, for example) or was closed.
        """
        try:
            count = self._sock.recv_into(view)
        except BlockingIOError:
            self.drained = True
            return None
        if not count and len(view):
            raise anyio.EndOfStream
        self.drained = count < len(view)
        return count

    def arrived(self) -> int:
        """How many bytes the kernel holds for reading now (``FIONREAD``); 0 when it cannot tell."""
        return bytes_arrived(self._sock)

    async def wait_readable(self) -> None:
        """Wait until the socket has something to read (or is at its end).

        Raises:
            anyio.ClosedResourceError: the stream was closed while waiting.
        """
        trio = self._trio
        if trio is None:
            await anyio.wait_readable(self._sock)
            return
        try:
            await trio.lowlevel.wait_readable(self._sock)
        except trio.ClosedResourceError:
            raise anyio.ClosedResourceError from None

    def use_poller(self, poller: Poller) -> None:
        """Wait through ``poller`` from now on (:attr:`readable`), until :meth:`leave_poller`.

        For a socket that one task reads for long, with many others like it
        (see :mod:`wskit.backends.trio_poller`).
        """
        if self._poller is None:
            self.readable = poller.register(self._sock)
            self._poller = poller

    def leave_poller(self) -> None:
        """Wait through Trio again (a task waiting through the poller is woken, and fails)."""
        poller = self._poller
        if poller is not None:
            self._poller = None
            poller.unregister(self._sock)
            trio = self._trio
            assert trio is not None
            self.readable = functools.partial(trio.lowlevel.wait_readable, self._sock)

    def wake_reader(self) -> None:
        """Wake the task waiting to read, however it waits: its wait raises ``ClosedResourceError``.

        Meant for a connection that is over: a task waiting to write is
        woken (and fails) too.
        """
        poller = self._poller
        if poller is not None:
            poller.interrupt(self._sock.fileno())
        anyio.notify_closing(self._sock)

    def close_now(self) -> None:
        """Close the socket now, from synchronous code.

        A task waiting on the socket is woken first (its wait raises
        ``ClosedResourceError``), as Trio requires. Closing the stream later
        is harmless: Trio's socket skips a socket already closed.
        """
        sock = self._sock
        if sock.fileno() != -1:
            self.leave_poller()
            anyio.notify_closing(sock)
            sock.close()

    def time(self) -> float:
        """The event loop's clock, for a parser that wants the time of a read."""
        return self._clock()

    def due_checkpoint(self) -> bool:
        """Count one direct operation; True once every :data:`CHECKPOINT_EVERY` of them.

        When True, the caller should yield (``await
        anyio.lowlevel.cancel_shielded_checkpoint()``): its direct operations
        never did, and other tasks are waiting for their turn.
        """
        self._immediate += 1
        if self._immediate < CHECKPOINT_EVERY:
            return False
        self._immediate = 0
        return True


def _load_bytes_waiting() -> Callable[[int], int] | None:
    """The ``FIONREAD`` ioctl, as a function of a file descriptor (None without ``fcntl``)."""
    try:
        from fcntl import ioctl  # noqa: PLC0415 (POSIX only)
        from termios import FIONREAD  # noqa: PLC0415
    except ImportError:  # pragma: no cover - Windows
        return None

    def bytes_waiting(fd: int) -> int:
        return int.from_bytes(ioctl(fd, FIONREAD, b"\0\0\0\0"), sys.byteorder)

    return bytes_waiting


_bytes_waiting = _load_bytes_waiting()


def bytes_arrived(sock: socket.socket) -> int:
    """How many bytes the kernel holds for reading on ``sock`` now (``FIONREAD``).

    0 when it cannot tell (Windows, a closed socket): the next read reports
    what there is.
    """
    fd = sock.fileno()
    if _bytes_waiting is None or fd < 0:
        return 0
    try:
        return _bytes_waiting(fd)
    except OSError:
        return 0


@functools.cache
def _ended_on_trio(closed: type[Exception]) -> tuple[type[Exception], ...]:
    """:attr:`DirectSocket.ended` on Trio: one tuple for every socket."""
    return (*TRANSPORT_ENDED, closed)


def remainder(buffers: Sequence[Buffer], taken: int) -> list[memoryview]:
    """What is left of ``buffers`` after the first ``taken`` bytes were written.

    Args:
        buffers: the buffers in the order they were written.
        taken: the bytes the kernel took (``try_send``'s result).

    Returns:
        The untaken bytes, as views into the same buffers (nothing copied),
        without empty views.
    """
    left: list[memoryview] = []
    for buffer in buffers:
        view = memoryview(buffer).cast("B")
        if taken >= len(view):
            taken -= len(view)
            continue
        left.append(view[taken:])
        taken = 0
    return left
