"""The sans-I/O connection: what both sides share once the handshake is done.

Bytes in (:meth:`Connection.receive_data`), events out (:meth:`Connection.events`),
bytes to write after every call (:meth:`Connection.data_to_send`), and time
passed in (:meth:`Connection.tick`). Nothing here blocks, sleeps, opens a
socket or reads a clock, and nothing the peer sends makes it raise: peer
misbehaviour becomes a close frame with the right code and a
:class:`~wskit.core.events.Terminated` event. Only local misuse raises, with a
:class:`~wskit.errors.UsageError`.

The two sides differ only in their opening handshake:
:class:`~wskit.core.ServerConnection` and :class:`~wskit.core.ClientConnection`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable
from typing import cast

from wskit.errors import HandshakeError, InvalidState, ProtocolError, UsageError

from ._wsproto import Failure, InboundEvent
from .config import Config
from .deflate import DeflateParams
from .events import CloseReceived, Event, Fragment, Message, Ping, Pong, Terminated
from .frames import FrameCodec
from .heartbeat import Due, Heartbeat
from .http import is_token
from .state import State, check_transition

__all__ = ["Connection"]

# Close codes an endpoint may put in a close frame (RFC 6455 §7.4, IANA registry).
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015)}) | frozenset(
    range(3000, 5000)
)
_MAX_CONTROL_PAYLOAD = 125
# Pongs owed at once: every ping of a burst is answered (Autobahn 2.10 and
# 2.11 expect it), but a flood against a stalled writer keeps only the latest
# ones (RFC 6455 §5.5.3 allows answering only the most recent ping): at most
# this many pongs of at most 131 bytes each wait for data_to_send().
_MAX_PONGS_OWED = 16


# A payload this large is written as a buffer of its own rather than copied
# into one buffer with the frames around it (chunks_to_send). Below it, the
# copy costs less than one more write call (measured: 64 KiB payloads were
# slower written apart from their header).
_WRITE_ALONE = 256 * 1024
# buffers_to_send() copies this much of a large payload behind its header: a
# header written alone leaves as a tiny TCP segment of its own, which cost a
# 1 MiB round trip ~20% more server CPU than copying 64 KiB (loopback, here).
_LEAD = 64 * 1024

# The states as module constants: ``State.OPEN`` costs a lookup through the
# enum's metaclass (~70 ns on CPython 3.11), and the per-message paths test
# the state several times.
_CONNECTING = State.CONNECTING
_OPEN = State.OPEN
_CLOSING = State.CLOSING
_CLOSED = State.CLOSED

_NOT_UTF8 = "{what} cannot be encoded in UTF-8 (a lone surrogate?): {exc}"


def _check_close_code(code: int, reason: str) -> None:
    if code not in _SENDABLE_CODES:
        raise UsageError(
            f"close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
        )
    try:
        encoded = reason.encode()
    except UnicodeEncodeError as exc:
        raise UsageError(_NOT_UTF8.format(what="a close reason", exc=exc)) from None
    if len(encoded) > _MAX_CONTROL_PAYLOAD - 2:
        raise UsageError("a close reason must be at most 123 bytes once encoded in UTF-8")


class Connection:
    """State shared by both sides of a WebSocket connection.

    Do not instantiate this class: use :class:`~wskit.core.ServerConnection`
    or :class:`~wskit.core.ClientConnection`.
    """

    _client = False

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self._state = State.CONNECTING
        # Events and output are None while there are none, rather than an empty
        # list: a connection waiting for its next message then holds no list
        # made for that wait (with many idle connections, such young objects
        # are what the cyclic GC's frequent collections would traverse).
        self._events: list[Event] | None = None
        # Output as the chunks the frame layer produced: joined once, when asked for.
        self._out: list[bytes] | None = None
        self._out_size = 0
        self._engine: FrameCodec | None = None
        self._step: int | None = None
        self._frame_buffer_min: int | None = None
        self._heartbeat = Heartbeat(self.config.ping_interval, self.config.ping_timeout)
        # Its deadline, asked for after every batch of work: kept up to date
        # at each of the three calls that change it, rather than recomputed.
        self._keepalive_at = self._heartbeat.deadline()
        self._pending_pings: dict[bytes, float | None] = {}
        self._keepalive_payload: bytes | None = None
        # Made at the first ping: an empty deque is ~600 bytes per connection.
        self._pongs_owed: deque[bytes] | None = None
        self._now: float | None = None
        self._close_deadline: float | None = None
        self._close_sent: tuple[int | None, str] | None = None
        self.latency = 0.0
        """Round-trip time of the last answered ping, in seconds (0.0 until one is)."""
        self.compression: str | None = None
        """The negotiated compression extension ("permessage-deflate") or None."""
        self.subprotocol: str | None = None
        """The negotiated subprotocol, or None."""

    # ----------------------------------------------------------------- state

    @property
    def state(self) -> State:
        """Where the connection is in its life (see :mod:`wskit.core.state`)."""
        return self._state

    @property
    def buffered_amount(self) -> int:
        """Bytes waiting in :meth:`data_to_send`."""
        return self._out_size

    @property
    def has_data_to_send(self) -> bool:
        """Whether :meth:`data_to_send` would return anything (owed pongs included)."""
        return self._out is not None or bool(self._pongs_owed and self._state is _OPEN)

    @property
    def step_budget(self) -> int | None:
        """Bytes of message data after which one :meth:`receive_data` call stops parsing.

        None (the default): every call parses all it is given. A positive
        number: a call stops once the data pieces it produced reach it
        (counted after inflation, plus 64 per piece), the rest of the input
        waits in the connection (:attr:`has_pending_input`), and the next
        call, ``receive_data(b"")`` included, parses on. Events are the same
        either way. Set it when compression is negotiated (one read may
        inflate ~1000x) and take the events after every call: one call then
        produces less than the budget before its last piece, and that piece
        is at most one frame's bytes at hand, inflated (``max_message`` at
        most). wskit's I/O layer uses 64 KiB.
        """
        return self._step

    @step_budget.setter
    def step_budget(self, budget: int | None) -> None:
        if budget is not None and (type(budget) is not int or budget < 1):
            raise UsageError(f"step_budget must be a positive integer or None, got {budget!r}")
        self._step = budget

    @property
    def has_pending_input(self) -> bool:
        """Whether received bytes wait to be parsed (see :attr:`step_budget`)."""
        engine = self._engine
        return engine is not None and engine.has_pending_input

    def take_pending_input(self) -> bytes:
        """Return the received bytes waiting to be parsed, and forget them.

        For an I/O layer that must feed them again later, itself: the next
        :meth:`receive_data` then starts with them.
        """
        engine = self._engine
        return b"" if engine is None else engine.take_pending_input()

    def _write(self, data: bytes) -> None:
        if data:
            out = self._out
            if out is None:
                self._out = [data]
            else:
                out.append(data)
            self._out_size += len(data)

    def _emit(self, event: Event) -> None:
        events = self._events
        if events is None:
            self._events = [event]
        else:
            events.append(event)

    def _set_state(self, new: State) -> None:
        self._state = check_transition(self._state, new)

    def _terminate(
        self, code: int, reason: str = "", error: ProtocolError | HandshakeError | None = None
    ) -> None:
        self._set_state(State.CLOSED)
        self._engine = None  # frees the compression contexts at once
        self._pongs_owed = None
        self._emit(Terminated(code, reason, error))

    def _open(self, deflate: DeflateParams | None, trailing: bytes) -> None:
        options = self.config.compression
        self._engine = FrameCodec(
            client=self._client,
            deflate=deflate,
            max_message=self.config.max_message,
            max_fragments=self.config.max_fragments,
            mem_level=options.mem_level if options else 5,
            level=options.level if options else 6,
            fragments=self.config.fragments,
            frame_buffer_min=self._frame_buffer_min,
        )
        self.compression = "permessage-deflate" if deflate is not None else None
        self._set_state(State.OPEN)
        if trailing:
            self._receive_frames(trailing)

    # ------------------------------------------------------------- receiving

    def receive_data(self, data: bytes, *, now: float | None = None, more: bool = False) -> None:
        """Feed bytes received from the peer.

        Args:
            data: any number of bytes, as they came off the transport; they
                are parsed after any bytes still waiting (:attr:`step_budget`).
                Empty: parse on what is waiting, if anything.
            now: the current time on the caller's clock, if at hand; it times
                the arrival of pongs. Without it, pongs carry no round-trip
                time and :attr:`latency` is not updated.
            more: whether the caller will ask for :meth:`frame_buffer`
                before its next read (say, because the read filled the
                buffer it was given, or because it asks the kernel what has
                arrived before every read). With :attr:`frame_buffer_min`
                set, only then may the bytes of a large frame that ``data``
                ends in wait for it (over several such calls, up to
                :data:`~wskit.core.frames.HOLD_FACTOR` times that minimum);
                otherwise they are delivered now.
        """
        state = self._state
        if state is _CLOSED:
            return
        if not data:
            if self._engine is not None and self._engine.has_pending_input:
                self._receive_frames(b"", now)
            return
        if type(data) is not bytes:
            data = bytes(data)
        if state is _CONNECTING:
            self._receive_handshake(data)
        else:
            self._receive_frames(data, now, more)

    def receive_eof(self) -> None:
        """The transport's read side ended. Idempotent."""
        if self._state is _CLOSED:
            return
        if self._state is _CONNECTING:
            self._handshake_eof()
            return
        self._terminate(1006)

    def _receive_handshake(self, data: bytes) -> None:
        raise NotImplementedError  # each side implements its handshake

    def _handshake_eof(self) -> None:
        raise NotImplementedError  # each side implements its handshake

    @property
    def frame_buffer_min(self) -> int | None:
        """The smallest frame that may be read into a buffer of its own; None (the default): none.

        For an I/O layer that can read into a given buffer (``recv_into``)
        and will use :meth:`frame_buffer`; its read size is a good value. A
        binary message in one frame of at least this size, uncompressed,
        that the bytes fed so far hold only part of can then take its rest
        straight into a buffer of its own: it costs one copy fewer. When
        :meth:`receive_data` is told that :meth:`frame_buffer` will be
        asked for (``more=True``), the bytes at hand of it wait, as they
        came, until then (over two such calls at most): with
        ``Config(fragments=True)``, they come later, with the frame's next
        bytes. Events are otherwise the same. A change takes effect from
        the next frame.
        """
        return self._frame_buffer_min

    @frame_buffer_min.setter
    def frame_buffer_min(self, size: int | None) -> None:
        if size is not None and (type(size) is not int or size < 1):
            raise UsageError(f"frame_buffer_min must be a positive integer or None, got {size!r}")
        self._frame_buffer_min = size
        if self._engine is not None:
            self._engine.frame_buffer_min = size

    @property
    def frame_rest(self) -> int:
        """Bytes the frame being received lacks, when they can be read straight into it; else 0.

        Always 0 while :attr:`frame_buffer_min` is None, unless a buffer was
        made before (fill it, or feed its bytes to :meth:`receive_data`).
        See :meth:`frame_buffer`.
        """
        engine = self._engine
        return 0 if engine is None else engine.frame_rest

    def frame_buffer(self, arrived: int) -> memoryview | None:
        """A buffer to read the rest of the frame being received into, or None.

        For an I/O layer that can read into a buffer (``recv_into``), after
        :attr:`frame_rest` said a frame lacks bytes. Write them at the start
        of the view, then call :meth:`frame_filled`; or feed them to
        :meth:`receive_data` as usual, which fills the buffer first. The
        events are the same either way.

        Args:
            arrived: how many bytes wait in the transport now (for a socket,
                the ``FIONREAD`` ioctl). The buffer, as large as the frame,
                is made only when they cover :attr:`frame_rest`: a peer
                gets no more memory held for a frame than it has sent.

        Returns:
            A writable view of the bytes the frame lacks; None when there is
            no such frame or ``arrived`` falls short (read as usual then).
            Once made, the buffer is offered whatever ``arrived`` says. Its
            memory is reused (for later frames, of any connection): do not
            write to the view once the frame is complete, and report only
            bytes written (bytes beyond them are another frame's).
        """
        engine = self._engine
        return None if engine is None else engine.frame_buffer(arrived)

    def frame_filled(self, count: int, *, now: float | None = None) -> None:
        """``count`` bytes were written at the start of :meth:`frame_buffer`'s view.

        Once the frame is whole, its message (when the frame ends one) is
        among :meth:`events`. Once the connection is closed, this does
        nothing, as :meth:`receive_data`.

        Args:
            count: the bytes written, from 0 to the view's length.
            now: as for :meth:`receive_data`.

        Raises:
            UsageError: there is no such buffer, or ``count`` does not fit it.
        """
        if self._state is _CLOSED:
            return
        engine = self._engine
        if engine is None:
            raise UsageError("frame_filled() before the handshake: there is no frame_buffer()")
        try:
            received = engine.frame_filled(count)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._take_received(received, now)

    def _receive_frames(self, data: bytes, now: float | None = None, more: bool = False) -> None:
        engine = self._engine
        assert engine is not None
        self._take_received(engine.receive(data, self._step, more=more), now)

    def _take_received(self, received: list[InboundEvent], now: float | None) -> None:
        for event in received:
            kind = type(event)
            if kind is not Fragment and kind is not Message:
                break
        else:
            # Messages only (most reads): the codec's list becomes the events,
            # or joins the ones not taken yet.
            if received:
                events = self._events
                if events is None:
                    self._events = cast("list[Event]", received)
                else:
                    events.extend(cast("list[Event]", received))
            return
        for event in received:
            if isinstance(event, Message | Fragment):
                self._emit(event)
            elif isinstance(event, Ping):
                # Each ping gets its pong, but only the latest _MAX_PONGS_OWED
                # of a flood are kept (RFC 6455 §5.5.3 allows answering only
                # the latest): pings cannot grow our buffer without bound.
                if self._state is _OPEN:
                    owed = self._pongs_owed
                    if owed is None:
                        owed = self._pongs_owed = deque(maxlen=_MAX_PONGS_OWED)
                    owed.append(event.payload)
                self._emit(event)
            elif isinstance(event, Pong):
                self._emit(self._pong_received(event.payload, now))
            elif isinstance(event, CloseReceived):
                self._close_received(event)
                return
            else:
                self._fail(event)
                return

    def _pong_received(self, payload: bytes, now: float | None) -> Pong:
        if payload not in self._pending_pings:
            return Pong(payload)  # unsolicited: a heartbeat from the peer
        # A pong acknowledges its ping and every ping sent before it.
        acknowledged: list[bytes] = []
        for pending in self._pending_pings:
            acknowledged.append(pending)
            if pending == payload:
                break
        sent_at = self._pending_pings[payload]
        for pending in acknowledged:
            del self._pending_pings[pending]
        if self._keepalive_payload in acknowledged:
            self._keepalive_payload = None
            self._heartbeat.pong_received()
            self._keepalive_at = self._heartbeat.deadline()
        rtt = None
        if sent_at is not None and now is not None:
            rtt = max(0.0, now - sent_at)
            self.latency = rtt
        return Pong(payload, rtt, tuple(acknowledged))

    def _close_received(self, event: CloseReceived) -> None:
        self._emit(event)
        if self._state is _OPEN:
            # Pongs still owed are dropped: after the peer's close frame the
            # only frame left to send is our own close (RFC 6455 §5.5.1).
            self._pongs_owed = None
            # Echo the peer's code (RFC 6455 §5.5.1); no code when it sent none.
            code = None if event.code == 1005 else event.code
            assert self._engine is not None
            self._write(self._engine.send_close(code, ""))
        self._terminate(event.code, event.reason)

    def _fail(self, failure: Failure) -> None:
        error = failure.error
        if self._state is _OPEN:
            self._send_close_frame(error.close_code, str(error))
        self._terminate(error.close_code, str(error), error)

    # --------------------------------------------------------------- sending

    def _require_open(self, what: str) -> FrameCodec:
        if self._state is not _OPEN or self._engine is None:
            raise InvalidState(f"cannot {what}: the connection is {self._state.value}")
        return self._engine

    def send_text(self, text: str, *, compress: bool | None = None, fin: bool = True) -> None:
        """Send a text message, or a fragment of one.

        Args:
            text: the message, or this fragment of it.
            compress: True or False to force or skip compression of this
                message; None applies the threshold of the compression options.
                Ignored unless permessage-deflate was negotiated; decided by a
                message's first fragment.
            fin: False to send a fragment and continue the message with more
                calls; the last fragment has ``fin=True``.
        """
        if not isinstance(text, str):
            raise UsageError(f"send_text() takes a str, got {type(text).__name__}")
        self._send_data(text, compress, fin)

    def send_bytes(
        self,
        data: bytes | bytearray | memoryview,
        *,
        compress: bool | None = None,
        fin: bool = True,
    ) -> None:
        """Send a binary message, or a fragment of one (see :meth:`send_text`)."""
        if type(data) is not bytes:
            if not isinstance(data, bytes | bytearray | memoryview):
                raise UsageError(f"send_bytes() takes bytes, got {type(data).__name__}")
            data = bytes(data)
        self._send_data(data, compress, fin)

    def _send_data(self, data: str | bytes, compress: bool | None, fin: bool) -> None:
        engine = self._engine
        if self._state is not _OPEN or engine is None:
            engine = self._require_open("send a message")  # raises
        ongoing = engine.sending_fragments
        if ongoing is not None and ongoing != isinstance(data, str):
            kind = "text" if ongoing else "binary"
            raise UsageError(f"a fragmented {kind} message is under way: finish it with fin=True")
        try:
            if compress is None:
                # Only when deflate was negotiated: else the size is not worth computing.
                options = self.config.compression if self.compression is not None else None
                compress = (
                    options is not None
                    and _encoded_size(data, options.threshold) >= options.threshold
                )
            header, body = engine.send_data(data, fin=fin, compress=compress)
        except UnicodeEncodeError as exc:
            raise UsageError(_NOT_UTF8.format(what="text", exc=exc)) from None
        # Pongs owed answer pings that came before anything the application
        # sends now (a reply to a message that followed a ping, say): they
        # leave first (Autobahn 5.6, 5.7, 5.19, 5.20).
        if self._pongs_owed is not None:
            self._flush_pongs()
        # As _write(header) then _write(body) (the header is never empty).
        out = self._out
        if out is None:
            self._out = [header, body] if body else [header]
        else:
            out.append(header)
            if body:
                out.append(body)
        self._out_size += len(header) + len(body)

    def send_ping(self, payload: bytes = b"", *, now: float | None = None) -> None:
        """Send a ping; its pong arrives as a :class:`Pong` event with the round trip time.

        Args:
            payload: up to 125 bytes; it must differ from every ping still
                waiting for its pong.
            now: the current time on the caller's clock, to time the round trip.
        """
        engine = self._require_open("send a ping")
        payload = bytes(payload)
        if len(payload) > _MAX_CONTROL_PAYLOAD:
            raise UsageError("a ping payload must be at most 125 bytes")
        if payload in self._pending_pings:
            raise UsageError("a ping with this payload is still waiting for its pong")
        if now is not None:
            self._now = now
        self._pending_pings[payload] = self._now
        self._write(engine.send_ping(payload))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; idempotent once closing or closed.

        The connection is CLOSING until the peer's close frame arrives (then a
        :class:`Terminated` event follows) or ``close_timeout`` passes.

        Raises:
            UsageError: the code may not be sent or the reason is too long.
            InvalidState: the handshake is not finished (a server rejects with
                ``reject()``; a client abandons by closing its transport).
        """
        _check_close_code(code, reason)
        if self._state in (_CLOSING, _CLOSED):
            return
        if self._state is _CONNECTING:
            raise InvalidState("cannot close: the opening handshake is not finished")
        self._send_close_frame(code, reason)
        self._set_state(State.CLOSING)

    def _send_close_frame(self, code: int, reason: str) -> None:
        assert self._engine is not None
        self._flush_pongs()
        reason_bytes = reason.encode()[: _MAX_CONTROL_PAYLOAD - 2]
        self._write(self._engine.send_close(code, reason_bytes.decode(errors="ignore")))
        self._close_sent = (code, reason)

    def _flush_pongs(self) -> None:
        if self._engine is not None and self._pongs_owed is not None:
            for payload in self._pongs_owed:
                self._write(self._engine.send_pong(payload))
        self._pongs_owed = None

    # ----------------------------------------------------------------- output

    def events(self) -> list[Event]:
        """Return the events produced since the last call, oldest first."""
        events = self._events
        if events is None:
            return []
        self._events = None
        return events

    def data_to_send(self) -> bytes:
        """Return every byte waiting to be written, and forget them.

        Call it after every call into the connection, receiving included:
        pongs, close echoes and failure closes are queued by the core itself.
        """
        if self._pongs_owed and self._state is _OPEN:
            self._flush_pongs()
        out = self._out
        if out is None:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        self._out = None
        self._out_size = 0
        return data

    def chunks_to_send(self) -> list[bytes]:
        """Return what :meth:`data_to_send` would, as buffers to write in order.

        Runs of frames come joined into one buffer (one write for many
        frames); a payload of 256 KiB or more comes as a buffer of its own,
        so that it is written without being copied behind its header.
        """
        if self._pongs_owed and self._state is _OPEN:
            self._flush_pongs()
        if self._out_size < _WRITE_ALONE:
            return self._take_joined()
        out = self._take_output()
        buffers: list[bytes] = []
        run: list[bytes] = []
        for chunk in out:
            if len(chunk) >= _WRITE_ALONE:
                if run:
                    buffers.append(run[0] if len(run) == 1 else b"".join(run))
                    run = []
                buffers.append(chunk)
            else:
                run.append(chunk)
        if run:
            buffers.append(run[0] if len(run) == 1 else b"".join(run))
        return buffers

    def buffers_to_send(self) -> list[bytes | memoryview]:
        """Return what :meth:`data_to_send` would, as buffers to write in order.

        As :meth:`chunks_to_send`, except that a payload of 256 KiB or more
        does not leave its header alone: the header, with the frames before
        it, goes out joined to the payload's first 64 KiB, and the rest of the
        payload follows as a ``memoryview`` of it (not copied). So the writer
        needs a stream that takes any buffer, as AnyIO's socket and TLS
        streams do.
        """
        if self._pongs_owed and self._state is _OPEN:
            self._flush_pongs()
        if self._out_size < _WRITE_ALONE:
            return cast("list[bytes | memoryview]", self._take_joined())
        out = self._take_output()
        buffers: list[bytes | memoryview] = []
        run: list[bytes] = []
        for chunk in out:
            if len(chunk) >= _WRITE_ALONE:
                run.append(chunk[:_LEAD])
                buffers.append(b"".join(run))
                run = []
                buffers.append(memoryview(chunk)[_LEAD:])
            else:
                run.append(chunk)
        if run:
            buffers.append(run[0] if len(run) == 1 else b"".join(run))
        return buffers

    def _take_joined(self) -> list[bytes]:
        """Take the chunks waiting to be written, joined: none is large enough to go alone."""
        out = self._out
        if out is None:
            return []
        self._out = None
        self._out_size = 0
        if len(out) > 1:
            return [b"".join(out)]
        return out  # handed over: a later _write() starts a list of its own

    def _take_output(self) -> list[bytes]:
        """Take the chunks waiting to be written, owed pongs included."""
        if self._pongs_owed and self._state is _OPEN:
            self._flush_pongs()
        out = self._out
        if out is None:
            return []
        self._out = None
        self._out_size = 0
        return out

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """The time at which :meth:`tick` should next be called, or None.

        0.0 means "as soon as you can": a timer has just been started and
        needs the current time.
        """
        if self._state is _OPEN:
            return self._keepalive_at
        if self._state is _CLOSING and self.config.close_timeout is not None:
            return 0.0 if self._close_deadline is None else self._close_deadline
        return None

    def tick(self, now: float) -> None:
        """Advance time to ``now``: send keepalive pings, enforce timeouts."""
        self._now = now
        if self._state is _OPEN:
            due = self._heartbeat.due(now)
            self._keepalive_at = self._heartbeat.deadline()
            if due is Due.PING:
                self._send_keepalive(now)
            elif due is Due.TIMEOUT:
                error = ProtocolError("keepalive ping timeout", 1011)
                self._send_close_frame(1011, str(error))
                self._terminate(1011, str(error), error)
        elif self._state is _CLOSING and self.config.close_timeout is not None:
            if self._close_deadline is None:
                self._close_deadline = now + self.config.close_timeout
            elif now >= self._close_deadline:
                self._terminate(1006, "the peer did not answer our close frame in time")

    def _send_keepalive(self, now: float) -> None:
        engine = self._require_open("send a ping")
        if self._keepalive_payload is not None:
            # Unanswered (possible only with ping_timeout=None): forget it, so a
            # silent peer cannot grow this table one entry per interval.
            self._pending_pings.pop(self._keepalive_payload, None)
        payload = os.urandom(4)
        while payload in self._pending_pings:
            payload = os.urandom(4)
        self._pending_pings[payload] = now
        self._keepalive_payload = payload
        self._heartbeat.ping_sent(now)
        self._keepalive_at = self._heartbeat.deadline()
        self._write(engine.send_ping(payload))


def _encoded_size(data: str | bytes, threshold: int) -> int:
    """The size of ``data`` in bytes, computed exactly only where it decides the threshold."""
    if isinstance(data, bytes) or len(data) >= threshold or data.isascii():
        return len(data)  # a str's UTF-8 size is at least its length
    return len(data.encode())


def _header_pairs(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = tuple((str(name), str(value)) for name, value in headers)
    for name, value in pairs:
        if not is_token(name):
            raise UsageError(f"header name {name!r} is not an HTTP token")
        # Visible ASCII, SP and HTAB only: for ASCII text, isprintable() is
        # true exactly for 0x20-0x7e (a C loop rather than one per character).
        if not (value.isascii() and value.replace("\t", " ").isprintable()):
            raise UsageError(
                f"the value of header {name!r} must be visible ASCII, spaces or tabs "
                "(no line breaks, control or non-ASCII characters)"
            )
        if name.lower() == "content-length":
            raise UsageError("Content-Length is computed by wskit: leave it out of the headers")
    return pairs
