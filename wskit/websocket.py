"""The user-facing WebSocket: a sans-I/O core connection driven over an AnyIO byte stream.

Per connection, one task (:meth:`WebSocket.run`) reads and then closes, and
a writer joins it when needed; the core is synchronous, so no lock guards it,
only the transport's write side is serialized. The tasks live in a task group
the caller passes in (the server's, for all its connections): a connection
makes no task group of its own.

* the **reader** receives bytes, feeds the core, and queues messages; when
  ``max_queue`` messages wait, it stops reading, so the peer meets TCP
  backpressure instead of our memory growing. Once the core's ``Terminated``
  event came, the same task becomes the **closer**: it lets the writer
  flush (bounded by ``close_timeout``), on the client waits for the server
  to close TCP first, and closes the transport. When the connection ends
  while the reader waits for bytes, it is woken (:mod:`wskit.backends.wake`);
* the **writer** takes ``data_to_send()`` whenever woken, so pongs and close
  echoes queued by the core leave without a caller, and pongs coalesce while
  a slow peer holds the write side. It starts at its first wake-up before
  the end: an idle connection never needs it, and when none ran, the closer
  writes the close frame itself;
* the **timer** is not a task of the connection's: a :class:`~wskit._timers.Timers`
  service shared by the server's connections calls ``tick()`` at
  ``next_deadline()``. Keepalive pings, the pong timeout and the close
  timeout work even while the write side is stuck (a stalled peer cannot
  silence the heartbeat that detects it).

Two transports let a message skip task switches:

* on the **lean asyncio stream** (:mod:`wskit.backends.lean`), whose writes
  are whole and never wait, a server connection has no reader task at all
  (:meth:`WebSocket.start`): the stream's callbacks feed the core and
  deliver messages (:meth:`WebSocket._consume`), and a task starts only for
  what needs a wait (a full queue, a plugin's reply, a close frame that has
  to drain). Writes leave from the sending task while the kernel keeps up,
  or from a loop callback after a burst; the writer takes over only when a
  write would wait;
* on **AnyIO's Trio socket streams**, ``send()`` and the reader write to the
  socket themselves while the writer is idle and the kernel takes it all
  (:mod:`wskit.backends.direct`), yielding now and then; what the kernel
  refuses goes to the writer first. A server connection starts in **pull
  mode**, with no reader task: the task waiting in ``recv()`` reads the
  socket and feeds the core itself (:meth:`WebSocket._pull`), one task
  switch per message instead of two. A reader task takes over for good
  when someone must read while nobody is in ``recv()``: nobody was for a
  whole :data:`AWAY_CHECK` period (checked by the timer service), a write
  must wait, the close handshake, ``ping()``, two receivers, a full queue
  or a plugin's reply (:meth:`WebSocket.start`).

Either way, the answers to a burst of queued messages leave in one write.
Nothing on the data path allocates a synchronization primitive per message:
wake-ups and flags make an event only while a task sleeps on them
(:mod:`wskit._signal`), the queue likewise.

``send()`` waits while more than ``write_limit`` bytes are buffered (in the core,
in flight, or in the lean transport), this message included; while received
messages wait in the queue, up to :data:`BURST_LIMIT` instead. ``recv()`` and
iteration take messages from the queue.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterable, AsyncIterator, Coroutine, Iterable, Sequence
from typing import Any, Protocol, cast, final

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSStream

from ._signal import Flag, Signal
from ._timers import PATROL_PERIOD, Timers
from .backends.direct import DirectSocket, remainder
from .backends.errors import TRANSPORT_ENDED, TRANSPORT_ERRORS, aclose_quietly
from .backends.lean import LeanStream
from .backends.transport import TransportInfo
from .backends.trio_poller import Poller
from .backends.wake import receive_waker
from .core import (
    ClientConnection,
    Connection,
    Event,
    Fragment,
    Message,
    Pong,
    Request,
    State,
    Terminated,
)
from .core.reassembly import Reassembly
from .errors import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    HandshakeError,
    InvalidState,
    ProtocolError,
    UsageError,
)
from .message_queue import MessageQueue, Piece
from .plugins.base import DROP, PASS, Close, Reply, Verdict
from .plugins.chain import MessageCheck

__all__ = ["WebSocket"]


READ_SIZE = 262144
"""Bytes asked of the transport per read: large reads amortize the per-call cost."""

STEP_BUDGET = 65536
"""Bytes of message data one parse step may produce when compression can be
negotiated (``Connection.step_budget``): one read may inflate ~1000x, and the
queue takes each step's events before the next, so ``max_queue`` bounds
memory. The server and ``connect()`` set it before the handshake, so frames
that arrive with it are parsed in steps too."""

BURST_LIMIT = 262144
"""While received messages wait in the queue, ``send()`` lets this many bytes
wait to be written (or ``write_limit`` when larger) before it writes or
waits: the answers to a burst leave together, in one write, once the queue
is empty, at the handler's next wait, or once this much waits. On loopback
here, one ``sendmsg`` of four 64 KiB buffers took half the CPU of four
``send`` calls, and the pipelined 64 KiB echo 14-21% less server CPU per
message. The same as :data:`READ_SIZE`: one read's worth of answers."""

AWAY_CHECK = PATROL_PERIOD
"""Seconds between checks that someone reads a server connection in pull mode
(on Trio, where the task in ``recv()`` reads the socket itself): once nobody
has been in ``recv()`` for a whole period, a reader task takes over. So bytes
(a ping, a close frame) wait at most twice this before they are read (three
times at a connection's start: its handler gets a whole period before its
first ``recv()``)."""

PULL_MIN_PING_TIMEOUT = 1.0
"""Pull mode needs a keepalive ``ping_timeout`` at least this long (or none):
a pong may wait ``3 * AWAY_CHECK`` to be read, which must not fail the
connection. Shorter timeouts get a reader task from the start."""

# 1005: a close frame without a code, which is how a browser's plain close() ends.
_NORMAL_CLOSURES = frozenset({1000, 1001, 1005})


def closed_error(code: int, reason: str) -> ConnectionClosed:
    """The ConnectionClosed subclass that fits a close code."""
    if code in _NORMAL_CLOSURES:
        return ConnectionClosedOK(code, reason)
    return ConnectionClosedError(code, reason)


