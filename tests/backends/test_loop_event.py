"""LoopEvent: the lean stream's event for one asyncio loop, held to anyio.Event's contract.

It is asyncio's own futures: there is no Trio variant to run (the queue keeps
anyio.Event there), so these run on asyncio and, where installed, uvloop.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

from tests.loops import UVLOOP
from wskit.backends.lean import LoopEvent
from wskit.message_queue import MessageQueue

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio", UVLOOP])]


async def test_every_waiter_wakes_and_later_waits_return_at_once() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    woken: list[int] = []

    async def waiter(index: int) -> None:
        await event.wait()
        woken.append(index)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for index in range(3):
                tasks.start_soon(waiter, index)
            await anyio.wait_all_tasks_blocked()
            assert woken == []
            assert not event.is_set()
            event.set()
        assert sorted(woken) == [0, 1, 2]
        await event.wait()  # set: returns at once


async def test_a_cancelled_waiter_leaves_the_others_waiting() -> None:
    event = LoopEvent(asyncio.get_running_loop())
    woken: list[str] = []

    async def waiter(name: str) -> None:
        await event.wait()
        woken.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            with anyio.CancelScope() as doomed:
                tasks.start_soon(waiter, "kept")
                await anyio.wait_all_tasks_blocked()
                async with anyio.create_task_group() as inner:
                    inner.start_soon(waiter, "cancelled")
                    await anyio.wait_all_tasks_blocked()
                    inner.cancel_scope.cancel()
            assert not doomed.cancelled_caught
            await anyio.wait_all_tasks_blocked()
            assert woken == []  # the cancellation woke nobody else
            event.set()
    assert woken == ["kept"]


async def test_a_queue_on_loop_events_delivers_in_order_across_waits() -> None:
    queue = MessageQueue(2, new_event=lambda: LoopEvent(asyncio.get_running_loop()))
    got: list[str | bytes] = []

    async def consume() -> None:
        while True:
            try:
                data, _ = await queue.get()
            except anyio.EndOfStream:
                return
            got.append(data)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            for index in range(50):
                assert await queue.put((str(index), True))
                if index % 7 == 0:
                    await anyio.wait_all_tasks_blocked()  # the consumer waits on an event
            queue.close()
    assert got == [str(index) for index in range(50)]


async def test_waits_cancelled_before_set_do_not_pile_up() -> None:
    # A long-lived event (a connection's "closed" flag) may be waited on with
    # a timeout again and again: the futures of waits given up on must not
    # accumulate until set().
    event = LoopEvent(asyncio.get_running_loop())
    woken: list[str] = []

    async def keeper(name: str) -> None:
        await event.wait()
        woken.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for name in ("first", "second"):
                tasks.start_soon(keeper, name)
            await anyio.wait_all_tasks_blocked()
            for _ in range(1000):
                with anyio.move_on_after(0):
                    await event.wait()
            held = len(event._more or ())  # the waiters beyond the first one
            assert held <= 2 * 16, f"{held} futures held for 2 live waiters"
            event.set()
    assert sorted(woken) == ["first", "second"]
