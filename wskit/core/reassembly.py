"""Joining the pieces of one incoming message."""

from __future__ import annotations

import io

__all__ = ["Reassembly"]


class Reassembly:
    """Collects the pieces of one message without one object per network read."""

    __slots__ = ("_binary", "_first", "_text")

    def __init__(self) -> None:
        self._first: str | bytes | None = None
        self._text: io.StringIO | None = None
        self._binary: bytearray | None = None

    @property
    def empty(self) -> bool:
        """True when no piece was added since the last :meth:`finish`."""
        return self._first is None and self._text is None and self._binary is None

    def add(self, piece: str | bytes) -> None:
        """Append the next piece (all pieces of a message are of one type)."""
        if self.empty:
            self._first = piece
            return
        if isinstance(piece, str):
            if self._text is None:
                self._text = io.StringIO()
                assert isinstance(self._first, str)
                self._text.write(self._first)
                self._first = None
            self._text.write(piece)
        else:
            if self._binary is None:
                assert isinstance(self._first, bytes)
                self._binary = bytearray(self._first)
                self._first = None
            self._binary += piece

    def finish(self) -> str | bytes:
        """Return the whole message and start afresh."""
        if self._text is not None:
            result: str | bytes = self._text.getvalue()
        elif self._binary is not None:
            result = bytes(self._binary)
        else:
            result = self._first if self._first is not None else b""
        self._first = self._text = self._binary = None
        return result
