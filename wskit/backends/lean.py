"""A lean byte stream on asyncio: the only loop-specific code in wskit.

AnyIO's asyncio socket stream resumes and pauses reading around every
``receive()`` that waits (two ``epoll_ctl`` system calls) and ends each
``send()`` with a checkpoint (one more pass of the event loop). On a
WebSocket that answers one message at a time, that is most of the I/O cost.

:func:`lean_stream` takes an AnyIO socket stream that runs on asyncio and
moves its transport to :class:`LeanStream`, whose protocol keeps reading
until a bounded buffer fills (then pauses the transport), and whose
``send()`` yields only when the kernel did not take everything. It keeps
AnyIO's interface and error semantics (``EndOfStream``,
``BrokenResourceError``, ``ClosedResourceError``), so the rest of wskit
does not know which stream it has. On Trio, under TLS, or for any other
stream, :func:`lean_stream` returns its argument unchanged.

A server need not build AnyIO's stream at all: :func:`lean_accept` accepts
from AnyIO's TCP listener's socket and gives the new transport wskit's
protocol from the start (one ``connect_accepted_socket()``), which saves
AnyIO's protocol, events, stream and cancel scope on every handshake.

A ``transport.write()`` on asyncio is never partial: what the kernel does
not take is buffered whole. So a ``send()`` cancelled while it waits for
the buffer to drain has still sent its bytes, and never cut a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, final

import anyio
import anyio.abc
import anyio.lowlevel

from wskit.backends.direct import CHECKPOINT_EVERY, bytes_arrived

__all__ = [
    "MERGE_UP_TO",
    "READ_BUFFER",
    "LeanStream",
    "LoopEvent",
    "lean_accept",
    "lean_open",
    "lean_socket_accept",
    "lean_stream",
    "take_chunk",
]

_S = TypeVar("_S", bound=anyio.abc.ByteStream)

_TRANSPORT_METHODS = (
    "abort",
    "get_extra_info",
    "get_write_buffer_size",
    "is_closing",
    "pause_reading",
    "resume_reading",
    "set_protocol",
    "set_write_buffer_limits",
    "write",
    "write_eof",
)

MERGE_UP_TO = 65536
"""Buffered segments are joined into one chunk for ``receive()`` up to this size, not beyond."""

READ_BUFFER = 262144
"""Bytes the protocol buffers, beyond which it pauses reading (the peer meets TCP backpressure).

