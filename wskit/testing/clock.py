"""A clock that moves only when told, for testing time-based plugins and the core."""

from __future__ import annotations

from typing import final

from wskit.errors import UsageError

__all__ = ["FakeClock"]


@final
class FakeClock:
    """A callable clock: pass it where a plugin takes ``clock=`` and move time by hand.

    Example::

        clock = FakeClock()
        limit = RateLimit(per_connection=Budget(messages=Rate(1, burst=1)), clock=clock)
        ...
        clock.advance(1.0)  # one more message's worth of budget

    Args:
        start: the time it reads at first, in seconds.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        """The current time, in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (never backward) and return the new time.

        Raises:
            UsageError: ``seconds`` is negative (clocks plugins use are monotonic).
        """
        if seconds < 0:
            raise UsageError(f"a monotonic clock cannot go back: advance({seconds})")
        self._now += seconds
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now!r})"
