"""Peers that go silent, never close, vanish, or outnumber a shutdown (threats L1-L5).

Keepalive and close timers are scaled down (0.3 s pings, 0.5 s close
timeout) so each scenario takes about a second; docs/threats.md gives the
defaults they stand for.
"""

from __future__ import annotations

import contextlib
import struct

import anyio
import pytest

import wskit
from tests.adversarial.harness import (
    CLOSE_TIMEOUT,
    KiB,
    MiB,
    attacked_server,
    bounded,
    upgraded,
)
from tests.frames import BINARY, TEXT, frame
from tests.io.raw import RawClient, parse_frames

pytestmark = pytest.mark.anyio

PING_INTERVAL = PING_TIMEOUT = 0.3
CONNECTION = 512 * KiB


def close_frame(data: bytes) -> tuple[int, str] | None:
    """(code, reason) of the close frame among server frames, if any."""
    for opcode, payload in parse_frames(data):
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0], payload[2:].decode()
    return None


class Ends:
    """A handler wrapper that records each connection's close code and error."""

    def __init__(self, body=None) -> None:
        self.body = body
        self.codes: list[int | None] = []

    async def __call__(self, ws: wskit.WebSocket) -> None:
        try:
            if self.body is not None:
                await self.body(ws)
            else:
                async for message in ws:
                    await ws.send(message)
        except wskit.ConnectionClosed:
            pass
        finally:
            with anyio.CancelScope(shield=True):
                await ws.wait_closed()
            self.codes.append(ws.close_code)


async def test_a_silent_peer_after_the_handshake_is_closed_1011_by_the_heartbeat():
    ends = Ends()
    async with attacked_server(ends, ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT) as s:
        async with bounded(memory=CONNECTION, seconds=2, server=s):
            async with await upgraded(s.port) as raw:
                start = anyio.current_time()
                data, closed = await raw.read_until_closed(timeout=2)  # reads, never pongs
                elapsed = anyio.current_time() - start
    assert closed
    assert close_frame(data) == (1011, "keepalive ping timeout")
    assert [opcode for opcode, _ in parse_frames(data)] == [0x9, 0x8]  # one ping, then close
    # The heartbeat starts when the server opens the connection, which may be
    # a hair before the client has read the 101 and started its clock.
    due = PING_INTERVAL + PING_TIMEOUT
    assert due - 0.05 <= elapsed < due + 0.3
    assert ends.codes == [1011]


async def test_a_peer_that_never_answers_our_close_is_cut_at_close_timeout():
    returned: list[float] = []

    async def close_at_once(ws: wskit.WebSocket) -> None:
        start = anyio.current_time()
        await ws.close(1000)
        returned.append(anyio.current_time() - start)

    ends = Ends(close_at_once)
    async with attacked_server(ends) as server:
        async with bounded(memory=CONNECTION, seconds=2, server=server):
            async with await upgraded(server.port) as raw:
                start = anyio.current_time()
                data, closed = await raw.read_until_closed(timeout=2)  # reads, never answers
                elapsed = anyio.current_time() - start
    assert closed
    assert close_frame(data) == (1000, "")
    # The server's clock starts at its close(), which may come before the
    # client has finished reading the 101 and started its own: the client
    # may see the cut a little early. The server's own measure is exact.
    assert CLOSE_TIMEOUT - 0.05 <= elapsed < CLOSE_TIMEOUT + 0.3
    assert CLOSE_TIMEOUT <= returned[0] < CLOSE_TIMEOUT + 0.3
    assert ends.codes == [1006]  # no closing handshake took place


async def test_a_handler_that_raises_closes_1011_and_the_server_goes_on():
    async def broken(ws: wskit.WebSocket) -> None:
        if ws.request is not None and ws.request.path == "/boom":
            raise RuntimeError("boom")
        async for message in ws:
            await ws.send(message)

    async with attacked_server(broken) as server:
        # The error log formats a traceback (and loads source lines): room for it.
        async with bounded(memory=CONNECTION + 512 * KiB, seconds=2, server=server):
            async with await RawClient.open(server.port) as raw:
                await raw.handshake(b"/boom")
                data, closed = await raw.read_until_closed(timeout=1)
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
    assert closed
    assert close_frame(data) == (1011, "internal error")


async def test_repeated_resets_mid_message_leak_nothing():
    count = 200
    ends = Ends()
    async with attacked_server(ends) as server:
        async with bounded(memory=2 * MiB, seconds=4, server=server):
            for _ in range(count):
                raw = await upgraded(server.port)
                await raw.send(frame(TEXT, b"half a message", fin=False))
                raw.reset_on_close()
                await raw.aclose()
            with anyio.fail_after(2):
                while len(ends.codes) < count:
                    await anyio.sleep(0.01)
    # Every handler saw the abnormal end, none hung.
    assert ends.codes == [1006] * count


async def test_graceful_shutdown_with_100_clients_sends_each_1001():
    count = 100
    raws: list[RawClient] = []
    codes: list[tuple[int, str] | None] = []
    ends = Ends()
    async with contextlib.AsyncExitStack() as stack:
        server = await stack.enter_async_context(attacked_server(ends, compression=None))
        async with bounded(memory=count * 64 * KiB + MiB, seconds=3):
            for _ in range(count):
                raws.append(await stack.enter_async_context(await upgraded(server.port)))
            with anyio.fail_after(2):
                while len(server.connections) < count:
                    await anyio.sleep(0.01)

            async def read(raw: RawClient) -> None:
                data, closed = await raw.read_until_closed(timeout=2)
                assert closed
                codes.append(close_frame(data))

            start = anyio.current_time()
            async with anyio.create_task_group() as tasks:
                for raw in raws:
                    tasks.start_soon(read, raw)
                server.close()  # the raw clients never answer the close
                await server.wait_closed()
            shutdown = anyio.current_time() - start
            for raw in raws:
                await raw.aclose()
    assert codes == [(1001, "server shutting down")] * count
    assert shutdown < CLOSE_TIMEOUT + 0.5
    assert ends.codes == [1006] * count, set(ends.codes)  # none answered our close frame


async def test_a_frame_after_close_is_ignored():
    # A peer that keeps talking after its close frame gets nothing more.
    async with attacked_server(Ends()) as server:
        async with bounded(memory=CONNECTION, seconds=2, server=server):
            async with await upgraded(server.port) as raw:
                await raw.send(frame(0x8, b"\x03\xe8") + frame(BINARY, b"late"))
                data, closed = await raw.read_until_closed(timeout=1)
    assert closed
    assert [opcode for opcode, _ in parse_frames(data)] == [0x8]
