"""One task that keeps the deadlines of many connections.

A connection's core needs ``tick()`` at ``next_deadline()``: keepalive pings,
the pong timeout, the close timeout, planned closes. A task per connection
that sleeps until then costs a task, its cancel scope and a timeout scope
per wait, in every connection, even when no deadline is set. Instead, a
server (or a client connection) runs one :class:`Timers` task: connections
push their next deadline onto its heap, and it calls them back when due.

Some checks are due every period rather than at a deadline, and only while
the connection is in some state: the *patrol* (:meth:`Timers.patrol`) calls
each of its targets once per :data:`PATROL_PERIOD` until it answers that it
leaves. A set, one walk per period for all of them: joining costs a set
insertion, where a deadline of its own would cost a clock read, a heap entry
and a pop per target per period.

Entries are not removed one by one: a connection that moves its deadline
pushes a new entry (``replacing=True``), and the old one is recognized as
stale when it comes due (its deadline is no longer the one the connection
asked for) and dropped. Entries hold their target weakly, so that a closed
connection is not kept alive by a deadline it no longer needs, and stale
entries are counted: once they are half the heap, it is rebuilt without them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import weakref
from typing import Protocol, final

import anyio

from ._signal import Signal

__all__ = ["PATROL_PERIOD", "Patrolled", "Timed", "Timers"]

PATROL_PERIOD = 0.1
"""Seconds between two walks of the patrol (:meth:`Timers.patrol`)."""

logger = logging.getLogger("wskit.timers")

# Stale entries tolerated before a rebuild is considered (rebuilding a tiny heap is waste).
_SLACK = 64


class Timed(Protocol):
    """What a timer service calls back: a connection, in practice."""

    def timer_deadline(self) -> float:
        """The deadline this object last scheduled (``inf`` once it wants none)."""
        ...  # pragma: no cover

    def on_timer(self, now: float) -> None:
        """Called once the deadline it scheduled has passed."""
        ...  # pragma: no cover


class Patrolled(Protocol):
    """What the patrol calls back (see :meth:`Timers.patrol`)."""

    def on_patrol(self) -> bool:
        """Called once per walk; return False to leave the patrol."""
        ...  # pragma: no cover


@final
class Timers:
    """A heap of deadlines and a patrol, served by :meth:`run` in one task."""

    __slots__ = ("_heap", "_order", "_patrol", "_patrol_at", "_sleeping_until", "_stale", "_wake")

    def __init__(self) -> None:
        # (deadline, tie-breaker, target): the counter keeps targets from being compared.
        self._heap: list[tuple[float, int, weakref.ref[Timed]]] = []
        self._order = itertools.count()
        self._wake = Signal()
        self._sleeping_until = math.inf
        self._stale = 0  # entries whose target asked for another deadline since
        # Held strongly: a target leaves at the first walk after it stops
        # wanting the patrol, so at most one period later.
        self._patrol: set[Patrolled] = set()
        self._patrol_at = -math.inf  # the next walk (-inf: at the next pass)

    def patrol(self, target: Patrolled) -> None:
        """Call ``target.on_patrol()`` at every walk, until it returns False.

        Walks come every :data:`PATROL_PERIOD`; the first walk after a target
        joins may come at any time within that period (at once, when the
        patrol was empty). Joining again while a member does nothing.
        """
        patrol = self._patrol
        if not patrol:
            self._patrol_at = -math.inf
            if self._sleeping_until != -math.inf:
                self._wake.set()
        patrol.add(target)

    def __contains__(self, target: object) -> bool:
        """Whether ``target`` is on the patrol now."""
        return target in self._patrol

    def walk(self, now: float) -> None:
        """Call the patrol's targets if a walk is due at ``now``; time the next walk."""
        patrol = self._patrol
        if not patrol or now < self._patrol_at:
            return
        self._patrol_at = now + PATROL_PERIOD
        for target in list(patrol):
            try:
                stays = target.on_patrol()
            except Exception:  # one connection's bug must not stop the patrol
                logger.exception("a patrol callback raised")
                stays = False
            if not stays:
                patrol.discard(target)

    def next_walk(self) -> float:
        """When the next walk is due (``inf``: nobody is on the patrol)."""
        return self._patrol_at if self._patrol else math.inf

    def schedule(self, deadline: float, target: Timed, *, replacing: bool) -> None:
        """Call ``target.on_timer(now)`` once ``deadline`` has passed.

        The call is skipped if ``target.timer_deadline()`` no longer equals
        ``deadline`` by then: the target has asked for another one since.
        ``replacing`` says that the target had a deadline pending, whose
        entry is now stale.
        """
        if replacing:
            self.forget()
        heapq.heappush(self._heap, (deadline, next(self._order), weakref.ref(target)))
        if deadline < self._sleeping_until:
            self._wake.set()

    def forget(self) -> None:
        """A target gives up the deadline it had pending (it closed, say)."""
        self._stale += 1
        if self._stale > _SLACK and self._stale * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if _wants(entry)]
            heapq.heapify(self._heap)
            self._stale = 0

    def fire_due(self, now: float) -> None:
        """Call back every target whose scheduled deadline is at or before ``now``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            target = entry[2]()
            if target is None or target.timer_deadline() != entry[0]:
                self._stale -= 1  # (a dead target forgot its deadline before it died)
                continue  # stale: the target moved its deadline, or is gone
            try:
                target.on_timer(now)
            except Exception:  # one connection's bug must not stop every timer
                logger.exception("a timer callback raised")
            heap = self._heap  # forget() may have rebuilt it

    def next_deadline(self) -> float:
        """The earliest deadline in the heap (stale ones included), or ``inf``."""
        return self._heap[0][0] if self._heap else math.inf

    def __len__(self) -> int:
        """Entries in the heap, stale ones included."""
        return len(self._heap)

    async def run(self) -> None:
        """Serve deadlines until cancelled."""
        while True:
            now = anyio.current_time()
            self.walk(now)
            self.fire_due(now)
            deadline = min(self.next_deadline(), self.next_walk())
            self._sleeping_until = deadline
            if deadline == math.inf:
                await self._wake.wait()
            else:
                with anyio.move_on_after(max(deadline - now, 0.0)):
                    await self._wake.wait()
            self._sleeping_until = -math.inf  # awake: nobody needs to wake us


def _wants(entry: tuple[float, int, weakref.ref[Timed]]) -> bool:
    """Whether an entry's target is alive and still wants that deadline."""
    target = entry[2]()
    return target is not None and target.timer_deadline() == entry[0]
