"""Parsing of ws:// and wss:// URLs (RFC 6455 §3)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from .errors import InvalidURI

__all__ = ["WebSocketURI", "parse_uri"]


@dataclass(frozen=True, slots=True)
class WebSocketURI:
    """A parsed WebSocket URL.

    Attributes:
        secure: True for ``wss://``.
        host: the host name or address (IPv6 without brackets).
        port: the port (80 or 443 when the URL gives none).
        resource: the request target: path and query (``/`` at least).
        user: the user name from ``user:password@host``, if any.
        password: the password from ``user:password@host``, if any.
    """

    secure: bool
    host: str
    port: int
    resource: str
    user: str | None = None
    password: str | None = None

    @property
    def host_header(self) -> str:
        """The Host header value: the port is left out when it is the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_uri(uri: str) -> WebSocketURI:
    """Parse a ``ws://`` or ``wss://`` URL.

    Raises:
        InvalidURI: another scheme, no host, a fragment, a bad port, or
            characters that cannot go into a request line.
    """
    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise InvalidURI(f"{uri!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("ws", "wss"):
        raise InvalidURI(f"{uri!r} is not a WebSocket URL: the scheme must be ws or wss")
    if not parts.hostname:
        raise InvalidURI(f"{uri!r} has no host")
    if parts.fragment:
        raise InvalidURI(f"{uri!r} has a fragment (#...): WebSocket URLs cannot have one")
    host = parts.hostname
    if ":" not in host and not host.isascii():
        # An internationalized name: its ASCII form goes into Host and DNS.
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidURI(f"{uri!r} has a host name that IDNA cannot encode: {exc}") from None
    secure = parts.scheme == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    # Percent-encode what may not appear raw in a request target (spaces, non-ASCII).
    resource = urllib.parse.quote(resource, safe="/?=&%:@!$'()*+,;~-._")
    return WebSocketURI(
        secure=secure,
        host=host,
        port=port if port is not None else (443 if secure else 80),
        resource=resource,
        user=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )
