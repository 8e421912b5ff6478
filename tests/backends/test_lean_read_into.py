"""``LeanStream.read_into``: the transport reads straight into a buffer given (real sockets).

A WebSocket on asyncio gives the rest of a large frame's buffer to its lean
stream while consuming: the transport's ``recv_into()`` fills it, and the
consumer gets the bytes after it. These pin that contract on asyncio's own
transport and on uvloop's: the bytes land in order and nothing is lost or
repeated at either edge of the buffer, when the consumer stops half-way, or
when the peer shuts down or resets mid-buffer.
"""

from __future__ import annotations

import os
import socket
import struct

import anyio
import pytest

from tests.backends.test_lean import pair
from wskit.backends.lean import LeanStream

pytestmark = pytest.mark.anyio

# The lean stream is asyncio's transport itself: there is no Trio variant to run.
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])

SIZE = 3 * 262144 + 5  # more than one read of asyncio's transport (256 KiB)


class Consumer:
    """Collects what a consumer gets, and what read_into() filled; gives the buffer once."""

    def __init__(self, stream: LeanStream, view_size: int, give_after: int) -> None:
        self.stream = stream
        self.buffer = bytearray(view_size)
        self.give_after = give_after  # bytes consumed before the buffer is given
        self.before = bytearray()  # consumed before the buffer was given
        self.after = bytearray()  # consumed after it was full (or taken back)
        self.filled: list[int] = []
        self.given = False
        self.ended = anyio.Event()
        self.more = anyio.Event()

    def consume(self, data: bytes) -> None:
        if self.given:
            self.after += data
        else:
            self.before += data
            if len(self.before) >= self.give_after:
                self.given = self.stream.read_into(memoryview(self.buffer), self.on_filled)
                assert self.given
        self.more.set()

    def on_filled(self, count: int) -> None:
        self.filled.append(count)
        self.more.set()

    def end(self) -> None:
        self.ended.set()

    @property
    def in_buffer(self) -> int:
        return sum(self.filled)


async def buffer_given(client: anyio.abc.ByteStream, server: LeanStream) -> Consumer:
    """A consumer on ``server`` that gave its buffer at the first byte (``b"x"``, sent here)."""
    consumer = Consumer(server, SIZE, give_after=0)
    assert server.consume(consumer.consume, consumer.end)
    await client.send(b"x")
    await consumer.more.wait()
    assert consumer.given
    return consumer


@asyncio_only
async def test_the_buffer_fills_in_order_then_the_consumer_gets_the_rest() -> None:
    payload = os.urandom(100 + SIZE + 7000)
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            consumer = Consumer(server, SIZE, give_after=100)
            assert server.consume(consumer.consume, consumer.end)
            await client.send(payload[:100])
            while not consumer.given:
                await consumer.more.wait()
                consumer.more = anyio.Event()
            await client.send(payload[100:])
            while len(consumer.before) + consumer.in_buffer + len(consumer.after) < len(payload):
                await consumer.more.wait()
                consumer.more = anyio.Event()
            assert consumer.before == payload[:100]
            assert consumer.buffer == payload[100 : 100 + SIZE]
            assert consumer.after == payload[100 + SIZE :]
            assert all(count > 0 for count in consumer.filled)
            assert len(consumer.filled) < 20  # reads of the whole rest, not 64 KiB ones


@asyncio_only
async def test_a_consumer_that_stops_half_way_gets_the_rest_by_receive() -> None:
    payload = os.urandom(SIZE)
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            consumer = await buffer_given(client, server)
            await client.send(payload[1:1000])
            while consumer.in_buffer < 999:
                consumer.more = anyio.Event()
                await consumer.more.wait()
            server.stop_consuming()  # the buffer is taken back: bytes come as usual
            await client.send(payload[1000:])
            await anyio.sleep(0.05)  # they arrive while nobody receives: buffered
            rest = bytearray()
            while len(rest) < len(payload) - 1000:
                rest += await server.receive(1 << 20)
            assert consumer.before == b"x"
            assert consumer.buffer[:999] == payload[1:1000]
            assert rest == payload[1000:]
            assert consumer.after == b""


@asyncio_only
async def test_the_end_of_the_stream_mid_buffer_is_reported() -> None:
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            consumer = await buffer_given(client, server)
            await client.send(b"y" * 5000)
            await client.send_eof()
            await consumer.ended.wait()
            assert consumer.buffer[: consumer.in_buffer] == b"y" * 5000
            server.stop_consuming()
            with pytest.raises(anyio.EndOfStream):
                await server.receive()


@asyncio_only
async def test_a_reset_mid_buffer_is_reported_as_broken() -> None:
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            consumer = await buffer_given(client, server)
            raw: socket.socket = client.extra(anyio.abc.SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await client.aclose()  # RST
            await consumer.ended.wait()
            server.stop_consuming()
            with pytest.raises(anyio.BrokenResourceError):
                await server.receive()


@asyncio_only
async def test_read_into_needs_a_consumer_and_room() -> None:
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            assert not server.read_into(memoryview(bytearray(10)), lambda count: None)
            seen: list[bool] = []

            def consume(data: bytes) -> None:
                seen.append(server.read_into(memoryview(bytearray(0)), lambda count: None))

            assert server.consume(consume, lambda: None)
            await client.send(b"z")
            while not seen:
                await anyio.sleep(0.01)
            assert seen == [False]
            assert server._protocol.reader is None


def test_uvloop_reads_into_the_buffer_too() -> None:
    pytest.importorskip("uvloop")
    payload = os.urandom(SIZE + 10)

    async def main() -> None:
        with anyio.fail_after(10):
            async with pair(lean_server=True) as (client, server):
                assert isinstance(server, LeanStream)
                consumer = await buffer_given(client, server)
                await client.send(payload)
                while consumer.in_buffer + len(consumer.after) < len(payload):
                    consumer.more = anyio.Event()
                    await consumer.more.wait()
                assert consumer.before == b"x"
                assert consumer.buffer == payload[:SIZE]
                assert consumer.after == payload[SIZE:]

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
