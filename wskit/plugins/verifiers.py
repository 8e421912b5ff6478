"""Checking credentials: static tokens and passwords in constant time, and JWTs.

A verifier answers with a :class:`Grant` (who the client is, and until when),
None for "not valid" (401), or raises :class:`Forbidden` for "valid, but not
allowed here" (403).

Constant time: comparing a guess with a secret byte by byte and stopping at
the first difference tells an attacker, through the response time, how many
leading bytes were right. Here both sides are hashed first (SHA-256) and the
digests compared with :func:`hmac.compare_digest`, so the work does not
depend on how much of the guess matches (``tests/plugins`` measures it).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, final

from wskit.errors import UsageError

__all__ = ["JWT", "Forbidden", "Grant", "Passwords", "Tokens"]


class Forbidden(Exception):
    """Raised by a verifier: the credential is valid but not allowed here (answered 403)."""


@final
@dataclass(frozen=True, slots=True)
class Grant:
    """A verified credential.

    Attributes:
        principal: who the client is (a user id, a name); :class:`Auth`
            stores it in ``ws.context["principal"]``.
        expires_at: when the credential expires (seconds since the epoch,
            like JWT's ``exp``); the connection is closed with 1008 then,
            unless refreshed. None: it does not expire.
        claims: anything else the verifier learned (a JWT's claims).
    """

    principal: object
    expires_at: float | None = None
    claims: Mapping[str, Any] = field(default_factory=dict)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


@final
class Tokens:
    """A fixed set of bearer tokens, each naming its principal.

    Args:
        tokens: token -> principal.
    """

    def __init__(self, tokens: Mapping[str, object]) -> None:
        self._tokens = [(_digest(token), principal) for token, principal in tokens.items()]

    def verify_now(self, token: str) -> Grant | None:
        """Check a token against every known one, taking the same time whichever matches."""
        guess = _digest(token)
        found: object = None
        matched = False
        for digest, principal in self._tokens:
            # No early exit: every entry is compared, matching or not.
            if hmac.compare_digest(guess, digest):
                found, matched = principal, True
        return Grant(found) if matched else None

    async def __call__(self, token: str) -> Grant | None:
        """The verifier interface: see :meth:`verify_now`."""
        return self.verify_now(token)


@final
class Passwords:
    """HTTP Basic users and their passwords, compared in constant time.

    Args:
        users: user name -> password.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {_digest(user): _digest(password) for user, password in users.items()}
        # An unknown user is compared against this, so it costs the same as a known one.
        self._nobody = _digest("\x00wskit: no such user\x00")

    def verify_now(self, user: str, password: str) -> Grant | None:
        """Check a user name and password; the principal is the user name."""
        stored = self._users.get(_digest(user), self._nobody)
        known = stored is not self._nobody
        if hmac.compare_digest(_digest(password), stored) and known:
            return Grant(user)
        return None

    async def __call__(self, user: str, password: str) -> Grant | None:
        """The verifier interface: see :meth:`verify_now`."""
        return self.verify_now(user, password)


@final
class JWT:
    """JSON Web Tokens checked with PyJWT (``pip install wskit[jwt]``).

    Args:
        key: the HMAC secret or the public key (PEM or a PyJWT key object).
        algorithms: the algorithms accepted, e.g. ``["RS256"]``; required, so
            a token cannot choose a weaker one (or ``none``).
        audience: the ``aud`` this server is; a token for another is refused.
        issuer: the ``iss`` trusted; None accepts any.
        leeway: seconds of clock skew allowed on ``exp`` and ``nbf``.
        require: claims a token must carry (``exp`` by default: a token
            without one would never expire).
        principal_claim: the claim naming the principal.
        clock: seconds since the epoch (a :class:`~wskit.testing.FakeClock` in tests).
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithms: Sequence[str],
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        require: Sequence[str] = ("exp",),
        principal_claim: str = "sub",
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            import jwt  # noqa: PLC0415  (an optional dependency)
        except ImportError:
            raise UsageError("JWT needs PyJWT: pip install 'wskit[jwt]'") from None
        if not algorithms or isinstance(algorithms, str):
            raise UsageError('algorithms must be a list of names, e.g. ["HS256"]')
        if "none" in (name.lower() for name in algorithms):
            raise UsageError('algorithm "none" would accept unsigned tokens')
        self._jwt = jwt
        self._key = key
        self._algorithms = list(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._require = list(require)
        self._principal_claim = principal_claim
        self._clock = clock

    def verify_now(self, token: str) -> Grant | None:
        """Check the signature, audience, issuer and times; None for any failure."""
        jwt = self._jwt
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                # exp and nbf are checked below against our clock.
                options={"require": self._require, "verify_exp": False, "verify_nbf": False},
            )
        except jwt.PyJWTError:
            return None
        now = self._clock()
        expires = claims.get("exp")
        not_before = claims.get("nbf")
        try:
            if expires is not None and now >= float(expires) + self._leeway:
                return None
            if not_before is not None and now + self._leeway < float(not_before):
                return None
        except (TypeError, ValueError):
            return None  # a time claim that is not a number
        principal = claims.get(self._principal_claim)
        if principal is None:
            return None
        return Grant(principal, None if expires is None else float(expires), claims)

    async def __call__(self, token: str) -> Grant | None:
        """The verifier interface: see :meth:`verify_now`."""
        return self.verify_now(token)
