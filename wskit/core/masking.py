"""Masking of client frames (RFC 6455 §5.3): the XOR itself and the keys.

The XOR runs at C speed when the optional ``websockets`` package is installed
(its ``speedups.apply_mask``, ~40 GB/s here: ``pip install wskit[speedups]``);
otherwise a pure-Python fallback does it (~0.5-1 GB/s), which the test suite
also runs. Measured options (1 MiB payload): wsproto's ``bytes.translate`` on
four strided slices 0.9 GB/s, ``int.from_bytes`` XOR over the whole payload
0.2 GB/s (it wins below ~1 KiB), a C loop 37-45 GB/s.

Keys come from a block of ``os.urandom`` drawn once per 1,024 frames rather
than one system call per frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ["MaskKeys", "mask", "mask_python"]

_XOR_TABLES = [bytes(a ^ b for a in range(256)) for b in range(256)]
_SMALL = 1024  # below this, one big-integer XOR beats four strided translates


def mask_python(data: bytes | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` repeated (pure Python)."""
    size = len(data)
    if size <= _SMALL:
        if not size:
            return b""
        repeated = (key * ((size >> 2) + 1))[:size]
        value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
        return value.to_bytes(size, "little")
    out = bytearray(data)
    for offset in range(4):
        out[offset::4] = out[offset::4].translate(_XOR_TABLES[key[offset]])
    return bytes(out)


def _load_c_mask() -> Callable[[bytes | memoryview, bytes], bytes] | None:
    try:
        from websockets.speedups import apply_mask  # noqa: PLC0415 (optional)
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return apply_mask


_c_mask = _load_c_mask()

mask: Callable[[bytes | memoryview, bytes], bytes] = _c_mask if _c_mask is not None else mask_python
"""XOR ``data`` with the 4-byte ``key`` repeated: the fastest routine available."""

speedups = _c_mask is not None
"""Whether :func:`mask` runs at C speed."""


class MaskKeys:
    """Fresh 4-byte masking keys, drawn from blocks of ``os.urandom``."""

    __slots__ = ("_block", "_pos")

    _BLOCK = 4096

    def __init__(self) -> None:
        self._block = b""
        self._pos = 0

    def take(self) -> bytes:
        """Return the next unused key."""
        pos = self._pos
        if pos >= len(self._block):
            self._block = os.urandom(self._BLOCK)
            pos = 0
        self._pos = pos + 4
        return self._block[pos : pos + 4]
