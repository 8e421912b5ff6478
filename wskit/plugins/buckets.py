"""Token buckets: the arithmetic of rate limits, as pure functions of the time passed in.

A bucket holds at most ``burst`` tokens and gains ``rate`` per second; taking
``n`` succeeds only when ``n`` tokens are there. Whatever the sequence of
calls, what passes over any window of ``t`` seconds is at most
``burst + rate * t`` (the property tests check exactly this). No clock is read
here: callers pass ``now``, so tests drive time by hand.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from wskit.errors import UsageError

__all__ = ["KeyedTable", "Rate", "TokenBucket"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@final
@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate with a burst allowance.

    Attributes:
        per_second: tokens gained per second (messages, bytes, handshakes).
        burst: the most tokens held at once: what may pass in one go after
            a quiet spell. A single take larger than this never passes.
    """

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise UsageError(f"a Rate needs per_second > 0, got {self.per_second!r}")
        if not (self.burst >= 1 and math.isfinite(self.burst)):
            raise UsageError(f"a Rate needs burst >= 1, got {self.burst!r}")


@final
class TokenBucket:
    """One token bucket, starting full at ``now``.

    Time that goes backwards (a caller mixing clocks) adds nothing and does
    not move the bucket's idea of the last update back.
    """

    __slots__ = ("_burst", "_rate", "_tokens", "_updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self._rate = rate.per_second
        self._burst = rate.burst
        self._tokens = rate.burst
        self._updated = now

    def tokens(self, now: float) -> float:
        """The tokens available at ``now`` (a ``now`` earlier than the last one adds none)."""
        if now > self._updated:
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
        return self._tokens

    def spend(self, amount: float) -> None:
        """Take ``amount`` tokens just checked with :meth:`tokens` at the same ``now``.

        For callers that check several buckets before charging any (all or
        nothing); :meth:`take` checks and charges one bucket in one call.
        """
        self._tokens -= amount

    def take(self, now: float, amount: float = 1.0) -> bool:
        """Take ``amount`` tokens at ``now`` if they are there; tell whether they were."""
        if amount <= self.tokens(now):
            self._tokens -= amount
            return True
        return False

    def wait(self, now: float, amount: float = 1.0) -> float:
        """Seconds from ``now`` until ``amount`` tokens will be there (inf if over the burst)."""
        if amount > self._burst:
            return math.inf
        missing = amount - self.tokens(now)
        return max(0.0, missing / self._rate)


@final
class KeyedTable(Generic[K, V]):
    """Per-key state (buckets of a principal, of an IP address) with a bound on the keys kept.

    Past ``max_keys`` keys, the least recently used entry is forgotten. A
    forgotten bucket comes back full, which loosens a limit only for the key
    idle longer than every other, so memory stays bounded under a spray of
    new keys (many IPv6 addresses) at that small cost.

    Args:
        factory: makes the state of a new key, given ``now``.
        max_keys: the most keys kept.
    """

    __slots__ = ("_entries", "_factory", "_max_keys")

    def __init__(self, factory: Callable[[float], V], *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise UsageError(f"max_keys must be at least 1, got {max_keys}")
        self._factory = factory
        self._max_keys = max_keys
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K, now: float) -> V:
        """The state of ``key``: a new one if the key is new or was forgotten."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = self._factory(now)
            if len(self._entries) > self._max_keys:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return entry
