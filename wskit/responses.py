"""HTTP responses that hooks and plugins return to refuse or answer a request."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Response"]


@dataclass(frozen=True, slots=True)
class Response:
    """An HTTP response to send instead of upgrading the connection.

    Attributes:
        status: the HTTP status (200 to 599).
        headers: response headers; Content-Length is added by wskit.
        body: the response body.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @classmethod
    def text(cls, status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
        """A response with a UTF-8 plain-text body."""
        content_type = ("Content-Type", "text/plain; charset=utf-8")
        return cls(status, (content_type, *headers), text.encode())
