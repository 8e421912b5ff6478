"""Large frames read into buffers of their own, over real sockets on loopback.

Once the rest of a large binary frame has arrived, the connection reads it
straight into a buffer of the frame's size (``Connection.frame_buffer``): on
Trio by ``recv_into()``, on asyncio through the lean stream's transport
(``LeanStream.read_into``). These tests send such frames, on their own,
back to back and cut at every read boundary, and check that every message
arrives whole and in order, by ``recv()`` and by ``recv_stream()``, on a
server and on a client. They run on both loops, and check that the path
under test was taken, by counting ``Connection.frame_filled`` calls.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Awaitable, Callable

import anyio
import pytest

import wskit
from tests.frames import BINARY, CLOSE, MASK_KEY
from tests.io.raw import RawClient
from wskit import ConnectionClosed, WebSocket
from wskit.core import Connection
from wskit.core.masking import mask_python
from wskit.websocket import READ_SIZE

pytestmark = pytest.mark.anyio

MiB = 1 << 20
# Sizes on each side of the smallest frame read this way, and a few reads' worth.
SIZES = [READ_SIZE - 1, READ_SIZE, READ_SIZE + 1, MiB, MiB + 3, 3 * READ_SIZE + 7, 100]


@pytest.fixture
def filled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The counts of bytes reported by every ``Connection.frame_filled`` call."""
    counts: list[int] = []
    original = Connection.frame_filled

    def counted(self: Connection, count: int, *, now: float | None = None) -> None:
        counts.append(count)
        original(self, count, now=now)

    monkeypatch.setattr(Connection, "frame_filled", counted)
    return counts


def payloads(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in SIZES]


def client_frame(payload: bytes) -> bytes:
    """A masked binary frame (``tests.frames.frame`` masks 1 MiB too slowly)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | BINARY, 0x80 | size)
    elif size < 65536:
        header = struct.pack("!BBH", 0x80 | BINARY, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | BINARY, 0x80 | 127, size)
    return header + MASK_KEY + mask_python(payload, MASK_KEY)


async def send_all_then_close(
    handler: Callable[[WebSocket], Awaitable[None]], messages: list[bytes], done: anyio.Event
) -> None:
    """Serve ``handler``; a raw client sends ``messages`` at once, then a close; await ``done``."""
    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                # All at once: the server reads while the kernel's buffers are full.
                await client.send(b"".join(client_frame(m) for m in messages))
                await client.send(struct.pack("!BB", 0x80 | CLOSE, 0x80) + MASK_KEY)
                await done.wait()


def check_path(filled: list[int]) -> None:
    """Some frame was read into a buffer of its own (on either loop)."""
    assert filled, "no frame was read into a buffer of its own"
    assert all(count >= 0 for count in filled)


async def test_a_server_takes_large_frames_sent_back_to_back_whole(
    anyio_backend_name: str, filled: list[int]
) -> None:
    messages = payloads(1) * 3
    received: list[bytes | str] = []
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            async for message in ws:
                received.append(message)
        except ConnectionClosed:
            pass
        done.set()

    await send_all_then_close(handler, messages, done)
    assert [len(m) for m in received] == [len(m) for m in messages]
    assert received == messages
    check_path(filled)


async def test_a_frame_cut_at_any_read_boundary_arrives_whole(
    anyio_backend_name: str, filled: list[int]
) -> None:
    """A frame sent in two parts, with a pause between: its first read fills the buffer given."""
    payload = random.Random(2).randbytes(MiB)
    wire = client_frame(payload)
    received: list[bytes | str] = []

    async def handler(ws: WebSocket) -> None:
        received.append(await ws.recv())
        await ws.send(b"ok")

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0, max_message=2 * MiB) as server:
            for cut in (READ_SIZE, 14 + READ_SIZE, 15 + READ_SIZE, 2 * READ_SIZE):
                async with await RawClient.open(server.port) as client:
                    await client.handshake()
                    await client.send(wire[:cut])
                    await anyio.sleep(0.05)  # the server reads what came, and maybe waits
                    await client.send(wire[cut:])
                    reply = client.leftover
                    while b"\x82\x02ok" not in reply:  # the reply, maybe the close after it
                        reply += await client.stream.receive()
    assert received == [payload] * 4


async def test_recv_stream_gives_the_pieces_of_large_frames_in_order(
    anyio_backend_name: str, filled: list[int]
) -> None:
    messages = payloads(3) * 2
    joined: list[bytes] = []
    done = anyio.Event()

    async def handler(ws: WebSocket) -> None:
        try:
            while True:
                pieces = [piece async for piece in ws.recv_stream()]
                assert all(isinstance(piece, bytes) for piece in pieces)
                joined.append(b"".join(pieces))  # type: ignore[arg-type]
        except ConnectionClosed:
            pass
        done.set()

    await send_all_then_close(handler, messages, done)
    assert joined == messages
    check_path(filled)


async def test_a_client_takes_large_frames_from_a_server_whole(
    anyio_backend_name: str, filled: list[int]
) -> None:
    messages = payloads(4) * 3

    async def handler(ws: WebSocket) -> None:
        for message in messages:
            await ws.send(message)
        await ws.close()

    with anyio.fail_after(20):
        async with wskit.serve(handler, "127.0.0.1", 0) as server:
            url = f"ws://127.0.0.1:{server.port}"
            async with wskit.connect(url, max_message=2 * MiB, compression=None) as ws:
                await anyio.sleep(0.1)  # the server's frames pile up in the kernel
                received = [message async for message in ws]
    assert received == messages
    check_path(filled)
