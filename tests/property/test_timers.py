"""The timer service's heap: every deadline fires once, on time, and stale entries stay bounded."""

from __future__ import annotations

import gc
import math
import weakref

from hypothesis import given
from hypothesis import strategies as st

from wskit._timers import _SLACK, PATROL_PERIOD, Timers


class Target:
    """Schedules like a WebSocket: only earlier deadlines, inf after firing or ending."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.deadline = math.inf
        self.fired: list[tuple[float, float]] = []  # (deadline asked, now)

    def timer_deadline(self) -> float:
        return self.deadline

    def on_timer(self, now: float) -> None:
        self.fired.append((self.deadline, now))
        self.deadline = math.inf

    def ask(self, deadline: float) -> None:
        if deadline < self.deadline:
            self.timers.schedule(deadline, self, replacing=self.deadline != math.inf)
            self.deadline = deadline

    def end(self) -> None:
        if self.deadline != math.inf:
            self.deadline = math.inf
            self.timers.forget()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.integers(0, 7), st.floats(0, 100, allow_nan=False)),
        st.tuples(st.just("end"), st.integers(0, 7), st.just(0.0)),
        st.tuples(st.just("advance"), st.just(0), st.floats(0, 30, allow_nan=False)),
    ),
    max_size=300,
)


@given(ops)
def test_each_deadline_fires_once_at_or_after_it_and_none_is_missed(
    steps: list[tuple[str, int, float]],
) -> None:
    timers = Timers()
    targets = [Target(timers) for _ in range(8)]
    now = 0.0
    for kind, index, value in steps:
        target = targets[index]
        if kind == "ask":
            target.ask(now + value)
        elif kind == "end":
            target.end()
        else:
            now += value
            wanted = {id(t): t.deadline for t in targets if t.deadline <= now}
            before = [len(t.fired) for t in targets]
            timers.fire_due(now)
            for t, count in zip(targets, before, strict=True):
                new = t.fired[count:]
                if id(t) in wanted:
                    # Exactly one call, for the deadline it asked for last.
                    assert new == [(wanted[id(t)], now)]
                else:
                    assert new == []
            # Nothing due is left behind.
            assert all(t.deadline > now for t in targets)
            assert timers.next_deadline() > now


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=400), st.integers(1, 40))
def test_stale_entries_stay_bounded_by_the_live_ones(deadlines: list[float], count: int) -> None:
    timers = Timers()
    targets = [Target(timers) for _ in range(count)]
    for step, deadline in enumerate(deadlines):
        target = targets[step % count]
        if step % 3 == 2:
            target.end()
        else:
            target.ask(deadline)
        live = sum(1 for t in targets if t.deadline != math.inf)
        assert len(timers) <= 2 * live + _SLACK + 1


def test_a_dropped_target_is_not_kept_alive_by_its_entry() -> None:
    timers = Timers()
    target = Target(timers)
    target.ask(10.0)
    alive = weakref.ref(target)
    del target
    gc.collect()
    assert alive() is None
    timers.fire_due(20.0)  # its entry is skipped, not an error
    assert len(timers) == 0


class Walker:
    """A patrol member that stays while ``stays`` is True (as a connection in pull mode)."""

    def __init__(self) -> None:
        self.stays = True
        self.calls = 0
        self.member = False  # whether it should be on the patrol, by our own account
        self.last_walk: float | None = None  # in its current membership
        self.joined_at = 0.0

    def on_patrol(self) -> bool:
        assert self.member, "walked after it left the patrol"
        self.calls += 1
        if not self.stays:
            self.member = False
        return self.stays


patrol_ops = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.integers(0, 5), st.just(0.0)),
        st.tuples(st.just("leave"), st.integers(0, 5), st.just(0.0)),
        st.tuples(st.just("advance"), st.just(0), st.floats(0, 0.3, allow_nan=False)),
    ),
    max_size=200,
)


@given(patrol_ops)
def test_the_patrol_walks_each_member_once_a_period_until_it_leaves(
    steps: list[tuple[str, int, float]],
) -> None:
    """A member is walked within a period of joining, then once a period until it leaves.

    (The away check counts on both: a connection's reader starts only after
    two walks with no read in between, so at least one period after its
    last read, and at most about two.)
    """
    timers = Timers()
    walkers = [Walker() for _ in range(6)]
    now = 0.0
    for kind, index, value in steps:
        walker = walkers[index]
        if kind == "join":
            walker.stays = True
            if not walker.member:
                walker.member = True
                walker.last_walk = None
                walker.joined_at = now
                timers.patrol(walker)
            assert walker in timers
        elif kind == "leave":
            walker.stays = False  # it answers False at the next walk
        else:
            now += value
            members = [w for w in walkers if w.member]
            before = [w.calls for w in walkers]
            timers.walk(now)
            for w, count in zip(walkers, before, strict=True):
                walked = w.calls - count
                assert walked <= 1
                if w not in members:
                    assert walked == 0
                    continue
                since = w.joined_at if w.last_walk is None else w.last_walk
                if now >= since + PERIOD_SLACK:
                    assert walked == 1  # due (a period after joining or its last walk): never late
                if walked:
                    if w.last_walk is not None:
                        assert now >= w.last_walk + PATROL_PERIOD  # never early
                    w.last_walk = now
            assert all(w in timers for w in walkers if w.member)
            assert not any(w in timers for w in walkers if not w.member)
            if not any(w.member for w in walkers):
                assert timers.next_walk() == math.inf


# Rounding: a walk due at last + PATROL_PERIOD may read as a hair later.
PERIOD_SLACK = PATROL_PERIOD * (1 + 1e-9)