@final
class WebSocket:
    """One open WebSocket connection, on the server or the client side.

    Get one from :func:`wskit.serve` (passed to your handler) or
    :func:`wskit.connect`; do not create it yourself.

    Attributes:
        context: per-connection data, shared by plugins and the application
            (authentication stores the principal here).
    """

    # One per connection: slots, not a dict of ~40 attributes.
    __slots__ = (
        "__weakref__",  # the timer service holds connections weakly
        "_assembling",
        "_back",
        "_burst_limit",
        "_callbacks",
        "_check",
        "_close_plans",
        "_close_sent",
        "_close_started",
        "_close_timeout",
        "_closed",
        "_conn",
        "_direct",
        "_drained",
        "_early_events",
        "_end",
        "_eof",
        "_finished",
        "_flush_scheduled",
        "_flushed",
        "_fragmenting",
        "_frame_waiting",
        "_handoff",
        "_handoff_data",
        "_inflight",
        "_max_queue",
        "_partial",
        "_patrolled",
        "_pause",
        "_piece_stream",
        "_pings",
        "_puller",
        "_pulling",
        "_queue",
        "_read_scope",
        "_receiving",
        "_refusing",
        "_request",
        "_skip_rest",
        "_slice",
        "_sock",
        "_stream",
        "_tail",
        "_take_output",
        "_tasks",
        "_terminated",
        "_timer_deadline",
        "_timers",
        "_transport",
        "_wake_writer",
        "_waker",
        "_write_limit",
        "_writer_started",
        "_writing",
        "context",
    )

    def __init__(
        self,
        conn: Connection,
        stream: anyio.abc.ByteStream,
        *,
        transport: TransportInfo,
        request: Request | None,
        early_events: list[Event] | None = None,
        max_queue: int | None,
        write_limit: int,
        close_timeout: float | None,
        context: dict[str, Any] | None = None,
        message_check: MessageCheck | None = None,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._transport = transport
        self._request = request
        self._write_limit = write_limit
        # See _send_limit(). write_limit=0 asks that send() wait until its
        # bytes are written: no burst lifts that.
        self._burst_limit = max(write_limit, BURST_LIMIT) if write_limit else 0
        self._close_timeout = close_timeout
        self._close_started: float | None = None  # when we sent our close frame
        self.context: dict[str, Any] = {} if context is None else context
        # The plugins' on_message: it sees whole messages, so with one the
        # reader assembles pieces (bounded by max_message) before queueing.
        self._check = message_check
        self._assembling = Reassembly()
        self._refusing = False  # a plugin closed the connection: deliver nothing more
        # close_after() plans: key -> (deadline, code, reason)
        self._close_plans: dict[object, tuple[float, int, str]] = {}
        self._queue = (
            MessageQueue(max_queue, new_event=stream.new_event)
            if isinstance(stream, LeanStream)
            else MessageQueue(max_queue)
        )
        # Pieces a cancelled recv() took. Joined as they come, not kept one
        # object per read: a message dribbled a byte per segment would cost
        # tens of bytes per byte (aiohttp's PYSEC-2026-4389).
        self._partial = Reassembly()
        self._skip_rest = False  # a recv_stream() was left mid-message
        self._piece_stream: _PieceStream | None = None
        self._max_queue = max_queue
        # Cancelled when we start closing, to unpause a reader held by a full queue.
        self._pause: anyio.CancelScope | None = None
        self._wake_writer = Signal()
        # The writer task starts at its first wake-up (an idle connection, or
        # one whose writes all go out by callback, never needs it), in the
        # task group given to ``run()``; None before and after run().
        self._tasks: anyio.abc.TaskGroup | None = None
        self._finished = False  # run() is over: a writer still waiting returns
        self._writer_started = False
        # On the lean asyncio stream, whose writes are whole and never wait,
        # send() and the reader write themselves while the writer is idle:
        # no task switch per message. Elsewhere (Trio, TLS) the writer does.
        self._direct = stream if isinstance(stream, LeanStream) else None
        # Streams known to take any buffer get a large payload as a view of
        # it behind its header's first bytes (no copy, no tiny segment);
        # others (a stream given to connect() or Server.handle()) get bytes.
        takes_views = isinstance(stream, LeanStream | anyio.abc.SocketStream | TLSStream)
        self._take_output = conn.buffers_to_send if takes_views else conn.chunks_to_send
        # On AnyIO's Trio socket streams, send() and the reader write
        # themselves while the writer is idle and the kernel takes it all: no
        # writer wake-up, no scheduler pass per message (~20 us each on Trio).
        # What the kernel refuses waits in _tail for the writer, ahead of
        # anything the core holds. While messages wait in the queue, send()
        # leaves its frames to the writer instead, which runs once the
        # handler waits: answers to a burst leave in one write.
        self._sock = DirectSocket.of(stream)
        self._tail: list[bytes | memoryview] = []
        self._writing = False  # the writer is between taking data and handing it over
        self._flush_scheduled = False
        # Asyncio: a large frame's first bytes may wait in the core for its
        # buffer (see _consume); most reads need not ask the core before too.
        self._frame_waiting = False
        # The deadline scheduled with the timer service (inf: none); a new
        # one is scheduled only when the core wants an earlier one, not
        # after every read.
        self._timers: Timers | None = None
        self._timer_deadline = math.inf
        # When the connection ends while the reader waits for bytes (a
        # timeout, a failed write), the reader is woken to close: by the
        # stream's own wake-up where it has one, else by cancelling its scope.
        self._waker = receive_waker(stream)
        self._read_scope: anyio.CancelScope | None = None
        self._receiving = False
        self._eof = False  # the transport's read side ended
        # Events the lean stream's callback parsed but could not deliver
        # without waiting (a full queue, a plugin's reply): the reader's.
        self._handoff: list[Event | _Verdict] = []
        self._handoff_data = b""  # and the bytes it had not fed to the core yet
        # Served from the lean stream's callbacks, with no reader task (see start()).
        self._callbacks = False
        # Pull mode (Trio, see start()): no reader task; the task in recv()
        # reads the socket. _puller: a task is reading in _pull() now.
        self._pulling = False
        self._puller = False
        # Whether the timer service's patrol checks this connection now, and
        # how many of its walks to let pass before the reader starts: 1 after
        # a recv() read (maybe just before the walk), 2 at the start (the
        # first walk may come at once). See on_patrol().
        self._patrolled = False
        self._back = 0
        # Senders waiting for the buffer to drain below write_limit (made on demand).
        self._drained: anyio.Event | None = None
        self._flushed = Flag()
        self._terminated = Flag()
        # Waited for by every server handler's task at its end: on the lean
        # stream, with the loop's own event.
        self._closed = Flag(stream.new_event) if isinstance(stream, LeanStream) else Flag()
        self._inflight = 0
        # ping() waiters: payload -> (done, the RTT once known, send time)
        self._pings: dict[bytes, tuple[anyio.Event, list[float], float]] = {}
        self._close_sent: tuple[int, str] | None = None
        # Set while send_fragments() holds the message stream: other sends wait.
        self._fragmenting: anyio.Event | None = None
        # With compression, one read may inflate ~1000x: the core parses it
        # in steps (STEP_BUDGET), and the queue takes each step's events
        # before the next, so max_queue bounds memory again.
        self._slice = STEP_BUDGET if conn.compression is not None else 0
        conn.step_budget = self._slice or None
        # The rest of a large frame is read into a buffer of its own once it
        # has arrived, one copy of its message fewer: by _read_now on Trio,
        # by the lean stream's transport on asyncio (_read_frame_directly).
        direct_reads = self._sock is not None or self._direct is not None
        conn.frame_buffer_min = READ_SIZE if direct_reads else None
        self._end: Terminated | None = None
        # Events the core already holds (server side: frames that came with the
        # request, replayed by accept()) are the reader's too: left in the core,
        # the timer or writer could drain them first (a Trio task order).
        self._early_events: list[Event] = [*(early_events or []), *conn.events()]

    # ------------------------------------------------------------ properties

    @property
    def request(self) -> Request | None:
        """The upgrade request (path, query, headers, offered subprotocols); server side."""
        return self._request

    @property
    def subprotocol(self) -> str | None:
        """The negotiated subprotocol, or None."""
        return self._conn.subprotocol

    @property
    def compression(self) -> str | None:
        """The negotiated compression extension ("permessage-deflate") or None."""
        return self._conn.compression

    @property
    def state(self) -> State:
        """CONNECTING, OPEN, CLOSING or CLOSED."""
        return self._conn.state

    @property
    def latency(self) -> float:
        """Round-trip time of the last answered ping, in seconds (0.0 until one is)."""
        return self._conn.latency

    @property
    def transport(self) -> TransportInfo:
        """Facts about the transport: peer and local address, TLS, Unix, MPTCP."""
        return self._transport

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is closed (1006 without a close frame)."""
        return self._end.code if self._end else None

    @property
    def close_reason(self) -> str | None:
        """The close reason once the connection is closed."""
        return self._end.reason if self._end else None

    @property
    def error(self) -> ProtocolError | HandshakeError | None:
        """Why the connection failed, when wskit could name it."""
        return self._end.error if self._end else None

    # ---------------------------------------------------------------- tasks

    async def run(self, tasks: anyio.abc.TaskGroup, timers: Timers) -> None:
        """Drive the connection until it is closed and its transport released.

        The server and ``connect()`` run this; applications do not call it.
        This task reads until the core terminates, then closes; the writer,
        when one is needed, starts in ``tasks``, and ``timers`` keeps the
        connection's deadlines.
        """
        self._tasks = tasks
        self._timers = timers
        if self._wake_writer.is_set():  # woken before run() started
            self._kick_writer()
        self._poke_timer()
        await self._drive()

    def start(
        self, tasks: anyio.abc.TaskGroup, timers: Timers, poller: Poller | None = None
    ) -> None:
        """Start serving the connection, in ``tasks`` or with no task of its own.

        The server calls this. On the lean asyncio stream, a server
        connection needs no reader task: the stream's callbacks feed the
        core and deliver messages (:meth:`_consume`), and the end of the
        connection closes the transport from a callback when nothing waits
        to leave. A task starts only for what needs a wait: a full queue,
        a plugin's reply, a close frame that has to drain. Elsewhere this
        starts :meth:`run` in ``tasks``.

        On a Trio socket (:mod:`wskit.backends.direct`), a server connection
        starts in pull mode, with no reader task either: the task that waits
        in ``recv()`` reads the socket and feeds the core itself
        (:meth:`_pull`), so a message costs one task switch, not two. A
        reader task takes over for good when something needs the socket read
        while nobody is in ``recv()`` (:meth:`_want_reader`): nobody was for
        a whole :data:`AWAY_CHECK` period, a write must wait, the close
        handshake, a ``ping()``, two tasks receiving at once, a full queue
        or a plugin's reply. With ``poller`` (the server's, on Linux), the
        task in ``recv()`` waits for bytes through it rather than through
        Trio's own ``wait_readable()`` (:mod:`wskit.backends.trio_poller`).
        """
        if self._may_pull():
            self._tasks = tasks
            self._timers = timers
            self._pulling = True
            self._back = 2  # the handler is about to call recv(): a whole period of grace
            if self._wake_writer.is_set():  # woken before start()
                self._kick_writer()
            self._patrolled = True
            timers.patrol(self)
            self._poke_timer()
            if poller is not None:
                sock = self._sock
                assert sock is not None
                sock.use_poller(poller)
                self._waker = sock.wake_reader  # it wakes a wait in the poller too
            return
        direct = self._direct
        if (
            direct is None
            or isinstance(self._conn, ClientConnection)  # it waits for the server's EOF
            or self._early_events
            or self._conn.has_pending_input  # frames with the handshake, left for steps
            or not direct.consume(self._consume, self._transport_ended)
        ):
            tasks.start_soon(self.run, tasks, timers)
            return
        self._tasks = tasks
        self._timers = timers
        self._callbacks = True
        if self._wake_writer.is_set():  # woken before start()
            self._kick_writer()
        self._poke_timer()

    def _may_pull(self) -> bool:
        """Whether this connection can start in pull mode (see :meth:`start`)."""
        conn = self._conn
        config = conn.config
        timeout = config.ping_timeout
        return (
            self._sock is not None
            and self._waker is not None  # to wake a recv() waiting for bytes at the end
            and not isinstance(conn, ClientConnection)  # it waits for the server's EOF
            and not self._early_events
            and not conn.has_pending_input
            and (
                config.ping_interval is None or timeout is None or timeout >= PULL_MIN_PING_TIMEOUT
            )
        )

    def _want_reader(self) -> None:
        """Leave pull mode: a reader task reads from now on (started at once, or by the puller)."""
        if not self._pulling:
            return
        self._pulling = False  # the patrol drops it at its next walk
        if not self._puller:
            self._start_reader()
        # else the task in _pull() is waiting on the socket: two waiters would
        # clash (Trio allows one), so it starts the reader as it leaves.

    def _start_reader(self) -> None:
        sock = self._sock
        if sock is not None:
            # Out of pull mode, nobody waits through the poller now: the
            # reader waits through Trio, only for this socket.
            sock.leave_poller()
        tasks = self._tasks
        if tasks is not None and not self._finished:
            tasks.start_soon(self._drive)

    def on_patrol(self) -> bool:
        """The away check, at each walk of the timer service's patrol (pull mode).

        Starts the reader if nobody read for a whole period. Returns whether
        the connection stays on the patrol: not while a task waits in
        ``recv()`` (it joins again as it leaves), so an idle connection
        costs the patrol nothing.
        """
        if self._pulling and not self._puller:
            if self._back:
                # A recv() read since the last walk: maybe just now. Look again
                # at the next one (so nobody reads for at most two periods).
                self._back -= 1
                return True
            self._want_reader()
        self._patrolled = False
        return False

    async def _pull(self) -> None:
        """Pull mode: read the socket in this task until a piece is queued or the connection ends.

        Bytes read are fed to the core before any checkpoint, so a cancelled
        ``recv()`` loses nothing: their messages are queued, and the events
        that need a task go to the reader with :meth:`_hand_over`.
        """
        if self._puller:
            # Another task is reading: a reader task takes over, for both.
            self._want_reader()
            return
        sock = self._sock
        assert sock is not None
        queue = self._queue
        terminated = self._terminated
        self._puller = True
        try:
            if queue or terminated.is_set():
                return
            # Each pass reads. The queue is checked after each read (and
            # again after a yield), the end after each wait and each read:
            # only this task fills the queue while it pulls.
            while self._pulling:
                try:
                    if sock.drained:
                        # The last read emptied the kernel's buffer: wait
                        # before reading (see DirectSocket.drained).
                        self._receiving = True  # the end wakes us (see _handle)
                        try:
                            await sock.readable()
                        finally:
                            self._receiving = False
                        sock.drained = False
                        if terminated.is_set() or not self._pulling:
                            break
                    got = self._read_now(sock)
                    if got is None:
                        continue  # woken, but nothing came after all: wait again
                except sock.ended:
                    if not terminated.is_set():  # else woken by the end
                        self._eof = True
                        self._conn.receive_eof()
                        self._after_core_call()
                    return
                if isinstance(got, int):  # read into the core's frame buffer
                    self._consume_filled(got, sock)
                else:
                    self._consume(got)  # pongs and close echoes leave from here too
                delivered = bool(queue)
                if not delivered:
                    # The message is not whole yet: its next bytes are most
                    # likely on their way or there already (a large message
                    # streams in): read before waiting.
                    sock.drained = False
                if sock.due_checkpoint():
                    # The kernel kept having bytes, so nothing here waited: let
                    # other tasks have a turn (a handler that only receives
                    # would never yield). Shielded: what was read is queued.
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                    # Another task's recv() may have taken it meanwhile: we
                    # return only with something queued (or at the end).
                    delivered = bool(queue)
                if delivered or terminated.is_set():
                    break
        finally:
            self._puller = False
            self._back = 1
            if not self._pulling:
                self._start_reader()  # wanted while we read
            elif terminated.is_set():
                self._finish_pulled()
            elif not self._patrolled:
                timers = self._timers
                if timers is not None:
                    self._patrolled = True
                    timers.patrol(self)

    def _finish_pulled(self) -> None:
        """After the end in pull mode: close now if nothing waits to leave, else the closer does."""
        self._pulling = False
        sock = self._sock
        assert sock is not None
        if self._writer_started or self._writing or self._tail or not self._write_directly(sock):
            # The closer waits for the rest to leave, within close_timeout
            # (the reader's loop returns at once: the core has terminated).
            self._start_reader()
            return
        self._close_pulled(sock)

    def _close_pulled(self, sock: DirectSocket) -> None:
        """Close the transport from pull mode, and mark the connection closed."""
        self._pulling = False
        self._tasks = None
        sock.close_now()
        self._closed.set()
        self._finished = True
        self._wake_writer.set()  # a writer waiting for work returns

    def _transport_ended(self) -> None:
        """The lean stream's read side ended (callback mode): the connection ends."""
        self._eof = True
        self._conn.receive_eof()
        self._after_core_call()

    def _leave_callbacks(self) -> LeanStream:
        """Stop serving from callbacks: from now on a task reads, or nobody does."""
        direct = self._direct
        assert direct is not None
        self._callbacks = False
        direct.stop_consuming()
        return direct

    def _finish_in_callback(self) -> None:
        """Close after the end, in callback mode: at once if nothing waits to leave."""
        if not self._callbacks:
            return  # a reader task took over meanwhile, and closes
        tasks = self._tasks
        if tasks is not None and not self._flush_at_once():
            self._leave_callbacks()
            tasks.start_soon(self._drive)  # the closer waits for the rest to leave
            return
        self._close_now()

    def _abort(self) -> None:
        """End the connection now, closing its transport (a server's shutdown deadline passed).

        Only needed in callback and pull mode: a connection with a task of
        its own ends when that task is cancelled.
        """
        if self._pulling:
            self._pulling = False  # nothing starts from here on (the group may be gone)
            if self._end is None:
                self._conn.receive_eof()  # reported as 1006
                self._after_core_call()
            sock = self._sock
            assert sock is not None
            self._close_pulled(sock)  # wakes a recv() waiting for bytes
            return
        if not self._callbacks:
            return
        if self._end is None:
            self._conn.receive_eof()  # reported as 1006
            self._after_core_call()
        self._close_now()

    def _close_now(self) -> None:
        """Close the transport from callback mode, and mark the connection closed."""
        if not self._callbacks:
            return
        direct = self._leave_callbacks()
        self._tasks = None
        direct.close_now()
        self._closed.set()
        self._finished = True
        self._wake_writer.set()  # a writer waiting for work returns

    async def _drive(self) -> None:
        """Read until the core terminates, then close: the connection's task."""
        try:
            await self._read()
            await self._closer()
        finally:
            self._tasks = None
            if self._end is None:
                # Aborted from outside (a server's shutdown deadline fires a
                # hair before our own close_timeout): report the end as 1006.
                self._conn.receive_eof()
                self._after_core_call()
            if self._direct is not None:
                self._direct.close_now()  # nothing to wait for, nothing to shield
                self._closed.set()
            else:
                with anyio.CancelScope(shield=True):
                    await self._release_transport()
            self._finished = True
            self._wake_writer.set()  # a writer waiting for work returns

    def _after_core_call(self) -> None:
        """Act on what a call into the core produced, except queueing messages."""
        for event in self._conn.events():
            self._handle(event)
        self._flush_soon()
        self._poke_timer()

    def _kick_writer(self) -> None:
        """Wake the writer; start it if this is its first wake-up with something to write."""
        pending = self._conn.has_data_to_send or bool(self._tail)
        if not (pending or self._terminated.is_set()):
            return  # nothing to write: a wake-up would only cost the writer a pass
        self._wake_writer.set()
        if (
            not self._writer_started
            and pending
            and not self._terminated.is_set()  # after the end, the closer writes the rest
        ):
            tasks = self._tasks
            if tasks is not None:
                self._start_writer(tasks)

    def _start_writer(self, tasks: anyio.abc.TaskGroup) -> None:
        self._writer_started = True
        tasks.start_soon(self._writer)

    def _poke_timer(self) -> None:
        """Schedule the connection's next deadline if it is earlier than the one scheduled."""
        timers = self._timers
        if timers is None or self._terminated.is_set():
            return  # run() schedules the first one; after the end there is none
        deadline = self._conn.next_deadline()
        if self._close_plans:
            planned = min(plan[0] for plan in self._close_plans.values())
            deadline = planned if deadline is None else min(deadline, planned)
        if deadline is None or deadline >= self._timer_deadline:
            return
        if deadline == 0.0:
            # The core starts a timer and needs the current time: tick now
            # rather than wake the service for it.
            try:
                now = anyio.current_time()
            except RuntimeError:  # outside the event loop (a signal handler)
                pass
            else:
                self.on_timer(now)
                return
        replacing = self._timer_deadline != math.inf
        self._timer_deadline = deadline  # before schedule(): a rebuild keeps only this one
        timers.schedule(deadline, self, replacing=replacing)

    def timer_deadline(self) -> float:
        """The deadline scheduled with the timer service (``inf``: none); for :class:`Timers`."""
        return self._timer_deadline

    def on_timer(self, now: float) -> None:
        """Called by the timer service once the scheduled deadline has passed."""
        self._timer_deadline = math.inf
        self._close_if_planned(now)
        self._conn.tick(now)
        self._after_core_call()

    def _handle(self, event: object) -> None:
        if isinstance(event, Message | Fragment):
            # Only the reader produces messages, and it queues them itself.
            raise AssertionError("message outside the reader")  # pragma: no cover
        if isinstance(event, Pong):
            self._pong(event)
        elif isinstance(event, Terminated):
            self._end = event
            self._terminated.set()
            if self._receiving:  # stop waiting for bytes: the reader closes
                if self._waker is not None:
                    self._waker()
                elif self._read_scope is not None:
                    self._read_scope.cancel()
            elif self._callbacks and self._direct is not None:
                # No reader task: close from a callback, after the ones
                # already scheduled (the flush of the close frame).
                self._direct.soon(self._finish_in_callback)
            if self._timer_deadline != math.inf and self._timers is not None:
                self._timer_deadline = math.inf
                self._timers.forget()
            self._kick_writer()  # if it runs; else the closer writes the rest
            if self._direct is not None:
                self._direct.wake_drain_waiters()  # a send() waiting for room raises
            self._queue.close()
            for done, _, _ in self._pings.values():
                done.set()
            self._wake_senders()
            if self._pulling and not self._puller:
                # Nobody in recv() to see the end (a timeout, a failed
                # write): close now, or start the closer.
                self._finish_pulled()

    def _pong(self, pong: Pong) -> None:
        # The core says which pings this pong answers: its own and every
        # earlier one (a keepalive pong may answer a ping() of ours too).
        for payload in pong.acknowledged:
            waiter = self._pings.pop(payload, None)
            if waiter is not None:
                done, rtt, sent_at = waiter
                exact = pong.rtt if payload == pong.payload else None
                rtt.append(exact if exact is not None else anyio.current_time() - sent_at)
                done.set()

    async def _read(self) -> None:
        """Receive and dispatch until the core terminates."""
        if self._waker is not None:
            await self._read_loop()
            return
        with anyio.CancelScope() as scope:
            self._read_scope = scope
            await self._read_loop()
        self._read_scope = None

    async def _read_loop(self) -> None:
        # Frames that came with the handshake are already in the core.
        await self._dispatch([*self._early_events, *self._conn.events()])
        self._early_events = []
        # Frames past the first step (compressed, see STEP_BUDGET) are fed
        # first, in steps, as the rest of a read would be; the core's bytes
        # are older than any the callbacks left.
        pending = self._conn.take_pending_input()
        if pending:
            self._handoff_data = pending + self._handoff_data
        terminated = self._terminated
        # On the lean stream, bytes that arrive while the reader waits are
        # parsed and delivered in the transport's callback (_consume): a
        # message wakes only the task that receives it.
        direct = self._direct
        consume = self._consume
        sock = self._sock
        woke_handler = False
        filled = -1  # bytes just read into the core's frame buffer (Trio), if any
        while True:
            if self._handoff:  # what the callbacks left (see _consume)
                events, self._handoff = self._handoff, []
                await self._dispatch(events)
            data = self._handoff_data
            if data:
                self._handoff_data = b""
            else:
                if terminated.is_set():
                    return
                self._receiving = True
                try:
                    if direct is not None:
                        data = await direct.receive_or_consume(READ_SIZE, consume)
                    elif sock is not None:
                        # Trio: what the kernel already holds is read without
                        # the scheduler pass a receive() ends with.
                        got = self._read_now(sock)
                        if got is None:
                            woke_handler = False  # waiting lets it run anyway
                            await sock.wait_readable()
                            continue
                        if type(got) is int:  # read into the core's frame buffer
                            filled = got
                            data = b""
                        else:
                            data = cast("bytes", got)
                        if (woke_handler and self._queue) or sock.due_checkpoint():
                            # The handler has not taken the message the last
                            # read woke it for: it runs before we parse on, so
                            # its answers keep pace with what the peer sent
                            # (and a failure on what follows comes after them).
                            await anyio.lowlevel.cancel_shielded_checkpoint()
                    else:
                        data = await self._stream.receive(READ_SIZE)
                except TRANSPORT_ENDED:
                    self._eof = True
                    self._conn.receive_eof()
                    self._after_core_call()
                    return
                finally:
                    self._receiving = False
                if self._handoff or self._handoff_data:
                    # _consume() left these while we waited, and bytes came
                    # after them: they go first.
                    if self._handoff:
                        events, self._handoff = self._handoff, []
                        await self._dispatch(events)
                    data, self._handoff_data = self._handoff_data + data, b""
                if not data and filled < 0:
                    continue  # woken by the end
            was_empty = not self._queue
            if filled >= 0:
                # Only the socket read just now: bytes handed over (_handoff_data)
                # are fed before any read, and nothing hands any over to the
                # reader on Trio while it reads (pull mode has ended).
                assert not data
                self._conn.frame_filled(filled, now=anyio.current_time())
                filled = -1
            else:
                # See _consume_piece(): Trio's next read may go into a frame's buffer.
                self._conn.receive_data(data, now=anyio.current_time(), more=sock is not None)
            await self._dispatch(self._conn.events())
            # Compressed: the core parsed one step; once the queue took its
            # events (waiting for room), the next.
            while self._conn.has_pending_input:
                self._conn.receive_data(b"", now=anyio.current_time())
                await self._dispatch(self._conn.events())
            woke_handler = was_empty and bool(self._queue)

    def _consume(self, data: bytes) -> None:
        """Parse bytes with no reader task; deliver what can be.

        Called from the lean stream's callback while the reader waits (or
        none runs), and by :meth:`_pull` in pull mode. What would need a
        wait (a full queue, a plugin verdict other than pass, drop or close,
        a message in several pieces under plugins) goes to the reader with
        the events after it, in order, and with the bytes not fed yet; the
        reader is woken or started for it, and until then, bytes queue in
        the stream or the kernel.
        """
        direct: _Clock | None = self._direct if self._direct is not None else self._sock
        assert direct is not None
        lean = self._direct
        if lean is not None and self._frame_waiting and self._conn.frame_rest:
            # A large frame's first bytes wait in the core: if its rest is
            # here or in the kernel now, it goes into a buffer of its own,
            # these bytes first (the join of its pieces, saved).
            self._conn.frame_buffer(lean.arrived() + len(data))
        fed = self._consume_piece(data, direct)
        if lean is not None:
            self._frame_waiting = fed and self._conn.frame_rest > 0
            if self._frame_waiting:
                self._read_frame_directly(lean)
        if self._slice:
            # Compressed: the core parses in steps, as for the reader
            # (max_queue bounds what one read inflates to).
            conn = self._conn
            while fed and conn.has_pending_input:
                fed = self._consume_piece(b"", direct)
            if conn.has_pending_input:  # the reader took over: it feeds the rest first
                self._handoff_data = conn.take_pending_input()
        self._flush_soon()
        self._poke_timer()

    def _consume_piece(self, data: bytes, direct: _Clock) -> bool:
        """Feed ``data`` and deliver its events; False if some were handed to the reader.

        Called by the lean stream's callback and by :meth:`_pull`;
        ``direct`` tells the time of the read.
        """
        # A large frame this ends in keeps its first bytes in the core (over
        # two reads at most) until a read can go into a buffer of its own,
        # once the rest has arrived (the kernel says: FIONREAD). Its
        # first read often comes with only its first segments, the rest a
        # moment later (a round trip of 1 MiB: 128 KiB, then all of it).
        self._conn.receive_data(data, now=direct.time(), more=True)
        return self._offer_events()

    def _read_frame_directly(self, lean: LeanStream) -> None:
        """On asyncio, have the rest of a large frame read into the core's buffer for it.

        The buffer is made once the kernel holds all of that rest (see
        :meth:`~wskit.core.Connection.frame_buffer`); the transport then
        reads into it, and :meth:`_consume_filled` takes each read.
        """
        if self._handoff or self._handoff_data:
            return  # the reader took over: it feeds what follows
        conn = self._conn
        # A buffer made already is offered whatever arrived says: no FIONREAD then.
        view = conn.frame_buffer(0) or conn.frame_buffer(lean.arrived())
        if view is not None:
            lean.read_into(view, self._filled_in_callback)

    def _filled_in_callback(self, count: int) -> None:
        direct = self._direct
        assert direct is not None
        self._consume_filled(count, direct)

    def _consume_filled(self, count: int, direct: _Clock) -> None:
        """As :meth:`_consume`, for ``count`` bytes read into the core's frame buffer."""
        self._conn.frame_filled(count, now=direct.time())
        self._offer_events()
        self._flush_soon()
        self._poke_timer()

    def _read_now(self, sock: DirectSocket) -> bytes | int | None:
        """Read what the kernel holds now (Trio): the bytes, or None if nothing came.

        When the core offers a buffer for the rest of a large frame, because
        the kernel holds all of it, the read goes there and its byte count is
        returned instead: such a frame's message costs one copy fewer (see
        :meth:`~wskit.core.Connection.frame_buffer`).
        """
        conn = self._conn
        if conn.frame_rest:
            view = conn.frame_buffer(sock.arrived())
            if view is not None:
                return sock.try_receive_into(view)
        return sock.try_receive(READ_SIZE)

    def _offer_events(self) -> bool:
        """Deliver the core's events; False if some went to the reader (see :meth:`_consume`)."""
        events = self._conn.events()
        queue = self._queue
        check = self._check
        for index, event in enumerate(events):
            if isinstance(event, Fragment):
                if check is not None:
                    if not (event.fin and self._assembling.empty and not self._refusing):
                        return self._hand_over(events, index)  # the reader assembles
                    verdict = check(self, event.data)
                    if verdict is DROP:
                        continue
                    if isinstance(verdict, Close):
                        self._refusing = True
                        self._start_closing(verdict.code, verdict.reason)
                        continue
                    if verdict is not PASS:  # a reply waits for room to write
                        return self._hand_over(events, index + 1, verdict)
                if not queue.offer((event.data, event.fin)):
                    if check is not None:
                        # Judged already (a whole message): as a Message, the
                        # reader queues it without judging it again.
                        events[index] = Message(event.data)
                    return self._hand_over(events, index)
            elif isinstance(event, Message):  # a core configured without fragments
                if not queue.offer((event.data, True)):
                    return self._hand_over(events, index)
            else:
                self._handle(event)
        return True

    def _hand_over(self, events: list[Event], start: int, reply: Verdict | None = None) -> bool:
        """Leave ``events[start:]`` (after a verdict to act on) to the reader, and wake it."""
        rest: list[Event | _Verdict] = [] if reply is None else [_Verdict(reply)]
        rest.extend(events[start:])
        self._handoff = rest
        if self._callbacks:  # no reader task yet: one starts for this
            self._leave_callbacks()
            tasks = self._tasks
            assert tasks is not None
            tasks.start_soon(self._drive)
        elif self._puller:
            # Called by the puller (in pull mode, or just out of it: a close
            # verdict earlier in this read): the reader starts as it leaves.
            self._want_reader()
        else:
            assert self._direct is not None
            self._direct.wake_receiver()
        return False

    async def _dispatch(self, events: Sequence[Event | _Verdict]) -> None:
        self._flush_soon()  # pongs and close echoes leave at once
        queue = self._queue
        for event in events:
            piece: Piece
            if isinstance(event, Fragment):
                check = self._check
                if check is not None:
                    if event.fin and self._assembling.empty and not self._refusing:
                        # A message in one piece: judged here, without a
                        # coroutine per message; only other verdicts await.
                        verdict = check(self, event.data)
                        if verdict is not PASS:
                            await self._act_on(verdict)
                            continue
                    else:
                        await self._inspect(event.data, event.fin)
                        continue
                piece = (event.data, event.fin)
            elif isinstance(event, Message):  # a core configured without fragments
                piece = (event.data, True)
            elif isinstance(event, _Verdict):  # judged in _consume(), acted on here
                await self._act_on(event.verdict)
                continue
            else:
                self._handle(event)
                continue
            if not queue.offer(piece):  # full: the slow path
                await self._enqueue(piece)
        self._flush_soon()
        self._poke_timer()

    def _flush_soon(self) -> None:
        """Have what the core holds written soon, by a callback or the writer.

        On the lean stream, a callback run after the current step writes
        everything pending in one write (messages sent in a burst still
        coalesce) without waking the writer task; none is scheduled when
        the core has nothing to send (most reads: no pong, no close echo).
        """
        direct = self._direct
        if direct is None:
            if not (self._conn.has_data_to_send or self._tail or self._terminated.is_set()):
                return  # most reads: nothing to answer, no writer to wake
            sock = self._sock
            if sock is not None and not self._writing and not self._tail:
                # Pongs and close echoes leave from here too, without starting
                # or waking the writer.
                self._write_directly(sock)
            self._kick_writer()
        elif not self._flush_scheduled and self._conn.has_data_to_send:
            self._flush_scheduled = True
            direct.soon(self._flush_callback)

    def _flush_callback(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        """Write what the core holds now if that cannot block; else wake the writer."""
        direct = self._direct
        if direct is None or self._writing or not direct.can_write_now():
            self._kick_writer()
            return
        self._write_now(direct)

    def _write_now(self, direct: LeanStream) -> None:
        """Hand what the core holds to the transport, once ``can_write_now()`` said yes."""
        for data in self._take_output():
            direct.write_now(data)
        if self._terminated.is_set():
            self._kick_writer()  # it reports the close frame flushed

    async def _enqueue(self, piece: Piece) -> None:
        if self._conn.state is State.OPEN:
            # Waits while max_queue pieces wait: we stop reading, and the peer
            # meets TCP backpressure. Cancelled if we start closing meanwhile.
            if self._direct is not None:
                self._direct.pause_reading()  # the peer meets backpressure now
            with anyio.CancelScope() as pause:
                self._pause = pause
                try:
                    await self._queue.put(piece)  # False: the connection ended
                    return
                finally:
                    self._pause = None
        elif self._queue.has_room() or self._conn.state is State.CLOSED:
            # Room, or the peer's close frame came in this read: nothing
            # follows it, so going past max_queue holds at most one read,
            # and every message sent before the close is delivered.
            self._queue.push(piece)
            return
        # We are closing and the queue is full. Pausing now would keep us from
        # reading the peer's close frame (a handler that returned with a full
        # queue would wait out close_timeout and end with 1006), so messages
        # stop here: what is queued ends on whole messages, nothing follows.
        self._queue.close(keep_incomplete=False)

    async def _inspect(self, data: str | bytes, fin: bool) -> None:
        """Put a whole message through the plugins' on_message, then act on the verdict."""
        assert self._check is not None
        if not fin:
            self._assembling.add(data)
            return
        if not self._assembling.empty:
            self._assembling.add(data)
            data = self._assembling.finish()
        if self._refusing:
            return
        verdict = self._check(self, data)
        if verdict is PASS:
            if not self._queue.offer((data, True)):  # full: the slow path
                await self._enqueue((data, True))
        else:
            await self._act_on(verdict)

    async def _act_on(self, verdict: Verdict) -> None:
        """Carry out a verdict other than PASS."""
        if verdict is DROP:
            pass
        elif isinstance(verdict, Reply):
            with contextlib.suppress(ConnectionClosed):  # closing: nowhere to reply
                await self.send(verdict.message)
        elif isinstance(verdict, Close):
            self._refusing = True
            self._start_closing(verdict.code, verdict.reason)

    async def _writer(self) -> None:
        while True:
            await self._wake_writer.wait()
            if self._finished or not await self._write_pending():
                return

    async def _write_pending(self) -> bool:
        """Write what the core holds; False if the transport failed (the end is reported)."""
        # Everything pending leaves together: small frames joined into one
        # write, large payloads as writes of their own (not copied).
        while buffers := (self._tail or self._take_output()):
            self._tail = []
            sock = self._sock
            if sock is not None and self._pulling:
                # Pull mode (the answers to a burst, joined): written at once
                # if the kernel takes them all. A write that has to wait
                # waits for the peer, which may wait for us to read (both
                # sides writing): from then on a reader task reads.
                taken = sock.try_send(buffers)
                if taken == sum(map(len, buffers)):
                    self._signal_drained()
                    continue
                rest: list[bytes | memoryview] = list(remainder(buffers, taken))
                buffers = rest
                self._want_reader()
            self._inflight = sum(map(len, buffers))
            self._writing = True
            try:
                for data in buffers:
                    await self._stream.send(cast(bytes, data))  # or a view, see _take_output
                    self._inflight -= len(data)
            except TRANSPORT_ERRORS:
                self._inflight = 0
                self._conn.receive_eof()
                self._after_core_call()
                self._flushed.set()
                return False
            finally:
                self._writing = False
            self._inflight = 0
            self._signal_drained()
        self._signal_drained()
        if self._terminated.is_set():
            direct = self._direct
            # What send() wrote itself must leave before the close:
            # closing the transport drops what it still holds.
            while direct is not None and direct.draining():
                await direct.wait_drained()
            self._flushed.set()
        return True

    def _signal_drained(self) -> None:
        if self._drained is not None and self._buffered() <= self._write_limit:
            self._wake_senders()

    def _wake_senders(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.set()

    def _send_limit(self) -> int:
        """The bytes ``send()`` lets wait to be written: write_limit, more during a burst.

        The burst's allowance (:data:`BURST_LIMIT`) holds only while messages
        wait in the queue and nothing written before still waits to leave:
        a peer that stops reading meets ``write_limit`` again after one
        burst, as ever.
        """
        if not self._queue or self._writing or self._inflight or self._tail:
            return self._write_limit
        direct = self._direct
        if direct is not None and direct.draining():
            return self._write_limit
        return self._burst_limit

    def _buffered(self) -> int:
        tail = sum(map(len, self._tail)) if self._tail else 0
        return self._conn.buffered_amount + self._inflight + tail

    def _close_if_planned(self, now: float) -> None:
        due = [plan for plan in self._close_plans.values() if plan[0] <= now]
        if due:
            self._close_plans.clear()
            _, code, reason = min(due)
            self._start_closing(code, reason)

    async def _closer(self) -> None:
        await self._terminated.wait()
        if not self._must_wait_for_eof() and self._flush_at_once():
            return  # the common case on the lean stream: no deadline to set
        # The close frame (ours or the echo) should leave, but a peer that
        # stopped reading must not hold us: bounded by close_timeout, counted
        # from our close frame if we sent one first. (Counting from the end
        # instead let close() take twice close_timeout when the peer neither
        # answered nor read: once waiting for its close, once to flush ours.)
        timeout = math.inf if self._close_timeout is None else self._close_timeout
        started = self._close_started
        deadline = (anyio.current_time() if started is None else started) + timeout
        with anyio.CancelScope(deadline=deadline):
            if not self._writer_started:
                # No writer ever ran (an idle connection, or one whose writes
                # all left by callback): this task writes what is left itself
                # rather than start a task for it.
                self._writer_started = True
                await self._write_pending()
            await self._flushed.wait()
            if self._must_wait_for_eof():
                while not self._eof:
                    try:
                        await self._stream.receive(READ_SIZE)  # after the close: ignored
                    except TRANSPORT_ENDED:
                        self._eof = True

    def _must_wait_for_eof(self) -> bool:
        # RFC 6455 §7.1.1: after a clean close, the server closes TCP first;
        # the client waits for it.
        end = self._end
        return (
            isinstance(self._conn, ClientConnection)
            and not self._eof
            and end is not None
            and end.error is None
            and end.code != 1006
        )

    def _flush_at_once(self) -> bool:
        """On the lean stream with no writer, write what is left now; True if all of it left."""
        direct = self._direct
        if direct is None or self._writer_started or not direct.can_write_now():
            return False
        # After the end no writer starts (_kick_writer): this task finishes the job.
        for data in self._take_output():
            direct.write_now(data)
        if direct.draining():
            return False  # the closer waits for it below, within close_timeout
        self._writer_started = True
        self._flushed.set()
        return True

    async def _release_transport(self) -> None:
        await aclose_quietly(self._stream)
        self._closed.set()

    # -------------------------------------------------------------- messages

    def _closed_error(self) -> ConnectionClosed:
        end = self._end
        if end is None:
            # The end may have come with the handshake (a close frame in the
            # same read as the 101), its event still waiting for the reader.
            end = next((e for e in self._early_events if isinstance(e, Terminated)), None)
        if end is not None:
            return closed_error(end.code, end.reason)
        if self._close_sent is not None:  # we are closing: say with what
            return closed_error(*self._close_sent)
        return ConnectionClosedError(1006, "the connection is closing")

    def _abandon_piece_stream(self, reader: object = None) -> None:
        stream = self._piece_stream
        if stream is not None and stream is not reader:
            # A recv_stream() was left mid-message: its rest is discarded.
            self._skip_rest = self._skip_rest or not stream.done
            stream.done = True
            self._piece_stream = None

    def _skipped(self, piece: Piece) -> bool:
        """Whether ``piece`` is the rest of a message a ``recv_stream()`` left: it is dropped.

        Asked after a wait, during which another task may have left a
        ``recv_stream()`` mid-message.
        """
        if not self._skip_rest:
            return False
        self._skip_rest = not piece[1]
        return True

    async def _next_piece(self, reader: object = None) -> Piece:
        self._abandon_piece_stream(reader)
        queue = self._queue
        try:
            while True:
                if self._pulling and not queue:
                    await self._pull()  # pull mode: this task reads (see start())
                # What the pull delivered is taken without a coroutine.
                piece = queue.get_nowait() or await queue.get()
                if not self._skipped(piece):
                    return piece
        except anyio.EndOfStream:
            raise self._closed_error() from None

    async def recv(self) -> str | bytes:
        """Return the next message: ``str`` for text, ``bytes`` for binary.

        Cancel-safe: a message whose pieces were partly taken when a ``recv()``
        was cancelled is completed by the next call.

        Raises:
            ConnectionClosedOK: the connection closed normally (1000, 1001, 1005)
                and every message that arrived before was already returned.
            ConnectionClosedError: it closed for any other reason.
        """
        return await self._receive(stop=False)

    async def _receive(self, *, stop: bool) -> str | bytes:
        """:meth:`recv`, or with ``stop`` the next message of ``async for``.

        One coroutine for both, doing the work itself: a connection waiting
        for its next message holds as few fresh objects as can be (with
        1,000 connections, the cyclic GC's young generation is mostly these
        waits, and each collection walks all of them).
        """
        parts = self._partial
        queue = self._queue
        try:
            while True:
                if self._piece_stream is None and not self._skip_rest:
                    piece = queue.get_nowait()  # no wait, no allocation
                    if piece is None:
                        if self._pulling:
                            await self._pull()  # pull mode: this task reads (see start())
                            continue
                        # _next_piece()'s wait, without its coroutine.
                        try:
                            piece = await queue.get()
                        except anyio.EndOfStream:
                            raise self._closed_error() from None
                        if self._skipped(piece):
                            continue
                else:
                    piece = await self._next_piece()
                data, fin = piece
                if fin and parts.empty:
                    return data  # the common case: a message in one piece
                parts.add(data)
                if fin:
                    return parts.finish()
        except ConnectionClosedOK:
            if stop:
                raise StopAsyncIteration from None
            raise

    def recv_stream(self) -> AsyncIterator[str | bytes]:
        """Iterate over the next message in pieces as they arrive (``str`` or ``bytes``).

        For messages too large to hold at once: ``async for piece in
        ws.recv_stream()``. Each piece is what one read delivered (text is
        decoded and UTF-8-checked on the way). Leaving the loop early
        discards the rest of that message at the next receive.

        Raises:
            UsageError: a cancelled ``recv()`` left a message half read.
            ConnectionClosed: (while iterating) the connection closed before
                the message ended.
        """
        if not self._partial.empty:
            raise UsageError("a cancelled recv() left a message half read: call recv() first")
        self._abandon_piece_stream()
        stream = _PieceStream(self)
        self._piece_stream = stream
        return stream

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return _Messages(self)

    async def send(
        self, message: str | bytes | bytearray | memoryview, *, compress: bool | None = None
    ) -> None:
        """Send one message: ``str`` as text, ``bytes`` (or bytearray, memoryview) as binary.

        Waits while more than ``write_limit`` bytes are buffered. While
        received messages wait in the queue, it lets up to
        :data:`BURST_LIMIT` bytes (256 KiB) wait instead, written together
        once the queue is empty, at the handler's next wait, or when they
        reach that limit: the answers to a burst leave in one write.

        Args:
            message: the message.
            compress: force (True) or skip (False) compression of this
                message; None applies the compression threshold.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        if self._fragmenting is not None:
            await self._wait_for_message_stream()
        # _send_piece()'s steps, here rather than awaited: one coroutine less
        # per message.
        sock = self._direct_writer(message) if self._sock is not None else None
        if sock is not None:
            await sock.checkpoint_if_cancelled()  # see _send_piece()
        self._frame_piece(message, compress, True)
        if sock is None or not self._write_directly(sock):
            if not self._sent_on_lean():
                await self._deliver()
        elif sock.due_checkpoint():
            await anyio.lowlevel.cancel_shielded_checkpoint()  # see _send_piece()

    async def send_fragments(
        self,
        fragments: Iterable[str | bytes] | AsyncIterable[str | bytes],
        *,
        compress: bool | None = None,
    ) -> None:
        """Send one message made of several frames, one per fragment, as they come.

        All fragments must be of one type (all ``str`` or all ``bytes``). An
        empty iterable sends nothing.
        """
        await self._wait_for_message_stream()
        self._fragmenting = anyio.Event()
        pending: str | bytes | None = None
        started = False
        try:
            if isinstance(fragments, AsyncIterable):
                async for fragment in fragments:
                    if pending is not None:
                        started = True
                        await self._send_piece(pending, compress=compress, fin=False)
                    pending = fragment
            else:
                for fragment in fragments:
                    if pending is not None:
                        started = True
                        await self._send_piece(pending, compress=compress, fin=False)
                    pending = fragment
            if pending is not None:
                await self._send_piece(pending, compress=compress, fin=True)
        except BaseException:
            # A message cut short cannot be taken back, and the next message
            # would read as its continuation: fail the connection instead.
            if started:
                self._start_closing(1011, "a fragmented message was interrupted")
            raise
        finally:
            done, self._fragmenting = self._fragmenting, None
            done.set()

    async def _wait_for_message_stream(self) -> None:
        # Frames of one message must not interleave with another message's.
        while self._fragmenting is not None:
            await self._fragmenting.wait()

    async def _send_piece(
        self, data: str | bytes | bytearray | memoryview, *, compress: bool | None, fin: bool
    ) -> None:
        sock = self._direct_writer(data)
        if sock is not None:
            # Trio's rule (a cancelled call raises), checked before the core
            # takes the message: the direct write below may never wait.
            await sock.checkpoint_if_cancelled()
        self._frame_piece(data, compress, fin)
        if sock is None or not self._write_directly(sock):  # the writer takes the rest
            if not self._sent_on_lean():
                await self._deliver()
        elif sock.due_checkpoint():
            # Nothing here waited: let other tasks have a turn now and then.
            await anyio.lowlevel.cancel_shielded_checkpoint()

    def _direct_writer(self, data: str | bytes | bytearray | memoryview) -> DirectSocket | None:
        """The Trio socket to write ``data`` to directly, or None when it goes another way."""
        sock = self._sock
        if (
            sock is not None
            and not self._writing
            and not self._tail
            # While messages wait in the queue more sends follow (answers to
            # them): they leave together, with the last one (the queue is
            # empty then) or from the writer, unless a large one would take
            # them past _send_limit(): then they all leave now.
            and (
                not self._queue
                or (
                    len(data) > self._write_limit
                    and self._buffered() + len(data) > self._burst_limit
                )
            )
        ):
            return sock
        return None

    def _frame_piece(
        self, data: str | bytes | bytearray | memoryview, compress: bool | None, fin: bool
    ) -> None:
        """Have the core frame ``data``, which then waits in it to be written."""
        try:
            if type(data) is bytes:  # the common case first: one type check
                self._conn.send_bytes(data, compress=compress, fin=fin)
            elif isinstance(data, str):
                self._conn.send_text(data, compress=compress, fin=fin)
            elif isinstance(data, bytes | bytearray | memoryview):
                self._conn.send_bytes(data, compress=compress, fin=fin)
            else:
                raise UsageError(f"send() takes str or bytes, got {type(data).__name__}")
        except InvalidState:
            raise self._closed_error() from None

    def _sent_on_lean(self) -> bool:
        """The lean stream's common case: what the core holds is written, or will be, at once.

        True when it is written without waking the writer, while the kernel
        has taken everything written so far (so what it leaves in the
        transport is at most one batch). A reply with no more messages
        queued leaves now; while messages wait, a callback writes after this
        step, with the answers to the rest of the burst. A check, not a
        coroutine: the send that needs no wait makes none.
        """
        direct = self._direct
        if direct is None or self._writing or not direct.can_write_now():
            return False
        buffered = self._buffered()
        if buffered > self._write_limit and (not self._queue or buffered > self._burst_limit):
            return False
        if self._queue:
            self._flush_soon()
        else:
            self._write_now(direct)  # _flush() without asking can_write_now() again
        return True

    async def _deliver(self) -> None:
        """Have what the core holds written other than directly; wait while over the limit.

        The limit is :meth:`_send_limit`'s: ``write_limit``, or more during a burst.

        For what :meth:`_sent_on_lean` did not send.
        """
        direct = self._direct
        if direct is not None and not self._writing and direct.can_write_now():
            # Over write_limit with nothing else waiting to leave: handed to
            # the transport now, whole, rather than through the writer. If
            # the kernel did not take it all, we wait for the rest to leave,
            # as for any message over the limit (this one included).
            self._flush()
            while direct.draining():
                if self._terminated.is_set():
                    raise self._closed_error()
                await direct.wait_drained()
            return
        self._kick_writer()
        while self._buffered() > self._send_limit():
            if self._terminated.is_set():
                raise self._closed_error()
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()
            if self._terminated.is_set():
                # Ended while we waited: what we queued may not have left (a
                # failed write resets what counts as in flight before we wake).
                raise self._closed_error()

    def _write_directly(self, sock: DirectSocket) -> bool:
        """Hand what the core holds to the kernel now; False if some is left in ``_tail``."""
        buffers = self._take_output()
        if not buffers:
            return True
        taken = sock.try_send(buffers)
        if taken < (len(buffers[0]) if len(buffers) == 1 else sum(map(len, buffers))):
            self._tail = list(remainder(buffers, taken))  # for the writer, before anything else
            return False
        return True

    async def ping(self, payload: bytes | None = None) -> float:
        """Send a ping and wait for its pong; return the round-trip time in seconds.

        Raises:
            ConnectionClosed: the connection closed before the pong arrived.
        """
        if payload is None:
            payload = os.urandom(4)
            while payload in self._pings:
                payload = os.urandom(4)
        try:
            self._conn.send_ping(payload, now=anyio.current_time())
        except InvalidState:
            raise self._closed_error() from None
        done = anyio.Event()
        rtt: list[float] = []
        self._pings[payload] = (done, rtt, anyio.current_time())
        self._flush_soon()
        self._want_reader()  # the pong must be read while we wait
        try:
            await done.wait()
        finally:
            self._pings.pop(payload, None)  # cancelled: forget the waiter
        if not rtt:
            raise self._closed_error()
        return rtt[0]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and wait until it is closed (at most ``close_timeout``).

        Idempotent: closing a closing or closed connection just waits.

        Raises:
            UsageError: the code may not be sent, or the reason is over 123 bytes.
        """
        self._start_closing(code, reason)
        await self.wait_closed()

    def _start_closing(self, code: int, reason: str) -> None:
        if self._conn.state is State.OPEN:
            self._conn.close(code, reason)
            self._close_sent = (code, reason)
            try:
                self._close_started = anyio.current_time()
            except RuntimeError:
                # Called outside the event loop (a signal handler calling
                # server.close()): the closer starts the clock when it wakes.
                self._close_started = None
            else:
                # The core starts its close timeout from now (otherwise it
                # would ask the timer service for the time).
                self._conn.tick(self._close_started)
            self._after_core_call()
            if self._pause is not None:
                self._pause.cancel()  # read on, to the peer's close frame
            self._want_reader()  # and someone must read it

    def close_after(
        self, delay: float | None, code: int = 1000, reason: str = "", *, key: object = None
    ) -> None:
        """Plan to close the connection ``delay`` seconds from now, with ``code`` and ``reason``.

        For deadlines that outlive any one call, such as a credential that
        expires: the plan holds until replaced by another call with the same
        ``key`` (a plugin passes itself) or cancelled with ``delay=None``.
        The earliest plan due wins; nothing happens once the connection is
        closing.

        Raises:
            UsageError: the code may not be sent, or the reason is over 123 bytes.
        """
        if delay is None:
            self._close_plans.pop(key, None)
            return
        Close(code, reason)  # validates now, not when the plan comes due
        self._close_plans[key] = (anyio.current_time() + max(delay, 0.0), code, reason)
        self._poke_timer()

    async def wait_closed(self) -> None:
        """Wait until the connection is closed and its transport released."""
        if not self._terminated.is_set():
            self._want_reader()  # the end comes from the peer: someone must read
        await self._closed.wait()

    def __repr__(self) -> str:
        peer = self._transport.peer
        return f"<WebSocket {self._conn.state.value} peer={peer!r}>"


class _Clock(Protocol):
    """What tells :meth:`WebSocket._consume_piece` the time: a lean stream or a direct socket."""

    def time(self) -> float:
        """The event loop's clock."""
        ...  # pragma: no cover


@final
class _PieceStream:
    """The pieces of one message, for :meth:`WebSocket.recv_stream`.

    A class rather than an async generator: a generator left by ``break`` is
    only finalized later, while this one is known to be unfinished at once.
    """

    __slots__ = ("_ws", "done")

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws
        self.done = False

    def __aiter__(self) -> _PieceStream:
        return self

    async def __anext__(self) -> str | bytes:
        if self.done:
            raise StopAsyncIteration
        data, fin = await self._ws._next_piece(self)
        if fin:
            self.done = True
            self._ws._piece_stream = None
        return data


@final
class _Verdict:
    """A plugin verdict reached in :meth:`WebSocket._consume`, for the reader to carry out."""

    __slots__ = ("verdict",)

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict


@final
class _Messages:
    """``async for message in ws``: messages until a normal close.

    A class rather than an async generator: a loop left by an exception
    (a send() that failed in its body, say) leaves nothing to finalize.
    """

    __slots__ = ("_ws",)

    def __init__(self, ws: WebSocket) -> None:
        self._ws = ws

    def __aiter__(self) -> _Messages:
        return self

    def __anext__(self) -> Coroutine[Any, Any, str | bytes]:
        # The receiving coroutine itself, not one awaiting it: one frame
        # less per message waited for.
        return self._ws._receive(stop=True)
