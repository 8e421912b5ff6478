"""Adversarial review of pull mode and the step budget (issue 6): each test names what it guards.

Tests marked ``xfail(strict=True)`` document a bug found in this review: they
fail now and turn red (XPASS) once it is fixed. The others guard behaviour
the pull-mode and step tests did not cover. Every test runs on asyncio and
Trio, over real sockets on 127.0.0.1, bounded in time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import struct
import zlib

import anyio
import pytest

import wskit
from tests.frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    TEXT,
    close_payload,
    deflate,
    frame,
    upgrade_request,
)
from tests.io.pull_support import Handlers
from tests.io.raw import RawClient, parse_frames
from wskit import ConnectionClosed, WebSocket
from wskit.backends.direct import CHECKPOINT_EVERY
from wskit.core import Connection, Event, Fragment, Message, State
from wskit.message_queue import MessageQueue, Piece
from wskit.plugins import PASS, Budget, Close, Plugin, Rate, RateLimit, Reply, Verdict
from wskit.websocket import AWAY_CHECK

pytestmark = pytest.mark.anyio

# Bytes sent while nobody is in recv() are read within two away periods; the
# rest is room for a loaded machine (a bound, not a speed target).
AWAY_BOUND = 2 * AWAY_CHECK + 0.5


async def answer_close(client: RawClient) -> list[tuple[int, bytes]]:
    """Read up to the server's close frame, answer it, read to EOF; return the frames read."""
    data = client.leftover
    client.leftover = b""
    with anyio.fail_after(5):
        while not any(opcode == CLOSE for opcode, _ in parse_frames(data)):
            data += await client.stream.receive()
        await client.send(frame(CLOSE, close_payload(1000)))
        _, closed = await client.read_until_closed(5)
    assert closed
    return parse_frames(data)


async def test_a_close_started_while_the_reader_waits_for_room_leaves_no_gap(
    anyio_backend_name: str,
) -> None:
    got: list[str | bytes] = []
    count = 10

    async def handler(ws: WebSocket) -> None:
        # Away from recv(): the reader (started by the away check on Trio, by
        # the full queue on asyncio) queues "0" and waits for room for "1".
        await anyio.sleep(0.3 + AWAY_BOUND)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await ws.close()  # the close starts at once; only its wait is cancelled
        with anyio.fail_after(5):
            try:
                while True:
                    got.append(await ws.recv())
            except ConnectionClosed:
                pass

    with anyio.fail_after(15):
        async with wskit.serve(
            handler, "127.0.0.1", 0, max_queue=1, compression=None, close_timeout=2
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(b"".join(frame(TEXT, b"%d" % n) for n in range(count)))
                await answer_close(client)
            with anyio.fail_after(5):
                while server.connections:
                    await anyio.sleep(0.01)
    # close() cancels the reader's wait for room (_pause): messages may stop
    # there, but what is delivered is a prefix of what was sent (no gap).
    assert got, "the message queued before the close was lost"
    assert got == [str(n) for n in range(len(got))]


async def test_the_timer_heap_does_not_grow_with_messages_in_pull_mode(
    anyio_backend_name: str,
) -> None:
    handlers = Handlers()
    echo = handlers.echo

    with anyio.fail_after(15):
        # A keepalive deadline is pending all along: each away check that
        # moves the connection's deadline earlier leaves a stale entry.
        async with wskit.serve(echo, "127.0.0.1", 0, ping_interval=5, ping_timeout=5) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}", ping_interval=None) as ws:
                sizes = []
                for _ in range(4):
                    for index in range(300):
                        await ws.send(str(index))
                        assert await ws.recv() == str(index)
                    await anyio.sleep(AWAY_CHECK * 1.5)
                    sizes.append(len(server._timers))
                # Entries follow away periods (a few per round), never messages
                # (300 per round).
                assert max(sizes) <= 16, sizes


