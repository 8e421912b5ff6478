"""Connection tasks: started natively on Trio, still ended as a group's.

On Trio they run in a nursery inside the server's group; on asyncio in an
AnyIO task group. Either way, shutdown cancels a handler that never returns,
lets its shielded cleanup finish, and waits for it.
"""

from __future__ import annotations

import anyio
import pytest

import wskit
from wskit._spawn import task_spawner

pytestmark = pytest.mark.anyio

CLOSE_TIMEOUT = 0.2


async def test_shutdown_cancels_a_handler_that_never_returns_and_waits_for_its_cleanup() -> None:
    entered = anyio.Event()
    ended: list[str] = []

    async def stuck(ws: wskit.WebSocket) -> None:
        entered.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            ended.append("cancelled")
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.05)  # shielded: not cut short by the cancellation
                ended.append("cleaned up")

    with anyio.fail_after(5):
        async with wskit.serve(stuck, "127.0.0.1", 0, close_timeout=CLOSE_TIMEOUT) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/"):
                await entered.wait()
                start = anyio.current_time()
            # The client left; the handler did not, and holds the server until close_timeout.
        elapsed = anyio.current_time() - start
    assert ended == ["cancelled", "cleaned up"]  # all of it before serve() returned
    assert elapsed < CLOSE_TIMEOUT + 1
    assert server._active == 0


async def test_spawned_tasks_end_with_the_enclosing_scope_which_waits_for_them() -> None:
    started = 0
    finished = 0

    async def worker() -> None:
        nonlocal started, finished
        started += 1
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
                finished += 1

    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with task_spawner() as spawn:
                for _ in range(5):
                    spawn(worker)
                await anyio.sleep(0.01)
                scope.cancel()
            pytest.fail("the spawner's context only ends by cancellation")
    assert started == finished == 5


async def test_a_task_that_fails_raises_out_of_the_spawner() -> None:
    async def broken() -> None:
        raise ValueError("a bug")

    with anyio.fail_after(5):
        # A nursery (Trio) or a task group (asyncio) raises its tasks' errors.
        with pytest.RaisesGroup(ValueError, flatten_subgroups=True):
            async with task_spawner() as spawn:
                spawn(broken)
