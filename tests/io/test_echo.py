"""serve() and connect() end to end on loopback, on asyncio and on Trio."""

from __future__ import annotations

import contextlib

import anyio
import pytest

import wskit
from wskit import (
    ConnectionClosedError,
    ConnectionClosedOK,
    ConnectionFailed,
    HandshakeRejected,
    HandshakeTimeout,
    InvalidURI,
    Response,
    WebSocket,
)

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_echo_text_and_binary_with_compression():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/path?q=1") as ws:
                assert ws.compression == "permessage-deflate"
                await ws.send("héllo " * 100)
                assert await ws.recv() == "héllo " * 100
                await ws.send(b"\x00\x01" * 5000)
                assert await ws.recv() == b"\x00\x01" * 5000
                assert len(server.connections) == 1
            assert ws.close_code == 1000


async def test_iteration_ends_on_a_normal_close_and_raises_on_an_error():
    async def closer(ws: WebSocket) -> None:
        await ws.send("one")
        code = 1000 if ws.request and ws.request.path == "/ok" else 4001
        await ws.close(code, "done")

    with anyio.fail_after(5):
        async with wskit.serve(closer, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/ok") as ws:
                assert [message async for message in ws] == ["one"]
                assert (ws.close_code, ws.close_reason) == (1000, "done")
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/error") as ws:
                assert await ws.recv() == "one"
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.recv()
                assert caught.value.code == 4001


async def test_subprotocol_headers_and_origin_reach_the_server():
    seen = {}

    async def handler(ws: WebSocket) -> None:
        assert ws.request is not None
        seen["origin"] = ws.request.header("origin")
        seen["token"] = ws.request.header("x-token")
        await ws.send(ws.subprotocol or "")

    with anyio.fail_after(5):
        async with wskit.serve(handler, "127.0.0.1", 0, subprotocols=["v2", "v1"]) as server:
            async with wskit.connect(
                f"ws://127.0.0.1:{server.port}/",
                subprotocols=["v1", "v2"],
                origin="https://example.com",
                extra_headers=[("X-Token", "abc")],
            ) as ws:
                assert ws.subprotocol == "v2"
                assert await ws.recv() == "v2"
    assert seen == {"origin": "https://example.com", "token": "abc"}


async def test_ping_returns_the_round_trip_time():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                rtt = await ws.ping()
                assert 0 <= rtt < 1
                assert ws.latency == rtt


async def test_fragmented_send_arrives_as_one_message():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send_fragments(["a" * 1000, "b" * 1000, "c"])
                assert await ws.recv() == "a" * 1000 + "b" * 1000 + "c"


async def test_connect_errors_are_typed():
    with pytest.raises(InvalidURI):
        wskit.connect("http://example.com/")
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with anyio.fail_after(5), pytest.raises(ConnectionFailed):
        async with wskit.connect(f"ws://127.0.0.1:{port}/"):
            pass


async def test_a_rejection_carries_status_headers_and_body():
    async def refuse(request: wskit.core.Request) -> Response | None:
        return Response.text(403, "go away", (("X-Why", "test"),))

    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, process_request=refuse) as server:
            with pytest.raises(HandshakeRejected) as caught:
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/"):
                    pass
    assert caught.value.status_code == 403
    assert caught.value.body == b"go away"
    assert ("X-Why", "test") in caught.value.headers


async def test_a_silent_server_times_out_the_handshake():
    async def silent(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await anyio.sleep(10)

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(listener.serve, silent)
            with anyio.fail_after(5), pytest.raises(HandshakeTimeout):
                async with wskit.connect(f"ws://127.0.0.1:{port}/", open_timeout=0.3):
                    pass
            tasks.cancel_scope.cancel()


async def test_plain_http_requests_go_to_the_hook_or_get_426():
    async def health(request: wskit.core.Request) -> Response | None:
        if request.path == "/health":
            return Response.text(200, "ok")
        return None

    async def get(port: int, path: str) -> bytes:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            data = b""
            with anyio.move_on_after(2):
                try:
                    while True:
                        data += await stream.receive()
                except anyio.EndOfStream:
                    pass  # the server closes after answering
            return data

    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, process_request=health) as server:
            assert (await get(server.port, "/health")).startswith(b"HTTP/1.1 200 OK")
            assert (await get(server.port, "/other")).startswith(b"HTTP/1.1 426 ")


async def test_a_handler_that_raises_closes_1011_and_the_server_goes_on(caplog):
    async def broken(ws: WebSocket) -> None:
        if ws.request and ws.request.path == "/boom":
            raise RuntimeError("boom")
        await echo(ws)

    with anyio.fail_after(5):
        async with wskit.serve(broken, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/boom") as ws:
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.recv()
                assert caught.value.code == 1011
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/fine") as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
    assert "boom" in caplog.text


async def test_leaving_serve_closes_every_connection_with_1001():
    with anyio.fail_after(5):
        clients = []
        async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=2) as server:
            async with anyio.create_task_group() as tasks:

                async def client() -> None:
                    async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                        clients.append(ws)
                        with contextlib.suppress(ConnectionClosedOK):
                            await ws.recv()

                for _ in range(10):
                    tasks.start_soon(client)
                while len(server.connections) < 10:
                    await anyio.sleep(0.01)
                server.close()
        assert [ws.close_code for ws in clients] == [1001] * 10


async def test_the_task_group_start_idiom_works():
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            server = await tasks.start(wskit.serve(echo, "127.0.0.1", 0).run)
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
            server.close()


async def test_recv_stream_hands_over_a_large_message_in_pieces():
    async def streamer(ws: WebSocket) -> None:
        await ws.send_fragments([b"a" * 100_000, b"b" * 100_000, b"c" * 100_000])
        await ws.send("after")
        await ws.send_fragments(["x" * 50_000, "y" * 50_000])
        await ws.send("last")

    with anyio.fail_after(5):
        async with wskit.serve(streamer, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
                pieces = [piece async for piece in ws.recv_stream()]
                assert len(pieces) > 1
                assert b"".join(pieces) == b"a" * 100_000 + b"b" * 100_000 + b"c" * 100_000
                assert await ws.recv() == "after"
                # Leaving a stream early discards the rest of its message.
                async for piece in ws.recv_stream():
                    assert piece.startswith("x")
                    break
                assert await ws.recv() == "last"


async def test_a_cancelled_recv_loses_no_part_of_a_message():
    release = anyio.Event()

    async def slow_sender(ws: WebSocket) -> None:
        async def pieces():
            yield b"first half, "
            yield b""  # send_fragments sends a piece once the next one exists
            await release.wait()
            yield b"second half"

        await ws.send_fragments(pieces())
        await ws.recv()

    with anyio.fail_after(5):
        async with wskit.serve(slow_sender, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
                with anyio.move_on_after(0.2) as waited:
                    await ws.recv()  # takes the first piece, then is cancelled
                assert waited.cancelled_caught
                assert not ws._partial.empty  # the first piece is kept, not lost
                release.set()
                assert await ws.recv() == b"first half, second half"
                await ws.send("done")