async def test_a_reset_while_the_handler_is_away_ends_the_connection(
    anyio_backend_name: str,
) -> None:
    handlers = Handlers()
    release = anyio.Event()
    outcome: list[BaseException] = []

    async def away(ws: WebSocket) -> None:
        handlers.add(ws)
        await ws.send(await ws.recv())
        await release.wait()
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with wskit.serve(away, "127.0.0.1", 0, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(frame(TEXT, b"one"))
                data = client.leftover
                while not parse_frames(data):
                    data += await client.stream.receive()
                client.reset_on_close()
            server_ws = await handlers.first()
            # Nobody is in recv(): the away check must notice the reset.
            with anyio.fail_after(AWAY_BOUND + 1):
                await server_ws.wait_closed()
            assert server_ws.close_code == 1006
            release.set()
            with anyio.fail_after(5):
                while not outcome:
                    await anyio.sleep(0.01)
    assert isinstance(outcome[0], wskit.ConnectionClosedError)
    assert outcome[0].code == 1006


async def test_shutdown_with_a_silent_peer_ends_a_recv_waiting_on_the_socket(
    anyio_backend_name: str,
) -> None:
    handlers = Handlers()
    ended: list[str] = []

    async def receiver(ws: WebSocket) -> None:
        handlers.add(ws)
        try:
            await ws.recv()  # waits on the socket (pull mode on Trio)
        except ConnectionClosed:
            ended.append("closed")
        finally:
            # Or cancelled: the server's shutdown deadline and the close
            # timeout are both 0.5 s, and either may come first.
            ended.append("left")

    with anyio.fail_after(10):
        async with quiet_server(receiver) as server:
            client = await RawClient.open(server.port)
            async with client:
                await client.handshake()
                server_ws = await handlers.first()
                await anyio.sleep(0.05)  # the handler waits in recv()
                started = anyio.current_time()
                server.close()
                # The peer never answers the close: close_timeout (0.5 s) ends it.
                with anyio.fail_after(0.5 + 2):
                    await server.wait_closed()
                assert anyio.current_time() - started >= 0.4
                data, closed = await client.read_until_closed(2)
                assert closed
                assert (CLOSE, close_payload(1001, b"server shutting down")) in parse_frames(data)
    assert ended[-1] == "left"
    assert server_ws.state is State.CLOSED


def quiet_server(handler: wskit.server.Handler) -> wskit.Server:
    """A server whose connections close within 0.5 s, without keepalive or compression."""
    return wskit.serve(
        handler, "127.0.0.1", 0, ping_interval=None, compression=None, close_timeout=0.5
    )


async def test_a_peer_that_never_pongs_fails_the_heartbeat_while_recv_waits(
    anyio_backend_name: str,
) -> None:
    outcome: list[BaseException] = []
    done = anyio.Event()

    async def receiver(ws: WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            outcome.append(exc)
        done.set()

    with anyio.fail_after(10):
        async with wskit.serve(
            receiver, "127.0.0.1", 0, ping_interval=0.1, ping_timeout=1.0, compression=None
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                started = anyio.current_time()
                # The raw client reads pings but never answers them.
                with anyio.fail_after(0.1 + 1.0 + 2):
                    await done.wait()
                assert anyio.current_time() - started >= 0.9
    assert isinstance(outcome[0], wskit.ConnectionClosedError)
    assert outcome[0].code == 1011


class Refuse(Plugin):
    """Closes with 1008 on the message ``bad``; passes the rest."""

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        return Close(1008, "refused") if message == "bad" else PASS


class Explode(Plugin):
    """Raises on the message ``bad`` (a plugin's bug: wskit closes with 1011)."""

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        if message == "bad":
            raise RuntimeError("a plugin's bug")
        return PASS


@pytest.mark.parametrize(
    ("plugin", "code"),
    [
        pytest.param(Refuse(), 1008, id="close-verdict"),
        pytest.param(
            RateLimit(per_connection=Budget(messages=Rate(per_second=1, burst=2))),
            1008,
            id="ratelimit",
        ),
        pytest.param(Explode(), 1011, id="raising-on-message"),
    ],
)
async def test_a_close_verdict_followed_by_a_message_in_the_same_read(
    anyio_backend_name: str, plugin: Plugin, code: int
) -> None:
    got: list[str | bytes] = []
    outcome: list[BaseException] = []

    async def handler(ws: WebSocket) -> None:
        try:
            async for message in ws:  # in recv() when the burst arrives
                got.append(message)
        except Exception as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with wskit.serve(
            handler, "127.0.0.1", 0, plugins=[plugin], compression=None, close_timeout=2
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await anyio.sleep(0.05)  # the handler waits in recv()
                # One write: "bad" (or the third message, over the rate limit)
                # is refused, and a message follows it in the same read.
                burst = [b"ok", b"fine", b"bad", b"after", b"more"]
                await client.send(b"".join(frame(TEXT, payload) for payload in burst))
                frames = await answer_close(client)
            with anyio.fail_after(5):
                while server.connections:
                    await anyio.sleep(0.01)
    closes = [payload for opcode, payload in frames if opcode == CLOSE]
    assert struct.unpack("!H", closes[0][:2]) == (code,)
    # Messages before the refused one are delivered; then the iteration ends
    # (the peer answered 1000) or recv() raises ConnectionClosed, nothing else.
    assert all(isinstance(exc, ConnectionClosed) for exc in outcome), outcome
    assert got == ["ok", "fine"]


async def deflate_handshake(client: RawClient) -> None:
    """Upgrade with permessage-deflate offered (and check it was accepted)."""
    await client.send(upgrade_request(b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.stream.receive()
    head, _, client.leftover = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"permessage-deflate" in head


def bomb(frames: int, chunk: int) -> bytes:
    """One binary message of ``frames`` compressed frames, each inflating to ``chunk`` zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    out = []
    for index in range(frames):
        payload = compressor.compress(zeros) + compressor.flush(zlib.Z_SYNC_FLUSH)
        last = index == frames - 1
        if last:
            payload = payload[:-4]  # RFC 7692: the tail is removed from the message's end
        opcode, rsv = (BINARY, 4) if index == 0 else (CONTINUATION, 0)
        out.append(frame(opcode, payload, fin=last, rsv=rsv))
    return b"".join(out)


async def test_a_compressed_bomb_in_one_read_is_parsed_in_bounded_steps(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames, chunk, max_queue = 1024, 8192, 2  # 8 MiB inflated from ~35 KB on the wire
    batches: list[int] = []  # data bytes in each batch of events the core produced
    queued: list[int] = []  # data bytes waiting in the queue, after each offer
    events = Connection.events
    offer = MessageQueue.offer

    def measured_events(self: Connection) -> list[Event]:
        batch = events(self)
        batches.append(sum(len(e.data) for e in batch if isinstance(e, Fragment | Message)))
        return batch

    def measured_offer(self: MessageQueue, item: Piece) -> bool:
        taken = offer(self, item)
        queued.append(sum(len(data) for data, _ in self._items))
        return taken

    monkeypatch.setattr(Connection, "events", measured_events)
    monkeypatch.setattr(MessageQueue, "offer", measured_offer)
    total = [0]

    async def slow(ws: WebSocket) -> None:
        # In recv_stream() when the read arrives (pull mode on Trio).
        async for piece in ws.recv_stream():
            total[0] += len(piece)
            await anyio.sleep(0)

    with anyio.fail_after(20):
        async with wskit.serve(
            slow, "127.0.0.1", 0, max_queue=max_queue, max_message=None, close_timeout=2
        ) as server:
            async with await RawClient.open(server.port) as client:
                await deflate_handshake(client)
                await anyio.sleep(0.05)
                await client.send(bomb(frames, chunk))
                await answer_close(client)
    assert total[0] == frames * chunk
    # Each step stops once 64 KiB were inflated, plus the frame at hand; the
    # queue holds max_queue pieces: what one read costs in memory is bounded.
    assert max(batches) <= 65536 + chunk + 1024, max(batches)
    assert max(queued) <= max_queue * (65536 + chunk + 1024), max(queued)


async def test_compressed_fragmented_messages_survive_cancelled_receives(
    anyio_backend_name: str,
) -> None:
    received: list[str | bytes] = []
    done = anyio.Event()
    count = 60
    expected: list[str | bytes] = []
    for index in range(count):
        size = (1, 5_000, 150_000)[index % 3]  # some inflate past one 64 KiB step
        payload = (b"%d-" % index * size)[:size]
        expected.append(payload.decode() if index % 2 else payload)

    cancels = [0]

    async def impatient(ws: WebSocket) -> None:
        attempt = 0
        while len(received) < count:
            attempt += 1
            with anyio.move_on_after(0 if attempt % 3 == 0 else 0.0003 * (attempt % 5)) as scope:
                received.append(await ws.recv())
            if scope.cancelled_caught:
                cancels[0] += 1
                await anyio.sleep(0.0003)
        done.set()
        await ws.wait_closed()

    with anyio.fail_after(30):
        async with wskit.serve(
            impatient, "127.0.0.1", 0, compression="deflate", max_queue=2
        ) as server:
            url = f"ws://127.0.0.1:{server.port}"
            async with wskit.connect(url, compression="deflate") as ws:
                assert ws.compression == "permessage-deflate"
                for index, message in enumerate(expected):
                    if index % 4 == 0 and len(message) > 3:
                        third = len(message) // 3
                        await ws.send_fragments(
                            [message[:third], message[third : 2 * third], message[2 * third :]]
                        )
                    else:
                        await ws.send(message)
                    if index % 9 == 0:
                        await anyio.sleep(0.002)
                with anyio.fail_after(10):
                    await done.wait()
    assert cancels[0] > 0  # the receives were cancelled, at some point at least
    assert len(received) == count
    assert received == expected


async def test_answers_to_a_burst_keep_pull_mode(
    anyio_backend_name: str, readers: list[WebSocket]
) -> None:
    handlers = Handlers()
    echo = handlers.echo

    with anyio.fail_after(10):
        async with wskit.serve(echo, "127.0.0.1", 0, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await anyio.sleep(0.05)  # the handler waits in recv()
                # Ten messages in one read: the echoes of the first nine are
                # sent while messages still wait in the queue. The kernel takes
                # every byte at once (a reading peer, tiny messages).
                await client.send(b"".join(frame(TEXT, b"%d" % n) for n in range(10)))
                data = client.leftover
                while len(parse_frames(data)) < 10:
                    data += await client.stream.receive()
                client.leftover = b""
                assert parse_frames(data) == [(TEXT, b"%d" % n) for n in range(10)]
                server_ws = await handlers.first()
                # Nothing had to wait: the handler in recv() still reads itself
                # (the writer joined the burst's answers, and the kernel took them).
                assert readers == []
                assert server_ws._pulling == (anyio_backend_name == "trio")  # asyncio: callbacks
            server.close()


async def test_a_recv_stream_left_early_skips_exactly_the_rest_of_its_message(
    anyio_backend_name: str,
) -> None:
    count = 12
    results: list[tuple[int, str | bytes]] = []

    async def partial_reader(ws: WebSocket) -> None:
        for index in range(count):
            if index % 2:
                results.append((index, await ws.recv()))
                continue
            # A large message: take its first two pieces, then leave.
            pieces = 0
            async for _ in ws.recv_stream():
                pieces += 1
                if pieces == 2:
                    break
            results.append((index, pieces))
        await ws.send("done")
        await ws.wait_closed()

    large = [bytes([65 + n]) * 1_000_000 for n in range(count)]
    with anyio.fail_after(20):
        async with wskit.serve(
            partial_reader, "127.0.0.1", 0, compression="deflate", max_message=None, max_queue=2
        ) as server:
            url = f"ws://127.0.0.1:{server.port}"
            async with wskit.connect(url, compression="deflate", max_message=None) as ws:
                for index in range(count):
                    if index % 2:
                        await ws.send(f"small {index}")
                    else:
                        # In frames of 64 KiB: the server gets it in many pieces.
                        chunks = [large[index][n : n + 65536] for n in range(0, 1_000_000, 65536)]
                        await ws.send_fragments(chunks)
                with anyio.fail_after(10):
                    assert await ws.recv() == "done"
    assert results == [(index, 2 if index % 2 == 0 else f"small {index}") for index in range(count)]


class Answer(Plugin):
    """Answers the message ``ping`` itself, with ``pong``; passes the rest."""

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        return Reply("pong") if message == "ping" else PASS


async def test_a_reply_verdict_in_a_read_keeps_the_order_of_what_follows(
    anyio_backend_name: str,
) -> None:
    async def echo(ws: WebSocket) -> None:
        async for message in ws:  # in recv() when the burst arrives
            await ws.send(message)

    with anyio.fail_after(10):
        async with wskit.serve(
            echo, "127.0.0.1", 0, plugins=[Answer()], compression=None, close_timeout=2
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await anyio.sleep(0.05)
                burst = [b"a", b"ping", b"b", b"ping", b"c"]
                await client.send(b"".join(frame(TEXT, payload) for payload in burst))
                data = client.leftover
                while len(parse_frames(data)) < 5:
                    data += await client.stream.receive()
                client.leftover = b""
                await client.send(frame(CLOSE, close_payload(1000)))
                await client.read_until_closed(5)
    got = [payload for _, payload in parse_frames(data)]
    assert [p for p in got if p != b"pong"] == [b"a", b"b", b"c"]
    assert got.count(b"pong") == 2
    # Each reply leaves before the messages after it are queued, so before their echoes.
    assert got.index(b"pong") < got.index(b"b")
    assert len(got) - 1 - got[::-1].index(b"pong") < got.index(b"c")


@pytest.mark.parametrize("away", [0.0, AWAY_BOUND], ids=["in-recv", "away"])
async def test_messages_before_a_peers_eof_are_delivered_then_1006(
    anyio_backend_name: str, away: float
) -> None:
    got: list[str | bytes] = []
    outcome: list[BaseException] = []
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        await anyio.sleep(away)  # in recv() when the bytes come, or away past the check
        try:
            with anyio.fail_after(5):
                while True:
                    got.append(await ws.recv())
        except ConnectionClosed as exc:
            outcome.append(exc)
        done.set()

    with anyio.fail_after(10):
        async with wskit.serve(handler, "127.0.0.1", 0, compression=None) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await anyio.sleep(0.05)
                await client.send(b"".join(frame(TEXT, b"%d" % n) for n in range(5)))
                await client.stream.send_eof()  # no close frame: the peer just stops
                await done.wait()
    assert got == [str(n) for n in range(5)]
    assert isinstance(outcome[0], wskit.ConnectionClosedError)
    assert outcome[0].code == 1006


async def test_a_handler_that_returns_at_once_closes_cleanly_under_incoming_messages(
    anyio_backend_name: str,
) -> None:
    handlers = Handlers()

    async def hasty(ws: WebSocket) -> None:
        handlers.add(ws)  # and return without ever calling recv()

    async def send_until_closed(ws: WebSocket) -> None:
        # Messages keep coming while the server closes: they are read past
        # (nobody will receive them), and its close frame is answered.
        for index in range(10_000):
            await ws.send(f"message {index}")
            if index % 50 == 0:
                await anyio.sleep(0.001)

    with anyio.fail_after(10):
        async with wskit.serve(hasty, "127.0.0.1", 0, close_timeout=2) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                with anyio.fail_after(AWAY_BOUND + 2), pytest.raises(ConnectionClosed):
                    await send_until_closed(ws)
            assert ws.close_code == 1000
            server_ws = await handlers.first()
            with anyio.fail_after(2):
                await server_ws.wait_closed()
            assert server_ws.close_code == 1000


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Message bytes in each batch of events the core hands out, in order."""
    sizes: list[int] = []
    events = Connection.events

    def measured_events(self: Connection) -> list[Event]:
        batch = events(self)
        sizes.append(sum(len(e.data) for e in batch if isinstance(e, Fragment | Message)))
        return batch

    monkeypatch.setattr(Connection, "events", measured_events)
    return sizes


async def test_compressed_frames_sent_with_the_upgrade_request_are_parsed_in_steps(
    anyio_backend_name: str, batches: list[int]
) -> None:
    count, size = 25, 1 << 20  # 25 MiB inflated from ~26 KiB, under max_head
    got = [0]

    async def slow(ws: WebSocket) -> None:
        for _ in range(count):
            got[0] += len(await ws.recv())

    burst = b"".join(frame(BINARY, deflate(bytes(size)), rsv=4) for _ in range(count))
    with anyio.fail_after(20):
        async with wskit.serve(slow, "127.0.0.1", 0, max_queue=1, close_timeout=2) as server:
            async with await RawClient.open(server.port) as client:
                # The request and the frames in one write: they arrive together.
                await client.send(
                    upgrade_request(b"Sec-WebSocket-Extensions: permessage-deflate\r\n") + burst
                )
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await client.stream.receive()
                head, _, client.leftover = data.partition(b"\r\n\r\n")
                assert b"permessage-deflate" in head
                await answer_close(client)
    assert got[0] == count * size
    # As for any read: 64 KiB a step, plus the frame at hand (a whole message here).
    assert max(batches) <= 65536 + size + 1024, max(batches)


# Noticed on the way (client side, not pull mode): a close frame that came
# with the 101 response is an early event, handled only once the reader runs.

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _accept_and_send(stream: anyio.abc.SocketStream, extensions: bytes, after: bytes) -> None:
    """A server that answers the upgrade and sends ``after`` in the same write."""
    async with stream:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        key = next(
            line.split(b":", 1)[1].strip()
            for line in data.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        await stream.send(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + accept
            + b"\r\n"
            + extensions
            + b"\r\n"
            + after
        )
        with anyio.move_on_after(5):
            while True:
                await stream.receive()  # up to the client's close frame (or EOF)
                await stream.send(frame(CLOSE, close_payload(1000), mask=False))
                return


async def _accept_and_close_at_once(stream: anyio.abc.SocketStream) -> None:
    """A server that answers the upgrade and sends its close frame in the same write."""
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        await _accept_and_send(stream, b"", frame(CLOSE, close_payload(1000), mask=False))


async def test_a_close_frame_that_came_with_the_handshake_is_reported_by_send(
    anyio_backend_name: str,
) -> None:
    codes: list[int | None] = []
    with anyio.fail_after(10):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _accept_and_close_at_once)
            async with wskit.connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
                try:
                    await ws.send("too late")
                except ConnectionClosed as exc:
                    codes.append(exc.code)
                with pytest.raises(wskit.ConnectionClosedOK):
                    await ws.recv()
            tg.cancel_scope.cancel()
    assert ws.close_code == 1000
    # recv() says 1000, and so should send(): one close, one code.
    assert codes == [1000]


async def _serve_bomb(stream: anyio.abc.SocketStream) -> None:
    burst = b"".join(frame(BINARY, deflate(bytes(1 << 20)), rsv=4, mask=False) for _ in range(25))
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        await _accept_and_send(stream, b"Sec-WebSocket-Extensions: permessage-deflate\r\n", burst)


async def test_compressed_frames_sent_with_the_101_response_are_parsed_in_steps(
    anyio_backend_name: str, batches: list[int]
) -> None:
    count, size = 25, 1 << 20
    got = 0
    with anyio.fail_after(15):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, _serve_bomb)
            url = f"ws://127.0.0.1:{port}"
            async with wskit.connect(
                url, compression="deflate", max_queue=1, close_timeout=2
            ) as ws:
                assert ws.compression == "permessage-deflate"
                for _ in range(count):
                    got += len(await ws.recv())
            tg.cancel_scope.cancel()
    assert got == count * size
    assert max(batches) <= 65536 + size + 1024, max(batches)


async def test_a_pull_that_yields_returns_only_with_a_message_queued(
    anyio_backend_name: str,
) -> None:
    # The task pulling in recv() yields once every CHECKPOINT_EVERY direct
    # operations. A recv() in another task may take, during that yield, the
    # message the pull just queued: the pull must then read on, as a
    # recv_stream() behind it waits on the queue and nobody else reads.
    # Trio runs the two tasks after the yield in either order (at random):
    # the thief goes first in about half the rounds.
    rounds = 12
    after_pull: list[tuple[int, bool]] = []
    taken: list[str | bytes] = []

    async def handler(ws: WebSocket) -> None:
        for _ in range(rounds):
            sock = ws._sock
            if sock is None or not ws._pulling:  # asyncio: no pull mode, same exchange
                taken.append(await ws.recv())
                await ws.send("taken")
                await ws.send(await ws.recv())
                continue
            sock._immediate = CHECKPOINT_EVERY - 1  # the next read is due a checkpoint

            async def thief(ws: WebSocket = ws) -> None:
                while not ws._queue:  # runnable all along: it runs in the pull's yield
                    await anyio.lowlevel.checkpoint()
                taken.append(await ws.recv())
                await ws.send("taken")

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(thief)
                await ws._pull()
                after_pull.append((len(ws._queue), ws._pulling))
            await ws.send(await ws.recv())

    with anyio.fail_after(10):
        async with wskit.serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                for index in range(rounds):
                    await ws.send(f"one {index}")
                    assert await ws.recv() == "taken"
                    await ws.send(f"two {index}")
                    assert await ws.recv() == f"two {index}"
    assert taken == [f"one {index}" for index in range(rounds)]
    if anyio_backend_name == "trio":
        # Each pull returned with a message queued: "one" if the thief had
        # not taken it yet, else "two", read before the pull returned.
        assert after_pull == [(1, True)] * rounds
