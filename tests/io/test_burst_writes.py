"""Answers to a burst leave together, over real sockets on loopback, on both loops.

While received messages wait in the queue, ``send()`` lets up to
``BURST_LIMIT`` bytes (or ``write_limit``, when larger) wait to be written,
so that the answers to a burst of messages over ``write_limit`` leave in one
write. These tests check that such answers are held, that holding never goes
past the limit, that nothing held is lost or reordered, and that what is held
leaves when the handler waits for something else than a message.
"""

from __future__ import annotations

import contextlib
import random
import socket

import anyio
import pytest

import wskit
from tests.frames import BINARY, frame
from tests.io.raw import RawClient, kernel_buffer, listening_socket
from wskit import ConnectionClosed, WebSocket
from wskit.websocket import BURST_LIMIT

pytestmark = pytest.mark.anyio

KiB = 1024


def url(server: wskit.Server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def header_size(size: int) -> int:
    """The size of a server frame's header for a payload of ``size`` bytes."""
    return 2 if size < 126 else 4 if size < 65536 else 10


async def wait_until_queued(ws: WebSocket, count: int) -> None:
    """Receive nothing until ``count`` messages wait in ``ws``'s queue."""
    with anyio.fail_after(5):
        while len(ws._queue) < count:
            await anyio.sleep(0.01)


@pytest.mark.parametrize("size", [64 * KiB, 100 * KiB, 40 * KiB])
async def test_answers_to_a_burst_are_held_up_to_the_burst_limit_then_leave_in_order(
    size: int,
) -> None:
    count = 8
    rng = random.Random(size)
    messages = [rng.randbytes(size) for _ in range(count)]
    held: list[tuple[int, int]] = []  # (messages still queued, bytes held) after each send

    async def echo(ws: WebSocket) -> None:
        await wait_until_queued(ws, count)  # the whole burst is here
        for _ in range(count):
            message = await ws.recv()
            await ws.send(message)
            held.append((len(ws._queue), ws._conn.buffered_amount))

    with anyio.fail_after(10):
        async with wskit.serve(echo, "127.0.0.1", 0, compression=None, max_queue=count) as server:
            async with wskit.connect(url(server), compression=None) as client:
                for message in messages:
                    await client.send(message)
                echoes = [await client.recv() for _ in range(count)]
    assert echoes == messages
    frame = size + header_size(size)
    amounts = [amount for _, amount in held]
    # Answers accumulated (the first messages were whole in the queue).
    assert max(amounts) >= 2 * frame
    for queued, amount in held:
        assert amount <= BURST_LIMIT
        assert amount % frame == 0  # whole answers, held since the last write
        if not queued:
            assert amount == 0  # the last answer of a burst takes the others along


async def test_a_held_answer_leaves_when_the_handler_waits_for_something_else() -> None:
    seen = anyio.Event()
    payload = b"a" * (64 * KiB)
    held: list[int] = []

    async def answer_then_wait(ws: WebSocket) -> None:
        await wait_until_queued(ws, 2)
        await ws.send(await ws.recv())  # one more waits in the queue: held
        held.append(ws._conn.buffered_amount)
        await seen.wait()  # the answer must leave all the same

    with anyio.fail_after(10):
        async with wskit.serve(answer_then_wait, "127.0.0.1", 0, compression=None) as server:
            async with wskit.connect(url(server), compression=None) as client:
                await client.send(payload)
                await client.send(b"second")
                assert await client.recv() == payload
                seen.set()
    assert held == [len(payload) + header_size(len(payload))]


async def echo_a_burst(count: int, size: int, **options: int) -> list[int]:
    """Echo ``count`` messages of ``size`` bytes once all are queued.

    Returns the bytes held in the core (not yet written) after each ``send()``.
    """
    held: list[int] = []

    async def echo(ws: WebSocket) -> None:
        await wait_until_queued(ws, count)
        for _ in range(count):
            await ws.send(await ws.recv())
            held.append(ws._conn.buffered_amount)

    with anyio.fail_after(10):
        async with wskit.serve(echo, "127.0.0.1", 0, compression=None, **options) as server:
            async with wskit.connect(url(server), compression=None) as client:
                for index in range(count):
                    await client.send(bytes([index]) * size)
                echoes = [await client.recv() for _ in range(count)]
    assert echoes == [bytes([index]) * size for index in range(count)]
    return held


async def test_a_write_limit_over_the_burst_limit_holds_as_before() -> None:
    size = 200 * KiB
    held = await echo_a_burst(3, size, write_limit=2 * BURST_LIMIT)
    frame = size + header_size(size)
    assert held == [frame, 2 * frame, 0]  # held up to write_limit, not BURST_LIMIT


async def test_write_limit_zero_holds_nothing_during_a_burst() -> None:
    held = await echo_a_burst(4, 64 * KiB, write_limit=0)
    assert held == [0] * 4  # "wait until everything is written", burst or not


@pytest.mark.parametrize("pause", [False, True], ids=["back-to-back", "yielding"])
async def test_a_peer_that_sent_a_message_and_never_reads_meets_write_limit_after_one_burst(
    pause: bool,
) -> None:
    # The handler never takes the peer's message, so its queue is never
    # empty: every send() is "during a burst". Once what was written waits
    # in the kernel or the transport, write_limit rules again.
    write_limit, size = 32 * KiB, 64 * KiB
    sent = 0
    samples: list[int] = []
    handler_ws: list[WebSocket] = []

    async def producer(ws: WebSocket) -> None:
        nonlocal sent
        handler_ws.append(ws)
        await wait_until_queued(ws, 1)
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(b"z" * size)
                sent += 1
                samples.append(ws._buffered())
                if pause:
                    await anyio.sleep(0)

    listener = listening_socket(sndbuf=64 * KiB)
    sndbuf = kernel_buffer(listener, socket.SO_SNDBUF)
    with anyio.fail_after(10), contextlib.closing(listener):
        async with wskit.serve(
            producer, sock=listener, write_limit=write_limit, close_timeout=0.5
        ) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * KiB) as raw:
                await raw.handshake()
                rcvbuf = kernel_buffer(raw.socket, socket.SO_RCVBUF)
                await raw.send(frame(BINARY, b"never answered"))
                await anyio.sleep(0.3)  # the producer fills every buffer, then waits
                stuck_at = sent
                await anyio.sleep(0.1)
                assert sent == stuck_at, "send() must stay blocked"
                (ws,) = handler_ws
                samples.append(ws._buffered())
                held_when_stuck = ws._conn.buffered_amount  # not handed to the writer yet
                server.close()
                await ws.wait_closed()
    bound = (BURST_LIMIT + write_limit + 2 * size + sndbuf + rcvbuf) // size + 1
    print(f"a queued message, a peer that never reads: {sent} x 64 KiB sent (bound {bound})")
    assert sent <= bound
    assert max(samples) <= BURST_LIMIT + size + 14  # + one frame header
    if pause:
        # Each answer was handed to the writer at the next yield (on Trio,
        # perhaps after one more send: a batch's tasks run in any order), so
        # once the writer waited for the peer only the blocked send's own
        # message stayed in the core: write_limit ruled, not the burst's.
        assert held_when_stuck <= write_limit + size + 14
