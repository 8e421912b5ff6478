"""Where a server starts its connections' tasks: without AnyIO's per-task machinery.

AnyIO's ``TaskGroup.start_soon()`` wraps every task in a ``TaskHandle``
with a cancel scope and an event of its own (AnyIO 4.14+), and on asyncio
registers it with the group's scope: measured, ~35 µs per task on asyncio
against ~6 µs for ``loop.create_task()``, and ~29 µs on Trio against ~8 µs
for a nursery's ``start_soon()``. A server starts one connection task per
handshake.

* On Trio an AnyIO task group *is* a nursery and AnyIO's cancel scopes are
  Trio's: a nursery opened inside the group is cancelled with it and raises
  into it, so its tasks behave as the group's own.
* On asyncio, AnyIO cancels only the tasks it started, so each connection
  task runs its body in a cancel scope of its own (~8 µs), which
  :class:`_AsyncioTasks` cancels when the group's scope is cancelled (the
  server's shutdown), and then waits for the tasks to end, as the group
  would. A task that fails is logged: connection tasks catch everything
  but cancellation, so that would be a bug in wskit, not the application's.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, final

import anyio

__all__ = ["Spawn", "task_spawner"]

logger = logging.getLogger("wskit.server")

Spawn = Callable[..., Any]
"""``spawn(async_function, *args)``: start a task, as ``TaskGroup.start_soon()`` does."""


@asynccontextmanager
async def task_spawner() -> AsyncIterator[Spawn]:
    """Yield the cheapest way to start tasks that end with the enclosing cancel scope.

    Leaving the context waits until that scope is cancelled (the tasks of a
    server run until its shutdown), then until every task started has ended.

    Yields:
        A Trio nursery's ``start_soon`` on Trio; on asyncio, a function
        that starts plain asyncio tasks, each under a cancel scope.
    """
    trio = sys.modules.get("trio")
    if trio is not None and trio.lowlevel.in_trio_run():
        async with trio.open_nursery() as nursery:
            yield nursery.start_soon
            await trio.sleep_forever()  # the nursery takes tasks until cancelled
        return
    tasks = _AsyncioTasks()
    try:
        yield tasks.spawn
        await anyio.sleep_forever()
    finally:
        tasks.cancel()
        with anyio.CancelScope(shield=True):
            await tasks.wait()


@final
class _AsyncioTasks:
    """Plain asyncio tasks, each in an AnyIO cancel scope that :meth:`cancel` cancels."""

    __slots__ = ("_scopes", "_tasks")

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._scopes: set[anyio.CancelScope] = set()

    def spawn(self, function: Callable[..., Awaitable[object]], *args: object) -> None:
        """Start ``function(*args)`` in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._run(function, args))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def _run(
        self, function: Callable[..., Awaitable[object]], args: tuple[object, ...]
    ) -> None:
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await function(*args)
            finally:
                self._scopes.discard(scope)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a connection task failed", exc_info=task.exception())

    def cancel(self) -> None:
        """Cancel every task's scope: each task ends at its next unshielded wait."""
        for scope in self._scopes:
            scope.cancel()

    async def wait(self) -> None:
        """Wait until every task started has ended."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))
