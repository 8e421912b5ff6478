"""Interop with python ``websockets`` as an independent peer, in both directions.

wskit's server talks to a ``websockets`` client, and wskit's client to a
``websockets`` server, with permessage-deflate on and off. Both sides run one
script: non-ASCII text, binary, 1 MiB messages (the default limit of both
libraries; the incompressible one a little under), fragmented messages each
way (checked frame by frame on the ``websockets`` side with
``recv_streaming``), pings each way, and close codes and reasons started by
either side.

``websockets`` runs its threading implementation in worker threads
(``anyio.to_thread.run_sync``), so the same tests run on asyncio and on Trio.
Every blocking call on that side has its own timeout.
"""

from __future__ import annotations

import os
import queue
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Literal

import anyio
import pytest
from websockets.exceptions import ConnectionClosed as WsClosed
from websockets.exceptions import ConnectionClosedError as WsClosedError
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection as WsServerConnection
from websockets.sync.server import serve as ws_serve

import wskit
from wskit import ConnectionClosed, ConnectionClosedError, WebSocket

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("compression", [True, False])]

TIMEOUT = 5.0  # for every blocking call on the websockets side
TEXT = "héllo wörld ✓ — 日本語 🎉"
BINARY = bytes(range(256)) * 4
MIB = 1024 * 1024
BIG_TEXT = "é" * (MIB // 2)  # exactly 1 MiB of UTF-8, compresses well
# Random bytes do not compress: deflated, they grow by ~0.25 % (memLevel 5, both
# libraries' default). websockets checks a frame's wire length against max_size,
# so stay a little under 1 MiB; wskit's handling of the exact-limit case is in
# test_found_bugs.py.
BIG_BINARY = os.urandom(MIB - 8 * 1024)
TEXT_FRAGMENTS = ["fräg-1 ", "fräg-2 ", "fräg-3 ✓"]
BINARY_FRAGMENTS = [b"\x00" * 100, b"\x01" * 200, b"\xff"]
CLIENT_CLOSE = (4000, "client says bye ✓")
SERVER_CLOSE = (4001, "server says bye ✓")


def deflate(compression: bool) -> Literal["deflate"] | None:
    return "deflate" if compression else None


def extension_names(ws: Any) -> list[str]:
    """The extensions a websockets connection negotiated."""
    return [extension.name for extension in ws.protocol.extensions]


async def in_thread(function: Callable[[], Any]) -> Any:
    # abandon_on_cancel: if fail_after fires, the test ends (closing the
    # sockets, which ends the thread) instead of waiting on the thread.
    return await anyio.to_thread.run_sync(function, abandon_on_cancel=True)


# -------------------------------------------- wskit server, websockets client


class WskitPeer:
    """The wskit server's handler: echo, plus commands the client sends."""

    def __init__(self) -> None:
        self.compression: list[str | None] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.rtts: list[float] = []

    async def __call__(self, ws: WebSocket) -> None:
        self.compression.append(ws.compression)
        try:
            async for message in ws:
                if message == "!fragments":
                    await ws.send_fragments(TEXT_FRAGMENTS)
                    await ws.send_fragments(BINARY_FRAGMENTS)
                elif message == "!ping":
                    self.rtts.append(await ws.ping(b"from wskit"))
                    await ws.send("pong received")
                elif isinstance(message, str) and message.startswith("!close"):
                    await ws.close(*SERVER_CLOSE)
                else:
                    await ws.send(message)
        except ConnectionClosedError:
            pass
        finally:
            self.closes.append((ws.close_code, ws.close_reason))


def websockets_client_script(url: str, compression: bool) -> None:
    """Everything the websockets client does; raises AssertionError on a mismatch."""
    options: dict[str, Any] = {
        "compression": deflate(compression),
        "open_timeout": TIMEOUT,
        "close_timeout": TIMEOUT,
    }
    with ws_connect(url, **options) as ws:
        assert extension_names(ws) == (["permessage-deflate"] if compression else [])
        for message in (TEXT, BINARY, BIG_TEXT, BIG_BINARY, "", b""):
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == message
        # websockets -> wskit fragments: wskit reassembles them (and echoes).
        ws.send(TEXT_FRAGMENTS)
        assert ws.recv(timeout=TIMEOUT) == "".join(TEXT_FRAGMENTS)
        ws.send(BINARY_FRAGMENTS)
        assert ws.recv(timeout=TIMEOUT) == b"".join(BINARY_FRAGMENTS)
        # wskit -> websockets fragments: one frame per fragment on the wire.
        ws.send("!fragments")
        assert list(ws.recv_streaming()) == TEXT_FRAGMENTS
        assert list(ws.recv_streaming()) == BINARY_FRAGMENTS
        # Pings both ways.
        assert ws.ping(b"from websockets").wait(TIMEOUT)
        ws.send("!ping")
        assert ws.recv(timeout=TIMEOUT) == "pong received"
        # The client closes.
        ws.close(*CLIENT_CLOSE)
        assert ws.close_code == CLIENT_CLOSE[0]

    with ws_connect(url, **options) as ws:
        # The server closes.
        ws.send("!close")
        with pytest.raises(WsClosedError) as caught:
            ws.recv(timeout=TIMEOUT)
        assert caught.value.rcvd is not None
        assert (caught.value.rcvd.code, caught.value.rcvd.reason) == SERVER_CLOSE


async def test_wskit_server_with_a_websockets_client(compression):
    peer = WskitPeer()
    with anyio.fail_after(10):
        async with wskit.serve(
            peer, "127.0.0.1", 0, compression=deflate(compression), close_timeout=2
        ) as server:
            url = f"ws://127.0.0.1:{server.port}/interop"
            await in_thread(partial(websockets_client_script, url, compression))
            with anyio.fail_after(2):
                while len(peer.closes) < 2:
                    await anyio.sleep(0.01)
    expected = "permessage-deflate" if compression else None
    assert peer.compression == [expected, expected]
    assert len(peer.rtts) == 1
    assert 0 <= peer.rtts[0] < 1
    assert peer.closes == [CLIENT_CLOSE, SERVER_CLOSE]


# -------------------------------------------- wskit client, websockets server


class WebsocketsPeer:
    """The websockets server's handler (runs in websockets' threads)."""

    def __init__(self) -> None:
        self.results: queue.Queue[dict[str, Any]] = queue.Queue()

    def __call__(self, ws: WsServerConnection) -> None:
        result: dict[str, Any] = {"extensions": extension_names(ws)}
        try:
            for message in ws:
                if message == "!fragments":
                    ws.send(TEXT_FRAGMENTS)
                    ws.send(BINARY_FRAGMENTS)
                elif message == "!expect-fragments":
                    # The next message, frame by frame, sent back as one message per frame.
                    frames = list(ws.recv_streaming())
                    result.setdefault("frames", []).append(frames)
                    for frame in frames:
                        ws.send(frame)
                elif message == "!ping":
                    ws.send(f"pong received: {ws.ping(b'from websockets').wait(TIMEOUT)}")
                elif isinstance(message, str) and message.startswith("!close"):
                    ws.close(*SERVER_CLOSE)
                else:
                    ws.send(message)
        except WsClosed as exc:
            result["rcvd"] = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else None
            result["sent"] = (exc.sent.code, exc.sent.reason) if exc.sent else None
        finally:
            self.results.put(result)

    async def result(self) -> dict[str, Any]:
        return await in_thread(partial(self.results.get, timeout=TIMEOUT))  # type: ignore[no-any-return]


@asynccontextmanager
async def websockets_server(handler: WebsocketsPeer, compression: bool) -> AsyncIterator[int]:
    """Run a websockets threading server on loopback; yield its port."""
    server = ws_serve(
        handler,
        "127.0.0.1",
        0,
        compression=deflate(compression),
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(in_thread, server.serve_forever)
        try:
            yield server.socket.getsockname()[1]
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(TIMEOUT):
                await in_thread(server.shutdown)


async def test_wskit_client_with_a_websockets_server(compression):
    peer = WebsocketsPeer()
    expected = "permessage-deflate" if compression else None
    with anyio.fail_after(10):
        async with websockets_server(peer, compression) as port:
            url = f"ws://127.0.0.1:{port}/interop"
            options: dict[str, Any] = {"compression": deflate(compression), "close_timeout": 2}
            async with wskit.connect(url, **options) as ws:
                assert ws.compression == expected
                for message in (TEXT, BINARY, BIG_TEXT, BIG_BINARY, "", b""):
                    await ws.send(message)
                    assert await ws.recv() == message
                # wskit -> websockets fragments: websockets sees one frame per fragment.
                await ws.send("!expect-fragments")
                await ws.send_fragments(TEXT_FRAGMENTS)
                assert [await ws.recv() for _ in TEXT_FRAGMENTS] == TEXT_FRAGMENTS
                await ws.send("!expect-fragments")
                await ws.send_fragments(BINARY_FRAGMENTS)
                assert [await ws.recv() for _ in BINARY_FRAGMENTS] == BINARY_FRAGMENTS
                # websockets -> wskit fragments: wskit reassembles them.
                await ws.send("!fragments")
                assert await ws.recv() == "".join(TEXT_FRAGMENTS)
                assert await ws.recv() == b"".join(BINARY_FRAGMENTS)
                # Pings both ways.
                rtt = await ws.ping()
                assert 0 <= rtt < 1
                await ws.send("!ping")
                assert await ws.recv() == "pong received: True"
                # The client closes.
                await ws.close(*CLIENT_CLOSE)
                assert ws.close_code == CLIENT_CLOSE[0]
            first = await peer.result()

            async with wskit.connect(url, **options) as ws:
                # The server closes.
                await ws.send("!close")
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.recv()
                assert (caught.value.code, caught.value.reason) == SERVER_CLOSE
                assert (ws.close_code, ws.close_reason) == SERVER_CLOSE
            second = await peer.result()

    names = ["permessage-deflate"] if compression else []
    assert first["extensions"] == second["extensions"] == names
    assert first["frames"] == [TEXT_FRAGMENTS, BINARY_FRAGMENTS]
    assert first["rcvd"] == CLIENT_CLOSE
    assert second["sent"] == SERVER_CLOSE
    assert second["rcvd"] is not None
    assert second["rcvd"][0] == SERVER_CLOSE[0]  # wskit echoes the code
