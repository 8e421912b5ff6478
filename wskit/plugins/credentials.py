"""Where a client's credential travels in an upgrade request, and how to take it out.

Each source finds the credential and returns the request without it, so
that the application (``ws.request``) and the plugins after
:class:`~wskit.plugins.Auth` never see the secret, and a token offered as a
subprotocol can never be selected and echoed back in the 101.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import urllib.parse
from dataclasses import dataclass
from typing import final

from wskit.core import Request
from wskit.core.http import get_header
from wskit.errors import UsageError

__all__ = [
    "BasicCredentials",
    "Bearer",
    "Cookie",
    "CredentialSource",
    "Found",
    "MalformedCredential",
    "Query",
    "Subprotocol",
    "read_basic",
]


class MalformedCredential(Exception):
    """The request carries a credential that cannot be parsed (answered 400)."""


@final
@dataclass(frozen=True, slots=True)
class Found:
    """A credential taken from a request.

    Attributes:
        credential: the token.
        request: the request without it.
    """

    credential: str
    request: Request


class CredentialSource:
    """Base of the places a token can travel in; subclasses implement :meth:`take`."""

    scheme = "Bearer"
    """The scheme named in ``WWW-Authenticate`` when the credential is missing or bad."""

    def take(self, request: Request) -> Found | None:
        """Find the credential; None when the request has none.

        Raises:
            MalformedCredential: the credential is there but unreadable.
        """
        raise NotImplementedError


def _without_header(request: Request, name: str) -> Request:
    wanted = name.lower()
    headers = tuple((key, value) for key, value in request.headers if key.lower() != wanted)
    return dataclasses.replace(request, headers=headers)


@final
class Bearer(CredentialSource):
    """``Authorization: Bearer <token>`` (RFC 6750): for clients that set headers."""

    def take(self, request: Request) -> Found | None:
        """Find the token of the Authorization header."""
        values = get_header(request.headers, "authorization")
        if not values:
            return None
        if len(values) > 1:
            raise MalformedCredential("more than one Authorization header")
        scheme, _, token = values[0].strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return Found(token.strip(), _without_header(request, "authorization"))


@final
class Cookie(CredentialSource):
    """A cookie, which browsers send by themselves: pair it with :class:`~wskit.plugins.Origin`.

    Args:
        name: the cookie's name.
    """

    def __init__(self, name: str) -> None:
        if not name or any(c in name for c in "=; \t"):
            raise UsageError(f"not a cookie name: {name!r}")
        self.name = name

    def take(self, request: Request) -> Found | None:
        """Find the cookie among every Cookie header."""
        for value in get_header(request.headers, "cookie"):
            for pair in value.split(";"):
                key, sep, cookie = pair.strip().partition("=")
                if sep and key == self.name:
                    # Other cookies stay: the application may need its own.
                    return Found(cookie.strip().strip('"'), request)
        return None


@final
class Query(CredentialSource):
    """A query parameter (``wss://host/path?access_token=...``).

    The URL, token included, lands in the access logs of every proxy on the
    way and in browser history: prefer :class:`Subprotocol` for browsers,
    :class:`Bearer` elsewhere, and keep query tokens short-lived. The
    parameter is removed from ``ws.request.target``.

    Args:
        name: the parameter's name.
    """

    def __init__(self, name: str = "access_token") -> None:
        self.name = name

    def take(self, request: Request) -> Found | None:
        """Find the parameter in the request target's query string."""
        if not request.query:
            return None
        pairs = urllib.parse.parse_qsl(request.query, keep_blank_values=True)
        values = [value for key, value in pairs if key == self.name]
        if not values:
            return None
        if len(values) > 1:
            raise MalformedCredential(f"more than one {self.name} parameter")
        rest = urllib.parse.urlencode([(k, v) for k, v in pairs if k != self.name])
        target = request.path + (f"?{rest}" if rest else "")
        return Found(values[0], dataclasses.replace(request, target=target))


@final
class Subprotocol(CredentialSource):
    """A token offered as a subprotocol: the one header a browser's ``WebSocket()`` can set.

    The page offers ``new WebSocket(url, ["chat", "bearer." + token])``; the
    entry is removed from the offer before the server picks a subprotocol,
    so the token is never echoed in ``Sec-WebSocket-Protocol``. Offer a real
    subprotocol beside it: browsers fail a connection that offered
    subprotocols and got none back.

    Args:
        prefix: what marks the entry carrying the token.
    """

    def __init__(self, prefix: str = "bearer.") -> None:
        if not prefix:
            raise UsageError("a Subprotocol source needs a non-empty prefix")
        self.prefix = prefix

    def take(self, request: Request) -> Found | None:
        """Find the offered subprotocol that starts with the prefix."""
        tokens = [p for p in request.subprotocols if p.startswith(self.prefix)]
        if not tokens:
            return None
        if len(tokens) > 1:
            raise MalformedCredential("more than one token offered as a subprotocol")
        kept = tuple(p for p in request.subprotocols if not p.startswith(self.prefix))
        headers = tuple(
            (key, value)
            for key, value in request.headers
            if key.lower() != "sec-websocket-protocol"
        )
        if kept:
            headers += (("Sec-WebSocket-Protocol", ", ".join(kept)),)
        stripped = dataclasses.replace(request, subprotocols=kept, headers=headers)
        return Found(tokens[0][len(self.prefix) :], stripped)


@final
@dataclass(frozen=True, slots=True)
class BasicCredentials:
    """A user name and password from ``Authorization: Basic`` (RFC 7617)."""

    user: str
    password: str


def read_basic(request: Request) -> tuple[BasicCredentials, Request] | None:
    """Find HTTP Basic credentials; None when the request has none.

    Raises:
        MalformedCredential: the header is repeated or not valid base64 of ``user:password``.
    """
    values = get_header(request.headers, "authorization")
    if not values:
        return None
    if len(values) > 1:
        raise MalformedCredential("more than one Authorization header")
    scheme, _, encoded = values[0].strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedCredential("Basic credentials are not base64 of UTF-8") from None
    user, sep, password = decoded.partition(":")
    if not sep:
        raise MalformedCredential("Basic credentials lack the ':' between user and password")
    return BasicCredentials(user, password), _without_header(request, "authorization")
