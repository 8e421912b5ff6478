"""ClientToken: a client plugin that sends a credential with the upgrade request."""

from __future__ import annotations

import inspect
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Literal, final

from wskit.errors import UsageError
from wskit.plugins.base import ClientRequest, Plugin

__all__ = ["ClientToken"]

Carrier = Literal["header", "subprotocol", "query", "cookie"]


@final
class ClientToken(Plugin):
    """Send a token where the server's :class:`~wskit.plugins.Auth` looks for it.

    Args:
        token: the token, or a function (sync or async) returning a fresh
            one, called once per connection attempt.
        carrier: ``"header"`` (``Authorization: Bearer``), ``"subprotocol"``
            (offered as ``prefix + token``), ``"query"`` (parameter
            ``name``) or ``"cookie"`` (cookie ``name``).
        name: the query parameter or cookie name.
        prefix: the subprotocol prefix.
    """

    def __init__(
        self,
        token: str | Callable[[], str | Awaitable[str]],
        *,
        carrier: Carrier = "header",
        name: str = "access_token",
        prefix: str = "bearer.",
    ) -> None:
        if carrier not in ("header", "subprotocol", "query", "cookie"):
            raise UsageError(f"unknown carrier {carrier!r}: header, subprotocol, query or cookie")
        self._token = token
        self._carrier = carrier
        self._name = name
        self._prefix = prefix

    async def _current(self) -> str:
        if isinstance(self._token, str):
            return self._token
        value = self._token()
        if inspect.isawaitable(value):
            value = await value
        return value

    async def on_client_request(self, request: ClientRequest) -> None:
        """Add the token to the request."""
        token = await self._current()
        if self._carrier == "header":
            request.headers.append(("Authorization", f"Bearer {token}"))
        elif self._carrier == "subprotocol":
            request.subprotocols.append(self._prefix + token)
        elif self._carrier == "cookie":
            request.headers.append(("Cookie", f"{self._name}={token}"))
        else:
            separator = "&" if "?" in request.resource else "?"
            query = urllib.parse.urlencode({self._name: token})
            request.resource += separator + query
