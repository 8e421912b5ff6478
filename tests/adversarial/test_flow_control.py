"""Floods against backpressure: a handler that never reads, a peer that never reads,
and a ping flood whose pongs are never read (threats P1-P3).

Kernel buffers are made small (``listening_socket``/``RawClient.open(rcvbuf=)``)
so backpressure shows within kilobytes; the memory bounds then say what wskit
itself holds: ``max_queue`` pieces, ``write_limit`` bytes, 16 owed pongs.
"""

from __future__ import annotations

import contextlib
import socket

import anyio
import pytest

import wskit
from tests.adversarial.harness import KiB, attacked_server, bounded, upgraded
from tests.frames import BINARY, PING, frame
from tests.io.raw import close_code, kernel_buffer, listening_socket, parse_frames
from wskit.websocket import READ_SIZE

pytestmark = pytest.mark.anyio

CONNECTION = 512 * KiB
SIZE = 64 * KiB


async def test_a_handler_that_never_reads_holds_max_queue_while_the_peer_floods():
    max_queue = 4
    stop = anyio.Event()

    async def never_reads(ws: wskit.WebSocket) -> None:
        await stop.wait()

    message = frame(BINARY, b"f" * SIZE)  # built before the bound starts
    listener = listening_socket(rcvbuf=16 * KiB)
    rcvbuf = kernel_buffer(listener, socket.SO_RCVBUF)
    sent = 0
    with contextlib.closing(listener):
        async with attacked_server(never_reads, sock=listener, max_queue=max_queue) as server:
            # The queue, one read of parsed pieces, the attacker's unsent frame.
            held = max_queue * SIZE + READ_SIZE + SIZE
            async with bounded(memory=held + CONNECTION, seconds=2, server=server):
                async with await upgraded(server.port) as raw:
                    with anyio.move_on_after(0.5):
                        while True:
                            await raw.send(message)
                            sent += 1
                    # The attacker is stuck: the server stopped reading. (On
                    # Trio the first read may come up to 0.2 s late, when the
                    # away check starts a reader: space it freed in the
                    # attacker's send buffer may take one more message, below
                    # the kernel's wake-up threshold, so probe until stuck.)
                    while True:
                        with anyio.move_on_after(0.2) as stuck:
                            await raw.send(message)
                        if stuck.cancelled_caught or sent > 1000:
                            break
                        sent += 1
                    sndbuf = kernel_buffer(raw.socket, socket.SO_SNDBUF)
                    stop.set()
                    code = close_code((await raw.read_until_closed(1))[0])
    bound = max_queue + (READ_SIZE + rcvbuf + sndbuf) // SIZE
    assert stuck.cancelled_caught, "the flood must meet TCP backpressure"
    assert sent <= bound + 2, f"{sent} messages taken in (bound {bound})"
    assert code == 1000


async def test_a_peer_that_never_reads_blocks_send_at_write_limit():
    write_limit = 32 * KiB
    sent = 0

    async def producer(ws: wskit.WebSocket) -> None:
        nonlocal sent
        with contextlib.suppress(wskit.ConnectionClosed):
            while True:
                await ws.send(b"p" * SIZE)
                sent += 1

    listener = listening_socket(sndbuf=16 * KiB)
    with contextlib.closing(listener):
        async with attacked_server(producer, sock=listener, write_limit=write_limit) as server:
            # One message being framed plus write_limit in flight, no more.
            async with bounded(memory=2 * SIZE + write_limit + CONNECTION, seconds=2):
                async with await upgraded(server.port, rcvbuf=4 * KiB):
                    await anyio.sleep(0.3)
                    plateau = sent
                    await anyio.sleep(0.2)
                    assert sent == plateau, "send() must stay blocked"
                    start = anyio.current_time()
                    server.close()  # the peer still reads nothing: aborted at close_timeout
                    await server.wait_closed()
                    shutdown = anyio.current_time() - start
    assert plateau <= 4, f"{plateau} messages of 64 KiB left before send() blocked"
    assert shutdown < 0.5 + 0.3


async def test_a_ping_flood_whose_pongs_are_never_read_stays_bounded():
    pings = 16 * KiB  # 2 MiB of 125-byte pings
    listener = listening_socket(sndbuf=16 * KiB)
    with contextlib.closing(listener):
        async with attacked_server(sock=listener) as server:
            # 16 owed pongs of 127 bytes, plus what the reads and the attacker's
            # 33 KB batches of pings take; python websockets (asyncio) grew
            # +205 MiB here.
            async with bounded(memory=CONNECTION + 512 * KiB, seconds=3, server=server):
                async with await upgraded(server.port, rcvbuf=4 * KiB) as raw:
                    with anyio.move_on_after(1.5):
                        await raw.send_pings(pings)
                    # Now read all that was written: a bounded number of pongs.
                    await raw.send(frame(0x8, b"\x03\xe8"))
                    data, closed = await raw.read_until_closed(timeout=1)
    opcodes = [opcode for opcode, _ in parse_frames(data)]
    assert closed
    assert opcodes[-1] == 0x8
    assert 1 <= opcodes.count(0xA) < pings  # pongs were answered, not all kept


async def test_a_burst_of_pings_in_one_read_is_answered_in_order():
    # The flip side of the flood: a peer that does read gets a pong for each
    # ping of a burst (at most 16 owed at once), payloads intact.
    burst = b"".join(frame(PING, b"%04d" % i) for i in range(10))
    async with attacked_server() as server:
        async with bounded(memory=CONNECTION, seconds=2, server=server):
            async with await upgraded(server.port) as raw:
                await raw.send(burst)
                data = b""
                with anyio.fail_after(1):
                    while len(parse_frames(data)) < 10:
                        data += await raw.stream.receive()
    assert parse_frames(data) == [(0xA, b"%04d" % i) for i in range(10)]
