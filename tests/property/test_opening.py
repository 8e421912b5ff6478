"""Handshake deadlines on the timer service: the invariants the server's open_timeout relies on."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from wskit._opening import Opening
from wskit._timers import Timers

# Many handshakes at once, each with its deadline (an offset from 0), and a
# schedule of events: the clock moving on, a handshake finishing, the server stopping.
deadlines = st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40)
events = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(0, 30, allow_nan=False)),
        st.tuples(st.just("finish"), st.integers(0, 39)),
        st.tuples(st.just("stop"), st.integers(0, 39)),
    ),
    max_size=120,
)


class Handshake:
    """What the server keeps for one handshake, with a record of the interrupts it got."""

    def __init__(self, timers: Timers, deadline: float) -> None:
        self.interrupts = 0
        self.deadline = deadline
        self.ended = False  # finished or stopped: its deadline must not fire any more
        self.finished = False
        self.should_expire = False  # the model's answer
        self.opening = Opening(self.interrupt)
        self.opening.start(timers, deadline)

    def interrupt(self) -> None:
        self.interrupts += 1


@given(deadlines, events)
def test_each_handshake_is_interrupted_once_and_only_when_it_should_be(
    offsets: list[float], schedule: list[tuple[str, float]]
) -> None:
    timers = Timers()
    handshakes = [Handshake(timers, offset) for offset in offsets]
    now = -1.0

    def advance(to: float) -> None:
        for handshake in handshakes:
            if not handshake.ended and handshake.deadline <= to:
                handshake.should_expire = handshake.ended = True
        timers.fire_due(to)

    for kind, value in schedule:
        if kind == "advance":
            now += value
            advance(now)
            continue
        handshake = handshakes[int(value) % len(handshakes)]
        if handshake.finished:
            continue  # the server finishes a handshake once, and stops only live ones
        if kind == "finish":
            handshake.opening.finish()
            handshake.finished = handshake.ended = True
        else:
            handshake.opening.stop()
            handshake.ended = True
    advance(math.inf)  # every deadline passes in the end
    for handshake in handshakes:
        opening = handshake.opening
        assert handshake.interrupts == int(opening.interrupted) <= 1
        assert opening.expired is handshake.should_expire
        assert not (opening.expired and opening.stopped)
        assert opening.timer_deadline() == math.inf
    # Nothing is left for the service: fired entries are gone, finished ones stale and dropped.
    assert len(timers) == 0
    assert timers._stale == 0