One read of asyncio's transport (256 KiB) does not pause it: pausing and resuming cost a
system call each, and the reader takes the whole buffer at its next ``receive()``.
"""


def take_chunk(buffer: deque[bytes], max_bytes: int) -> bytes:
    """Take the next chunk for ``receive()`` from the segments read so far (at least one).

    Several small segments leave as one chunk (one call into the core),
    joined once, up to :data:`MERGE_UP_TO` bytes. Larger ones leave as they
    came: copying them would cost more than the call it saves. Nothing
    leaves beyond ``max_bytes``; the rest of a segment stays first in line.
    """
    chunk = buffer.popleft()
    limit = min(max_bytes, MERGE_UP_TO)
    if buffer and len(chunk) + len(buffer[0]) <= limit:
        pieces = [chunk]
        size = len(chunk)
        while buffer and size + len(buffer[0]) <= limit:
            piece = buffer.popleft()
            pieces.append(piece)
            size += len(piece)
        chunk = b"".join(pieces)
    if len(chunk) > max_bytes:
        buffer.appendleft(chunk[max_bytes:])
        chunk = chunk[:max_bytes]
    return chunk


@final
class _Protocol(asyncio.Protocol):
    """Buffers what the transport delivers; wakes the one reader or writer waiting."""

    __slots__ = (
        "buffer",
        "buffered",
        "consumer",
        "drain_waiters",
        "drained",
        "eof",
        "exception",
        "lost",
        "on_end",
        "paused_reading",
        "paused_writing",
        "readable",
        "reader",
        "transport",
        "woken",
    )

    # Set by connection_made() (an accepted connection) or by lean_stream().
    transport: asyncio.Transport

    def __init__(self) -> None:
        # Made on first use (~600 bytes): a connection whose bytes all go to
        # the consumer never needs one.
        self.buffer: deque[bytes] | None = None
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.exception: BaseException | None = None
        self.paused_reading = False
        self.paused_writing = False
        self.readable: asyncio.Future[None] | None = None  # exists while a receive() waits
        self.drained: asyncio.Future[None] | None = None  # exists while a send() waits
        self.drain_waiters: list[asyncio.Future[None]] = []  # wait_drained() callers
        # Set while a receive_or_consume() waits (so the buffer is empty):
        # bytes go to it at once, and the waiting task is not woken.
        self.consumer: Callable[[bytes], object] | None = None
        # With a consumer set by consume(): told of EOF and of a lost connection.
        self.on_end: Callable[[], object] | None = None
        self.woken = False  # wake_receiver() was called: the waiting receive returns b""
        # Set while the transport reads into a frame's buffer (read_into()).
        self.reader: _FrameReader | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a socket transport
        # Every write leaves at once or waits whole in the transport: pause
        # writing as soon as anything waits (as AnyIO's protocol does).
        self.transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        consumer = self.consumer
        if consumer is not None:
            consumer(data)
            return
        buffer = self.buffer
        if buffer is None:
            buffer = self.buffer = deque()
        buffer.append(data)
        self.buffered += len(data)
        if self.buffered > READ_BUFFER and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        if self.on_end is not None:
            self.on_end()
        return True  # keep our side open: the WebSocket decides when to close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.exception = exc
        self._wake_reader()
        self._wake_writer()
        if self.on_end is not None:
            self.on_end()

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        self._wake_writer()

    def stop_reading_into(self) -> None:
        """Give the transport back its usual protocol, if a :class:`_FrameReader` has it."""
        if self.reader is not None:
            self.reader = None
            self.transport.set_protocol(self)

    def _wake_reader(self) -> None:
        waiter = self.readable
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter = self.drained
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.drain_waiters:
            waiters, self.drain_waiters = self.drain_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


@final
class _FrameReader(asyncio.BufferedProtocol):
    """The transport's protocol while it reads into a buffer given by :meth:`LeanStream.read_into`.

    The transport calls ``recv_into()`` on the buffer itself (asyncio and
    uvloop both do, for a ``BufferedProtocol``): the bytes land where the
    WebSocket's core wants them, with no copy of its own. Everything but
    the bytes goes to the usual protocol, which takes the transport back
    once the buffer is full, the read side ends, or the consumer stops.
    """

    __slots__ = ("main", "on_filled", "view")

    def __init__(
        self, main: _Protocol, view: memoryview, on_filled: Callable[[int], object]
    ) -> None:
        self.main = main
        self.view = view
        self.on_filled = on_filled

    def get_buffer(self, sizehint: int) -> memoryview:  # noqa: ARG002 (the whole rest is wanted)
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        view = self.view = self.view[nbytes:]
        if not view:
            self.main.stop_reading_into()  # before the callback, which may give another
        self.on_filled(nbytes)

    def eof_received(self) -> bool:
        main = self.main
        main.stop_reading_into()
        return main.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        main = self.main
        main.stop_reading_into()
        main.connection_lost(exc)

    def pause_writing(self) -> None:
        self.main.pause_writing()

    def resume_writing(self) -> None:
        self.main.resume_writing()


@final
class LeanStream(anyio.abc.SocketStream):
    """An AnyIO socket stream over an asyncio transport, without per-call system calls.

    Made by :func:`lean_stream`; its typed attributes (addresses, raw
    socket) are those of any AnyIO socket stream.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport_ = transport
        self._protocol = protocol
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket = transport.get_extra_info("socket")
        self._closed = False
        self._receiving = False
        self._sending = False

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    @property
    def raw_socket(self) -> socket.socket:
        """The socket under the transport (AnyIO's ``SocketAttribute.raw_socket``)."""
        return self._sock

    def transport_info(self, name: str) -> Any:
        """What asyncio's transport knows as ``name`` (``"peername"``, ``"sockname"``).

        The transport read the addresses once, when it was made: asking it
        costs no system call, where AnyIO's ``extra()`` (and the socket) do.
        """
        return self._transport_.get_extra_info(name)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes`` bytes, waiting until some arrive.

        Raises:
            EndOfStream: the peer shut its side down and everything was read.
            BrokenResourceError: the connection failed.
            ClosedResourceError: this stream was closed.
            BusyResourceError: another task is already receiving.
        """
        return await self.receive_or_consume(max_bytes, None)

    async def receive_or_consume(
        self, max_bytes: int, consumer: Callable[[bytes], object] | None
    ) -> bytes:
        """:meth:`receive`, but bytes that arrive while it waits go to ``consumer``.

        The consumer is called from the event loop's callback, as the bytes
        arrive, and the waiting task is not woken for them: a WebSocket
        parses there, and wakes only the task its message is for. It wakes
        this task with :meth:`wake_receiver`, which makes this call return
        ``b""`` (and the consumer is no longer called). What was buffered
        before, EOF and errors are returned or raised as by :meth:`receive`.
        """
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        protocol = self._protocol
        if not protocol.buffer:
            if self._receiving:
                raise anyio.BusyResourceError("reading from")
            protocol.stop_reading_into()  # (a consumer's, if any: bytes come here now)
            self._receiving = True
            if protocol.paused_reading:  # by pause_reading(): the buffer is empty
                protocol.paused_reading = False
                protocol.transport.resume_reading()
            try:
                while not (protocol.buffer or protocol.eof or protocol.lost or protocol.woken):
                    protocol.consumer = consumer
                    waiter = protocol.readable = self._loop.create_future()
                    try:
                        await waiter
                    finally:
                        protocol.readable = None
                        protocol.consumer = None
                        protocol.stop_reading_into()
            finally:
                self._receiving = False
            woken, protocol.woken = protocol.woken, False
            if not protocol.buffer:
                if woken and not self._closed:
                    return b""
                if self._closed:
                    raise anyio.ClosedResourceError
                if protocol.exception is not None:
                    raise anyio.BrokenResourceError from protocol.exception
                raise anyio.EndOfStream
        buffer = protocol.buffer
        assert buffer is not None  # not empty, then
        chunk = take_chunk(buffer, max_bytes)
        if not buffer:
            protocol.buffer = None  # most connections never buffer again
        protocol.buffered -= len(chunk)
        if protocol.paused_reading and protocol.buffered <= READ_BUFFER:
            protocol.paused_reading = False
            protocol.transport.resume_reading()
        return chunk

    async def send(self, item: bytes | memoryview) -> None:
        """Hand ``item`` to the transport whole; wait while the kernel has not taken it.

        ``item`` may be any buffer (a ``memoryview`` of a large payload, say).

        Raises:
            BrokenResourceError: the connection failed or ended.
            ClosedResourceError: this stream was closed.
            BusyResourceError: another task is already sending.
        """
        if self._sending:
            raise anyio.BusyResourceError("writing to")
        protocol = self._protocol
        self._sending = True
        try:
            if protocol.paused_writing:
                await self._drain()
            self._check_writable()
            self._transport_.write(item)
            if protocol.paused_writing:
                await self._drain()
                self._check_writable()
        finally:
            self._sending = False

    def _check_writable(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        protocol = self._protocol
        if protocol.exception is not None:
            raise anyio.BrokenResourceError from protocol.exception
        if protocol.lost or self._transport_.is_closing():
            raise anyio.BrokenResourceError

    async def _drain(self) -> None:
        protocol = self._protocol
        while protocol.paused_writing and not protocol.lost:
            waiter = protocol.drained = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                protocol.drained = None

    def consume(self, consumer: Callable[[bytes], object], on_end: Callable[[], object]) -> bool:
        """Hand every byte that arrives to ``consumer``, until :meth:`stop_consuming`.

        No task needs to wait in :meth:`receive`: the consumer is called
        from the event loop's callback, and ``on_end`` when the peer shuts
        its side down or the connection is lost (perhaps twice: both).

        Returns:
            False, and nothing is registered, when bytes are already
            buffered, the read side has ended, or a receive is waiting:
            then read with :meth:`receive` as usual.
        """
        protocol = self._protocol
        if (
            protocol.buffer
            or protocol.eof
            or protocol.lost
            or self._closed
            or self._receiving
            or protocol.paused_reading
        ):
            return False
        protocol.consumer = consumer
        protocol.on_end = on_end
        return True

    def stop_consuming(self) -> None:
        """Undo :meth:`consume`: bytes are buffered for :meth:`receive` again."""
        protocol = self._protocol
        protocol.consumer = None
        protocol.on_end = None
        protocol.stop_reading_into()

    def wake_receiver(self) -> None:
        """Make a waiting :meth:`receive_or_consume` return ``b""`` (else its next call)."""
        protocol = self._protocol
        protocol.consumer = None
        protocol.stop_reading_into()
        protocol.woken = True
        protocol._wake_reader()

    def arrived(self) -> int:
        """How many bytes the kernel holds for this stream now (``FIONREAD``); 0 if unknown."""
        return bytes_arrived(self._sock)

    def read_into(self, view: memoryview, on_filled: Callable[[int], object]) -> bool:
        """Have the next bytes read straight into ``view``, while a consumer is set.

        For the rest of a large frame, whose buffer the WebSocket's core
        made (:meth:`~wskit.core.Connection.frame_buffer`): the kernel copies
        it there, where the usual reads would each make bytes of their own,
        to be joined later. ``on_filled(count)`` is called from the loop's
        callback for every read, ``count`` bytes written at the start of
        what was left of ``view``. Reading goes back to the consumer once
        ``view`` is full (before that ``on_filled``), or at once when the
        consumer stops (:meth:`stop_consuming`, :meth:`wake_receiver`, the
        end of a :meth:`receive_or_consume`): bytes then come as usual, and
        the caller feeds them to its core, which goes on filling the buffer.
        EOF and a lost connection are reported as usual.

        Returns:
            False, and nothing changes, when no consumer is set (nor one
            can be: the read side ended) or ``view`` is empty.
        """
        protocol = self._protocol
        if protocol.consumer is None or protocol.lost or protocol.eof or not len(view):
            return False
        reader = protocol.reader = _FrameReader(protocol, view, on_filled)
        self._transport_.set_protocol(reader)
        return True

    def time(self) -> float:
        """The event loop's clock (``anyio.current_time()``), also usable in a loop callback."""
        return self._loop.time()

    def pause_reading(self) -> None:
        """Stop reading from the socket until the next ``receive()``.

        For a reader that stops receiving for a while (its queue is full):
        the peer then meets TCP backpressure at once, not after
        :data:`READ_BUFFER` more bytes.
        """
        protocol = self._protocol
        if not protocol.paused_reading and not protocol.lost:
            protocol.paused_reading = True
            self._transport_.pause_reading()

    def can_write_now(self) -> bool:
        """Whether :meth:`write_now` may be called: open, not sending, nothing waiting to leave."""
        protocol = self._protocol
        return not (
            self._sending
            or self._closed
            or protocol.lost
            or protocol.paused_writing
            or self._transport_.is_closing()
        )

    def soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the event loop after the current step of the current task."""
        self._loop.call_soon(callback)

    def write_now(self, item: bytes | memoryview) -> None:
        """Hand ``item`` (any buffer) to the transport at once, whole, without waiting.

        Only after :meth:`can_write_now` said yes. What the kernel does not
        take stays in the transport's buffer, and :meth:`can_write_now`
        says no until it has left (:meth:`wait_drained`). Errors surface at the next
        ``receive()`` or ``send()``.
        """
        self._transport_.write(item)

    async def wait_drained(self) -> None:
        """Wait until the transport's buffer empties or the connection is lost.

        Returns at once if nothing waits to leave. Cancel-safe, and any
        number of tasks may wait at once.
        """
        if self.draining():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._protocol.drain_waiters.append(waiter)
            await waiter

    def new_event(self) -> LoopEvent:
        """An event for this stream's loop (see :class:`LoopEvent`)."""
        return LoopEvent(self._loop)

    def wake_drain_waiters(self) -> None:
        """Wake every :meth:`wait_drained` caller now, drained or not (they check again).

        For a connection that ended: a ``send()`` waiting for room must raise
        at once, not when the peer reads again or the transport is closed.
        """
        self._protocol._wake_writer()

    def draining(self) -> bool:
        """Whether written bytes still wait to leave on a live connection."""
        return self._protocol.paused_writing and not self._protocol.lost and not self._closed

    async def send_eof(self) -> None:
        """Shut down the write side (TCP FIN); reading goes on."""
        with contextlib.suppress(OSError):
            self._transport_.write_eof()

    async def aclose(self) -> None:
        """Close at once, as AnyIO's stream does: what was not sent is dropped."""
        self.close_now()
        await anyio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """:meth:`aclose` without the checkpoint, for a caller that is not a task."""
        self._closed = True
        self._transport_.abort()


