"""Review of pull mode through the server's poller: connections that wait as followers.

In the pull-mode tests a lone connection waits through Trio for its own
socket (solo). Here two other connections' handlers wait first: the first
goes solo, the second leads the poller and keeps the lead, so the connection
under test parks as a follower and is woken by the leader's dispatch; on
asyncio the same scenarios check the behaviour is the same. Real servers and
clients on 127.0.0.1.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import wskit
from tests.frames import CLOSE, PING, PONG, TEXT, frame
from tests.io.raw import RawClient, parse_frames
from wskit import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, WebSocket
from wskit.server import Server
from wskit.websocket import AWAY_CHECK

pytestmark = pytest.mark.anyio

# Read within two away periods; the rest is room for a loaded machine.
BOUND = 2 * AWAY_CHECK + 1.0


class Recorder:
    """Server connections by arrival, and how each handler's receiving ended."""

    def __init__(self) -> None:
        self.connections: list[WebSocket] = []
        self.received: list[list[str | bytes]] = []
        self.endings: list[BaseException | None] = []
        self._arrived = anyio.Condition()

    async def arrived(self, count: int) -> None:
        async with self._arrived:
            while len(self.connections) < count:
                await self._arrived.wait()

    async def register(self, ws: WebSocket) -> int:
        if ws.request is not None and ws.request.path == SOLO:
            return -1  # not recorded: it only takes the poller's solo place (see leading())
        async with self._arrived:
            self.connections.append(ws)
            self.received.append([])
            self.endings.append(None)
            self._arrived.notify_all()
        return len(self.connections) - 1

    async def echo_with_recv(self, ws: WebSocket) -> None:
        index = await self.register(ws)
        received = self.received[index] if index >= 0 else []
        try:
            while True:
                message = await ws.recv()
                received.append(message)
                await ws.send(message)
        except ConnectionClosed as exc:
            if index >= 0:
                self.endings[index] = exc

    async def echo_with_for(self, ws: WebSocket) -> None:
        index = await self.register(ws)
        received = self.received[index] if index >= 0 else []
        try:
            async for message in ws:
                received.append(message)
                await ws.send(message)
        except ConnectionClosed as exc:
            if index >= 0:
                self.endings[index] = exc


SOLO = "/solo"


@asynccontextmanager
async def leading(server: Server) -> AsyncIterator[wskit.WebSocket]:
    """A client whose server handler leads the poller on Trio (recorded first).

    A lone socket waits solo, through Trio, and leaves the lead to the next
    one: so another connection, not recorded, waits first and takes that place.
    """
    async with wskit.connect(f"ws://127.0.0.1:{server.port}{SOLO}") as solo:
        await solo.send("solo")
        assert await solo.recv() == "solo"
        async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
            await ws.send("lead")
            assert await ws.recv() == "lead"
            poller = server._poller
            if poller is not None:
                assert poller._solo is not None
                assert poller._leader is not None
            yield ws


async def parked(server: Server, count: int) -> None:
    """Wait until ``count`` server tasks are parked as followers (Trio; asyncio: a pause)."""
    poller = server._poller
    if poller is None:
        await anyio.sleep(0.05)
        return
    while len(poller) < count:
        await anyio.sleep(0.005)


async def test_followers_get_every_message_data_and_fin_in_one_write() -> None:
    recorder = Recorder()
    with anyio.fail_after(10):
        async with wskit.serve(recorder.echo_with_recv, "127.0.0.1", 0) as server:
            async with leading(server):
                clients = [await RawClient.open(server.port) for _ in range(3)]
                try:
                    for client in clients:
                        await client.handshake()
                    await recorder.arrived(4)
                    await parked(server, 3)
                    # Message, close and FIN in one write: the follower may
                    # see them in one event; the end must not be lost.
                    for index, client in enumerate(clients):
                        await client.send(
                            frame(TEXT, b"last %d" % index) + frame(CLOSE, struct.pack("!H", 1000))
                        )
                        client.socket.shutdown(socket.SHUT_WR)
                    for client in clients:
                        data, closed = await client.read_until_closed(BOUND + 2)
                        assert closed
                        # The echo may not leave: the close came with the message.
                        assert parse_frames(data)[-1] == (CLOSE, struct.pack("!H", 1000))
                finally:
                    for client in clients:
                        await client.aclose()
                for index in range(1, 4):
                    assert recorder.received[index] == [f"last {index - 1}"]
                    ending = recorder.endings[index]
                    assert isinstance(ending, ConnectionClosedOK)
                    assert ending.code == 1000


