"""The tests docs/howto/plugins.md builds, step by step, for examples/slow_mode.py."""

from __future__ import annotations

import pytest

import wskit
from examples.slow_mode import SlowMode
from wskit.testing import FakeClock, handshake, pair

pytestmark = pytest.mark.anyio

NICK = [("X-Nickname", "ada")]


async def test_a_request_without_a_nickname_is_refused() -> None:
    response = await handshake([SlowMode(5)])
    assert response.status == 400
    assert response.body == b"Send your nickname in X-Nickname.\n"


async def test_the_nickname_lands_in_the_context() -> None:
    async with pair(plugins=[SlowMode(5)], headers=NICK) as p:
        assert p.server_ws.context["nickname"] == "ada"


async def test_a_second_message_too_soon_gets_a_reply_instead() -> None:
    clock = FakeClock()
    async with pair(plugins=[SlowMode(5, clock=clock)], headers=NICK) as p:
        await p.client.send("first")
        assert await p.client.recv() == "first"  # echoed by the handler
        await p.client.send("second")
        assert await p.client.recv() == "slow mode: wait 5 s, ada"
        clock.advance(5)
        await p.client.send("third")
        assert await p.client.recv() == "third"


async def test_the_plugin_forgets_closed_connections() -> None:
    plugin = SlowMode(5)
    async with pair(plugins=[plugin], headers=NICK) as p:
        await p.client.send("hello")
        await p.client.recv()
        assert len(plugin.last_message) == 1
        await p.client.close()
        await p.server_ws.wait_closed()
    assert plugin.last_message == {}


async def test_over_a_real_socket() -> None:
    async with wskit.serve(wskit.testing.echo, "127.0.0.1", 0, plugins=[SlowMode(5)]) as server:
        url = f"ws://127.0.0.1:{server.port}/"
        with pytest.raises(wskit.HandshakeRejected) as refused:
            async with wskit.connect(url):
                pass
        assert refused.value.status_code == 400
        async with wskit.connect(url, extra_headers=NICK) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
