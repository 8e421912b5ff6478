"""Raw frame builders for tests: the bytes a (possibly hostile) peer would send."""

from __future__ import annotations

import struct
import zlib

MASK_KEY = b"\x37\xfa\x21\x3d"

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One frame; ``length`` overrides the declared length (the payload is sent as is)."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    mask_bit = 0x80 if mask else 0
    if n < 126:
        header = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, n)
    if not mask:
        return header + payload
    masked = bytes(byte ^ MASK_KEY[i % 4] for i, byte in enumerate(payload))
    return header + MASK_KEY + masked


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """The payload of a close frame."""
    return struct.pack("!H", code) + reason


def deflate(data: bytes, window_bits: int = 15) -> bytes:
    """A permessage-deflate payload (RFC 7692 §7.2.1: sync flush, tail removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -window_bits)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def upgrade_request(extra: bytes = b"", *, target: bytes = b"/") -> bytes:
    """A valid upgrade request head, with extra header lines (each ending in CRLF)."""
    return (
        b"GET " + target + b" HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
