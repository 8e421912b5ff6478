"""Raw WebSocket frames as a (possibly hostile) peer would send them, for tests."""

from __future__ import annotations

import struct

__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "PING",
    "PONG",
    "TEXT",
    "close_payload",
    "encode_frame",
]

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

_DEFAULT_KEY = b"\x37\xfa\x21\x3d"


def encode_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = _DEFAULT_KEY,
    length: int | None = None,
) -> bytes:
    """Encode one frame, valid or not (RFC 6455 §5.2).

    Args:
        opcode: the 4-bit opcode (reserved ones included).
        payload: the payload, unmasked.
        fin: the FIN bit.
        rsv: the three RSV bits as a number (0-7; RSV1 is 4).
        mask: the 4-byte masking key (clients must mask), or None to send
            the payload unmasked (as servers do).
        length: a declared length to lie with (the payload is sent as is).

    Returns:
        The frame's bytes, using the shortest length encoding.
    """
    declared = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0 if mask is None else 0x80
    if declared < 126:
        header = struct.pack("!BB", first, mask_bit | declared)
    elif declared < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, declared)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, declared)
    if mask is None:
        return header + payload
    # Whole-payload XOR: fast enough for the megabytes tests send.
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )
    return header + mask + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The payload of a close frame: the code in network order, then the reason."""
    return struct.pack("!H", code) + reason