def lean_stream(stream: _S) -> _S | LeanStream:
    """Move an AnyIO socket stream on asyncio to a :class:`LeanStream`.

    Args:
        stream: a stream wskit just opened or accepted, before any I/O on it.

    Returns:
        The lean stream over the same transport; ``stream`` itself on Trio,
        for TLS or in-memory streams, or when the stream's internals are not
        the ones this was written against (another AnyIO version).
    """
    # Only AnyIO's asyncio backend makes this type: the check also says
    # we run on asyncio.
    backend = sys.modules.get("anyio._backends._asyncio")
    kind: Any = getattr(backend, "SocketStream", None)
    if kind is None or type(stream) is not kind:
        return stream
    transport: Any = getattr(stream, "_transport", None)
    old = getattr(stream, "_protocol", None)
    queue = getattr(old, "read_queue", None)
    # uvloop's transports do not derive from asyncio.Transport, but keep its
    # contract (whole writes, set_protocol): recognized by what they offer.
    if not all(hasattr(transport, name) for name in _TRANSPORT_METHODS):
        return stream
    if not isinstance(queue, deque):
        return stream
    if transport.is_closing():
        return stream
    protocol = _Protocol()
    protocol.transport = transport
    if queue:
        protocol.buffer = deque(queue)
        protocol.buffered = sum(map(len, queue))
    protocol.eof = bool(getattr(old, "is_at_eof", False))
    protocol.exception = getattr(old, "exception", None)
    write_event = getattr(old, "write_event", None)
    protocol.paused_writing = write_event is not None and not write_event.is_set()
    transport.set_protocol(protocol)
    transport.set_write_buffer_limits(0)
    transport.resume_reading()
    return LeanStream(transport, protocol)


