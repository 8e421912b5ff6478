"""wskit's own data-frame codec for an open connection: the fast path after the handshake.

It does what :class:`wskit.core._wsproto.FrameEngine` (wsproto's frame layer
behind wskit's guard) does, at a fraction of the cost, and is **proven
equivalent to it** by differential property tests
(``tests/property/test_differential.py``): for any bytes, in any chunking,
on either side, with and without permessage-deflate, both produce the same
events, the same close codes, and the same frames.

Theory of operation. Input is parsed straight out of each chunk received;
only an incomplete header or control frame (at most 139 bytes) is kept for
the next call, and the first bytes of a large frame waiting for its buffer
(below). As in wsproto, a data frame's payload is delivered in the
pieces that arrive (the piece boundaries are visible with
``Config(fragments=True)``), a control frame only whole, and checks run in
wsproto's order, so that a frame breaking several rules fails with the same
close code:

1. header: opcode, fragmented control frame, control length, extended
   length (minimal encoding, 63 bits);
2. wskit's limits (RSV1 on a continuation, fragment count, declared length
   against the message budget), then the RSV bits, then the mask bit;
3. per payload piece: unmask, inflate (bounded), and at the end of a final
   frame the deflate tail; then the message order (continuation rules) and
   UTF-8 of text;
4. a close frame: its code, then its reason's UTF-8.

Most messages come in one frame each, whole in one read: such a frame (final,
text or binary, no RSV bit, a 7- or 16-bit length, the mask bit this side
expects, within ``max_message``) is taken in one go, with the checks it is
known to pass skipped; anything else, including every frame that breaks a
rule, goes through the steps above (the differential tests cover both).

With ``frame_buffer_min`` set (by an I/O layer that can read into a buffer),
a binary message in one large frame (``frame_buffer_min`` bytes or more) that
a chunk holds only part of may take its rest straight into a buffer of its
own, once that rest has arrived (:meth:`FrameCodec.frame_buffer`): when the
caller says it will ask for that buffer (``receive(more=True)``), the bytes
at hand of it wait, still masked, until then (over several calls, up to
:data:`HOLD_FACTOR` times ``frame_buffer_min``), and the whole payload is
unmasked once, when complete. Joining the pieces of such a
message was a third copy of it, made after the other two had pushed it out
of the CPU's cache (1 MiB: ~90 us of ~650 us per echo, here). It changes no
event but where pieces are cut: a binary piece, in a frame whose header
passed every check, cannot fail, and bytes that wait are delivered later,
with the frame's next bytes or all of it (with ``fragments``, in fewer
pieces than wsproto gives).
Only a message's first frame, before any of it is delivered, is read this
way: a message delivered in pieces already is joined anyway. Nor is text:
its UTF-8 is checked piece by piece, so that a bad byte fails at once.

After a close frame or a failure nothing more is parsed. The sending half
is :class:`wskit.core.frame_encoder.FrameEncoder`.
"""

from __future__ import annotations

from codecs import getincrementaldecoder
from struct import Struct
from typing import Any

from wskit.errors import PayloadTooBig, ProtocolError

from ._wsproto import Failure, InboundEvent
from .deflate import DeflateParams, Deflater, InflateError, InflateLimitExceeded, Inflater
from .events import CloseReceived, Fragment, Message, Ping, Pong, new_fragment, new_message
from .frame_encoder import JOIN_BELOW, FrameEncoder
from .masking import MaskKeys, mask
from .reassembly import Reassembly
from .spare_buffers import give_back as give_back_spare
from .spare_buffers import take as take_spare

__all__ = ["PIECE_COST", "FrameCodec"]

_OPCODES = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})
# Codes a peer may put in a close frame: the registered ones (1014 included,
# which wsproto 1.3 alone would refuse) and the application ranges.
_RECEIVABLE_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})
_UINT64 = Struct("!Q")
_Utf8Decoder = getincrementaldecoder("utf-8")

PIECE_COST = 64
"""What a data piece counts against a step's budget on top of its bytes: its
event's own cost, so that a step of empty frames ends too."""

HOLD_FACTOR = 2
"""A frame's first bytes held for its buffer, over several calls: the bytes
of at most this many calls, and up to this many times ``frame_buffer_min``
(an I/O layer's read size: two reads).

A frame's rest often arrives in steps (on loopback, a 1 MiB message's first
two reads may bring 128 KiB each, then the rest at once), and only what is
held can go into the buffer once the rest has come. Held bytes are views of
the chunks received (no copy; bytes the peer sent, kept alive with the rest
of their reads: two reads at most), but they are not delivered either: with
``fragments``, pieces come this much later."""


