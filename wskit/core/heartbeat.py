"""Keepalive as pure logic: when to ping, and when a missing pong is fatal.

No clock is read here. The connection feeds the time it is given
(``tick(now)``), and asks :meth:`Heartbeat.deadline` when it next wants to
be called. The schedule:

* The first call to :meth:`Heartbeat.due` after the connection opens arms the
  schedule: the first ping is due ``interval`` seconds later.
* A ping is due at ``interval`` after the previous one. While a ping awaits
  its pong (and a timeout is set), no further ping is sent.
* A ping still unanswered ``timeout`` seconds after it was sent is fatal
  (the connection fails with 1011 "keepalive ping timeout").
* A pong that answers the awaited ping (or any later ping, since a pong
  acknowledges every earlier ping) clears the wait.
"""

from __future__ import annotations

import enum

__all__ = ["Due", "Heartbeat"]


class Due(enum.Enum):
    """What the heartbeat wants done at a given time."""

    NOTHING = "nothing"
    PING = "ping"
    TIMEOUT = "timeout"


class Heartbeat:
    """The keepalive schedule of one connection.

    Args:
        interval: seconds between pings, or None for no keepalive at all.
        timeout: seconds a ping may wait for its pong, or None for no limit.
    """

    __slots__ = ("_awaiting", "_next_ping", "interval", "timeout")

    def __init__(self, interval: float | None, timeout: float | None) -> None:
        self.interval = interval
        self.timeout = timeout
        self._next_ping: float | None = None  # None: not armed yet
        self._awaiting: float | None = None  # send time of the unanswered ping

    @property
    def armed(self) -> bool:
        """Whether the schedule has started."""
        return self._next_ping is not None

    @property
    def awaiting_pong(self) -> bool:
        """Whether a keepalive ping is waiting for its pong."""
        return self._awaiting is not None

    def deadline(self) -> float | None:
        """The time the heartbeat next needs :meth:`due` called, or None.

        Before the schedule is armed this is 0.0: "as soon as you can".
        """
        if self.interval is None:
            return None
        if self._next_ping is None:
            return 0.0
        if self._awaiting is not None and self.timeout is not None:
            return self._awaiting + self.timeout
        return self._next_ping

    def due(self, now: float) -> Due:
        """What is due at ``now``; arms the schedule on first use."""
        if self.interval is None:
            return Due.NOTHING
        if self._next_ping is None:
            self._next_ping = now + self.interval
            return Due.NOTHING
        if self._awaiting is not None and self.timeout is not None:
            return Due.TIMEOUT if now >= self._awaiting + self.timeout else Due.NOTHING
        return Due.PING if now >= self._next_ping else Due.NOTHING

    def ping_sent(self, now: float) -> None:
        """Record that the keepalive ping due now was sent at ``now``."""
        assert self.interval is not None
        self._awaiting = now
        self._next_ping = now + self.interval

    def pong_received(self) -> None:
        """Record that the awaited keepalive ping was answered."""
        self._awaiting = None
