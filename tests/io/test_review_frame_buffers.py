"""Review of frame buffers (a large frame's rest read into its own buffer), over loopback.

``tests/io/test_frame_buffers.py`` sends large frames that arrive whole. These
send them where the path meets the rest of the connection: on a connection
that negotiated permessage-deflate (which parses in steps) with compressed
messages and pings between them, a ``recv()`` cancelled while such a frame is
on its way, a peer that stalls, resets or is closed on mid-frame. Each runs
on both loops; where it matters, it checks the path was taken.
"""

from __future__ import annotations

import random
import struct

import anyio
import pytest

import wskit
from tests.frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    close_payload,
    deflate,
    frame,
    upgrade_request,
)
from tests.io.raw import RawClient, close_code, parse_frames
from tests.io.test_frame_buffers import check_path, client_frame, filled  # noqa: F401 (fixture)
from wskit import ConnectionClosed, WebSocket
from wskit.core import Connection
from wskit.websocket import READ_SIZE

pytestmark = pytest.mark.anyio

MiB = 1 << 20
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"


async def deflate_handshake(client: RawClient) -> bytes:
    """As ``RawClient.handshake``, offering permessage-deflate; return the response head."""
    await client.stream.send(upgrade_request(DEFLATE))
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.stream.receive()
    head, _, client.leftover = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return head


async def read_pongs(client: RawClient, count: int) -> list[bytes]:
    """Read server frames until ``count`` pongs have come; return their payloads.

    The tests wait for them before sending their close frame: a ping right
    before a close frame may go unanswered (pongs still owed are dropped
    once the peer's close came, RFC 6455 §5.5.1).
    """
    data = client.leftover
    while len([f for f in parse_frames(data) if f[0] == PONG]) < count:
        data += await client.stream.receive()
    client.leftover = b""
    return [payload for opcode, payload in parse_frames(data) if opcode == PONG]


async def read_frames(client: RawClient, until: int) -> list[tuple[int, bytes]]:
    """Read server frames until one with opcode ``until`` has come; return them all."""
    data = client.leftover
    while True:
        frames = parse_frames(data)
        if any(opcode == until for opcode, _ in frames):
            client.leftover = b""
            return frames
        data += await client.stream.receive()


async def test_a_compressed_connection_takes_large_plain_frames_between_compressed_ones(
    anyio_backend_name: str,
    filled: list[int],  # noqa: F811 (the fixture)
) -> None:
    """Steps (permessage-deflate) and frame buffers in one stream: order and pongs kept."""
    rng = random.Random(5)
    large = [rng.randbytes(size) for size in (2 * READ_SIZE + 5, MiB, READ_SIZE + 1)]
    texts = [(f"message {index} " * 400).encode() for index in range(3)]
    wire = b""
    for index, payload in enumerate(large):
        # A compressed text message (rsv1), a ping, then a large plain binary one.
        wire += frame(TEXT, deflate(texts[index]), rsv=4)
        wire += frame(PING, b"%d" % index)
        wire += client_frame(payload)
    received: list[bytes | str] = []

    async def handler(ws: WebSocket) -> None:
        assert ws.compression == "permessage-deflate"
        try:
            async for message in ws:
                received.append(message)
        except ConnectionClosed:
            pass

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                head = await deflate_handshake(client)
                assert b"permessage-deflate" in head.lower()
                await client.send(wire)
                pongs = await read_pongs(client, len(large))
                await client.send(frame(CLOSE, close_payload(1000)))
                frames = await read_frames(client, CLOSE)
    expected: list[bytes | str] = []
    for text, payload in zip(texts, large, strict=True):
        expected += [text.decode(), payload]
    assert [len(m) for m in received] == [len(m) for m in expected]
    assert received == expected
    assert pongs == [b"0", b"1", b"2"]
    assert close_code(b"".join(frame(op, p, mask=False) for op, p in frames)) == 1000
    check_path(filled)


async def test_a_recv_cancelled_while_a_large_frame_arrives_loses_nothing(
    anyio_backend_name: str,
) -> None:
    """The frame's first part is read (and held, or read into its buffer) under a recv() that
    is cancelled; the next recv() gets the whole message."""
    payload = random.Random(6).randbytes(3 * READ_SIZE + 11)
    wire = client_frame(payload)
    outcome: list[object] = []
    cancelled = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        with anyio.move_on_after(0.2) as scope:
            await ws.recv()
        outcome.append(scope.cancelled_caught)
        cancelled.set()
        outcome.append(await ws.recv())
        await ws.send(b"ok")

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                # More than one read's worth, so that the first read fills its buffer.
                cut = 2 * READ_SIZE + 3
                await client.send(wire[:cut])
                await cancelled.wait()
                await client.send(wire[cut:])
                frames = await read_frames(client, BINARY)
    assert outcome == [True, payload]
    assert (BINARY, b"ok") in frames


@pytest.mark.parametrize("how", ["eof", "reset"])
async def test_a_peer_gone_mid_frame_ends_recv_with_1006(anyio_backend_name: str, how: str) -> None:
    """Gone with a large frame's first part read (held, or partly in its buffer)."""
    wire = client_frame(random.Random(7).randbytes(4 * READ_SIZE))
    codes: list[int] = []
    ended = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            codes.append(exc.code)
        ended.set()

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(wire[: 3 * READ_SIZE])
                await anyio.sleep(0.05)  # read by the server
                if how == "reset":
                    client.reset_on_close()
            await ended.wait()
    assert codes == [1006]


