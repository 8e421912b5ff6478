"""Plugins under attack: handshake floods, connection floods and guessing, over real sockets.

Each scenario asserts the outcome (the status, before any upgrade) and a
bound: time to answer, file descriptors back to baseline, memory growth.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import anyio
import pytest

import wskit
from tests.io.support import open_fds
from wskit.plugins import Auth, Rate, RateLimit
from wskit.testing import handshake

pytestmark = pytest.mark.anyio

UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def status_of(port: int) -> int:
    """Send an upgrade request on a raw socket; the status of the answer."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(UPGRADE)
        head = b""
        while b"\r\n" not in head:
            head += await stream.receive()
        return int(head.split(b" ", 2)[1])


async def hold(ws: wskit.WebSocket) -> None:
    async for _ in ws:
        pass


async def test_a_handshake_flood_from_one_address_gets_429_and_costs_little() -> None:
    limit = RateLimit(handshakes_per_ip=Rate(5, burst=10))
    fds = open_fds()
    tracemalloc.start()
    try:
        async with wskit.serve(hold, "127.0.0.1", 0, plugins=[limit]) as server:
            start = time.monotonic()
            statuses = []
            for _ in range(200):
                statuses.append(await status_of(server.port))
            elapsed = time.monotonic() - start
        grown = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The burst passes, plus what the rate refilled meanwhile; the rest are refused.
    assert 10 <= statuses.count(101) <= 10 + 5 * elapsed + 1
    assert statuses.count(429) == 200 - statuses.count(101)
    assert elapsed < 10
    assert grown < 8 * 1024 * 1024  # peak traced memory over the whole flood
    assert open_fds() <= fds


async def test_connections_over_the_cap_get_503_before_any_upgrade() -> None:
    limit = RateLimit(max_connections=10, retry_after=3)
    fds = open_fds()
    async with wskit.serve(hold, "127.0.0.1", 0, plugins=[limit]) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        async with anyio.create_task_group() as holders:
            opened = anyio.Event()
            count = 0

            async def keep_open() -> None:
                nonlocal count
                async with wskit.connect(url) as ws:
                    count += 1
                    if count == 10:
                        opened.set()
                    await ws.wait_closed()

            for _ in range(10):
                holders.start_soon(keep_open)
            with anyio.fail_after(10):
                await opened.wait()
            # Raw sockets show the answer is a 503 head, never a 101.
            start = time.monotonic()
            refused = [await status_of(server.port) for _ in range(50)]
            assert refused == [503] * 50
            assert time.monotonic() - start < 5
            assert len(server.connections) == 10
            server.close()
    with anyio.fail_after(5):
        while open_fds() > fds:
            await anyio.sleep(0.01)


async def test_auth_refusals_take_the_same_time_whatever_the_guess_shares() -> None:
    secret = "t" * 2048
    auth = Auth.bearer({secret: "alice"})
    guesses = {"none": "x" * 2048, "long prefix": "t" * 2047 + "x"}
    times: dict[str, list[float]] = {name: [] for name in guesses}
    for _ in range(25):
        for name, guess in guesses.items():
            start = time.perf_counter()
            response = await handshake([auth], headers=[("Authorization", f"Bearer {guess}")])
            times[name].append(time.perf_counter() - start)
            assert response.status == 401
    ratio = statistics.median(times["long prefix"]) / statistics.median(times["none"])
    assert 0.5 < ratio < 2.0, ratio
