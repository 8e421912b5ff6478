"""Edges of the public API: exceptions leaving blocks, shutdown from outside a task, ..."""

from __future__ import annotations

import logging

import anyio
import pytest
import sniffio

import wskit
from wskit import ConnectionClosedError, ConnectionClosedOK, UsageError, WebSocket

pytestmark = pytest.mark.anyio


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


async def test_an_exception_from_the_body_of_connect_is_not_wrapped_in_a_group():
    async def close_at_once(ws: WebSocket) -> None:
        await ws.close(4000, "bye")

    with anyio.fail_after(5):
        async with wskit.serve(close_at_once, "127.0.0.1", 0) as server:
            with pytest.raises(ConnectionClosedError) as caught:
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                    await ws.recv()
            assert caught.value.code == 4000
            with pytest.raises(KeyError):
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/"):
                    raise KeyError("mine")


async def test_an_exception_from_the_body_of_serve_is_not_wrapped_in_a_group():
    with anyio.fail_after(5), pytest.raises(LookupError):
        async with wskit.serve(echo, "127.0.0.1", 0):
            raise LookupError("mine")


async def test_wait_closed_does_not_cancel_the_code_that_follows_it():
    reached = False
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=0.5) as server:
            server.close()
            await server.wait_closed()
            await anyio.sleep(0.01)  # must not be cancelled
            reached = True
    assert reached


async def test_server_close_works_from_a_callback_outside_any_task():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=1) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                # What a signal handler does: call close() from the loop, not from a task.
                if sniffio.current_async_library() == "trio":
                    import trio

                    trio.lowlevel.current_trio_token().run_sync_soon(server.close)
                else:
                    import asyncio

                    asyncio.get_running_loop().call_soon(server.close)
                with pytest.raises(ConnectionClosedOK):
                    await ws.recv()
                assert ws.close_code == 1001


async def test_an_interrupted_fragmented_send_fails_the_connection_with_1011():
    received = []

    async def collect(ws: WebSocket) -> None:
        try:
            async for message in ws:
                received.append(message)
        except ConnectionClosedError as exc:
            received.append(exc.code)

    async def fragments():
        yield "part one, "
        yield "part two, "
        raise RuntimeError("the producer broke")

    with anyio.fail_after(5):
        async with wskit.serve(collect, "127.0.0.1", 0) as server:
            with pytest.raises(RuntimeError):
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                    await ws.send_fragments(fragments())
            while not received:
                await anyio.sleep(0.01)
    assert received == [1011]
    assert ws.close_code == 1011


async def test_a_peer_leaving_mid_handler_is_not_logged_as_an_error(caplog):
    async def talker(ws: WebSocket) -> None:
        await ws.recv()
        await ws.recv()  # the client has gone: ConnectionClosedOK escapes the handler

    with anyio.fail_after(5), caplog.at_level(logging.DEBUG, logger="wskit.server"):
        async with wskit.serve(talker, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("hi")
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


async def test_bad_tcp_keepalive_is_refused_at_once():
    with pytest.raises(UsageError):
        wskit.serve(echo, "127.0.0.1", 0, tcp_keepalive=(0, 1, 1))
    with pytest.raises(UsageError):
        wskit.connect("ws://127.0.0.1:1/", tcp_keepalive=(1, 1, 0))
