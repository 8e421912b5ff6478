"""The timer service's task: it sleeps until the earliest deadline and wakes for an earlier one."""

from __future__ import annotations

import math

import anyio
import pytest

from wskit._timers import Timers

pytestmark = pytest.mark.anyio


class Target:
    def __init__(self) -> None:
        self.deadline = math.inf
        self.fired_at: list[float] = []
        self.done = anyio.Event()

    def timer_deadline(self) -> float:
        return self.deadline

    def on_timer(self, now: float) -> None:
        self.deadline = math.inf
        self.fired_at.append(now)
        self.done.set()


async def test_an_earlier_deadline_wakes_the_sleeping_service() -> None:
    timers = Timers()
    late, early = Target(), Target()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(timers.run)
        start = anyio.current_time()
        late.deadline = start + 0.4
        timers.schedule(late.deadline, late, replacing=False)
        await anyio.sleep(0.05)  # the service now sleeps until the late deadline
        early.deadline = anyio.current_time() + 0.05
        timers.schedule(early.deadline, early, replacing=False)
        with anyio.fail_after(5):
            await early.done.wait()
            assert late.fired_at == []  # the early one came first, well before 0.4 s
            await late.done.wait()
        tasks.cancel_scope.cancel()
    assert early.fired_at[0] - start < 0.35
    assert late.fired_at[0] >= start + 0.4


async def test_a_callback_that_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timers = Timers()

    class Broken(Target):
        def on_timer(self, now: float) -> None:
            self.deadline = math.inf
            raise RuntimeError("bug")

    broken, fine = Broken(), Target()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(timers.run)
        now = anyio.current_time()
        broken.deadline, fine.deadline = now + 0.01, now + 0.02
        timers.schedule(broken.deadline, broken, replacing=False)
        timers.schedule(fine.deadline, fine, replacing=False)
        with anyio.fail_after(5):
            await fine.done.wait()
        tasks.cancel_scope.cancel()
    assert "a timer callback raised" in caplog.text
