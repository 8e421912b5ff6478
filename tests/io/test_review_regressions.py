"""Bugs found reviewing the per-connection task structure (issue 6): each test names its bug.

Each was written failing, then fixed; every test is bounded in time.
"""

from __future__ import annotations

import os
import socket
import time

import anyio
import pytest

import wskit
from tests.frames import BINARY, CLOSE, TEXT, close_payload, deflate, frame, upgrade_request
from tests.io.raw import RawClient, parse_frames
from tests.loops import UVLOOP
from wskit.plugins import PASS, Plugin, Verdict

pytestmark = pytest.mark.anyio

# The lean stream's bugs showed on uvloop first: these run there too.
ALL_LOOPS = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio", UVLOOP])


def _flood_then_close(port: int, burst: bytes, timeout: float) -> None:
    """A blocking peer, run in a thread: upgrade with deflate, send ``burst`` at once,
    then answer the server's close frame and read to EOF."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(upgrade_request(b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, data = data.partition(b"\r\n\r\n")
        assert b"permessage-deflate" in head, head
        sock.sendall(burst)
        while not any(opcode == CLOSE for opcode, _ in parse_frames(data)):
            chunk = sock.recv(65536)
            if not chunk:
                return  # closed without a close frame: the test sees the code
            data += chunk
        sock.sendall(frame(CLOSE, close_payload(1000)))
        while sock.recv(65536):
            pass
    except OSError:
        pass  # reset after a failure: the server side's record says what went wrong
    finally:
        sock.close()


@ALL_LOOPS
async def test_compressed_bytes_left_to_the_reader_are_fed_before_later_bytes() -> None:
    # The bug (fixed): on the lean stream, _consume() has the core parse a
    # compressed read in steps; when the queue fills mid-read it hands the
    # rest of the read to the reader (_handoff_data) and wakes it. If more bytes reached
    # the protocol before the reader ran, receive_or_consume() returned those
    # (the buffer was not empty) instead of b"", and the reader fed them to
    # the core *before* _handoff_data. uvloop reads again at once when a read
    # filled its 256 KiB buffer (libuv's uv__read loop), so a flood always
    # does this; asyncio's selector loop runs the woken reader first.
    count, size = 64, 16384
    payloads = [os.urandom(size) for _ in range(count)]  # incompressible: ~1 MiB on the wire
    burst = b"".join(frame(BINARY, deflate(payload), rsv=4) for payload in payloads)
    got: list[str | bytes] = []

    async def handler(ws: wskit.WebSocket) -> None:
        # Hold the event loop, so the whole flood waits in the kernel and
        # arrives as back-to-back full reads while the reader waits.
        time.sleep(0.3)
        with anyio.fail_after(10):
            for _ in range(count):
                got.append(await ws.recv())

    with anyio.fail_after(20):
        async with wskit.serve(
            handler,
            "127.0.0.1",
            0,
            ping_interval=None,
            max_queue=1,
            max_message=None,
            close_timeout=2,
        ) as server:
            await anyio.to_thread.run_sync(_flood_then_close, server.port, burst, 10.0)
            with anyio.fail_after(5):
                while server.connections:
                    await anyio.sleep(0.01)
    assert len(got) == count
    assert got == payloads  # all of them, in order


@ALL_LOOPS
async def test_a_large_compressed_message_round_trips_with_default_options() -> None:
    # The same bug as above, as an application meets it: nothing unusual but
    # uvloop. A compressed message used to be queued in pieces (one per 1 KiB
    # slice of the wire), so one large message filled the default max_queue
    # (16) within a read; the rest of that read was handed to the reader, and
    # the read uvloop makes at once after a full one overtook it. (The interop
    # test with websockets' client fails the same way under uvloop.)
    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    with anyio.fail_after(15):
        async with wskit.serve(echo, "127.0.0.1", 0, max_message=None, close_timeout=2) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            async with wskit.connect(url, max_message=None, close_timeout=2) as ws:
                assert ws.compression == "permessage-deflate"
                for size in (300_000, 1_000_000):
                    payload = os.urandom(size)
                    await ws.send(payload)
                    assert await ws.recv() == payload


async def test_messages_before_the_peers_close_frame_reach_a_slow_reader() -> None:
    # The bug (fixed): recv() promises that ConnectionClosedOK comes only
    # after every message that arrived before the close. With max_queue=1 and
    # a handler that reads late, a peer that sent five messages and its close
    # frame in one write got only the first delivered: the core parses the
    # close with the messages, so when _dispatch() met the full queue the
    # state was already CLOSED, and _enqueue() closed the queue.
    got: list[str | bytes] = []
    ended: list[BaseException] = []

    async def handler(ws: wskit.WebSocket) -> None:
        await anyio.sleep(0.2)  # every message and the close are parsed by then
        try:
            with anyio.fail_after(5):
                while True:
                    got.append(await ws.recv())
        except wskit.ConnectionClosed as exc:
            ended.append(exc)

    with anyio.fail_after(15):
        async with wskit.serve(
            handler,
            "127.0.0.1",
            0,
            ping_interval=None,
            max_queue=1,
            compression=None,
            close_timeout=2,
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                messages = b"".join(frame(TEXT, str(n).encode()) for n in range(5))
                await client.send(messages + frame(CLOSE, close_payload(1000)))
                _, closed = await client.read_until_closed(5)
                assert closed
            with anyio.fail_after(5):
                while server.connections:
                    await anyio.sleep(0.01)
    assert isinstance(ended[0], wskit.ConnectionClosedOK)
    assert got == ["0", "1", "2", "3", "4"]


class _Recorder(Plugin):
    """Records every message on_message sees, and passes it."""

    def __init__(self) -> None:
        self.seen: list[str | bytes] = []

    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> Verdict:
        self.seen.append(message)
        return PASS


async def _answer_close(client: RawClient) -> None:
    """Read up to the server's close frame, answer it, and read to EOF."""
    data = client.leftover
    with anyio.fail_after(5):
        while not any(opcode == CLOSE for opcode, _ in parse_frames(data)):
            data += await client.stream.receive()
        client.leftover = b""
        await client.send(frame(CLOSE, close_payload(1000)))
        _, closed = await client.read_until_closed(5)
    assert closed


@ALL_LOOPS
async def test_on_message_judges_each_message_once_when_the_queue_is_full() -> None:
    # The bug (fixed): on the lean stream, _consume_piece() calls the plugins'
    # check on a whole message, gets PASS, then fails to queue it (max_queue
    # reached) and hands events[index:] to the reader. It handed the judged
    # message as a plain Fragment, and the reader's _dispatch() judged it
    # again: on_message ran twice for it (a rate limit counted it twice and
    # could close a client that kept within its limit).
    recorder = _Recorder()
    got: list[str | bytes] = []

    async def handler(ws: wskit.WebSocket) -> None:
        await anyio.sleep(0.2)  # the queue is full when the burst is parsed
        with anyio.fail_after(5):
            for _ in range(5):
                got.append(await ws.recv())

    with anyio.fail_after(15):
        async with wskit.serve(
            handler,
            "127.0.0.1",
            0,
            plugins=[recorder],
            ping_interval=None,
            max_queue=1,
            compression=None,
            close_timeout=2,
        ) as server:
            async with await RawClient.open(server.port) as client:
                await client.handshake()
                await client.send(b"".join(frame(TEXT, str(n).encode()) for n in range(5)))
                await _answer_close(client)  # the handler's 1000
    assert got == ["0", "1", "2", "3", "4"]
    assert recorder.seen == ["0", "1", "2", "3", "4"]  # each judged once
