"""RateLimit: message and byte budgets, a handshake rate, and connection caps.

Everything here is refused as early as it can be:

* handshakes per client IP over their rate: **429** with ``Retry-After``,
  before any application code runs;
* connections over the global or per-IP cap: **503** with ``Retry-After``,
  before the upgrade (or, with ``when_full="close"``, upgraded and closed at
  once with **1013** "try again later", which a browser's ``onclose`` can
  read while it cannot read a status);
* messages over a budget, per connection, per principal (``ws.context``'s
  ``"principal"``, written by :class:`~wskit.plugins.Auth`) and per client
  IP: the configured ``action`` (drop the message, reply with an error, or
  close with 1008).

Budgets are token buckets (:mod:`wskit.plugins.buckets`) read with ``clock``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, final

from wskit.errors import UsageError
from wskit.plugins.base import PASS, Close, Handshake, Plugin, Verdict
from wskit.plugins.buckets import KeyedTable, Rate, TokenBucket
from wskit.responses import Response

if TYPE_CHECKING:
    from wskit.websocket import WebSocket

__all__ = ["Budget", "RateLimit"]

_OVER_BUDGET = Close(1008, "rate limit exceeded")
_SHED = "wskit.ratelimit.shed"  # a context flag: upgraded only to be closed with 1013


@final
@dataclass(frozen=True, slots=True)
class Budget:
    """What one party may send: a message rate, a byte rate, or both.

    Attributes:
        messages: messages per second, with a burst.
        bytes: payload bytes per second, with a burst (a message larger than
            the burst never passes: keep it at least ``max_message``).
    """

    messages: Rate | None = None
    bytes: Rate | None = None


class _Budgets:
    """The buckets of one budget for one party (a connection, a principal, an IP)."""

    __slots__ = ("bytes", "messages")

    def __init__(self, budget: Budget, now: float) -> None:
        self.messages = None if budget.messages is None else TokenBucket(budget.messages, now)
        self.bytes = None if budget.bytes is None else TokenBucket(budget.bytes, now)


def _size(message: str | bytes) -> int:
    if isinstance(message, bytes):
        return len(message)
    # isascii() is O(1) on CPython: most text skips the encoding.
    return len(message) if message.isascii() else len(message.encode())


@final
class RateLimit(Plugin):
    """Rate limits and connection caps for a server.

    Args:
        per_connection: the budget of each connection.
        per_principal: the budget shared by every connection of one
            principal (``ws.context[principal_key]``; connections without
            one are not counted here).
        per_ip: the budget shared by every connection from one client IP.
        action: the verdict for a message over budget: ``DROP``, a
            ``Reply("...")`` or a ``Close(...)`` (default: close 1008).
        handshakes_per_ip: upgrade requests per client IP; over it, 429.
        max_connections: open connections (and upgrades in progress) at once.
        max_connections_per_ip: the same, per client IP.
        when_full: ``"reject"`` answers 503 over a cap (the default);
            ``"close"`` upgrades and closes at once with 1013.
        retry_after: seconds to put in ``Retry-After`` with a 503.
        principal_key: the ``ws.context`` key naming the principal.
        clock: monotonic seconds (pass a :class:`~wskit.testing.FakeClock` in tests).
        max_keys: principals and IPs remembered per table (least recently
            seen forgotten first).
    """

    def __init__(
        self,
        *,
        per_connection: Budget | None = None,
        per_principal: Budget | None = None,
        per_ip: Budget | None = None,
        action: Verdict = _OVER_BUDGET,
        handshakes_per_ip: Rate | None = None,
        max_connections: int | None = None,
        max_connections_per_ip: int | None = None,
        when_full: Literal["reject", "close"] = "reject",
        retry_after: int = 5,
        principal_key: str = "principal",
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if action is PASS:
            raise UsageError("action=PASS would let everything through: use DROP, Reply or Close")
        if when_full not in ("reject", "close"):
            raise UsageError(f'when_full must be "reject" or "close", got {when_full!r}')
        for name, cap in (("max_connections", max_connections), ("per_ip", max_connections_per_ip)):
            if cap is not None and cap < 1:
                raise UsageError(f"{name} must be at least 1 or None, got {cap}")
        self._per_connection = per_connection
        self._action = action
        self._max_connections = max_connections
        self._max_per_ip = max_connections_per_ip
        self._when_full = when_full
        self._retry_after = str(max(0, int(retry_after)))
        self._principal_key = principal_key
        self._clock = clock
        self._handshakes: KeyedTable[str, TokenBucket] | None = None
        if handshakes_per_ip is not None:
            rate = handshakes_per_ip
            self._handshakes = KeyedTable(lambda now: TokenBucket(rate, now), max_keys=max_keys)
        # Shared budgets outlive connections: reconnecting must not refill them.
        self._principals: KeyedTable[object, _Budgets] | None = None
        if per_principal is not None:
            self._principals = KeyedTable(
                lambda now: _Budgets(per_principal, now), max_keys=max_keys
            )
        self._ips: KeyedTable[str, _Budgets] | None = None
        if per_ip is not None:
            self._ips = KeyedTable(lambda now: _Budgets(per_ip, now), max_keys=max_keys)
        # Per connection: (message buckets, byte buckets) it is charged to.
        self._buckets: dict[WebSocket, tuple[tuple[TokenBucket, ...], tuple[TokenBucket, ...]]] = {}
        self._open = 0
        self._open_per_ip: Counter[str | None] = Counter()
        # Handshakes holding a connection slot, by their context's identity.
        self._slots: dict[int, str | None] = {}

    @property
    def connections(self) -> int:
        """Connections holding a slot now (open, or upgrading past this plugin)."""
        return self._open

    # ------------------------------------------------------------ handshake

    async def on_handshake(self, handshake: Handshake) -> Response | None:
        """Apply the handshake rate and the connection caps."""
        ip = handshake.client_ip
        if self._handshakes is not None and ip is not None:
            now = self._clock()
            bucket = self._handshakes.get(ip, now)
            if not bucket.take(now):
                wait = max(1, math.ceil(bucket.wait(now)))
                return Response.text(
                    429,
                    "Too Many Requests: this address opens connections too fast.\n",
                    (("Retry-After", str(wait)),),
                )
        if self._full(ip):
            if self._when_full == "reject":
                return Response.text(
                    503,
                    "Service Unavailable: too many connections, try again later.\n",
                    (("Retry-After", self._retry_after),),
                )
            handshake.context[_SHED] = True
            return None
        self._open += 1
        self._open_per_ip[ip] += 1
        self._slots[id(handshake.context)] = ip
        return None

    def _full(self, ip: str | None) -> bool:
        if self._max_connections is not None and self._open >= self._max_connections:
            return True
        return (
            self._max_per_ip is not None
            and ip is not None
            and self._open_per_ip[ip] >= self._max_per_ip
        )

    def on_refused(self, handshake: Handshake) -> None:
        """Give back the slot of a handshake that did not open."""
        self._release(id(handshake.context))

    def _release(self, slot: int) -> None:
        if slot not in self._slots:
            return
        ip = self._slots.pop(slot)
        self._open -= 1
        self._open_per_ip[ip] -= 1
        if self._open_per_ip[ip] <= 0:
            del self._open_per_ip[ip]

    # ----------------------------------------------------------- connection

    async def on_connect(self, ws: WebSocket) -> None:
        """Shed a connection over a cap (``when_full="close"``), or find its buckets."""
        if ws.context.get(_SHED):
            await ws.close(1013, "try again later")
            return
        now = self._clock()
        parties: list[_Budgets] = []
        if self._per_connection is not None:
            parties.append(_Budgets(self._per_connection, now))
        principal = ws.context.get(self._principal_key)
        if self._principals is not None and principal is not None:
            parties.append(self._principals.get(principal, now))
        peer = ws.transport.peer
        if self._ips is not None and isinstance(peer, tuple):
            parties.append(self._ips.get(peer[0], now))
        # Looked up once: the message path only walks this short list. (A
        # shared bucket the table forgets later keeps counting for the
        # connections that hold it.)
        messages = tuple(p.messages for p in parties if p.messages is not None)
        sizes = tuple(p.bytes for p in parties if p.bytes is not None)
        if messages or sizes:
            self._buckets[ws] = (messages, sizes)

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        """Charge the message to every budget it falls under; over any of them, the action."""
        buckets = self._buckets.get(ws)
        if buckets is None:
            return PASS
        messages, sizes = buckets
        now = self._clock()
        # All or nothing: a refused message costs no budget anywhere.
        for bucket in messages:
            if bucket.tokens(now) < 1.0:
                return self._action
        if sizes:
            size = _size(message)
            for bucket in sizes:
                if bucket.tokens(now) < size:
                    return self._action
            for bucket in sizes:
                bucket.spend(size)
        for bucket in messages:
            bucket.spend(1.0)
        return PASS

    async def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        """Free the connection's slot and budgets."""
        self._release(id(ws.context))
        self._buckets.pop(ws, None)
