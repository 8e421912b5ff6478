"""Auth: authenticate the upgrade request, before the upgrade, and keep the credential honest after.

Failures are answered during the handshake, never after it: **401** with a
``WWW-Authenticate`` challenge when the credential is missing or invalid,
**403** when a verifier raises :class:`~wskit.plugins.Forbidden`, **400**
when it is malformed (a repeated Authorization header). On success the
principal goes to ``ws.context["principal"]`` (and the whole
:class:`~wskit.plugins.Grant` to ``ws.context["grant"]``), where the
application and later plugins such as RateLimit find it.

A credential that expires (a JWT's ``exp``) closes the connection with
**1008** when it does, unless the client sends a fresh one in-band first
(see ``refresh``).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, final

from wskit.errors import UsageError
from wskit.plugins.base import DROP, PASS, Close, Handshake, Plugin, Verdict
from wskit.plugins.credentials import (
    BasicCredentials,
    Bearer,
    Cookie,
    CredentialSource,
    MalformedCredential,
    Query,
    Subprotocol,
    read_basic,
)
from wskit.plugins.verifiers import JWT, Forbidden, Grant, Passwords, Tokens
from wskit.responses import Response

if TYPE_CHECKING:
    from wskit.websocket import WebSocket

__all__ = ["Auth", "Refresh", "TokenVerifier"]

TokenVerifier = Callable[[str], Awaitable[object]]
"""``async def verify(token) -> Grant | principal | None``; may raise :class:`Forbidden`."""

BasicVerifier = Callable[[str, str], Awaitable[object]]
"""``async def verify(user, password) -> Grant | principal | None``; may raise Forbidden."""

Refresh = Callable[[str | bytes], str | None]
"""Finds a fresh token in an incoming message (None: not a refresh message)."""

_EXPIRED = "credentials expired"


def _grant(result: object) -> Grant | None:
    if result is None or isinstance(result, Grant):
        return result
    return Grant(result)


@final
class Auth(Plugin):
    """Authenticate every upgrade request; build one with a class method.

    * :meth:`bearer`, :meth:`cookie`, :meth:`query`, :meth:`subprotocol`:
      a token from that place, checked by ``verify``: a
      :class:`~wskit.plugins.Tokens` table, a :class:`~wskit.plugins.JWT`,
      or any ``async def verify(token)``;
    * :meth:`jwt`: a JWT from any of those places, with expiry enforced;
    * :meth:`basic`: HTTP Basic against a table of passwords (constant
      time) or an ``async def verify(user, password)``.

    Args:
        source: where the token travels, or None for HTTP Basic.
        verify: the token or Basic verifier.
        realm: the realm of the ``WWW-Authenticate`` challenge.
        refresh: for expiring credentials: finds a fresh token in an
            incoming message. The message is consumed; a valid token for the
            same principal moves the expiry, anything else closes with 1008.
            Needs a verifier that checks synchronously (Tokens, JWT).
        clock: seconds since the epoch, to compare with expiry times.
    """

    def __init__(
        self,
        source: CredentialSource | None,
        verify: TokenVerifier | BasicVerifier,
        *,
        realm: str = "wskit",
        refresh: Refresh | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not callable(verify):
            raise UsageError(f"verify must be an async callable, got {verify!r}")
        if refresh is not None and not hasattr(verify, "verify_now"):
            raise UsageError(
                "refresh needs a verifier that checks synchronously (Tokens or JWT): "
                "on_message cannot await"
            )
        self._source = source
        self._verify = verify
        self._realm = realm.replace('"', "")
        self._refresh = refresh
        self._clock = clock

    # --------------------------------------------------------- constructors

    @classmethod
    def bearer(cls, verify: TokenVerifier | Mapping[str, object], **options: Any) -> Auth:
        """A token in ``Authorization: Bearer``; ``verify`` may be a token -> principal mapping."""
        return cls(Bearer(), _token_verifier(verify), **options)

    @classmethod
    def cookie(
        cls, name: str, verify: TokenVerifier | Mapping[str, object], **options: Any
    ) -> Auth:
        """A token in cookie ``name``. Browsers send cookies to any page's request: add Origin."""
        return cls(Cookie(name), _token_verifier(verify), **options)

    @classmethod
    def query(
        cls,
        verify: TokenVerifier | Mapping[str, object],
        *,
        name: str = "access_token",
        **options: Any,
    ) -> Auth:
        """A token in query parameter ``name``: it leaks into proxies' access logs."""
        return cls(Query(name), _token_verifier(verify), **options)

    @classmethod
    def subprotocol(
        cls,
        verify: TokenVerifier | Mapping[str, object],
        *,
        prefix: str = "bearer.",
        **options: Any,
    ) -> Auth:
        """A token offered as subprotocol ``prefix + token``: how a browser can send one."""
        return cls(Subprotocol(prefix), _token_verifier(verify), **options)

    @classmethod
    def jwt(
        cls,
        key: Any,
        *,
        algorithms: list[str],
        audience: str | list[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        source: CredentialSource | None = None,
        refresh: Refresh | None = None,
        clock: Callable[[], float] = time.time,
        realm: str = "wskit",
    ) -> Auth:
        """A JWT (from ``source``, Bearer by default) checked by :class:`~wskit.plugins.JWT`."""
        verifier = JWT(
            key,
            algorithms=algorithms,
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            clock=clock,
        )
        return cls(source or Bearer(), verifier, realm=realm, refresh=refresh, clock=clock)

    @classmethod
    def basic(
        cls,
        users: Mapping[str, str] | None = None,
        *,
        verify: BasicVerifier | None = None,
        realm: str = "wskit",
    ) -> Auth:
        """HTTP Basic: ``users`` (name -> password, compared in constant time) or ``verify``."""
        if (users is None) == (verify is None):
            raise UsageError("Auth.basic() takes users= or verify=, exactly one")
        checker: BasicVerifier = Passwords(users) if users is not None else verify  # type: ignore[assignment]
        return cls(None, checker, realm=realm)

    # ------------------------------------------------------------- handshake

    def _challenge(self, error: str | None = None) -> tuple[tuple[str, str], ...]:
        if self._source is None:
            return (("WWW-Authenticate", f'Basic realm="{self._realm}", charset="UTF-8"'),)
        value = f'{self._source.scheme} realm="{self._realm}"'
        if error:
            value += f', error="{error}"'
        return (("WWW-Authenticate", value),)

    async def on_handshake(self, handshake: Handshake) -> Response | None:
        """Find and check the credential; refuse with 400, 401 or 403, or record the principal."""
        try:
            result = await self._check(handshake)
        except MalformedCredential as exc:
            return Response.text(400, f"Bad Request: {exc}.\n")
        except Forbidden:
            return Response.text(403, "Forbidden.\n")
        if isinstance(result, Response):
            return result
        handshake.context["principal"] = result.principal
        handshake.context["grant"] = result
        return None

    async def _check(self, handshake: Handshake) -> Grant | Response:
        request = handshake.request
        if self._source is None:
            basic = read_basic(request)
            if basic is None:
                return self._missing()
            credentials, handshake.request = basic
            grant = await self._verify_basic(credentials)
        else:
            found = self._source.take(request)
            if found is None:
                return self._missing()
            handshake.request = found.request
            grant = _grant(await self._verify(found.credential))  # type: ignore[call-arg]
        if grant is None or self._expired(grant):
            return Response.text(
                401, "Unauthorized: invalid credentials.\n", self._challenge("invalid_token")
            )
        return grant

    async def _verify_basic(self, credentials: BasicCredentials) -> Grant | None:
        return _grant(await self._verify(credentials.user, credentials.password))  # type: ignore[call-arg]

    def _missing(self) -> Response:
        return Response.text(401, "Unauthorized: credentials required.\n", self._challenge())

    def _expired(self, grant: Grant) -> bool:
        return grant.expires_at is not None and self._clock() >= grant.expires_at

    # ------------------------------------------------------------ connection

    async def on_connect(self, ws: WebSocket) -> None:
        """Plan the close at the credential's expiry."""
        grant = ws.context.get("grant")
        if isinstance(grant, Grant) and grant.expires_at is not None:
            ws.close_after(grant.expires_at - self._clock(), 1008, _EXPIRED, key=self)

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        """Take an in-band token refresh (when ``refresh`` is set); pass everything else."""
        if self._refresh is None:
            return PASS
        token = self._refresh(message)
        if token is None:
            return PASS
        check = self._verify.verify_now  # type: ignore[union-attr]
        grant = _grant(check(token))
        if grant is None or self._expired(grant):
            return Close(1008, "invalid credentials in refresh")
        if grant.principal != ws.context.get("principal"):
            return Close(1008, "refreshed credentials name another principal")
        ws.context["grant"] = grant
        delay = None if grant.expires_at is None else grant.expires_at - self._clock()
        ws.close_after(delay, 1008, _EXPIRED, key=self)
        return DROP


def _token_verifier(verify: TokenVerifier | Mapping[str, object]) -> TokenVerifier:
    if isinstance(verify, Mapping):
        return Tokens(verify)
    if not (inspect.iscoroutinefunction(verify) or callable(verify)):
        raise UsageError(f"verify must be an async callable or a mapping, got {verify!r}")
    return verify