async def test_a_reset_ends_a_follower_s_recv() -> None:
    recorder = Recorder()
    with anyio.fail_after(10):
        async with wskit.serve(recorder.echo_with_recv, "127.0.0.1", 0) as server:
            async with leading(server) as lead:
                async with await RawClient.open(server.port) as client:
                    await client.handshake()
                    await recorder.arrived(2)
                    await parked(server, 1)
                    client.reset_on_close()
                with anyio.fail_after(BOUND):
                    await recorder.connections[1].wait_closed()
                assert isinstance(recorder.endings[1], ConnectionClosedError)
                assert recorder.connections[1].close_code == 1006
                await lead.send("still")  # the leader is unharmed
                assert await lead.recv() == "still"


async def test_a_ping_reaches_a_follower_while_another_task_pings() -> None:
    # The handler waits in recv() (a follower); another task of the server
    # pings, wanting a reader while the puller is parked: the pull ends
    # with the pong, and a reader takes over.
    recorder = Recorder()
    with anyio.fail_after(10):
        async with wskit.serve(recorder.echo_with_recv, "127.0.0.1", 0) as server:
            async with leading(server) as lead:
                async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                    await recorder.arrived(2)
                    await parked(server, 1)
                    with anyio.fail_after(BOUND):
                        await recorder.connections[1].ping()
                    await ws.send("after")
                    assert await ws.recv() == "after"
                await lead.send("still")
                assert await lead.recv() == "still"


async def test_a_cancelled_follower_loses_nothing() -> None:
    recorder = Recorder()
    got: list[str | bytes] = []

    async def impatient(ws: WebSocket) -> None:
        index = await recorder.register(ws)
        if index == 0:  # the leader's: waits in recv() for the whole test
            while True:
                await ws.send(await ws.recv())
        while len(got) < 3:
            with anyio.move_on_after(0.02):
                got.append(await ws.recv())
        await ws.wait_closed()

    with anyio.fail_after(10):
        async with wskit.serve(impatient, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}") as lead:
                async with await RawClient.open(server.port) as client:
                    await lead.send("lead")
                    await client.handshake()
                    for index in range(3):
                        await anyio.sleep(0.05)  # some recv() cancelled while parked
                        await client.send(frame(TEXT, b"m%d" % index))
                    while len(got) < 3:
                        await anyio.sleep(0.01)
                    assert got == ["m0", "m1", "m2"]
                    await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                    _, closed = await client.read_until_closed(BOUND)
                    assert closed


async def test_a_handler_away_after_a_burst_still_answers_pings() -> None:
    release = anyio.Event()
    recorder = Recorder()

    async def takes_one(ws: WebSocket) -> None:
        index = await recorder.register(ws)
        if index <= 0:  # the solo (-1) and the leading connection echo
            while True:
                await ws.send(await ws.recv())
        await ws.recv()  # one of a burst: the rest stays queued
        await release.wait()
        while len(recorder.received[index]) < 2:
            recorder.received[index].append(await ws.recv())

    with anyio.fail_after(10):
        async with wskit.serve(takes_one, "127.0.0.1", 0) as server:
            async with leading(server):
                async with await RawClient.open(server.port) as client:
                    await client.handshake()
                    await recorder.arrived(2)
                    await parked(server, 1)
                    await client.send(frame(TEXT, b"a") + frame(TEXT, b"b") + frame(TEXT, b"c"))
                    await anyio.sleep(0.05)
                    for attempt in range(3):
                        await client.send(frame(PING, b"%d" % attempt))
                        with anyio.fail_after(BOUND):
                            data = bytearray(client.leftover)
                            while (PONG, b"%d" % attempt) not in parse_frames(bytes(data)):
                                data += await client.stream.receive()
                        client.leftover = b""
                    release.set()
                    while len(recorder.received[1]) < 2:
                        await anyio.sleep(0.01)
                    assert recorder.received[1] == ["b", "c"]


