"""RateLimit as a whole, on a real connection: what passes never exceeds its budgets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wskit.plugins import DROP, PASS, Budget, Rate, RateLimit
from wskit.testing import FakeClock, pair
from wskit.testing import strategies as ws_st

pytestmark = pytest.mark.anyio

rates = st.builds(Rate, per_second=st.floats(0.1, 100), burst=st.floats(1, 50))
byte_rates = st.builds(Rate, per_second=st.floats(1, 10_000), burst=st.floats(64, 4096))
traffic = st.lists(
    st.tuples(st.floats(0, 2, allow_nan=False), ws_st.messages(max_size=300)), max_size=40
)


def size(message: str | bytes) -> int:
    return len(message.encode() if isinstance(message, str) else message)


@settings(max_examples=40)  # each example opens a connection
@given(rates, byte_rates, traffic)
async def test_what_passes_stays_within_both_budgets_over_any_window(
    messages: Rate, sizes: Rate, steps: list[tuple[float, str | bytes]]
) -> None:
    clock = FakeClock()
    limit = RateLimit(
        per_connection=Budget(messages=messages, bytes=sizes), action=DROP, clock=clock
    )
    history: list[tuple[float, int, bool]] = []
    async with pair(plugins=[limit]) as p:
        for step, message in steps:
            clock.advance(step)
            verdict = limit.on_message(p.server_ws, message)
            assert verdict in (PASS, DROP)
            history.append((clock(), size(message), verdict is PASS))
    for i, j in itertools.combinations_with_replacement(range(len(history)), 2):
        window = [entry for entry in history[i : j + 1] if entry[2]]
        elapsed = history[j][0] - history[i][0]
        slack = 1e-6 * (1 + elapsed)
        assert len(window) <= messages.burst + messages.per_second * elapsed + slack
        assert sum(n for _, n, _ in window) <= sizes.burst + sizes.per_second * elapsed + slack
