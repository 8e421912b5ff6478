"""Where a server starts its connections' tasks: natively on Trio, in AnyIO's group elsewhere.

AnyIO's ``TaskGroup.start_soon()`` wraps every task in a ``TaskHandle``
with a cancel scope and an event of its own (AnyIO 4.14+): measured ~29 µs
per task on Trio against ~8 µs for a nursery's ``start_soon()``, and a
server starts a connection task per handshake (38 µs less server CPU per
handshake on the benchmark's handshake row). On Trio an AnyIO task group
*is* a nursery and AnyIO's cancel scopes are Trio's: a nursery opened
inside the group is cancelled with it and raises into it, so its tasks
behave as the group's own.

On asyncio the group starts them: plain ``create_task()`` with a cancel
scope per task was measured too, and saved nothing measurable per
handshake there, while it would have to re-implement what a group does
with a task that fails.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

__all__ = ["Spawn", "task_spawner"]

Spawn = Callable[..., Any]
"""``spawn(async_function, *args)``: start a task, as ``TaskGroup.start_soon()`` does."""


@asynccontextmanager
async def task_spawner() -> AsyncIterator[Spawn]:
    """Yield the cheapest way to start tasks that end with the enclosing cancel scope.

    Leaving the context waits until that scope is cancelled (the tasks of a
    server run until its shutdown), then until every task started has ended.

    Yields:
        A Trio nursery's ``start_soon`` on Trio, an AnyIO task group's
        elsewhere.
    """
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        async with trio.open_nursery() as nursery:
            yield nursery.start_soon
            await trio.sleep_forever()  # the nursery takes tasks until cancelled
        return
    async with anyio.create_task_group() as group:
        yield group.start_soon
        await anyio.sleep_forever()  # the group takes tasks until cancelled
