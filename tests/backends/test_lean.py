"""The lean asyncio stream keeps AnyIO's ByteStream contract (real sockets, both loops).

Every test here runs over a pair of connected TCP streams: on asyncio the
client side is :class:`LeanStream` (what ``open_tcp_stream`` returns) and the
server side is AnyIO's own stream, or both lean; on Trio both are AnyIO's,
so the same assertions also pin the behaviour the lean stream imitates.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest

from wskit.backends import create_tcp_listeners, open_tcp_stream
from wskit.backends.lean import READ_BUFFER, LeanStream, lean_stream

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def pair(
    *, lean_server: bool
) -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """A connected (client, server) pair over loopback TCP."""
    (listener,) = await create_tcp_listeners("127.0.0.1", 0)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
        if lean_server:
            server = lean_stream(server)
        async with client[0], server:
            yield client[0], server


both = pytest.mark.parametrize("lean_server", [False, True], ids=["anyio-server", "lean-server"])


async def test_asyncio_streams_are_lean_and_trio_ones_untouched(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=True) as (client, server):
            lean = anyio_backend_name == "asyncio"
            assert isinstance(client, LeanStream) is lean
            assert isinstance(server, LeanStream) is lean
            assert lean_stream(client) is client  # already lean (or Trio): unchanged
            # Typed attributes are those of any socket stream.
            port = server.extra(anyio.abc.SocketAttribute.local_port)
            assert client.extra(anyio.abc.SocketAttribute.remote_port) == port
            assert client.extra(anyio.abc.SocketAttribute.raw_socket).fileno() >= 0


@both
async def test_bytes_arrive_in_order_and_within_max_bytes(lean_server: bool) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()
    with anyio.fail_after(10):
        async with pair(lean_server=lean_server) as (client, server):

            async def read_all() -> None:
                while len(received) < 2 * len(payload):
                    chunk = await server.receive(1000)
                    assert 0 < len(chunk) <= 1000
                    received.extend(chunk)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_all)
                await client.send(payload)
                await client.send(payload)
    assert received == payload * 2


@both
async def test_memoryviews_are_sent_as_their_bytes(lean_server: bool) -> None:
    # buffers_to_send() hands the writer a view of a large payload's rest.
    payload = bytes(range(256)) * 2048  # 512 KiB
    view = memoryview(payload)[3:]
    received = bytearray()
    with anyio.fail_after(10):
        async with pair(lean_server=lean_server) as (client, server):

            async def read_all() -> None:
                while len(received) < 2 * len(view):
                    received.extend(await client.receive(1 << 20))

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(read_all)
                if isinstance(server, LeanStream):
                    assert server.can_write_now()
                    server.write_now(view)
                    await server.wait_drained()
                else:
                    await server.send(view)
                await server.send(view)
    assert received == payload[3:] * 2


@both
async def test_end_of_stream_after_send_eof_and_reading_goes_on(lean_server: bool) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=lean_server) as (client, server):
            await client.send(b"last words")
            await client.send_eof()
            data = b""
            while len(data) < len(b"last words"):
                data += await server.receive()
            assert data == b"last words"
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
            # A half-closed stream still carries the other direction.
            await server.send(b"answer")
            assert await client.receive() == b"answer"


@both
async def test_closed_stream_refuses_io(lean_server: bool) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=lean_server) as (client, _server):
            await client.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await client.send(b"x")
            with pytest.raises(anyio.ClosedResourceError):
                await client.receive()


@both
async def test_a_reset_connection_is_broken(lean_server: bool) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=lean_server) as (client, server):
            sock = server.extra(anyio.abc.SocketAttribute.raw_socket)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await server.aclose()  # RST
            with pytest.raises((anyio.BrokenResourceError, anyio.EndOfStream)):
                await client.receive()

            async def write_until_broken() -> None:
                for _ in range(100):  # the first writes may still be accepted
                    await client.send(b"x" * 65536)
                    await anyio.sleep(0.01)

            with pytest.raises(anyio.BrokenResourceError):
                await write_until_broken()


@both
async def test_a_cancelled_receive_loses_nothing(lean_server: bool) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=lean_server) as (client, server):
            with anyio.move_on_after(0.05):
                await client.receive()
            await server.send(b"after the cancel")
            assert await client.receive() == b"after the cancel"


@both
async def test_two_readers_are_refused(lean_server: bool) -> None:
    with anyio.fail_after(5):
        async with pair(lean_server=lean_server) as (client, server):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(client.receive)
                await anyio.sleep(0.05)
                with pytest.raises(anyio.BusyResourceError):
                    await client.receive()
                await server.send(b"x")


async def test_a_send_waits_for_a_peer_that_does_not_read_and_a_cancelled_one_cuts_nothing(
    anyio_backend_name: str,
) -> None:
    # The client's send() must stop returning while the server reads
    # nothing (bounded memory), and (lean stream) a send cancelled while it
    # waits must still deliver its bytes whole. Trio's send_all may leave a
    # cancelled write partial: that is why wskit's writer is its own task.
    block = b"y" * 65536
    with anyio.fail_after(20):
        async with pair(lean_server=True) as (client, server):
            sent = 0
            with anyio.move_on_after(0.5) as waited:
                while True:
                    await client.send(block)
                    sent += len(block)
            assert waited.cancelled_caught  # send() blocked: the peer read nothing
            if anyio_backend_name != "asyncio":
                return
            sent += len(block)  # the cancelled send's bytes had left whole
            assert sent < 64 * 1024 * 1024
            await client.send_eof()
            total = 0
            try:
                while True:
                    total += len(await server.receive(1 << 20))
            except anyio.EndOfStream:
                pass
            assert total in (sent, sent - len(block))  # AnyIO's may drop the last one
            assert total % len(block) == 0


# The lean stream is asyncio's transport itself: there is no Trio variant to run.
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_lean_reading_pauses_when_its_buffer_fills() -> None:
    with anyio.fail_after(10):
        async with pair(lean_server=True) as (client, server):
            assert isinstance(server, LeanStream)
            with anyio.move_on_after(0.5):
                while True:
                    await client.send(b"z" * 65536)
            # The server's buffer stopped growing near READ_BUFFER: the rest
            # waits in the kernel, and the client met backpressure.
            protocol = server._protocol
            assert protocol.paused_reading
            assert READ_BUFFER <= protocol.buffered < READ_BUFFER + 4 * 1024 * 1024
            # Reading resumes once receive() took the buffer back within
            # bounds (large segments leave one per call, without a copy).
            while protocol.buffered > READ_BUFFER:
                await server.receive(1 << 22)
            assert not protocol.paused_reading


def test_uvloop_transports_are_lean_too() -> None:
    # uvloop's transports keep asyncio's contract without deriving from
    # asyncio.Transport; the suite's loops are asyncio and Trio, so this
    # runs its own uvloop loop (skipped where uvloop is not installed).
    pytest.importorskip("uvloop")

    async def main() -> None:
        with anyio.fail_after(10):
            async with pair(lean_server=True) as (client, server):
                assert isinstance(client, LeanStream)
                assert isinstance(server, LeanStream)
                payload = b"u" * (3 * READ_BUFFER)
                received = bytearray()

                async def read_all() -> None:
                    while len(received) < len(payload):
                        received.extend(await server.receive(READ_BUFFER))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(read_all)
                    await client.send(payload)
                assert received == payload
                await client.send_eof()
                with pytest.raises(anyio.EndOfStream):
                    await server.receive()

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
