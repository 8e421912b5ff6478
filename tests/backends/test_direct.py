"""DirectSocket: nonblocking shortcuts on AnyIO's Trio socket streams (real sockets, both loops).

On asyncio nothing qualifies (transports buffer), so most tests here check
that on asyncio and exercise the socket on Trio.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from wskit.backends import create_tcp_listeners, open_tcp_stream
from wskit.backends.direct import (
    CHECKPOINT_EVERY,
    MAX_BUFFERS,
    SEND_ALONE,
    DirectSocket,
    remainder,
)
from wskit.backends.trio_poller import poller_for_trio

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def pair() -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """A connected (client, server) pair over loopback TCP, AnyIO's streams on both sides."""
    (listener,) = await create_tcp_listeners("127.0.0.1", 0)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client, _ = await open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
        async with client, server:
            yield client, server


def direct_of(stream: anyio.abc.SocketStream, backend: str) -> DirectSocket | None:
    """The stream's DirectSocket: one on Trio, none on asyncio (its transports buffer)."""
    direct = DirectSocket.of(stream)
    assert (direct is not None) is (backend == "trio")
    return direct


async def read_exactly(stream: anyio.abc.ByteStream, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        received += await stream.receive(size - len(received))
    return bytes(received)


async def test_only_trio_socket_streams_qualify(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            on_trio = anyio_backend_name == "trio"
            for stream in (client, server):
                direct = DirectSocket.of(stream)
                assert (direct is not None) is on_trio
                if direct is not None:
                    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                    assert direct.raw_socket is raw


async def test_tls_streams_do_not_qualify() -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with anyio.fail_after(5):
        async with pair() as (client, server):
            async with anyio.create_task_group() as tg:
                wrapped: list[anyio.abc.ByteStream] = []

                async def wrap_server() -> None:
                    wrapped.append(
                        await anyio.streams.tls.TLSStream.wrap(
                            server, server_side=True, ssl_context=server_context
                        )
                    )

                tg.start_soon(wrap_server)
                tls_client = await anyio.streams.tls.TLSStream.wrap(
                    client, hostname="localhost", ssl_context=client_context
                )
            assert DirectSocket.of(tls_client) is None
            assert DirectSocket.of(wrapped[0]) is None


async def test_a_send_the_kernel_takes_arrives_whole_and_in_order(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            buffers = [b"head", bytearray(b"-middle-"), memoryview(b"tail" * 1000)]
            expected = b"".join(bytes(b) for b in buffers)
            assert direct.try_send(buffers) == len(expected)
            assert direct.try_send([b"!"]) == 1  # a single buffer: plain send()
            assert await read_exactly(client, len(expected) + 1) == expected + b"!"


async def test_what_the_kernel_refuses_follows_through_the_stream_in_order(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(10):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            direct.raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            # Distinct chunks, so that a reordering or a loss shows.
            chunks = [i.to_bytes(4, "big") * 4096 for i in range(64)]
            sent = bytearray()
            refused = 0
            async with anyio.create_task_group() as tg:
                received = bytearray()

                async def read_all() -> None:
                    await anyio.sleep(0.05)  # a peer slow to read: the buffers fill first
                    while len(received) < sum(map(len, chunks)):
                        received.extend(await client.receive())

                tg.start_soon(read_all)
                for chunk in chunks:
                    taken = direct.try_send([chunk])
                    refused += taken < len(chunk)
                    sent += chunk[:taken]
                    for rest in remainder([chunk], taken):
                        await server.send(rest)
                        sent += rest
            assert refused > 0  # the normal path was taken, not only the direct one
            assert bytes(received) == bytes(sent) == b"".join(chunks)


async def test_large_buffers_leave_alone_in_order_and_the_count_taken_is_exact(
    anyio_backend_name: str,
) -> None:
    """Buffers of SEND_ALONE bytes or more go by send() calls of their own (not one
    sendmsg()): taken whole, in order, and when the kernel refuses part, the count
    says exactly how far it went (the rest follows through the stream)."""
    with anyio.fail_after(10):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            big = [bytes([i]) * (SEND_ALONE + 1000 * i) for i in range(1, 4)]
            buffers: list[bytes | memoryview] = [b"a", memoryview(big[0]), b"b", big[1]]
            expected = b"".join(bytes(b) for b in buffers)
            assert direct.try_send(buffers) == len(expected)
            assert await read_exactly(client, len(expected)) == expected
            # A peer that does not read: the kernel takes part of a large buffer.
            direct.raw_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            buffers = [b"c" * 10, big[2], b"d" * 10, big[0]]
            expected = b"".join(buffers)
            taken = direct.try_send(buffers)
            assert 0 < taken < len(expected)
            async with anyio.create_task_group() as tg:
                received = bytearray()

                async def read_all() -> None:
                    while len(received) < len(expected):
                        received.extend(await client.receive())

                tg.start_soon(read_all)
                for rest in remainder(buffers, taken):
                    await server.send(rest)
            assert bytes(received) == expected


async def test_receive_reads_what_is_there_and_none_when_nothing_is(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            assert direct.try_receive(1024) is None
            await client.send(b"hello")
            await direct.wait_readable()
            assert direct.try_receive(3) == b"hel"
            assert direct.try_receive(1024) == b"lo"
            assert direct.try_receive(1024) is None
            await client.send_eof()
            await direct.wait_readable()
            with pytest.raises(anyio.EndOfStream):
                direct.try_receive(1024)


async def test_a_reset_or_closed_socket_raises_on_receive_and_refuses_sends(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            raw_client = client.extra(anyio.abc.SocketAttribute.raw_socket)
            # SO_LINGER 0: close() sends RST, the server's next read fails.
            raw_client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await client.aclose()
            await direct.wait_readable()
            with pytest.raises(ConnectionResetError):
                direct.try_receive(1024)
            await server.aclose()
            assert direct.try_send([b"x"]) == 0  # the stream reports it: ClosedResourceError
            with pytest.raises(anyio.ClosedResourceError):
                await server.send(b"x")


async def test_a_wait_ends_when_the_stream_is_closed(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair() as (_client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            async with anyio.create_task_group() as tg:

                async def close_soon() -> None:
                    await anyio.sleep(0.01)
                    await server.aclose()

                tg.start_soon(close_soon)
                with pytest.raises(anyio.ClosedResourceError):
                    await direct.wait_readable()


async def test_too_many_buffers_go_the_normal_way(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair() as (_client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            assert direct.try_send([b"x"] * (MAX_BUFFERS + 1)) == 0
            assert direct.try_send([]) == 0


buffer_lists = st.lists(st.binary(max_size=40), max_size=8)


@given(buffers=buffer_lists, data=st.data())
def test_remainder_is_exactly_the_untaken_bytes(buffers: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(buffers)
    taken = data.draw(st.integers(0, len(whole)))
    left = remainder(buffers, taken)
    assert b"".join(left) == whole[taken:]
    assert all(len(view) > 0 for view in left)


@given(buffers=buffer_lists)
def test_remainder_copies_nothing(buffers: list[bytes]) -> None:
    arrays = [bytearray(b) for b in buffers]
    for view in remainder(arrays, 0):
        assert any(view.obj is array for array in arrays)


@given(operations=st.integers(0, 5 * CHECKPOINT_EVERY))
def test_a_checkpoint_is_due_once_every_checkpoint_every_operations(operations: int) -> None:
    direct = DirectSocket(socket.socket())
    try:
        due = [direct.due_checkpoint() for _ in range(operations)]
    finally:
        direct.raw_socket.close()
    assert sum(due) == operations // CHECKPOINT_EVERY
    # Never two in a row: between two checkpoints, CHECKPOINT_EVERY - 1 free operations.
    positions = [i for i, flag in enumerate(due) if flag]
    assert all(b - a == CHECKPOINT_EVERY for a, b in itertools.pairwise(positions))


async def test_close_now_wakes_a_waiting_reader_and_the_stream_closes_after(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return  # asyncio: nothing qualifies (checked above)
            woken: list[BaseException] = []

            async def wait() -> None:
                try:
                    await direct.wait_readable()
                except anyio.ClosedResourceError as exc:
                    woken.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await anyio.sleep(0.01)  # the reader waits now
                direct.close_now()
            assert len(woken) == 1
            assert direct.raw_socket.fileno() == -1
            direct.close_now()  # again: nothing to do
            await server.aclose()  # the stream's own close skips a closed socket
            with pytest.raises(anyio.EndOfStream):
                await client.receive()  # the peer sees the close


async def test_time_and_cancellation_check_follow_the_loop(anyio_backend_name: str) -> None:
    with anyio.fail_after(5):
        async with pair() as (_, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            before = anyio.current_time()
            assert before <= direct.time() <= anyio.current_time()
            await direct.checkpoint_if_cancelled()  # not cancelled: returns
            with anyio.CancelScope() as scope:
                scope.cancel()
                await direct.checkpoint_if_cancelled()
                raise AssertionError("a cancelled caller must not get past the check")
            assert scope.cancelled_caught


async def test_drained_says_whether_the_last_read_emptied_the_socket(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            assert direct.drained  # nothing read yet: a reader waits first
            await client.send(b"hello")
            await direct.readable()
            assert direct.try_receive(3) == b"hel"
            assert not direct.drained  # as much as asked: there may be more
            assert direct.try_receive(3) == b"lo"
            assert direct.drained  # less than asked: the buffer is empty
            direct.drained = False
            assert direct.try_receive(3) is None
            assert direct.drained  # EAGAIN: wait before reading again


async def test_through_a_poller_a_socket_is_waited_for_woken_and_released(
    anyio_backend_name: str,
) -> None:
    """use_poller(): waits go through the poller; wake_reader() and close_now() end them."""
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            poller = poller_for_trio()
            assert (poller is not None) is (direct is not None)
            if direct is None or poller is None:
                return
            try:
                direct.use_poller(poller)
                await direct.readable()  # the mark of a new registration: at once
                assert direct.try_receive(1024) is None
                outcome: list[str] = []

                async def wait() -> None:
                    try:
                        await direct.readable()
                    except direct.ended:
                        outcome.append("woken")
                    else:
                        outcome.append("bytes")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await anyio.sleep(0.01)
                    await client.send(b"x")
                assert outcome == ["bytes"]
                assert direct.try_receive(1024) == b"x"
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await anyio.sleep(0.01)
                    direct.wake_reader()  # the end of the connection
                assert outcome == ["bytes", "woken"]
                # Back to Trio's own waits: the poller forgets the socket.
                direct.leave_poller()
                await client.send(b"y")
                await direct.readable()
                assert direct.try_receive(1024) == b"y"
                direct.use_poller(poller)
                await direct.readable()  # the new registration's mark again
                async with anyio.create_task_group() as tg:
                    tg.start_soon(wait)
                    await anyio.sleep(0.01)
                    direct.close_now()
                assert outcome == ["bytes", "woken", "woken"]
            finally:
                poller.close()


async def test_receive_into_fills_a_view_and_arrived_counts_what_waits(
    anyio_backend_name: str,
) -> None:
    with anyio.fail_after(5):
        async with pair() as (client, server):
            direct = direct_of(server, anyio_backend_name)
            if direct is None:
                return
            buffer = bytearray(8)
            view = memoryview(buffer)
            assert direct.arrived() == 0
            assert direct.try_receive_into(view) is None
            assert direct.drained
            await client.send(b"0123456789")
            await direct.readable()
            with anyio.fail_after(1):
                while direct.arrived() < 10:  # loopback: all of it, at once or nearly
                    await anyio.sleep(0.001)
            assert direct.arrived() == 10
            assert direct.try_receive_into(view[2:]) == 6
            assert buffer == b"\x00\x00012345"
            assert not direct.drained  # as much as asked: there may be more
            assert direct.arrived() == 4
            assert direct.try_receive_into(view) == 4
            assert buffer[:4] == b"6789"
            assert direct.drained  # less than asked: the buffer is empty
            assert direct.arrived() == 0
            await client.send_eof()
            await direct.readable()
            with pytest.raises(anyio.EndOfStream):
                direct.try_receive_into(view)
            await server.aclose()
            assert direct.arrived() == 0  # a closed socket cannot tell: 0, not an error
