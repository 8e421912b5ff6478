"""Token buckets and the keyed table: the invariants RateLimit relies on."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.errors import UsageError
from wskit.plugins.buckets import KeyedTable, Rate, TokenBucket
from wskit.testing import FakeClock

rates = st.builds(
    Rate,
    per_second=st.floats(0.01, 1e6, allow_nan=False),
    burst=st.floats(1, 1e6, allow_nan=False),
)
# (time step, amount asked): steps of zero are common (bursts), amounts may exceed the burst.
steps = st.lists(
    st.tuples(st.floats(0, 10, allow_nan=False), st.floats(0, 2000, allow_nan=False)),
    max_size=60,
)


def run(rate: Rate, ops: list[tuple[float, float]]) -> list[tuple[float, float, bool]]:
    bucket = TokenBucket(rate, 0.0)
    now = 0.0
    out = []
    for step, amount in ops:
        now += step
        out.append((now, amount, bucket.take(now, amount)))
    return out


@given(rates, steps)
def test_what_passes_in_any_window_is_at_most_burst_plus_rate_times_its_length(
    rate: Rate, ops: list[tuple[float, float]]
) -> None:
    history = run(rate, ops)
    for i, j in itertools.combinations_with_replacement(range(len(history)), 2):
        window = history[i : j + 1]
        passed = sum(amount for _, amount, ok in window if ok)
        elapsed = history[j][0] - history[i][0]
        bound = rate.burst + rate.per_second * elapsed
        assert passed <= bound * (1 + 1e-9) + 1e-6


@given(rates, st.floats(0, 1e6, allow_nan=False))
def test_after_the_announced_wait_the_take_succeeds(rate: Rate, amount: float) -> None:
    bucket = TokenBucket(rate, 0.0)
    bucket.take(0.0, rate.burst)  # empty it
    wait = bucket.wait(0.0, amount)
    if amount > rate.burst:
        assert wait == float("inf")
    else:
        assert bucket.take(wait * (1 + 1e-9) + 1e-9, amount)


asks = st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 50))


@given(rates, st.lists(asks, max_size=40))
def test_time_going_back_adds_nothing(rate: Rate, ops: list[tuple[float, float]]) -> None:
    # The same asks at the raw times and at the running maximum of the times
    # pass and fail alike: an earlier timestamp is as good as no time passing.
    raw, steady = TokenBucket(rate, 0.0), TokenBucket(rate, 0.0)
    latest = 0.0
    for when, amount in ops:
        latest = max(latest, when)
        assert raw.take(when, amount) == steady.take(latest, amount)


@given(st.integers(1, 20), st.lists(st.integers(0, 50), max_size=200))
def test_keyed_table_keeps_at_most_max_keys_and_the_latest_key(
    max_keys: int, keys: list[int]
) -> None:
    table: KeyedTable[int, list[int]] = KeyedTable(lambda now: [], max_keys=max_keys)
    for key in keys:
        entry = table.get(key, 0.0)
        entry.append(key)
        assert len(table) <= max_keys
        assert table.get(key, 0.0) is entry  # the key just used is kept


@given(st.lists(st.floats(0, 1e6, allow_nan=False), max_size=20))
def test_fake_clock_only_moves_forward_by_what_it_is_told(steps: list[float]) -> None:
    clock = FakeClock(5.0)
    for step in steps:
        before = clock()
        assert clock.advance(step) == clock() == before + step
    with pytest.raises(UsageError):
        clock.advance(-1e-9)