def lean_accept(
    listener: anyio.abc.SocketListener,
) -> Callable[[], Awaitable[LeanStream]] | None:
    """An ``accept()`` for ``listener`` that makes a :class:`LeanStream` directly.

    The accepted socket gets its transport with wskit's protocol at once:
    no AnyIO stream, protocol, events and cancel scope are built only to
    be moved over by :func:`lean_stream`. Errors are those of
    ``loop.sock_accept()`` (``OSError``: EMFILE and friends), as from
    AnyIO's ``accept()``; cancelling it while it waits accepts nothing.

    Args:
        listener: a listener wskit opened; it still owns the listening
            socket (closing it stops this accept).

    Returns:
        The accept function, or None unless ``listener`` is AnyIO's TCP
        listener on asyncio (or uvloop): Unix listeners, Trio, and
        listeners this was not written against keep their own ``accept()``.
    """
    accept_socket = lean_socket_accept(listener)
    if accept_socket is None:
        return None

    async def accept() -> LeanStream:
        return await lean_open(await accept_socket())

    return accept


def lean_socket_accept(
    listener: anyio.abc.SocketListener,
) -> Callable[[], Awaitable[socket.socket]] | None:
    """:func:`lean_accept`'s first half: an ``accept()`` returning the accepted socket.

    The socket has TCP_NODELAY set; :func:`lean_open` makes its stream. A
    server makes each stream in its connection's task, so that accepting
    does not wait a loop pass for every transport (``connect_accepted_socket()``
    waits for ``connection_made()``): a burst of connections is accepted in
    one go, with a checkpoint every :data:`~wskit.backends.direct.CHECKPOINT_EVERY`
    accepts so that a flood cannot hold the loop.

    Args:
        listener: as for :func:`lean_accept`.

    Returns:
        The accept function, or None where :func:`lean_accept` returns None.
    """
    backend = sys.modules.get("anyio._backends._asyncio")
    kind: Any = getattr(backend, "TCPSocketListener", None)
    if kind is None or type(listener) is not kind:
        return None
    raw: socket.socket = listener.extra(anyio.abc.SocketAttribute.raw_socket)
    loop = asyncio.get_running_loop()
    taken = 0  # accepts since the last checkpoint

    async def accept() -> socket.socket:
        nonlocal taken
        if taken >= CHECKPOINT_EVERY:
            # Before accepting, not after: cancelled here, nothing is lost.
            taken = 0
            await anyio.lowlevel.checkpoint()
        try:
            # What the kernel holds is taken at once: uvloop's sock_accept()
            # adds and removes the listener in epoll at every call, and
            # asyncio's makes a future even when a connection is waiting.
            sock, _ = raw.accept()
        except BlockingIOError:
            sock = await _wait_and_accept(loop, raw)
        else:
            try:
                sock.setblocking(False)  # as sock_accept() does
            except OSError:
                sock.close()
                raise
        taken += 1
        if sock.proto != socket.IPPROTO_TCP:
            # asyncio sets TCP_NODELAY only on sockets made with
            # IPPROTO_TCP: not on MPTCP ones, nor on those of a listener made
            # with protocol 0 (serve(sock=...)). AnyIO's accept() sets it on all.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    return accept