async def test_a_peer_stalled_mid_frame_is_closed_by_the_keepalive(
    anyio_backend_name: str,
) -> None:
    """Threat F11: a frame's first part held, its rest never sent, no pong: 1011."""
    wire = client_frame(random.Random(8).randbytes(MiB))

    async def handler(ws: WebSocket) -> None:
        with pytest.raises(ConnectionClosed):
            await ws.recv()

    with anyio.fail_after(20):
        async with wskit.serve(
            handler, "127.0.0.1", 0, max_message=2 * MiB, ping_interval=0.2, ping_timeout=1.0
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(wire[: 2 * READ_SIZE + 100])
                data, closed = await client.read_until_closed(timeout=10)
    assert closed
    assert close_code(data) == 1011


async def test_a_close_from_the_server_mid_frame_completes_after_the_frame(
    anyio_backend_name: str,
) -> None:
    """The server closes while a large frame is half read; the peer finishes it, then answers."""
    payload = random.Random(9).randbytes(2 * MiB - 1)
    wire = client_frame(payload)
    closed_with: list[int | None] = []

    async def handler(ws: WebSocket) -> None:
        await anyio.sleep(0.1)  # the frame's first part is read meanwhile (pull or reader)
        await ws.close(1001)
        closed_with.append(ws.close_code)

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(wire[: 3 * READ_SIZE])
                frames = await read_frames(client, CLOSE)
                assert frames[-1][0] == CLOSE
                assert struct.unpack("!H", frames[-1][1][:2])[0] == 1001
                await client.send(wire[3 * READ_SIZE :] + frame(CLOSE, close_payload(1001)))
                _, eof = await client.read_until_closed(timeout=10)
    assert eof
    assert closed_with == [1001]


async def test_a_close_that_times_out_mid_frame_ends_with_1006(anyio_backend_name: str) -> None:
    """The server closes while a large frame is half read and the peer never finishes it:
    close() returns within close_timeout, and no close frame came (1006)."""
    wire = client_frame(random.Random(10).randbytes(MiB))
    ends: list[tuple[int | None, float]] = []

    async def handler(ws: WebSocket) -> None:
        await anyio.sleep(0.1)  # the frame's first part is read meanwhile
        started = anyio.current_time()
        await ws.close()
        ends.append((ws.close_code, anyio.current_time() - started))

    with anyio.fail_after(20):
        async with wskit.serve(
            handler, "127.0.0.1", 0, max_message=2 * MiB, close_timeout=0.3
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(wire[: 3 * READ_SIZE])
                data, eof = await client.read_until_closed(timeout=10)
    assert eof
    assert close_code(data) == 1000  # our close frame left; the peer's never came
    [(code, took)] = ends
    assert code == 1006
    assert took < 5  # a generous bound on close_timeout (0.3 s)


async def test_no_frame_buffer_is_made_before_the_frame_has_arrived(
    anyio_backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant of threat F11: the kernel's FIONREAD count must cover the rest, else no buffer.

    A frame comes short of its last byte, which follows after a pause: the
    buffer asked for before it is refused, and the one made after is covered.
    """
    payload = random.Random(11).randbytes(MiB)
    wire = client_frame(payload)
    warm = client_frame(bytes(MiB))
    calls: list[tuple[int, int | None, bool]] = []  # (arrived, view length, last byte sent)
    sent_all = False
    original = Connection.frame_buffer

    def recorded(self: Connection, arrived: int) -> memoryview | None:
        view = original(self, arrived)
        calls.append((arrived, None if view is None else len(view), sent_all))
        return view

    monkeypatch.setattr(Connection, "frame_buffer", recorded)
    received: list[bytes | str] = []

    async def handler(ws: WebSocket) -> None:
        for _ in range(4):
            received.append(await ws.recv())
        await ws.send(b"ok")

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                # Whole frames first, so that the kernel's window grows (autotuning)
                # and the short frame's first read is a full one.
                await client.send(warm * 3 + wire[:-1])
                await anyio.sleep(0.2)  # read, all but the last byte
                sent_all = True
                await client.send(wire[-1:])
                await read_frames(client, BINARY)
    assert received == [bytes(MiB)] * 3 + [payload]
    # The short frame asked for its buffer and was refused: the kernel
    # said (FIONREAD) that one byte of its rest had not come.
    refused = [arrived for arrived, length, after in calls if length is None and not after]
    assert refused, "the short frame's first read did not fill its buffer"
    assert max(refused) < len(wire) - 1
    # Once the byte came, the buffer made was covered by what had arrived.
    assert all(arrived >= length for arrived, length, after in calls if after and length)


async def test_a_full_queue_hands_buffered_messages_over_in_order(
    anyio_backend_name: str,
    filled: list[int],  # noqa: F811 (the fixture)
) -> None:
    """max_queue=1 and a slow handler: messages completed in their buffers wait for room
    (handed from pull mode to the reader), pings between them answered, in order."""
    rng = random.Random(12)
    messages = [rng.randbytes(size) for size in (MiB, READ_SIZE + 1, MiB - 3, 2 * READ_SIZE)]
    wire = b"".join(client_frame(m) + frame(PING, b"%d" % i) for i, m in enumerate(messages))
    received: list[bytes | str] = []

    async def handler(ws: WebSocket) -> None:
        try:
            while True:
                await anyio.sleep(0.02)  # slower than the peer: the queue fills
                received.append(await ws.recv())
        except ConnectionClosed:
            pass

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB, max_queue=1) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(wire)
                pongs = await read_pongs(client, len(messages))
                await client.send(frame(CLOSE, close_payload(1000)))
                await read_frames(client, CLOSE)
    assert [len(m) for m in received] == [len(m) for m in messages]
    assert received == messages
    assert pongs == [b"%d" % i for i in range(len(messages))]
    check_path(filled)
