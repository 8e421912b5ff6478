"""The one module of the core that imports wsproto.

wsproto does the framing after the handshake: frame parsing and validation
(opcodes, reserved bits, masking, control-frame rules, close codes), UTF-8
decoding of text, and frame serialization. Everything it leaves to its caller
is added here, through its own extension hook:

* limits: a frame that declares more than the message budget is refused when
  its header arrives, before any payload is buffered; the inflated size of
  compressed messages is counted as it is produced; a message may not be split
  into more than ``max_fragments`` frames (all close 1009);
* permessage-deflate with bounded inflation and tunable zlib settings (the
  negotiation itself is :mod:`wskit.core.deflate`);
* reassembly of wsproto's partial-message events into whole messages without
  keeping one object per network read.

wsproto's events are drained eagerly (its generator only advances while it is
iterated) and translated into wskit values; wsproto's types and errors stay in
this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from wsproto.connection import Connection as _WsprotoConnection
from wsproto.connection import ConnectionState as _WsprotoState
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.events import Ping as _WsprotoPing
from wsproto.events import Pong as _WsprotoPong
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits

from wskit.errors import PayloadTooBig, ProtocolError

from .deflate import (
    DeflateParams,
    Deflater,
    InflateError,
    InflateLimitExceeded,
    Inflater,
)
from .events import CloseReceived, Fragment, Message, Ping, Pong
from .reassembly import Reassembly

__all__ = ["Failure", "FrameEngine"]

_CODE_1014 = (1014).to_bytes(2, "big")
_CODE_1011 = (1011).to_bytes(2, "big")
_NO_RSV = RsvBits(False, False, False)
_RSV1 = RsvBits(True, False, False)


@dataclass(frozen=True, slots=True)
class Failure:
    """The peer broke the protocol; the connection must fail with ``error.close_code``."""

    error: ProtocolError


InboundEvent = Message | Fragment | Ping | Pong | CloseReceived | Failure


class _Guard(Extension):
    """wsproto extension that enforces wskit's limits and runs permessage-deflate.

    It is always active, whether or not compression was negotiated: wsproto
    calls extensions at exactly the points where limits must be checked (frame
    header parsed, payload chunk unmasked, frame complete). It never appears in
    a handshake: wskit negotiates extensions itself.
    """

    name = "x-wskit-guard"  # never offered nor accepted on the wire

    def __init__(
        self,
        *,
        client: bool,
        deflate: DeflateParams | None,
        max_message: int | None,
        max_fragments: int,
        mem_level: int,
        level: int,
    ) -> None:
        self.max_message = max_message
        self.max_fragments = max_fragments
        self.failure: ProtocolError | None = None
        self.compress_next = False  # set by the sender before each message's first frame
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
        # Per inbound frame and per inbound message (control frames interleave).
        self._frame_is_control = False
        self._frame_is_close = False
        # wsproto parses a frame's header again when its masking key had not
        # all arrived: the second call must not count the fragment twice.
        self._header_pending = False
        self.received_1014 = False
        self._message_size = 0
        self._message_frames = 0
        self._message_compressed = False
        # Per outbound message.
        self._outbound_compressed = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def _fail(self, error: ProtocolError) -> CloseReason:
        self.failure = error
        return CloseReason(error.close_code)

    def _budget(self) -> int | None:
        if self.max_message is None:
            return None
        return self.max_message - self._message_size

    def frame_inbound_header(
        self,
        _proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._frame_is_control = opcode.iscontrol()
        self._frame_is_close = opcode is Opcode.CLOSE
        retry, self._header_pending = self._header_pending, True
        if self._frame_is_control:
            # wsproto rejects RSV bits we do not claim: claim none on control frames.
            return _NO_RSV
        if opcode is Opcode.CONTINUATION:
            if rsv.rsv1:
                return self._fail(ProtocolError("RSV1 set on a continuation frame"))
            if not retry:
                self._message_frames += 1
            if self._message_frames > self.max_fragments:
                return self._fail(
                    PayloadTooBig(f"message split into more than {self.max_fragments} frames")
                )
        else:
            self._message_size = 0
            self._message_frames = 1
            self._message_compressed = rsv.rsv1 and self._inflater is not None
        budget = self._budget()
        if budget is not None and self._message_compressed:
            # Compressed bytes may outnumber the inflated ones (tiny or
            # incompressible messages): allow zlib's worst-case expansion for
            # non-default settings such as memLevel 5 (deflateBound: +1/8 +1/64),
            # plus flush markers; the inflater enforces the exact limit on output.
            budget += ((budget + 7) >> 3) + ((budget + 63) >> 6) + 64
        if budget is not None and payload_length > budget:
            return self._fail(
                PayloadTooBig(f"message larger than the limit of {self.max_message} bytes")
            )
        return _RSV1 if self._inflater is not None else _NO_RSV

    def frame_inbound_payload_data(
        self, _proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        self._header_pending = False
        if self._frame_is_control:
            if self._frame_is_close and data[:2] == _CODE_1014:
                # wsproto 1.3 rejects 1014 (Bad Gateway, IANA-registered) as an
                # unknown code; let it parse a known one and restore 1014 after.
                self.received_1014 = True
                return _CODE_1011 + data[2:]
            return data
        if self._message_compressed:
            assert self._inflater is not None
            try:
                data = self._inflater.inflate(data, self._inflate_limit())
            except InflateLimitExceeded:
                return self._fail(
                    PayloadTooBig(f"message inflates past the limit of {self.max_message} bytes")
                )
            except InflateError as exc:
                return self._fail(ProtocolError(f"invalid compressed data: {exc}", 1007))
        self._message_size += len(data)
        return data

    def _inflate_limit(self) -> int:
        budget = self._budget()
        # zlib takes a Py_ssize_t; with no limit we still inflate in bounded steps.
        return budget if budget is not None else 2**62

    def frame_inbound_complete(
        self, _proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._frame_is_control or not fin:
            return None
        tail: bytes | None = None
        if self._message_compressed:
            assert self._inflater is not None
            try:
                tail = self._inflater.finish_message(self._inflate_limit())
            except InflateLimitExceeded:
                return self._fail(
                    PayloadTooBig(f"message inflates past the limit of {self.max_message} bytes")
                )
            except InflateError as exc:
                return self._fail(ProtocolError(f"invalid compressed data: {exc}", 1007))
        self._message_size = 0
        self._message_frames = 0
        self._message_compressed = False
        return tail or None

    def frame_outbound(
        self,
        _proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        data: bytes,
        fin: bool,
    ) -> tuple[RsvBits, bytes]:
        if opcode.iscontrol() or self._deflater is None:
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            self._outbound_compressed = self.compress_next
        if not self._outbound_compressed:
            return rsv, data
        if opcode is not Opcode.CONTINUATION:
            rsv = RsvBits(True, rsv.rsv2, rsv.rsv3)
        return rsv, self._deflater.compress(data, fin=fin)


class FrameEngine:
    """wsproto's frame layer for one open connection, behind wskit's limits."""

    __slots__ = ("_fragments", "_guard", "_message", "_sending_text", "_wsproto")

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
    ) -> None:
        self._fragments = fragments
        self._guard = _Guard(
            client=client,
            deflate=deflate,
            max_message=max_message,
            max_fragments=max_fragments,
            mem_level=mem_level,
            level=level,
        )
        self._wsproto = _WsprotoConnection(
            ConnectionType.CLIENT if client else ConnectionType.SERVER, [self._guard]
        )
        self._message = Reassembly()
        self._sending_text: bool | None = None  # type of the message being sent in fragments

    @property
    def sending_fragments(self) -> bool | None:
        """None when no fragmented send is under way, else whether it is text."""
        return self._sending_text

    def receive(self, data: bytes) -> list[InboundEvent]:
        """Parse ``data`` and return what it completed, in order."""
        self._wsproto.receive_data(data)
        out: list[InboundEvent] = []
        for event in self._wsproto.events():
            if isinstance(event, TextMessage | BytesMessage):
                piece = event.data if isinstance(event.data, str) else bytes(event.data)
                if self._fragments:
                    # Empty pieces carry nothing but the end of a message.
                    if piece or event.message_finished:
                        out.append(Fragment(piece, event.message_finished))
                    continue
                self._message.add(piece)
                if event.message_finished:
                    out.append(Message(self._message.finish()))
            elif isinstance(event, _WsprotoPing):
                out.append(Ping(bytes(event.payload)))
            elif isinstance(event, _WsprotoPong):
                out.append(Pong(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                out.append(self._close_event(event))
        return out

    def _close_event(self, event: CloseConnection) -> CloseReceived | Failure:
        # wsproto reports both a peer's close frame and its own parse failures
        # as CloseConnection; only a real close frame moves its state.
        if self._wsproto.state in (_WsprotoState.REMOTE_CLOSING, _WsprotoState.CLOSED):
            code = 1014 if self._guard.received_1014 else int(event.code)
            return CloseReceived(code, event.reason or "")
        error = self._guard.failure
        if error is None:
            reason = event.reason or "protocol error"
            error = (
                PayloadTooBig(reason)
                if event.code == 1009
                else ProtocolError(reason, int(event.code))
            )
        return Failure(error)

    def send_data(self, data: str | bytes, *, fin: bool, compress: bool) -> bytes:
        """Frame one message, or one fragment of a message (``fin=False``)."""
        if self._sending_text is None:
            self._guard.compress_next = compress
        message: TextMessage | BytesMessage
        if isinstance(data, str):
            message = TextMessage(data=data, message_finished=fin)
        else:
            message = BytesMessage(data=data, message_finished=fin)
        frame = self._wsproto.send(message)  # may raise UnicodeEncodeError: no state changed
        self._sending_text = None if fin else isinstance(data, str)
        return frame

    def send_ping(self, payload: bytes) -> bytes:
        """Frame a ping."""
        return self._wsproto.send(_WsprotoPing(payload))

    def send_pong(self, payload: bytes) -> bytes:
        """Frame a pong."""
        return self._wsproto.send(_WsprotoPong(payload))

    def send_close(self, code: int | None, reason: str) -> bytes:
        """Frame a close (no status code when ``code`` is None)."""
        # wsproto recognises "no status code" only by the enum member itself.
        status = CloseReason.NO_STATUS_RCVD if code is None else code
        return self._wsproto.send(CloseConnection(code=status, reason=reason))