async def _wait_and_accept(loop: asyncio.AbstractEventLoop, raw: socket.socket) -> socket.socket:
    """Wait for a connection on the listening socket ``raw`` and accept it."""
    try:
        sock, _ = await loop.sock_accept(raw)
    except asyncio.CancelledError:
        # bpo-41317 (as AnyIO does): a cancelled sock_accept() may leave its
        # reader behind; the socket is closed soon after.
        with contextlib.suppress(ValueError, NotImplementedError, OSError):
            loop.remove_reader(raw)
        raise
    return sock


async def lean_open(sock: socket.socket) -> LeanStream:
    """Make the :class:`LeanStream` of a socket from :func:`lean_socket_accept`.

    Args:
        sock: the accepted socket; owned by the stream, or closed if this fails.

    Returns:
        The stream, its transport made with wskit's protocol.

    Raises:
        OSError: the transport could not be made (the socket is closed).
    """
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.connect_accepted_socket(_Protocol, sock)
    except BaseException:
        sock.close()  # the transport closed it already, if it was made
        raise
    return LeanStream(transport, protocol)


_PRUNE_FIRST = 16
"""Waiters a :class:`LoopEvent` holds beyond its first before it drops cancelled ones."""


@final
class LoopEvent:
    """What ``anyio.Event`` does, for the tasks of one asyncio loop: a future per waiter.

    A WebSocket's receive queue makes an event each time its reader has to
    wait, which for a reader that keeps up is once per message. ``anyio.Event``
    finds the running backend and builds an ``asyncio.Event`` (with its
    deque) every time; this holds the futures of its waiters, made when
    waited on, and :meth:`wait` gives the future itself rather than a
    coroutine awaiting it (so await it: it is not a coroutine to start as a
    task). Cancel-safe (a cancelled waiter's future alone is cancelled, and
    kept until :meth:`set` or the next pruning, see ``_PRUNE_FIRST``), and
    any number of tasks may wait.
    """

    __slots__ = ("_first", "_loop", "_more", "_prune_at", "_set")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._set = False
        # The first waiter's future; most events have one waiter, and no list.
        self._first: asyncio.Future[None] | None = None
        self._more: list[asyncio.Future[None]] | None = None
        self._prune_at = _PRUNE_FIRST

    def set(self) -> None:
        """Wake every waiter; later waits return at once."""
        self._set = True
        first = self._first
        if first is not None:
            self._first = None
            if not first.done():
                first.set_result(None)
        more = self._more
        if more is not None:
            self._more = None
            for waiter in more:
                if not waiter.done():
                    waiter.set_result(None)

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._set

    def wait(self) -> Awaitable[None]:
        """Wait until :meth:`set` is called (at once if it was): ``await event.wait()``."""
        waiter = self._loop.create_future()
        if self._set:
            waiter.set_result(None)  # awaiting a done future does not yield
            return waiter
        first = self._first
        if first is None or first.done():  # none, or cancelled: its place is free
            self._first = waiter
            return waiter
        more = self._more
        if more is None:
            self._more = [waiter]
            return waiter
        if len(more) >= self._prune_at:
            # Waits cancelled before set() leave done futures behind: drop
            # them, at lengths that double, so a long-lived event that is
            # waited on with timeouts holds only its live waiters (about).
            more[:] = [other for other in more if not other.done()]
            self._prune_at = max(_PRUNE_FIRST, 2 * len(more))
        more.append(waiter)
        return waiter
