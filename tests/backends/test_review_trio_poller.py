"""Review of the Trio poller: races between leadership handoff, interrupts and closes.

Real TCP connections on 127.0.0.1, real epoll, Trio only (the poller is
Trio's alone). The first three were bugs found in review (state kept by
file descriptor number rather than per registration): a follower woken to
lead, then interrupted or unregistered before it ran, waited for good; a
leader interrupted, whose number was reused before it ran, took the new
socket's news.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest

from tests.backends.poller_support import read_all
from wskit.backends.trio_poller import Poller

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["trio"])]


@contextmanager
def tcp_pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """``count`` connected (server, client) TCP pairs on 127.0.0.1, server sides nonblocking."""
    made: list[tuple[socket.socket, socket.socket]] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        try:
            for _ in range(count):
                client = socket.create_connection(listener.getsockname())
                server, _ = listener.accept()
                server.setblocking(False)
                made.append((server, client))
            yield made
        finally:
            for server, client in made:
                server.close()
                client.close()


async def test_a_follower_woken_to_lead_and_interrupted_before_it_runs_fails() -> None:
    import trio

    poller = Poller()
    try:
        with tcp_pairs(2) as made:
            (a_server, a_client), (b_server, _) = made
            wait_a = poller.register(a_server)
            wait_b = poller.register(b_server)
            await wait_a()  # the marks left by register()
            await wait_b()
            outcome: list[str] = []

            async def leader() -> None:
                await wait_a()
                # Same step as the handoff: b is rescheduled with _LEAD but has
                # not run. A connection's task runs on here to its handler,
                # which may end another connection (or the timer task may).
                poller.interrupt(b_server.fileno())

            async def follower() -> None:
                try:
                    await wait_b()
                except trio.ClosedResourceError:
                    outcome.append("closed")
                else:
                    outcome.append("returned")

            with anyio.move_on_after(2):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(leader)
                    await anyio.sleep(0.05)  # a leads
                    tg.start_soon(follower)
                    await anyio.sleep(0.05)  # b follows
                    assert len(poller) == 1
                    a_client.send(b"x")
            assert outcome == ["closed"]
    finally:
        poller.close()


async def test_a_follower_woken_to_lead_and_unregistered_does_not_lead_forever() -> None:
    import trio

    poller = Poller()
    try:
        with tcp_pairs(2) as made:
            (a_server, a_client), (b_server, b_client) = made
            wait_a = poller.register(a_server)
            wait_b = poller.register(b_server)
            await wait_a()
            await wait_b()
            outcome: list[str] = []

            async def leader() -> None:
                await wait_a()
                poller.unregister(b_server)  # what DirectSocket.close_now() does first

            async def follower() -> None:
                try:
                    await wait_b()
                except trio.ClosedResourceError:
                    outcome.append("closed")
                else:
                    outcome.append("returned")

            with anyio.move_on_after(2):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(leader)
                    await anyio.sleep(0.05)
                    tg.start_soon(follower)
                    await anyio.sleep(0.05)
                    a_client.send(b"x")
                    await anyio.sleep(0.05)
                    b_client.send(b"late bytes")  # not seen: b is out of the epoll
            assert outcome == ["closed"]
    finally:
        poller.close()


async def test_an_interrupted_leader_is_not_revived_by_its_fd_being_reused() -> None:
    import trio

    poller = Poller()
    try:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            old_client = socket.create_connection(listener.getsockname())
            old, _ = listener.accept()
            old.setblocking(False)
            wait_old = poller.register(old)
            await wait_old()
            outcome: list[str] = []

            async def old_reader() -> None:
                try:
                    await wait_old()
                except trio.ClosedResourceError:
                    outcome.append("closed")
                else:
                    outcome.append("returned")

            new_client = socket.create_connection(listener.getsockname())
            try:
                with anyio.move_on_after(2):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(old_reader)
                        await anyio.sleep(0.05)  # it leads
                        number = old.fileno()
                        poller.unregister(old)  # DirectSocket.close_now()
                        old.close()
                        new, _ = listener.accept()  # the lowest free number: the same
                        try:
                            assert new.fileno() == number
                            new.setblocking(False)
                            poller.register(new)  # a new connection's start()
                        finally:
                            await anyio.sleep(0.05)
                            new.close()
                assert outcome == ["closed"]
            finally:
                old_client.close()
                new_client.close()
    finally:
        poller.close()


async def test_bytes_and_the_end_in_one_event_reach_a_follower() -> None:
    poller = Poller()
    try:
        with tcp_pairs(2) as made:
            (a_server, _), (b_server, b_client) = made
            wait_a = poller.register(a_server)
            wait_b = poller.register(b_server)
            await wait_a()
            await wait_b()
            received = bytearray()

            async def read_to_end() -> None:
                while True:
                    await wait_b()
                    chunk = read_all(b_server)
                    if chunk is None:
                        return
                    received.extend(chunk)

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait_a)  # leads; nothing comes for it
                    await anyio.sleep(0.05)
                    tg.start_soon(read_to_end)
                    await anyio.sleep(0.05)
                    b_client.sendall(b"last words")
                    b_client.shutdown(socket.SHUT_WR)  # likely one event: bytes and FIN
                    while len(poller) or received != b"last words":
                        await anyio.sleep(0.01)
                    tg.cancel_scope.cancel()
            assert bytes(received) == b"last words"
    finally:
        poller.close()


async def test_a_reset_wakes_the_leader_and_a_follower() -> None:
    poller = Poller()
    try:
        with tcp_pairs(2) as made:
            waits = [poller.register(server) for server, _ in made]
            for wait in waits:
                await wait()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waits[0])
                    await anyio.sleep(0.05)
                    tg.start_soon(waits[1])
                    await anyio.sleep(0.05)
                    for _, client in made:
                        # SO_LINGER 0: close() sends a reset.
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                        )
                        client.close()
            for server, _ in made:
                assert read_all(server) is None
                # The end stays known: a wait after it returns at once.
            with anyio.fail_after(1):
                for wait in waits:
                    await wait()
    finally:
        poller.close()
