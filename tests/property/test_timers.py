"""The timer service's heap: every deadline fires once, on time, and stale entries stay bounded."""

from __future__ import annotations

import gc
import math
import weakref

from hypothesis import given
from hypothesis import strategies as st

from wskit._timers import _SLACK, Timers


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