class _Fail(Exception):
    """Internal: parsing stops with this error."""

    def __init__(self, error: ProtocolError) -> None:
        self.error = error


def _protocol_error(reason: str) -> _Fail:
    return _Fail(ProtocolError(reason))


class FrameCodec(FrameEncoder):
    """Frames in and out of one open connection, under wskit's limits."""

    __slots__ = (
        "_buffer",
        "_client",
        "_compressed",
        "_control",
        "_decoder",
        "_direct",
        "_done",
        "_filled",
        "_fin",
        "_fragments",
        "_frames",
        "_held",
        "_held_size",
        "_in_frame",
        "_inflater",
        "_key",
        "_max_fragments",
        "_max_message",
        "_message",
        "_more",
        "_msg_opcode",
        "_opcode",
        "_pending",
        "_pending_at",
        "_remaining",
        "_rest",
        "_size",
        "frame_buffer_min",
    )

    def __init__(
        self,
        *,
        client: bool,
        deflate: DeflateParams | None,
        max_message: int | None,
        max_fragments: int,
        mem_level: int = 5,
        level: int = 6,
        fragments: bool = False,
        frame_buffer_min: int | None = None,
    ) -> None:
        self._client = client
        self._max_message = max_message
        self._max_fragments = max_fragments
        self._fragments = fragments
        self._inflater: Inflater | None = None
        self._deflater: Deflater | None = None
        if deflate is not None:
            self._inflater = Inflater(
                deflate.decompress_window_bits(client=client),
                reset_each_message=deflate.decompress_reset(client=client),
            )
            self._deflater = Deflater(
                deflate.compress_window_bits(client=client),
                mem_level=mem_level,
                level=level,
                reset_each_message=deflate.compress_reset(client=client),
            )
        self._keys = MaskKeys() if client else None
        self._rest = b""  # an incomplete header or control frame
        # Input a step left unparsed (receive() with a budget): all of it
        # from _pending_at on, kept as it came rather than copied per step.
        self._pending: bytes | None = None
        self._pending_at = 0
        self._done = False  # a close frame or a failure ended parsing
        # The frame being received.
        self._in_frame = False
        self._opcode = 0  # of its next piece: its own first, then continuation
        self._fin = False
        self._control = False
        self._remaining = 0
        self._key: bytes | None = None  # its masking key, rotated as pieces go
        # A large binary frame whose pieces can neither fail nor show (see
        # frame_buffer()): the bytes at hand of it wait, as they came, in
        # _held (views of the chunks, _held_size bytes in all) until a call
        # that does not hold them; or the rest of it is read into _buffer,
        # _filled bytes so far.
        self.frame_buffer_min = frame_buffer_min
        """The smallest frame that may be read into a buffer of its own (see the
        module); None: none is. Takes effect from the next frame."""
        self._direct = False
        self._more = False  # receive()'s argument
        self._held: list[memoryview] | None = None
        self._held_size = 0
        self._buffer: memoryview | None = None  # a spare buffer's (spare_buffers.take)
        self._filled = 0
        # The message being received.
        self._msg_opcode = 0  # 0: none under way, 1: text, 2: binary
        self._decoder: Any = None  # incremental UTF-8 decoder of a text message in pieces
        self._size = 0
        self._frames = 0
        self._compressed = False
        self._message = Reassembly()
        # The message being sent.
        self.sending_fragments: bool | None = None
        self._compress_out = False

    # ------------------------------------------------------------- receiving

    @property
    def has_pending_input(self) -> bool:
        """Whether a step left input unparsed: ``receive(b"", budget)`` parses on."""
        return self._pending is not None

    def take_pending_input(self) -> bytes:
        """Return the input a step left unparsed, and forget it (to feed it again later)."""
        pending = self._pending
        if pending is None:
            return b""
        self._pending = None
        return pending[self._pending_at :]

    def receive(
        self, data: bytes, budget: int | None = None, *, more: bool = False
    ) -> list[InboundEvent]:
        """Parse ``data`` (after any input a step left) and return what it completed, in order.

        Args:
            data: the next bytes received (may be empty).
            more: whether the caller will ask for :meth:`frame_buffer`
                before its next read: only then may the bytes of a large
                frame that ``data`` ends in wait for it (see the module), up
                to :data:`HOLD_FACTOR` times ``frame_buffer_min`` of them,
                over several such calls.
            budget: None to parse everything. Else a positive number of
                bytes: stop once the data pieces produced by this call reach
                it, each counted after inflation plus :data:`PIECE_COST`, and
                keep the rest of the input for the next call. A step stops
                only between frames, so that the events are the same as
                without a budget. So one step produces less than ``budget``
                bytes of data before its last piece, and that piece is at most
                what one frame's bytes at hand inflate to (``max_message`` at
                most).
        """
        out: list[InboundEvent] = []
        if self._done:
            return out
        self._more = more
        pos = 0
        if self._direct and self._in_frame:
            # A large binary frame: its held bytes first, or its buffer filled.
            pos, produced = self._continue_direct(data, out)
            if pos < 0:
                return out  # all of data went into the buffer, and it is not full yet
            if budget is not None and produced:
                # That piece counts against the step, as any other.
                if produced >= budget:
                    if pos < len(data):
                        self._pending = data
                        self._pending_at = pos
                    return out
                budget -= produced
        pending = self._pending
        if pending is not None:
            self._pending = None
            pos = self._pending_at
            if data:  # new bytes behind the unparsed ones: one copy, then on as usual
                data = b"".join((memoryview(pending)[pos:], data))
                pos = 0
            else:
                data = pending
        elif self._rest:
            data = self._rest + data
            self._rest = b""
        if (
            budget is None
            and not self._in_frame
            and self._msg_opcode == 0
            and self._inflater is None
        ):
            # Messages in one whole frame each (most reads) need no _parse().
            end = len(data)
            while pos < end:
                after = self._whole_message(data, pos, end, out)
                if not after:
                    break
                pos = after
            else:
                return out
        try:
            self._parse(data, pos, out, -1 if budget is None else budget)
        except _Fail as failed:
            self._done = True
            self._pending = None
            out.append(Failure(failed.error))
        return out

    def _parse(self, data: bytes, pos: int, out: list[InboundEvent], budget: int) -> None:
        end = len(data)
        produced = 0  # data bytes of this step, after inflation
        # The fast path below: uncompressed frames, and no step to count.
        fast = budget < 0 and self._inflater is None
        while not self._done:
            if not self._in_frame:
                if pos == end:
                    return  # all parsed (what _header() would find, at less cost)
                if produced >= budget >= 0:
                    # The step is over: the rest waits, where it is.
                    self._pending = data
                    self._pending_at = pos
                    return
                if fast and self._msg_opcode == 0:
                    after = self._whole_message(data, pos, end, out)
                    if after:
                        pos = after
                        continue
                header = self._header(data, pos, end)
                if header == 0:
                    self._rest = data[pos:]
                    return
                pos += header
            remaining = self._remaining
            available = end - pos
            if self._control:
                if available < remaining:
                    # wsproto keeps the header once parsed; so do we, and the
                    # payload waits here until it is whole.
                    self._rest = data[pos:]
                    return
            elif available == 0 and remaining:
                return
            elif self._direct and not self._msg_opcode and self._may_hold(available):
                # Kept as it came, to be read on into a buffer of its own
                # (see frame_buffer()), or taken as a piece at a later call.
                self._held = [memoryview(data)[pos:end]]
                self._held_size = available
                return
            take = remaining if available > remaining else available
            key = self._key
            if key is not None and take:
                # A large payload is unmasked straight from the received chunk:
                # no slice is copied first.
                view = memoryview(data)[pos : pos + take] if take > JOIN_BELOW else None
                payload = mask(view if view is not None else data[pos : pos + take], key)
                shift = take & 3
                if shift:
                    self._key = key[shift:] + key[:shift]
            else:
                payload = data[pos : pos + take] if (pos or take != end) else data
            pos += take
            self._remaining = remaining - take
            if self._control:
                self._in_frame = False
                self._control_frame(payload, out)
            else:
                produced += self._data_piece(payload, out) + PIECE_COST

    # ---------------------------------------------- large frames, read directly

    @property
    def frame_rest(self) -> int:
        """Bytes the frame being received lacks, to be read into its own buffer; else 0.

        See :meth:`frame_buffer`.
        """
        if not (self._direct and self._in_frame) or self._done or self._pending is not None:
            return 0  # (bytes a step left go first: they came before the transport's)
        buffer = self._buffer
        if buffer is not None:
            return len(buffer) - self._filled
        if self._msg_opcode or self.frame_buffer_min is None:
            return 0  # a piece of it was delivered (it is joined anyway), or turned off
        return self._remaining - self._held_size

    def frame_buffer(self, arrived: int) -> memoryview | None:
        """A buffer to read the rest of the frame being received into, or None.

        Args:
            arrived: how many bytes wait in the transport now. The buffer
                is made only when they cover :attr:`frame_rest`: a peer
                gets no more memory held for a frame than it has sent.

        Returns:
            A writable view of the bytes the frame lacks (once made, the
            buffer is offered whatever ``arrived`` says); None when
            :attr:`frame_rest` is 0 or ``arrived`` falls short. Report what
            was written at its start with :meth:`frame_filled`. Do not use
            it once the frame is complete (by :meth:`frame_filled` or
            :meth:`receive`): its memory goes to later frames, of any
            connection (:mod:`.spare_buffers`).
        """
        buffer = self._buffer
        if buffer is None:
            rest = self.frame_rest
            if not rest or arrived < rest:
                return None
            buffer = self._buffer = take_spare(self._remaining)
            held = self._held
            if held is not None:
                self._held = None
                filled = 0
                for piece in held:
                    buffer[filled : filled + len(piece)] = piece
                    filled += len(piece)
                self._filled = filled
                self._held_size = 0
        return buffer[self._filled :]

    def frame_filled(self, count: int) -> list[InboundEvent]:
        """``count`` bytes were written at the start of :meth:`frame_buffer`'s view.

        Returns:
            The events that completed: the message, when the frame was its
            last and is now whole.
        """
        buffer = self._buffer
        if buffer is None or not 0 <= count <= len(buffer) - self._filled:
            raise ValueError("frame_filled() counts bytes written into frame_buffer()'s view")
        self._filled += count
        out: list[InboundEvent] = []
        if self._filled == len(buffer):
            self._complete_buffer(out)
        return out

    def _continue_direct(self, data: bytes, out: list[InboundEvent]) -> tuple[int, int]:
        """Go on with the frame that may be read directly, using ``data``.

        Returns the position in ``data`` where parsing goes on as usual (-1
        when all of it went into the frame's buffer and that is not full
        yet), and what the piece delivered counts against a step's budget.
        Such a piece cannot fail (see :meth:`_header`).
        """
        buffer = self._buffer
        if buffer is None:
            held = self._held
            if held is None:
                return 0, 0
            size = self._held_size
            end = size + len(data)
            if data and len(held) < HOLD_FACTOR and self._may_hold(end):
                # Still short of the frame's end: held too, for the buffer
                # the next call may ask for (a read at most HOLD_FACTOR
                # times: a peer that sends a byte per read gets no list).
                held.append(memoryview(data))
                self._held_size = end
                return -1, 0
            # The held bytes are pieces like any other, now: the usual path
            # goes on with data (and may hold its end in turn).
            self._held = None
            self._held_size = 0
            produced = 0
            for piece in held:
                key = self._key
                if key is not None:
                    payload = mask(piece, key)
                    shift = len(piece) & 3
                    if shift:
                        self._key = key[shift:] + key[:shift]
                else:
                    payload = bytes(piece)
                self._remaining -= len(piece)
                produced += self._data_piece(payload, out) + PIECE_COST
            return 0, produced
        filled = self._filled
        take = min(len(buffer) - filled, len(data))
        buffer[filled : filled + take] = memoryview(data)[:take]
        self._filled = filled + take
        if self._filled < len(buffer):
            return -1, 0
        return take, self._complete_buffer(out) + PIECE_COST

    def _may_hold(self, size: int) -> bool:
        """Whether ``size`` bytes of the frame under way may wait for its buffer."""
        least = self.frame_buffer_min
        return (
            self._more
            and least is not None
            and size <= HOLD_FACTOR * least
            and size < self._remaining  # short of the frame's end
        )

    def _complete_buffer(self, out: list[InboundEvent]) -> int:
        """The frame's buffer is full: unmask it once, and deliver it as its last piece."""
        buffer = self._buffer
        assert buffer is not None
        self._buffer = None
        self._filled = 0
        key = self._key
        payload = mask(buffer, key) if key is not None else bytes(buffer)
        give_back_spare(buffer)
        self._remaining = 0
        return self._data_piece(payload, out)

    def _whole_message(self, data: bytes, pos: int, end: int, out: list[InboundEvent]) -> int:
        """The common case, in one go: a message in one whole frame at ``pos``.

        Takes a final text or binary frame with no RSV bit, a 7- or 16-bit
        length and the mask bit this side expects, when all of it is at hand,
        no message is under way, and it is within ``max_message``: such a
        frame passes every check of :meth:`_header` and :meth:`_data_piece`
        (save UTF-8). Appends its event and returns the position after it, or
        returns 0 and changes nothing, leaving the frame to the general path
        (which then also reports whatever is wrong with it).
        """
        if end - pos < 2:
            return 0
        first = data[pos]
        if first not in {0x81, 0x82}:  # FIN, no RSV, text or binary
            return 0
        second = data[pos + 1]
        length = second & 0x7F
        start = pos + 2
        if length == 126:
            if end - start < 2:
                return 0
            length = (data[start] << 8) | data[start + 1]
            if length <= 125:
                return 0  # not minimal: the general path refuses it
            start += 2
        elif length == 127:
            return 0
        max_message = self._max_message
        if max_message is not None and length > max_message:
            return 0
        if self._client:
            if second & 0x80:
                return 0
            stop = start + length
            if stop > end:
                return 0
            payload = data[start:stop]
        else:
            if not second & 0x80:
                return 0
            stop = start + 4 + length
            if stop > end:
                return 0
            key = data[start : start + 4]
            start += 4
            # A large payload is unmasked straight from the received chunk.
            if length > JOIN_BELOW:
                payload = mask(memoryview(data)[start:stop], key)
            else:
                payload = mask(data[start:stop], key)
        piece: str | bytes = payload
        if first == 0x81:
            try:
                piece = payload.decode()
            except UnicodeDecodeError:
                return 0
        out.append(new_fragment(piece, True) if self._fragments else new_message(piece))
        return stop

    def _header(self, data: bytes, pos: int, end: int) -> int:
        """Parse a frame header at ``pos``: its length, or 0 if incomplete."""
        if end - pos < 2:
            return 0
        first = data[pos]
        second = data[pos + 1]
        opcode = first & 0x0F
        if opcode not in _OPCODES:
            raise _protocol_error(f"Invalid opcode {opcode:#x}")
        fin = first & 0x80
        control = opcode & 0x08
        length = second & 0x7F
        if control:
            if not fin:
                raise _protocol_error("Invalid attempt to fragment control frame")
            if length > 125:
                raise _protocol_error("Control frame with payload len > 125")
        size = 2
        if length == 126:
            if end - pos < 4:
                return 0
            length = (data[pos + 2] << 8) | data[pos + 3]
            if length <= 125:
                raise _protocol_error("Payload length used 2 bytes when 1 would have sufficed")
            size = 4
        elif length == 127:
            if end - pos < 10:
                return 0
            length = _UINT64.unpack_from(data, pos + 2)[0]
            if length <= 0xFFFF:
                raise _protocol_error("Payload length used 8 bytes when 2 would have sufficed")
            if length >> 63:
                raise _protocol_error("8-byte payload length with non-zero MSB")
            size = 10
        # wskit's limits come before the RSV and mask checks, as in wsproto.
        rsv = first & 0x70
        allowed = 0
        frames = msg_size = 0
        compressed = False
        if not control:
            if opcode == 0:
                if rsv & 0x40:
                    raise _protocol_error("RSV1 set on a continuation frame")
                frames = self._frames + 1
                if frames > self._max_fragments:
                    raise _Fail(
                        PayloadTooBig(f"message split into more than {self._max_fragments} frames")
                    )
                msg_size = self._size
                compressed = self._compressed
            else:
                frames = 1
                compressed = bool(rsv & 0x40) and self._inflater is not None
            self._check_budget(length, msg_size, compressed)
            if self._inflater is not None:
                allowed = 0x40
        if rsv & ~allowed:
            raise _protocol_error("Reserved bit set unexpectedly")
        if second & 0x80:
            if self._client:
                raise _protocol_error("client received unexpected masked frame")
            if end - pos < size + 4:
                return 0
            self._key = data[pos + size : pos + size + 4]
            size += 4
        else:
            if not self._client:
                raise _protocol_error("server received unexpected unmasked frame")
            self._key = None
        if not control:
            self._frames = frames
            self._size = msg_size
            self._compressed = compressed
        # A binary message's first frame, uncompressed, in order: its pieces
        # cannot fail (see frame_buffer()).
        least = self.frame_buffer_min
        self._direct = (
            least is not None
            and length >= least
            and opcode == 2
            and self._msg_opcode == 0
            and not compressed
        )
        self._in_frame = True
        self._opcode = opcode
        self._fin = bool(fin)
        self._control = bool(control)
        self._remaining = length
        return size

    def _check_budget(self, length: int, msg_size: int, compressed: bool) -> None:
        if self._max_message is None:
            return
        budget = self._max_message - msg_size
        if compressed:
            # Compressed bytes may outnumber the inflated ones: allow zlib's
            # worst-case expansion (deflateBound: +1/8 +1/64) and flush markers.
            budget += ((budget + 7) >> 3) + ((budget + 63) >> 6) + 64
        if length > budget:
            raise _Fail(
                PayloadTooBig(f"message larger than the limit of {self._max_message} bytes")
            )

    def _inflate_limit(self) -> int:
        if self._max_message is None:
            return 2**62  # zlib takes a Py_ssize_t: inflate in bounded steps anyway
        return self._max_message - self._size

    def _inflate(self, payload: bytes, finish: bool) -> bytes:
        inflater = self._inflater
        assert inflater is not None
        try:
            payload = inflater.inflate(payload, self._inflate_limit())
            self._size += len(payload)
            if finish:
                payload += inflater.finish_message(self._inflate_limit())
        except InflateLimitExceeded:
            raise _Fail(
                PayloadTooBig(f"message inflates past the limit of {self._max_message} bytes")
            ) from None
        except InflateError as exc:
            raise _Fail(ProtocolError(f"invalid compressed data: {exc}", 1007)) from None
        return payload

    def _data_piece(self, payload: bytes, out: list[InboundEvent]) -> int:
        """Deliver one piece of a data frame; return its size after inflation."""
        finished = self._remaining == 0
        last = finished and self._fin
        if self._compressed:
            payload = self._inflate(payload, last)
        else:
            self._size += len(payload)
        if last:
            self._size = self._frames = 0
            self._compressed = False
        if finished:
            self._in_frame = False
        opcode = self._opcode
        self._opcode = 0  # the frame's next pieces continue it
        # Message order, then UTF-8 of text (wsproto's MessageDecoder).
        if self._msg_opcode == 0:
            if opcode == 0:
                raise _protocol_error("unexpected CONTINUATION")
            self._msg_opcode = opcode
        elif opcode != 0:
            raise _protocol_error(f"expected CONTINUATION, got {opcode}")
        piece: str | bytes
        if self._msg_opcode == 1:
            try:
                if opcode == 1 and last:
                    piece = payload.decode()  # a whole text message at once
                else:
                    if opcode == 1:
                        self._decoder = _Utf8Decoder()
                    piece = self._decoder.decode(payload, last)
            except UnicodeDecodeError as exc:
                raise _Fail(ProtocolError(str(exc), 1007)) from None
        else:
            piece = payload
        if last:
            self._msg_opcode = 0
            self._decoder = None
        if self._fragments:
            # Empty pieces carry nothing but the end of a message.
            if piece or last:
                out.append(Fragment(piece, last))
        elif last and opcode != 0:
            out.append(Message(piece))  # the common case: one frame, one piece
        else:
            self._message.add(piece)
            if last:
                out.append(Message(self._message.finish()))
        return len(payload)

    def _control_frame(self, payload: bytes, out: list[InboundEvent]) -> None:
        opcode = self._opcode
        if opcode == 0x9:
            out.append(Ping(payload))
        elif opcode == 0xA:
            out.append(Pong(payload))
        else:
            self._done = True
            out.append(_parse_close(payload))


def _parse_close(payload: bytes) -> CloseReceived:
    if not payload:
        return CloseReceived(1005, "")
    if len(payload) == 1:
        raise _protocol_error("CLOSE with 1 byte payload")
    code = (payload[0] << 8) | payload[1]
    if code not in _RECEIVABLE_CODES:
        if code < 1000 or code > 4999:
            raise _protocol_error("CLOSE with invalid code")
        if code in (1005, 1006, 1015):
            raise _protocol_error("remote CLOSE with local-only reason")
        raise _protocol_error("CLOSE with unknown reserved code")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError as exc:
        raise _Fail(ProtocolError("Error decoding CLOSE reason: " + str(exc), 1007)) from None
    return CloseReceived(code, reason)
