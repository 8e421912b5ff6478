"""The one exception tree of wskit.

Every error wskit raises is a :class:`WskitError`; errors of the libraries
underneath (wsproto, h11, AnyIO) are translated at one edge and never reach
users. The tree::

    WskitError
    ├── ConnectionClosed            the connection is closed; carries code and reason
    │   ├── ConnectionClosedOK      ... after a normal close (1000, 1001)
    │   └── ConnectionClosedError   ... after an error, or without a close frame (1006)
    ├── HandshakeError              the opening handshake did not complete
    │   ├── InvalidURI              the URL given to connect() is not a ws:// or wss:// URL
    │   ├── InvalidRequest          server side: the request was refused with an HTTP status
    │   ├── InvalidResponse         client side: the server's response broke the protocol
    │   │   └── NegotiationError    ... it chose an extension or subprotocol we did not offer
    │   ├── HandshakeRejected       client side: the server answered with a non-101 status
    │   ├── ConnectionFailed        client side: no transport (refused, unreachable, DNS, TLS)
    │   └── HandshakeTimeout        the handshake did not finish within open_timeout
    ├── ProtocolError               the peer broke RFC 6455 after the handshake (close 1002/1007)
    │   └── PayloadTooBig           the peer exceeded a size limit (close 1009)
    ├── PluginError                 a plugin raised; the connection was rejected or closed
    └── UsageError                  the calling code misused the API (a wrong argument)
        └── InvalidState            ... or called a method in a state that does not allow it

Peer misbehaviour never raises out of the sans-I/O core: it becomes an event
that carries one of these errors as its explanation. Only local misuse
(:class:`UsageError`) is raised directly.
"""

from __future__ import annotations

from typing import final

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionFailed",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeTimeout",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidURI",
    "NegotiationError",
    "PayloadTooBig",
    "PluginError",
    "ProtocolError",
    "UsageError",
    "WskitError",
]


class WskitError(Exception):
    """Base class of every error wskit raises."""


class ConnectionClosed(WskitError):
    """The WebSocket connection is closed.

    Attributes:
        code: the code that ended the connection: the peer's close code (1005
            when its frame carried none), the code wskit failed the connection
            with when the peer misbehaved or timed out (1002, 1007, 1009,
            1011), or 1006 when it ended without a close frame.
        reason: the matching reason ("" when none).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        text = f"connection closed with code {code}"
        if reason:
            text += f" ({reason})"
        super().__init__(text)


@final
class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000, 1001, or 1005: a close frame without a code).

    Iteration over a WebSocket just ends.
    """


@final
class ConnectionClosedError(ConnectionClosed):
    """The connection closed because of an error, or without a close frame."""


class HandshakeError(WskitError):
    """The opening handshake failed; no WebSocket connection exists."""


@final
class InvalidURI(HandshakeError):
    """The URL is not a valid ``ws://`` or ``wss://`` URL."""


@final
class InvalidRequest(HandshakeError):
    """Server side: the client's upgrade request was refused.

    Attributes:
        status_code: the HTTP status the core answered with (400, 405, 414,
            426, 431, 505, ...).
    """

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        super().__init__(f"{status_code}: {message}")


class InvalidResponse(HandshakeError):
    """Client side: the server's handshake response broke RFC 6455.

    The message names the offending header or limit.
    """


@final
class NegotiationError(InvalidResponse):
    """The server selected an extension, parameter or subprotocol we did not offer."""


@final
class HandshakeRejected(HandshakeError):
    """The server answered the upgrade request with a status other than 101.

    Attributes:
        status_code: the HTTP status code.
        headers: the response headers as ``(name, value)`` string pairs.
        body: the response body, truncated to the client's body limit.
    """

    def __init__(
        self,
        status_code: int,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        super().__init__(f"server rejected the WebSocket handshake with HTTP {status_code}")


@final
class ConnectionFailed(HandshakeError):
    """Client side: the transport could not be opened.

    The connection was refused, the host is unreachable or unknown, or TLS
    failed; the underlying ``OSError`` (or ``ssl.SSLError``) is ``__cause__``.
    """


@final
class HandshakeTimeout(HandshakeError, TimeoutError):
    """The opening handshake (transport, TLS and HTTP upgrade) took longer than open_timeout."""


class ProtocolError(WskitError):
    """The peer violated the WebSocket protocol.

    Attributes:
        close_code: the close code wskit sent because of it (1002, 1007, 1009, ...).
    """

    def __init__(self, message: str, close_code: int = 1002) -> None:
        self.close_code = close_code
        super().__init__(message)


@final
class PayloadTooBig(ProtocolError):
    """The peer sent a message or frame larger than the configured limit (1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


@final
class PluginError(WskitError):
    """A plugin raised; the handshake was rejected (500) or the connection closed (1011)."""


class UsageError(WskitError):
    """The calling code used the API in a way it does not allow."""


@final
class InvalidState(UsageError):
    """A method was called in a connection state that does not allow it."""
