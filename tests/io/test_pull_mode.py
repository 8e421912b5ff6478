"""Pull mode: on Trio the task in recv() reads the socket itself, until a reader task takes over.

Every test runs on both loops: the behaviour checked (pings answered, closes
completed, nothing lost or reordered) is the same everywhere. On Trio the
tests also check that the path under test was the one taken, by counting the
reader tasks started (``WebSocket._drive`` is the reader's body; asyncio
server connections start none either, being served from callbacks).
"""

from __future__ import annotations

import struct

import anyio
import anyio.abc
import pytest

import wskit
from tests.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, frame
from tests.io.pull_support import Handlers
from tests.io.raw import RawClient, listening_socket, parse_frames
from wskit import ConnectionClosed, ConnectionClosedOK, WebSocket
from wskit.core import State
from wskit.websocket import AWAY_CHECK

pytestmark = pytest.mark.anyio

# A ping sent while nobody is in recv() is read within two away periods; the
# rest is room for a loaded machine (a bound, not a speed target).
PONG_BOUND = 2 * AWAY_CHECK + 0.5


async def read_frames(client: RawClient, count: int) -> list[tuple[int, bytes]]:
    """Read server frames until at least ``count`` whole ones have arrived."""
    data = bytearray(client.leftover)
    client.leftover = b""
    while len(parse_frames(bytes(data))) < count:
        data += await client.stream.receive()
    return parse_frames(bytes(data))


