"""Where a server starts its connections' tasks: natively on Trio.

AnyIO's ``TaskGroup.start_soon()`` wraps every task in a ``TaskHandle``
with a cancel scope and an event of its own (AnyIO 4.14+): ~20 µs more per
task on Trio than Trio's own ``Nursery.start_soon()``, measured, and a
connection task is started per handshake. On Trio an AnyIO task group *is* a
nursery, and AnyIO's cancel scopes are Trio's: a nursery opened inside the
group is cancelled with it and raises into it, so its tasks behave as the
group's own. On asyncio, AnyIO's cancel scopes track the tasks AnyIO started,
so the group starts them there.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio.abc

__all__ = ["Spawn", "task_spawner"]

Spawn = Callable[..., Any]
"""``spawn(async_function, *args)``: start a task, as ``TaskGroup.start_soon()`` does."""


@asynccontextmanager
async def task_spawner(group: anyio.abc.TaskGroup) -> AsyncIterator[Spawn]:
    """Yield the cheapest way to start tasks that belong to ``group``.

    Args:
        group: an entered AnyIO task group; the body runs inside it.

    Yields:
        A Trio nursery's ``start_soon`` on Trio, the group's own elsewhere.
        A nursery whose tasks have all ended after its body did takes no
        new ones: keep one task running in it for as long as it must.
    """
    trio = sys.modules.get("trio")
    if trio is None or not trio.lowlevel.in_trio_run():
        yield group.start_soon
        return
    async with trio.open_nursery() as nursery:
        yield nursery.start_soon
