"""The sending half of wskit's frame codec: frames built without copying large payloads.

A mixin of :class:`wskit.core.frames.FrameCodec`, which holds its state. The
differential tests check that it builds the frames wsproto builds (byte for
byte from a server, and once unmasked from a client).
"""

from __future__ import annotations

from struct import Struct

from .deflate import Deflater
from .masking import MaskKeys, mask

__all__ = ["FrameEncoder"]

_HEADER_16 = Struct("!BBH")
_HEADER_64 = Struct("!BBQ")
JOIN_BELOW = 4096
"""Smaller payloads are copied behind their header; larger ones are not."""


class FrameEncoder:
    """Frames for one connection's outgoing messages (state lives in the codec).

    Attributes:
        sending_fragments: None when no fragmented send is under way, else
            whether it is text (read it, do not set it: :meth:`send_data` does).
            An attribute rather than a property: it is read once per message sent.
    """

    __slots__ = ("_compress_out", "_deflater", "_keys", "sending_fragments")

    _keys: MaskKeys | None
    _deflater: Deflater | None
    sending_fragments: bool | None
    _compress_out: bool  # whether the message under way is compressed

    def send_data(self, data: str | bytes, *, fin: bool, compress: bool) -> tuple[bytes, bytes]:
        """Frame one message, or one fragment of a message (``fin=False``).

        Returns:
            The frame as a header and a body, to be written one after the
            other: a large payload is not copied behind its header. Small
            frames come whole in the header, with an empty body.

        Raises:
            UnicodeEncodeError: ``data`` is a str with a lone surrogate;
                nothing changed.
        """
        if isinstance(data, str):
            text = True
            payload = data.encode()
        else:
            text = False
            payload = data
        if self.sending_fragments is None:
            opcode = 1 if text else 2
            self._compress_out = compress and self._deflater is not None
        else:
            opcode = 0
        first = opcode | 0x80 if fin else opcode
        if self._compress_out:
            assert self._deflater is not None
            payload = self._deflater.compress(payload, fin=fin)
            if opcode:
                first |= 0x40
        self.sending_fragments = None if fin else text
        if self._keys is None:
            # A server's frame, as _frame() builds it, without the call (once per message).
            length = len(payload)
            if length < 126:
                header = bytes((first, length))
            elif length < 65536:
                header = _HEADER_16.pack(first, 126, length)
            else:
                header = _HEADER_64.pack(first, 127, length)
            if length < JOIN_BELOW:
                return header + payload, b""
            return header, payload
        return self._frame(first, payload)

    def _frame(self, first: int, payload: bytes) -> tuple[bytes, bytes]:
        length = len(payload)
        keys = self._keys
        mask_bit = 0x80 if keys is not None else 0
        if length < 126:
            header = bytes((first, length | mask_bit))
        elif length < 65536:
            header = _HEADER_16.pack(first, 126 | mask_bit, length)
        else:
            header = _HEADER_64.pack(first, 127 | mask_bit, length)
        if keys is not None:
            key = keys.take()
            header += key
            payload = mask(payload, key)
        if length < JOIN_BELOW:
            return header + payload, b""
        return header, payload

    def _control_out(self, opcode: int, payload: bytes) -> bytes:
        header, body = self._frame(0x80 | opcode, payload)
        return header + body

    def send_ping(self, payload: bytes) -> bytes:
        """Frame a ping."""
        return self._control_out(0x9, payload)

    def send_pong(self, payload: bytes) -> bytes:
        """Frame a pong."""
        return self._control_out(0xA, payload)

    def send_close(self, code: int | None, reason: str) -> bytes:
        """Frame a close (no status code when ``code`` is None)."""
        if code is None:
            return self._control_out(0x8, b"")
        if code in (1005, 1006, 1015):
            code = 1000  # local-only codes never go on the wire (as wsproto)
        encoded = reason.encode()
        if len(encoded) > 123:
            encoded = encoded[:123].decode(errors="ignore").encode()
        return self._control_out(0x8, code.to_bytes(2, "big") + encoded)