@pytest.mark.parametrize("handler", ["echo_with_recv", "echo_with_for"])
async def test_recv_and_async_for_end_alike(handler: str) -> None:
    for code, ok in ((1000, True), (1001, True), (4000, False)):
        recorder = Recorder()
        with anyio.fail_after(10):
            async with wskit.serve(getattr(recorder, handler), "127.0.0.1", 0) as server:
                async with leading(server):
                    async with wskit.connect(f"ws://127.0.0.1:{server.port}") as ws:
                        await recorder.arrived(2)
                        await parked(server, 1)
                        await ws.send("x")
                        assert await ws.recv() == "x"
                        await ws.close(code)
                    with anyio.fail_after(BOUND):
                        await recorder.connections[1].wait_closed()
                    ending = recorder.endings[1]
                    if handler == "echo_with_for" and ok:
                        assert ending is None  # the loop ended by itself
                    else:
                        assert isinstance(
                            ending, ConnectionClosedOK if ok else ConnectionClosedError
                        )
                        assert ending.code == code
                    assert recorder.received[1] == ["x"]


async def test_shutdown_with_many_followers_parked_closes_every_one() -> None:
    recorder = Recorder()
    count = 20
    with anyio.fail_after(15):
        async with wskit.serve(recorder.echo_with_for, "127.0.0.1", 0, close_timeout=2) as server:
            async with leading(server):
                clients = [await RawClient.open(server.port) for _ in range(count)]
                try:
                    for client in clients:
                        await client.handshake()
                    await recorder.arrived(count + 1)
                    await parked(server, count)
                    server.close()
                    for client in clients:
                        data = bytearray(client.leftover)
                        while not any(op == CLOSE for op, _ in parse_frames(bytes(data))):
                            data += await client.stream.receive()
                        await client.send(frame(CLOSE, struct.pack("!H", 1001)))
                    with anyio.fail_after(BOUND + 2):
                        await server.wait_closed()
                finally:
                    for client in clients:
                        await client.aclose()
            assert all(ws.close_code == 1001 for ws in recorder.connections)


async def test_many_connections_one_after_another_reuse_numbers_cleanly() -> None:
    # Each closed connection frees its descriptor for the next: nothing the
    # poller kept of the old one may touch the new one.
    recorder = Recorder()
    with anyio.fail_after(20):
        async with wskit.serve(recorder.echo_with_recv, "127.0.0.1", 0) as server:
            async with leading(server) as lead:
                for index in range(30):
                    async with await RawClient.open(server.port) as client:
                        await client.handshake()
                        await parked(server, 1)
                        await client.send(frame(TEXT, b"n%d" % index))
                        with anyio.fail_after(BOUND):
                            data = bytearray(client.leftover)
                            while not parse_frames(bytes(data)):
                                data += await client.stream.receive()
                        assert parse_frames(bytes(data)) == [(TEXT, b"n%d" % index)]
                        if index % 2:
                            client.reset_on_close()
                        else:
                            await client.send(frame(CLOSE, struct.pack("!H", 1000)))
                            _, closed = await client.read_until_closed(BOUND)
                            assert closed
                    with anyio.fail_after(BOUND):
                        await recorder.connections[-1].wait_closed()
                await lead.send("still")
                assert await lead.recv() == "still"