async def test_an_echo_needs_no_reader_task_on_trio(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    for compression in (None, "deflate"):
        handlers = Handlers()
        with anyio.fail_after(10):
            async with wskit.serve(
                handlers.echo, "127.0.0.1", 0, compression=compression
            ) as server:
                url = f"ws://127.0.0.1:{server.port}"
                async with wskit.connect(url, compression=compression) as ws:
                    for index in range(200):
                        message = f"message {index} " * (index % 7)
                        await ws.send(message)
                        assert await ws.recv() == message
                    await ws.send(b"\x00" * 300_000)  # more than one read
                    assert await ws.recv() == b"\x00" * 300_000
                assert ws.close_code == 1000
                server_ws = handlers.connections[-1]
                await server_ws.wait_closed()
                assert server_ws.close_code == 1000
                # The peer's close was read by the task in recv(), which closed.
                assert server_ws not in readers


async def test_an_idle_connection_in_recv_keeps_no_timer_entry(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    echo = handlers.echo

    with anyio.fail_after(10):
        async with wskit.serve(echo, "127.0.0.1", 0, ping_interval=None) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server_ws = await handlers.first()
                # recv() returned and put it on the patrol; the next walk
                # finds the handler back in recv() and drops it: idle costs
                # no walk and no timer.
                await anyio.sleep(3 * AWAY_CHECK)
                assert server_ws not in server._timers
                assert server_ws.timer_deadline() == float("inf")
                assert server_ws not in readers


async def test_on_trio_pull_mode_waits_through_the_servers_poller(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    with anyio.fail_after(10):
        async with wskit.serve(handlers.echo, "127.0.0.1", 0) as server:
            poller = server._poller
            assert (poller is not None) is (anyio_backend_name == "trio")
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server_ws = await handlers.first()
                sock = server_ws._sock
                if poller is None:
                    assert sock is None  # asyncio: served from callbacks
                    return
                assert sock is not None
                assert sock._poller is poller
                await server_ws.ping()  # a reader takes over: the socket leaves the poller
                assert server_ws in readers
                assert sock._poller is None
                await ws.send("two")
                assert await ws.recv() == "two"


async def test_a_ping_is_answered_while_the_handler_sleeps_past_the_bound(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    release = anyio.Event()

    async def sleepy(ws: WebSocket) -> None:
        handlers.add(ws)
        await ws.send(await ws.recv())
        await release.wait()  # away from recv() far longer than the bound
        await ws.send(await ws.recv())

    with anyio.fail_after(10):
        async with wskit.serve(sleepy, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server_ws = await handlers.first()
                for _ in range(3):
                    with anyio.fail_after(PONG_BOUND):
                        await ws.ping()
                if anyio_backend_name == "trio":
                    assert readers == [server_ws]  # nobody was in recv(): it took over
                release.set()
                await ws.send("two")
                assert await ws.recv() == "two"


async def test_a_handler_that_never_receives_still_answers_pings_and_closes(
    anyio_backend_name: str,
) -> None:
    started = anyio.Event()

    async def never_receives(ws: WebSocket) -> None:
        started.set()
        await anyio.sleep(60)

    with anyio.fail_after(10):
        async with wskit.serve(never_receives, "127.0.0.1", 0, close_timeout=1) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                await started.wait()
                with anyio.fail_after(PONG_BOUND):
                    await ws.ping()
                # The peer's close is read and answered although the handler
                # never looks: the close handshake completes.
                with anyio.fail_after(PONG_BOUND):
                    await ws.close()
                assert ws.close_code == 1000
            server.close()


async def test_keepalive_pongs_are_read_while_the_handler_is_away() -> None:
    handlers = Handlers()
    release = anyio.Event()

    async def away(ws: WebSocket) -> None:
        handlers.add(ws)
        await ws.send(await ws.recv())
        await release.wait()
        await ws.send(await ws.recv())

    with anyio.fail_after(10):
        # A ping_timeout of 1 s keeps pull mode; pings every 50 ms while the
        # handler is away: each pong must be read before its timeout.
        async with wskit.serve(
            away, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=1.0
        ) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}", ping_interval=None) as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server_ws = await handlers.first()
                await anyio.sleep(1.5)
                assert server_ws.state is State.OPEN
                assert server_ws.latency > 0
                release.set()
                await ws.send("two")
                assert await ws.recv() == "two"


async def test_closes_while_the_handler_is_away_complete() -> None:
    handlers = Handlers()
    releases = [anyio.Event(), anyio.Event()]
    outcome: list[ConnectionClosed] = []

    async def away(ws: WebSocket) -> None:
        index = len(handlers.connections)
        handlers.add(ws)
        await ws.send(await ws.recv())
        await releases[index].wait()
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with wskit.serve(away, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}"
            # The peer closes while the handler is away.
            async with wskit.connect(url) as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                with anyio.fail_after(PONG_BOUND):
                    await ws.close(4000, "bye")
            first = handlers.connections[0]
            with anyio.fail_after(PONG_BOUND):
                await first.wait_closed()  # before the handler is back
            assert first.close_code == 4000
            releases[0].set()
            # The server shuts down while the handler is away.
            async with wskit.connect(url) as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server.close()
                with anyio.fail_after(PONG_BOUND), pytest.raises(ConnectionClosedOK):
                    await ws.recv()
                assert ws.close_code == 1001
                releases[1].set()
    assert [exc.code for exc in outcome] == [4000, 1001]


async def test_a_peer_close_read_in_recv_closes_without_a_reader(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    echo = handlers.echo

    with anyio.fail_after(10):
        async with wskit.serve(echo, "127.0.0.1", 0, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(frame(TEXT, b"hello") + frame(PING, b"p"))
                # The pong leaves as the ping is read, the echo after the handler ran.
                assert sorted(await read_frames(client, 2)) == [(TEXT, b"hello"), (PONG, b"p")]
                await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                data, closed = await client.read_until_closed(5)
                assert closed
                assert parse_frames(data) == [(CLOSE, struct.pack("!H", 1000))]
            server_ws = await handlers.first()
            await server_ws.wait_closed()
            assert server_ws.close_code == 1000
            assert readers == []


async def test_cancelled_receives_lose_and_reorder_nothing(anyio_backend_name: str) -> None:
    received: list[str | bytes] = []
    done = anyio.Event()
    count = 300

    async def impatient(ws: WebSocket) -> None:
        # Cancelled at every await in recv(): waiting for bytes, or between
        # the pieces of a fragmented message.
        attempt = 0
        while len(received) < count:
            attempt += 1
            # A deadline already passed cancels at the first await that
            # waits; bytes the kernel holds are read and delivered before it.
            with anyio.move_on_after(0 if attempt % 2 else 0.0005) as scope:
                received.append(await ws.recv())
            if scope.cancelled_caught:
                await anyio.sleep(0.0005)
        done.set()
        await ws.wait_closed()

    with anyio.fail_after(20):
        async with wskit.serve(impatient, "127.0.0.1", 0, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                expected: list[str | bytes] = []
                for index in range(count):
                    payload = b"%d " % index * (1 + index % 5)
                    if index % 3:
                        expected.append(payload.decode())
                        await client.send(frame(TEXT, payload))
                    else:
                        expected.append(payload)
                        # In three frames and two writes, a pause between.
                        half = len(payload) // 2
                        await client.send(frame(BINARY, payload[:half], fin=False))
                        await anyio.sleep(0.001)
                        await client.send(
                            frame(CONTINUATION, payload[half:-1], fin=False)
                            + frame(CONTINUATION, payload[-1:])
                        )
                    if index % 7 == 0:
                        await anyio.sleep(0.002)  # let the handler wait for bytes
                await done.wait()
                assert received == expected
                await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                await client.read_until_closed(5)


async def test_two_tasks_receiving_at_once_share_the_messages(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    got: list[list[str | bytes]] = [[], []]
    count = 100

    async def two_receivers(ws: WebSocket) -> None:
        async def receive(into: list[str | bytes]) -> None:
            # Iteration ends at the normal close: every message was taken.
            async for message in ws:
                into.append(message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive, got[0])
            tg.start_soon(receive, got[1])

    with anyio.fail_after(10):
        async with wskit.serve(two_receivers, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                for index in range(count):
                    await ws.send(str(index))
                    if index % 10 == 0:
                        await anyio.sleep(0.001)
            await anyio.sleep(0)
    numbers = [[int(message) for message in one] for one in got]
    assert sorted(numbers[0] + numbers[1]) == list(range(count))
    for one in numbers:
        assert one == sorted(one)  # each task's share in order
    if anyio_backend_name == "trio":
        assert len(readers) == 1  # the second receiver made a reader take over, once


async def test_a_task_that_is_not_the_handler_can_receive(anyio_backend_name: str) -> None:
    send_handle, receive_handle = anyio.create_memory_object_stream[WebSocket](1)

    async def hand_off(ws: WebSocket) -> None:
        await send_handle.send(ws)
        await ws.wait_closed()

    with anyio.fail_after(10):
        async with wskit.serve(hand_off, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                server_ws = await receive_handle.receive()
                for index in range(20):
                    await ws.send(f"to the test {index}")
                    assert await server_ws.recv() == f"to the test {index}"
                    await server_ws.send(f"from the test {index}")
                    assert await ws.recv() == f"from the test {index}"
            assert ws.close_code == 1000
    send_handle.close()
    receive_handle.close()


async def test_a_full_queue_hands_over_to_a_reader_in_order(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    received: list[str | bytes] = []
    count = 200

    async def slow(ws: WebSocket) -> None:
        async for message in ws:
            received.append(message)
            if len(received) % 50 == 0:
                await anyio.sleep(0.01)
            if len(received) == count:
                await ws.send("all")

    with anyio.fail_after(10):
        async with wskit.serve(slow, "127.0.0.1", 0, max_queue=2, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                # All in one write: one read yields far more than max_queue.
                await client.send(b"".join(frame(TEXT, b"%d" % i) for i in range(count)))
                assert await read_frames(client, 1) == [(TEXT, b"all")]
                await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                await client.read_until_closed(5)
    assert received == [str(index) for index in range(count)]
    if anyio_backend_name == "trio":
        assert len(readers) == 1


async def test_a_send_stuck_on_a_peer_that_does_not_read_still_sees_its_close(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    outcome: list[BaseException] = []
    handlers = Handlers()

    async def flood(ws: WebSocket) -> None:
        handlers.add(ws)
        try:
            while True:
                await ws.send(b"x" * 65536)
        except ConnectionClosed as exc:
            outcome.append(exc)

    sock = listening_socket(sndbuf=8192)
    with anyio.fail_after(10):
        async with wskit.serve(flood, sock=sock, compression=None, close_timeout=1) as server:
            async with await RawClient.open(server.port, rcvbuf=8192) as client:
                await client.handshake()
                server_ws = await handlers.first()
                if anyio_backend_name == "trio":
                    # The first write refused starts a reader, long before the
                    # away check could (two periods after the start).
                    with anyio.fail_after(1.5 * AWAY_CHECK):
                        while server_ws not in readers:
                            await anyio.sleep(0.005)
                await anyio.sleep(0.2)  # the handler's send() waits for room
                assert not outcome
                # The peer never reads, but closes: the handler's send() must
                # learn it (someone reads while the handler waits to write).
                await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                with anyio.fail_after(PONG_BOUND + 1):
                    while not outcome:
                        await anyio.sleep(0.01)
                client.reset_on_close()
    assert isinstance(outcome[0], ConnectionClosed)


async def test_a_short_ping_timeout_gets_a_reader_from_the_start(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    echo = handlers.echo

    with anyio.fail_after(10):
        # A pong may wait two away periods to be read in pull mode: too long
        # for a 0.15 s timeout, so this connection reads with a task.
        async with wskit.serve(
            echo, "127.0.0.1", 0, ping_interval=0.05, ping_timeout=0.15
        ) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}", ping_interval=None) as ws:
                await ws.send("one")
                assert await ws.recv() == "one"
                server_ws = await handlers.first()
                assert readers.count(server_ws) == (anyio_backend_name == "trio")
                await anyio.sleep(0.5)  # ten keepalive rounds, each pong in time
                assert server_ws.state is State.OPEN
                await ws.send("two")
                assert await ws.recv() == "two"
