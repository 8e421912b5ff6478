"""The hook API: order, first refusal wins, errors, context, lifespan, client hooks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

import wskit
from wskit.plugins import DROP, PASS, ClientRequest, Close, Handshake, Plugin, Reply
from wskit.testing import handshake, pair

from .support import CONNECTIONS, TRANSPORTS, attempt, client_of

pytestmark = pytest.mark.anyio


class Recorder(Plugin):
    """Records every hook call into a shared log."""

    def __init__(self, label: str, log: list[str], *, refuse: int | None = None) -> None:
        self.label = label
        self.log = log
        self.refuse = refuse

    async def on_handshake(self, handshake: Handshake) -> wskit.Response | None:
        self.log.append(f"{self.label}.handshake")
        handshake.context.setdefault("seen", []).append(self.label)
        if self.refuse is not None:
            return wskit.Response.text(self.refuse, f"refused by {self.label}\n")
        return None

    def on_refused(self, handshake: Handshake) -> None:
        self.log.append(f"{self.label}.refused")

    async def on_connect(self, ws: wskit.WebSocket) -> None:
        self.log.append(f"{self.label}.connect")

    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
        self.log.append(f"{self.label}.message:{message}")
        return PASS

    async def on_close(self, ws: wskit.WebSocket, code: int, reason: str) -> None:
        self.log.append(f"{self.label}.close:{code}")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_first_refusal_wins_and_earlier_plugins_are_told(transport: str) -> None:
    log: list[str] = []
    plugins = [Recorder("a", log), Recorder("b", log, refuse=403), Recorder("c", log, refuse=401)]
    outcome = await attempt(transport, plugins)
    assert outcome.status == 403
    assert outcome.body == b"refused by b\n"
    # c never ran; a passed and is owed on_refused; b refused and is not.
    assert log == ["a.handshake", "b.handshake", "a.refused"]


async def test_hooks_run_in_list_order_through_a_whole_connection() -> None:
    log: list[str] = []
    async with pair(plugins=[Recorder("a", log), Recorder("b", log)]) as p:
        await p.client.send("hi")
        assert await p.client.recv() == "hi"
        assert p.server_ws.context["seen"] == ["a", "b"]
        await p.client.close()
        await p.server_ws.wait_closed()
    assert log == [
        "a.handshake",
        "b.handshake",
        "a.connect",
        "b.connect",
        "a.message:hi",
        "b.message:hi",
        "a.close:1000",
        "b.close:1000",
    ]


class Verdicts(Plugin):
    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
        if message == "drop":
            return DROP
        if message == "reply":
            return Reply(b"a reply")
        if message == "close":
            return Close(4001, "closed by a plugin")
        return PASS


@pytest.mark.parametrize("transport", CONNECTIONS)
async def test_verdicts_drop_reply_and_close(transport: str) -> None:
    delivered: list[str | bytes] = []

    async def handler(ws: wskit.WebSocket) -> None:
        async for message in ws:
            delivered.append(message)
            await ws.send(message)

    async with client_of(transport, handler, [Verdicts()]) as client:
        for message in ["drop", "one", "reply", "two"]:
            await client.send(message)
        # The reply leaves from the reader at once, the echoes from the handler.
        received = {await client.recv() for _ in range(3)}
        assert received == {"one", b"a reply", "two"}
        await client.send("close")
        await client.send("after the close")  # never delivered
        with pytest.raises(wskit.ConnectionClosedError) as caught:
            await client.recv()
        assert caught.value.code == 4001
        assert caught.value.reason == "closed by a plugin"
    assert delivered == ["one", "two"]


@pytest.mark.parametrize("transport", CONNECTIONS)
async def test_whole_fragmented_messages_reach_on_message(transport: str) -> None:
    seen: list[str | bytes] = []

    class Spy(Plugin):
        def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
            seen.append(message)
            return PASS

    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with client_of(transport, echo, [Spy()]) as client:
        await client.send_fragments(["ab", "cd", "ef"])
        assert await client.recv() == "abcdef"
        await client.send("whole")
        assert await client.recv() == "whole"
    assert seen == ["abcdef", "whole"]


class Raises(Plugin):
    def __init__(self, hook: str) -> None:
        self.hook = hook

    @property
    def name(self) -> str:
        return f"Raises[{self.hook}]"

    async def on_handshake(self, handshake: Handshake) -> wskit.Response | None:
        if self.hook == "handshake":
            raise RuntimeError("boom in handshake")
        return None

    async def on_connect(self, ws: wskit.WebSocket) -> None:
        if self.hook == "connect":
            raise RuntimeError("boom in connect")

    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
        if self.hook == "message":
            raise RuntimeError("boom in message")
        if self.hook == "bad-verdict":
            return "not a verdict"
        return PASS

    async def on_close(self, ws: wskit.WebSocket, code: int, reason: str) -> None:
        if self.hook == "close":
            raise RuntimeError("boom in close")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_raising_handshake_hook_answers_500_and_is_logged_by_name(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    with caplog.at_level(logging.ERROR, logger="wskit.plugins"):
        outcome = await attempt(transport, [Recorder("a", log), Raises("handshake")])
    assert outcome.status == 500
    assert log == ["a.handshake", "a.refused"]
    assert "plugin Raises[handshake] failed in on_handshake" in caplog.text
    assert "boom in handshake" in caplog.text


async def test_a_raising_connect_hook_closes_1011_before_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handled = False

    async def handler(ws: wskit.WebSocket) -> None:
        nonlocal handled
        handled = True

    with caplog.at_level(logging.ERROR, logger="wskit.plugins"):
        async with pair(handler, plugins=[Raises("connect")]) as p:
            with pytest.raises(wskit.ConnectionClosedError) as caught:
                await p.client.recv()
    assert caught.value.code == 1011
    assert not handled
    assert "plugin Raises[connect] failed in on_connect" in caplog.text


@pytest.mark.parametrize("transport", CONNECTIONS)
@pytest.mark.parametrize("hook", ["message", "bad-verdict"])
async def test_a_raising_message_hook_closes_1011(
    hook: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Over TCP on asyncio the hook runs in the lean stream's callback.
    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    with caplog.at_level(logging.ERROR, logger="wskit.plugins"):
        async with client_of(transport, echo, [Raises(hook)]) as client:
            await client.send("x")
            with pytest.raises(wskit.ConnectionClosedError) as caught:
                await client.recv()
    assert caught.value.code == 1011
    assert f"plugin Raises[{hook}]" in caplog.text


async def test_a_raising_close_hook_does_not_stop_the_next_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    with caplog.at_level(logging.ERROR, logger="wskit.plugins"):
        async with pair(plugins=[Raises("close"), Recorder("b", log)]) as p:
            await p.client.close(4000)
            await p.server_ws.wait_closed()
    await anyio.sleep(0.05)  # on_close runs right after the close
    assert "b.close:4000" in log
    assert "plugin Raises[close] failed in on_close" in caplog.text


async def test_on_refused_follows_a_handshake_that_times_out() -> None:
    log: list[str] = []
    plugins = [Recorder("a", log)]

    async def slow(request: wskit.Request) -> wskit.Response | None:
        await anyio.sleep(10)
        return None

    async with wskit.serve(
        lambda ws: ws.close(),
        "127.0.0.1",
        0,
        plugins=plugins,
        process_request=slow,
        open_timeout=0.2,
    ) as server:
        with pytest.raises(wskit.HandshakeError):
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=2):
                pass
        with anyio.fail_after(2):
            while "a.refused" not in log:
                await anyio.sleep(0.01)
    assert log == ["a.handshake", "a.refused"]


async def test_lifespan_wraps_every_connection() -> None:
    log: list[str] = []

    class Resource(Plugin):
        @asynccontextmanager
        async def _life(self) -> AsyncIterator[None]:
            log.append("open")
            yield
            log.append("closed")

        def lifespan(self, server: wskit.Server) -> object:
            return self._life()

        async def on_close(self, ws: wskit.WebSocket, code: int, reason: str) -> None:
            log.append(f"on_close:{code}")

    async def handler(ws: wskit.WebSocket) -> None:
        await ws.recv()

    async with wskit.serve(handler, "127.0.0.1", 0, plugins=[Resource()]) as server:
        assert log == ["open"]
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
            await ws.send("x")
            await ws.wait_closed()
    # Leaving serve() closed the connection, ran on_close, then the lifespan.
    assert log == ["open", "on_close:1000", "closed"]


async def test_a_failing_lifespan_stops_the_server_from_starting() -> None:
    class Broken(Plugin):
        def lifespan(self, server: wskit.Server) -> object:
            @asynccontextmanager
            async def life() -> AsyncIterator[None]:
                raise OSError("redis is down")
                yield

            return life()

    with pytest.raises(wskit.PluginError, match="plugin Broken failed to start"):
        async with wskit.serve(lambda ws: ws.close(), "127.0.0.1", 0, plugins=[Broken()]):
            pass


def test_plugins_must_be_plugin_instances() -> None:
    with pytest.raises(wskit.UsageError, match="subclass Plugin"):
        wskit.serve(lambda ws: ws.close(), plugins=[object()])  # type: ignore[list-item]


def test_close_verdicts_are_checked_when_made() -> None:
    with pytest.raises(wskit.UsageError, match="may not be sent"):
        Close(1005)
    with pytest.raises(wskit.UsageError, match="123 bytes"):
        Close(1008, "x" * 124)


class AddsHeader(Plugin):
    async def on_client_request(self, request: ClientRequest) -> None:
        request.headers.append(("X-Client-Plugin", "yes"))
        request.subprotocols.append("chat")
        request.resource += "?from=plugin"
        request.context["sent"] = True


async def test_client_hooks_shape_the_upgrade_request() -> None:
    async def handler(ws: wskit.WebSocket) -> None:
        assert ws.request is not None
        await ws.send(f"{ws.request.header('x-client-plugin')} {ws.request.target}")

    async with wskit.serve(handler, "127.0.0.1", 0, subprotocols=["chat"]) as server:
        async with wskit.connect(
            f"ws://127.0.0.1:{server.port}/path", plugins=[AddsHeader()]
        ) as ws:
            assert await ws.recv() == "yes /path?from=plugin"
            assert ws.subprotocol == "chat"
            assert ws.context == {"sent": True}


async def test_a_raising_client_hook_is_a_plugin_error() -> None:
    class Broken(Plugin):
        async def on_client_request(self, request: ClientRequest) -> None:
            raise LookupError("no token in the keyring")

    with pytest.raises(wskit.PluginError, match="plugin Broken failed to prepare"):
        async with wskit.connect("ws://127.0.0.1:9/", plugins=[Broken()]):
            pass


async def test_client_side_message_hooks_see_server_messages() -> None:
    async def handler(ws: wskit.WebSocket) -> None:
        await ws.send("ignored")
        await ws.send("kept")
        await ws.recv()

    class DropIgnored(Plugin):
        def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> object:
            return DROP if message == "ignored" else PASS

    async with wskit.serve(handler, "127.0.0.1", 0) as server:
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/", plugins=[DropIgnored()]) as ws:
            assert await ws.recv() == "kept"


async def test_close_after_closes_when_due_and_can_be_cancelled() -> None:
    async with pair() as p:
        p.server_ws.close_after(0.1, 4002, "planned", key="k")
        p.server_ws.close_after(None, key="k")  # cancelled
        p.server_ws.close_after(0.15, 4003, "planned again", key="other")
        with anyio.fail_after(3), pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
    assert (caught.value.code, caught.value.reason) == (4003, "planned again")


async def test_handshake_helper_omits_and_repeats_headers() -> None:
    response = await handshake([], omit=["Sec-WebSocket-Key"])
    assert response.status == 400
    ok = await handshake([])
    assert ok.status == 101
    assert ok.header("upgrade") == "websocket"
