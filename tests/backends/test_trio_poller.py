"""The Trio poller: many sockets waited for through one epoll, led by a waiting task.

Real socket pairs, real epoll. The poller is Trio's alone (asyncio's loop
already waits for all sockets in one place, and the lean stream is its fast
path): the first test checks on both loops that only Trio gets one; the rest
run on Trio, as the lean stream's own tests run on asyncio.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.backends.poller_support import read_all
from wskit.backends.trio_poller import Poller, poller_for_trio

pytestmark = pytest.mark.anyio

Wait = Callable[[], Coroutine[Any, Any, None]]


@contextmanager
def pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """``count`` connected (reader, writer) socket pairs, nonblocking readers."""
    made = [socket.socketpair() for _ in range(count)]
    try:
        for reader, _ in made:
            reader.setblocking(False)
        yield made
    finally:
        for reader, writer in made:
            reader.close()
            writer.close()


async def read_until_end(sock: socket.socket, wait: Wait, into: bytearray) -> None:
    """Wait and read as a connection does: wait only after a read that emptied the socket."""
    while True:
        await wait()
        chunk = read_all(sock)
        if chunk is None:
            return
        into += chunk


async def test_only_trio_gets_a_poller(anyio_backend_name: str) -> None:
    poller = poller_for_trio()
    try:
        assert isinstance(poller, Poller) is (anyio_backend_name == "trio")
    finally:
        if poller is not None:
            poller.close()


trio_only = pytest.mark.parametrize("anyio_backend", ["trio"])


@trio_only
async def test_one_socket_gets_its_bytes_and_its_end() -> None:
    poller = Poller()
    try:
        with pairs(1) as [(reader, writer)]:
            wait = poller.register(reader)
            received = bytearray()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_until_end, reader, wait, received)
                    for part in (b"one", b"two", b"three"):
                        await anyio.sleep(0.01)  # the reader waits in between: it leads
                        writer.send(part)
                    await anyio.sleep(0.01)
                    writer.shutdown(socket.SHUT_WR)
            assert received == b"onetwothree"
    finally:
        poller.close()


@trio_only
@settings(max_examples=25, deadline=None)
@given(
    sends=st.lists(
        st.tuples(st.integers(0, 7), st.binary(min_size=1, max_size=3000), st.booleans()),
        max_size=40,
    )
)
async def test_every_byte_reaches_its_reader_whoever_leads(
    sends: list[tuple[int, bytes, bool]],
) -> None:
    """Eight readers, bytes sent in any order, with or without a pause: all arrive, none hangs."""
    poller = Poller()
    try:
        with pairs(8) as made:
            waits = [poller.register(reader) for reader, _ in made]
            received = [bytearray() for _ in made]
            expected = [bytearray() for _ in made]
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    for (reader, _), wait, into in zip(made, waits, received, strict=True):
                        tg.start_soon(read_until_end, reader, wait, into)
                    for index, data, pause in sends:
                        made[index][1].sendall(data)
                        expected[index] += data
                        if pause:
                            await anyio.sleep(0)
                    for _, writer in made:
                        writer.shutdown(socket.SHUT_WR)
            assert received == expected
            assert len(poller) == 0
    finally:
        poller.close()


@trio_only
async def test_an_interrupted_follower_fails_and_the_rest_still_read() -> None:
    import trio

    poller = Poller()
    try:
        with pairs(3) as made:
            waits = [poller.register(reader) for reader, _ in made]
            outcome: list[str] = []

            async def first_wait(index: int) -> None:
                await waits[index]()  # the mark left by register(): at once
                try:
                    await waits[index]()
                except trio.ClosedResourceError:
                    outcome.append(f"closed {index}")
                else:
                    outcome.append(f"bytes {index}")

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    for index in range(3):
                        tg.start_soon(first_wait, index)
                    await anyio.sleep(0.05)  # one leads, two follow
                    assert len(poller) == 2
                    # Interrupt every socket's waiter but the last one's.
                    for reader, _ in made[:2]:
                        poller.unregister(reader)
                    await anyio.sleep(0.05)
                    made[2][1].send(b"x")
            assert sorted(outcome) == ["bytes 2", "closed 0", "closed 1"]
    finally:
        poller.close()


@trio_only
async def test_a_cancelled_leader_hands_the_lead_over() -> None:
    poller = Poller()
    try:
        with pairs(2) as made:
            waits = [poller.register(reader) for reader, _ in made]
            woken: list[int] = []

            async def wait_twice(index: int) -> None:
                await waits[index]()  # the mark left by register()
                await waits[index]()
                woken.append(index)

            with anyio.fail_after(5):
                async with anyio.create_task_group() as outer:
                    with anyio.CancelScope() as leader_scope:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(wait_twice, 0)
                            await anyio.sleep(0.05)  # 0 leads
                            outer.start_soon(wait_twice, 1)
                            await anyio.sleep(0.05)  # 1 follows
                            assert len(poller) == 1
                            leader_scope.cancel()
                    await anyio.sleep(0.05)
                    assert len(poller) == 0  # 1 leads now
                    made[1][1].send(b"x")
            assert woken == [1]
    finally:
        poller.close()


@trio_only
async def test_a_cancelled_follower_leaves_no_trace() -> None:
    poller = Poller()
    try:
        with pairs(2) as made:
            waits = [poller.register(reader) for reader, _ in made]
            for wait in waits:
                await wait()  # the marks left by register()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waits[0])  # leads
                    follower_scope = anyio.CancelScope()
                    tg.start_soon(follower_scope_wait, waits[1], follower_scope)
                    await anyio.sleep(0.05)
                    assert len(poller) == 1
                    follower_scope.cancel()
                    await anyio.sleep(0.05)
                    assert len(poller) == 0
                    made[0][1].send(b"x")  # the leader returns: nobody is left waiting
    finally:
        poller.close()


async def follower_scope_wait(wait: Wait, scope: anyio.CancelScope) -> None:
    with scope:
        await wait()


@trio_only
async def test_the_leader_interrupted_fails_and_a_follower_leads() -> None:
    import trio

    poller = Poller()
    try:
        with pairs(2) as made:
            waits = [poller.register(reader) for reader, _ in made]
            for wait in waits:
                await wait()  # the marks left by register()
            outcome: list[str] = []

            async def watch(index: int) -> None:
                try:
                    await waits[index]()
                except trio.ClosedResourceError:
                    outcome.append(f"closed {index}")
                else:
                    outcome.append(f"bytes {index}")

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch, 0)
                    await anyio.sleep(0.05)  # 0 leads
                    tg.start_soon(watch, 1)
                    await anyio.sleep(0.05)  # 1 follows
                    poller.interrupt(made[0][0].fileno())
                    await anyio.sleep(0.05)  # 1 leads now
                    made[1][1].send(b"x")
            assert outcome == ["closed 0", "bytes 1"]
    finally:
        poller.close()


# ------------------------------------------------------------------ solo


@trio_only
async def test_a_lone_socket_waits_solo_and_a_newcomer_leads_for_the_rest() -> None:
    """Alone, a socket waits through Trio; the next one leads; nobody hangs, nothing is lost."""
    poller = Poller()
    try:
        with pairs(3) as made:
            lone = poller.register(made[0][0])
            received = [bytearray() for _ in made]
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(read_until_end, made[0][0], lone, received[0])
                    await anyio.sleep(0.05)
                    assert poller._solo is not None  # no epoll_wait of ours for it
                    assert poller._leader is None
                    later = [poller.register(reader) for reader, _ in made[1:]]
                    for (reader, _), wait, into in zip(made[1:], later, received[1:], strict=True):
                        tg.start_soon(read_until_end, reader, wait, into)
                    await anyio.sleep(0.05)
                    assert poller._leader is not None  # one of the newcomers
                    assert len(poller) == 1  # the other follows
                    for round_ in range(3):  # the solo one, woken through Trio, then parks
                        for index, (_, writer) in enumerate(made):
                            writer.send(b"%d:%d;" % (index, round_))
                        await anyio.sleep(0.02)
                    assert poller._solo is None  # it left the solo place for good
                    for _, writer in made:
                        writer.shutdown(socket.SHUT_WR)
            for index, into in enumerate(received):
                assert into == b"".join(b"%d:%d;" % (index, r) for r in range(3))
            assert len(poller) == 0
    finally:
        poller.close()


@trio_only
@pytest.mark.parametrize("how", ["interrupt", "unregister", "close"])
async def test_a_solo_wait_is_ended_by_interrupt_unregister_and_close(how: str) -> None:
    import trio

    poller = Poller()
    try:
        with pairs(1) as [(reader, _writer)]:
            wait = poller.register(reader)
            await wait()  # the mark left by register()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:

                    async def end_soon() -> None:
                        await anyio.sleep(0.05)
                        assert poller._solo is not None
                        if how == "interrupt":
                            poller.interrupt(reader.fileno())
                        elif how == "unregister":
                            poller.unregister(reader)
                        else:
                            poller.close()

                    tg.start_soon(end_soon)
                    with pytest.raises(trio.ClosedResourceError):
                        await wait()
            assert poller._solo is None
    finally:
        poller.close()


@trio_only
async def test_a_cancelled_solo_wait_leaves_the_place_free() -> None:
    poller = Poller()
    try:
        with pairs(1) as [(reader, writer)]:
            wait = poller.register(reader)
            await wait()  # the mark left by register()
            with anyio.move_on_after(0.05):
                await wait()
            assert poller._solo is None
            writer.send(b"x")
            with anyio.fail_after(5):
                await wait()  # solo again, and woken
            assert read_all(reader) == b"x"
    finally:
        poller.close()


@trio_only
async def test_a_newcomer_does_not_disturb_a_task_waiting_to_write_on_the_solo_socket() -> None:
    """Why the solo task is not woken to lead: Trio's way would fail this writer too."""
    poller = Poller()
    try:
        with pairs(2) as made:
            (reader, peer), (other, _) = made
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            wait = poller.register(reader)
            await wait()  # the mark left by register()
            with contextlib.suppress(BlockingIOError):
                while True:
                    reader.send(b"x" * 65536)  # fill the socket's send buffer
            import trio

            wrote = anyio.Event()

            async def write_when_room() -> None:
                await trio.lowlevel.wait_writable(reader)
                wrote.set()

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)  # solo
                    tg.start_soon(write_when_room)
                    await anyio.sleep(0.05)
                    assert poller._solo is not None
                    poller.register(other)  # a newcomer: nobody is woken
                    await anyio.sleep(0.05)
                    assert not wrote.is_set()
                    peer.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        while peer.recv(1 << 20):  # room again: the writer wakes, unharmed
                            pass
                    await wrote.wait()
                    peer.send(b"y")  # and the solo wait ends with its news
    finally:
        poller.close()
