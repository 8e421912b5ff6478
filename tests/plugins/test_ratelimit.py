"""RateLimit: budgets and actions, handshake rate (429), connection caps (503 / 1013)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio
import pytest

import wskit
from wskit.plugins import DROP, PASS, Auth, Budget, Close, Plugin, Rate, RateLimit, Reply
from wskit.testing import FakeClock, pair

from .support import attempt

pytestmark = pytest.mark.anyio


class Counter(Plugin):
    """Counts the messages that reach the server, dropped ones included (runs first)."""

    def __init__(self) -> None:
        self.seen = 0

    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
        self.seen += 1
        return PASS

    async def until(self, count: int) -> None:
        with anyio.fail_after(5):
            while self.seen < count:
                await anyio.sleep(0.001)


async def test_over_budget_messages_get_the_action_drop() -> None:
    clock = FakeClock()
    counter = Counter()
    limit = RateLimit(per_connection=Budget(messages=Rate(1, burst=2)), action=DROP, clock=clock)
    async with pair(plugins=[counter, limit]) as p:
        for i in range(4):
            await p.client.send(f"m{i}")
        await counter.until(4)  # the server saw them all before time moves
        clock.advance(1.0)  # one more message's worth
        await p.client.send("m4")
        await p.client.send("m5")
        await counter.until(6)
        clock.advance(1.0)
        await p.client.send("m6")
        with anyio.fail_after(5):
            received = [await p.client.recv() for _ in range(4)]
    assert received == ["m0", "m1", "m4", "m6"]


async def test_over_budget_messages_get_an_error_reply() -> None:
    clock = FakeClock()
    limit = RateLimit(
        per_connection=Budget(messages=Rate(1, burst=1)), action=Reply("slow down"), clock=clock
    )
    async with pair(plugins=[limit]) as p:
        await p.client.send("a")
        await p.client.send("b")
        assert {await p.client.recv(), await p.client.recv()} == {"a", "slow down"}


async def test_over_budget_closes_1008_by_default() -> None:
    limit = RateLimit(per_connection=Budget(messages=Rate(1, burst=3)), clock=FakeClock())
    async with pair(plugins=[limit]) as p:
        for i in range(3):
            await p.client.send(str(i))
        assert [await p.client.recv() for _ in range(3)] == ["0", "1", "2"]
        await p.client.send("3")
        with pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
    assert (caught.value.code, caught.value.reason) == (1008, "rate limit exceeded")


async def test_byte_budget_counts_utf8_bytes() -> None:
    clock = FakeClock()
    limit = RateLimit(
        per_connection=Budget(bytes=Rate(10, burst=10)), action=Reply("too much"), clock=clock
    )
    async with pair(plugins=[limit]) as p:
        await p.client.send("é" * 5)  # 10 bytes: exactly the burst
        assert await p.client.recv() == "é" * 5
        await p.client.send(b"x")
        assert await p.client.recv() == "too much"
        clock.advance(0.1)  # the server answered above: it is done with b"x"
        await p.client.send(b"y")
        assert await p.client.recv() == b"y"


async def test_a_principal_shares_one_budget_across_connections_and_reconnects() -> None:
    clock = FakeClock()
    limit = RateLimit(
        per_principal=Budget(messages=Rate(1, burst=2)), action=Reply("over"), clock=clock
    )
    auth = Auth.bearer({"t": "alice"})
    headers = [("Authorization", "Bearer t")]
    async with pair(plugins=[auth, limit], headers=headers) as first:
        await first.client.send("1")
        assert await first.client.recv() == "1"
    async with pair(plugins=[auth, limit], headers=headers) as second:
        await second.client.send("2")
        assert await second.client.recv() == "2"
        await second.client.send("3")  # the third of the shared burst of 2
        assert await second.client.recv() == "over"


async def test_per_ip_budget_is_shared_by_connections_from_one_address() -> None:
    clock = FakeClock()
    limit = RateLimit(per_ip=Budget(messages=Rate(1, burst=1)), action=Reply("over"), clock=clock)
    async with (
        pair(plugins=[limit], client_address=("198.51.100.1", 1000)) as a,
        pair(plugins=[limit], client_address=("198.51.100.1", 1001)) as b,
        pair(plugins=[limit], client_address=("198.51.100.2", 1000)) as c,
    ):
        await a.client.send("a")
        assert await a.client.recv() == "a"
        await b.client.send("b")
        assert await b.client.recv() == "over"  # same IP, budget spent
        await c.client.send("c")
        assert await c.client.recv() == "c"  # another IP


async def test_handshake_rate_per_ip_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    limit = RateLimit(handshakes_per_ip=Rate(0.5, burst=2), clock=clock)
    statuses = [(await attempt("tcp", [limit])).status for _ in range(3)]
    assert statuses == [101, 101, 429]
    refused = await attempt("tcp", [limit])
    assert refused.header("retry-after") == "2"  # one token at 0.5/s
    clock.advance(2.0)
    assert (await attempt("tcp", [limit])).status == 101


@asynccontextmanager
async def open_clients(port: int, count: int) -> AsyncIterator[list[wskit.WebSocket]]:
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(count):
            ws = await stack.enter_async_context(wskit.connect(f"ws://127.0.0.1:{port}/"))
            clients.append(ws)
        yield clients


async def hold(ws: wskit.WebSocket) -> None:
    async for _ in ws:
        pass


async def test_connection_cap_answers_503_before_the_upgrade_and_frees_slots() -> None:
    limit = RateLimit(max_connections=2, retry_after=7)
    async with wskit.serve(hold, "127.0.0.1", 0, plugins=[limit]) as server:
        async with open_clients(server.port, 2):
            assert limit.connections == 2
            with pytest.raises(wskit.HandshakeRejected) as caught:
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/"):
                    pass
            assert caught.value.status_code == 503
            assert dict(caught.value.headers)["Retry-After"] == "7"
        with anyio.fail_after(3):
            while limit.connections:
                await anyio.sleep(0.01)
        async with open_clients(server.port, 2):
            assert limit.connections == 2


async def test_per_ip_cap() -> None:
    limit = RateLimit(max_connections_per_ip=1)
    async with pair(plugins=[limit], client_address=("203.0.113.9", 1)):
        outcome = await wskit.testing.handshake([limit], client_address=("203.0.113.9", 2))
        assert outcome.status == 503
        other = await wskit.testing.handshake([limit], client_address=("203.0.113.10", 2))
        assert other.status == 101


async def test_a_slot_is_given_back_when_a_later_plugin_refuses() -> None:
    limit = RateLimit(max_connections=1)
    auth = Auth.bearer({"t": "alice"})
    for _ in range(3):
        assert (await attempt("tcp", [limit, auth])).status == 401
    assert limit.connections == 0


async def test_shedding_mode_upgrades_then_closes_1013() -> None:
    limit = RateLimit(max_connections=1, when_full="close")
    async with wskit.serve(hold, "127.0.0.1", 0, plugins=[limit]) as server:
        async with open_clients(server.port, 1):
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as shed:
                with pytest.raises(wskit.ConnectionClosedError) as caught:
                    await shed.recv()
    assert (caught.value.code, caught.value.reason) == (1013, "try again later")


def test_configuration_errors() -> None:
    with pytest.raises(wskit.UsageError, match="PASS"):
        RateLimit(action=PASS)
    with pytest.raises(wskit.UsageError, match="burst"):
        Rate(1, burst=0)
    with pytest.raises(wskit.UsageError, match="per_second"):
        Rate(0, burst=1)
    assert isinstance(RateLimit(action=Close(4000)), RateLimit)
