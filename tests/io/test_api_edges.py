"""Edges of the public API: exceptions leaving blocks, shutdown from outside a task, ..."""

from __future__ import annotations

import contextlib
import logging

import anyio
import pytest
import sniffio

import wskit
from wskit import ConnectionClosedError, ConnectionClosedOK, UsageError, WebSocket


async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(message)


@pytest.mark.anyio
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


@pytest.mark.anyio
async def test_an_exception_from_the_body_of_serve_is_not_wrapped_in_a_group():
    with anyio.fail_after(5), pytest.raises(LookupError):
        async with wskit.serve(echo, "127.0.0.1", 0):
            raise LookupError("mine")


@pytest.mark.anyio
async def test_wait_closed_does_not_cancel_the_code_that_follows_it():
    reached = False
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=0.5) as server:
            server.close()
            await server.wait_closed()
            await anyio.sleep(0.01)  # must not be cancelled
            reached = True
    assert reached


@pytest.mark.anyio
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


@pytest.mark.anyio
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


@pytest.mark.anyio
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


@pytest.mark.anyio
async def test_bad_tcp_keepalive_is_refused_at_once():
    with pytest.raises(UsageError):
        wskit.serve(echo, "127.0.0.1", 0, tcp_keepalive=(0, 1, 1))
    with pytest.raises(UsageError):
        wskit.connect("ws://127.0.0.1:1/", tcp_keepalive=(1, 1, 0))


@pytest.mark.anyio
async def test_a_send_during_send_fragments_waits_for_the_whole_message():
    received: list[str | bytes] = []

    async def collect(ws: WebSocket) -> None:
        async for message in ws:
            received.append(message)

    step = anyio.Event()

    async def pieces():
        yield "part1-"
        yield "part2-"
        await step.wait()
        yield "part3"

    with anyio.fail_after(5):
        async with wskit.serve(collect, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(ws.send_fragments, pieces())
                    await anyio.sleep(0.05)
                    tasks.start_soon(ws.send, "STATUS")
                    await anyio.sleep(0.05)
                    step.set()
                await ws.ping()  # everything sent has arrived
            while len(received) < 2:
                await anyio.sleep(0.01)
    assert received == ["part1-part2-part3", "STATUS"]


@pytest.mark.anyio
async def test_closing_with_a_full_queue_delivers_only_whole_messages():
    got: list[object] = []

    async def closer(ws: WebSocket) -> None:
        await anyio.sleep(0.2)  # let the queue fill
        ws._start_closing(1001, "bye")
        try:
            async for message in ws:
                got.append((type(message).__name__, len(message)))
        except Exception as exc:
            got.append(exc)

    with anyio.fail_after(5):
        async with wskit.serve(closer, "127.0.0.1", 0, max_queue=2, compression=None) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("t" * 300_000)
                await ws.send(b"b" * 300_000)
                await ws.send("x" * 10)
                with contextlib.suppress(ConnectionClosedOK):
                    await ws.recv()
    assert all(isinstance(item, tuple) for item in got), got
    assert set(got) <= {("str", 300_000), ("bytes", 300_000), ("str", 10)}


@pytest.mark.anyio
async def test_a_ping_answered_by_a_later_pong_resolves_and_cancelled_pings_are_forgotten():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                # Two pings in flight; the server answers both, but a pong that
                # acknowledges a later ping must also settle the earlier one.
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(ws.ping, b"one")
                    tasks.start_soon(ws.ping, b"two")
                with anyio.move_on_after(0):
                    await ws.ping(b"three")
                await ws.ping(b"four")
                assert set(ws._pings) <= set()


@pytest.mark.anyio
async def test_wait_closed_without_close_waits_for_close():
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=0.5) as server:
            with anyio.move_on_after(0.2) as waited:
                await server.wait_closed()
            assert waited.cancelled_caught  # it waits for close(); nothing was torn down
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await ws.send("still serving")
                assert await ws.recv() == "still serving"


@pytest.mark.anyio
async def test_compressed_floods_stay_bounded_by_max_queue():
    import tracemalloc

    zeros = bytes(1024 * 1024)

    async def idle(ws: WebSocket) -> None:
        await anyio.sleep(1.5)

    with anyio.fail_after(10):
        async with wskit.serve(idle, "127.0.0.1", 0, max_queue=4) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                tracemalloc.start()
                try:
                    with anyio.move_on_after(1):
                        for _ in range(60):
                            await ws.send(zeros)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
    # Parsed at once, one 64 KiB read of zeros inflated to ~60 MiB before the
    # queue was consulted; in steps (64 KiB of output, then the queue), to
    # max_queue pieces plus one step's output.
    assert peak < 16 * 1024 * 1024, peak


@pytest.mark.anyio
async def test_a_second_recv_stream_after_an_abandoned_one_starts_at_the_next_message():
    async def streamer(ws: WebSocket) -> None:
        await ws.send_fragments([b"a" * 100_000, b"b" * 100_000, b"c" * 100_000])
        await ws.send(b"NEXT")
        await ws.recv()

    with anyio.fail_after(5):
        async with wskit.serve(streamer, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/", compression=None) as ws:
                async for _ in ws.recv_stream():
                    break
                assert [piece async for piece in ws.recv_stream()] == [b"NEXT"]
                await ws.send("done")


@pytest.mark.anyio
async def test_a_lone_surrogate_is_a_usage_error_and_a_plain_close_ends_iteration():
    async def plain_close(ws: WebSocket) -> None:
        with pytest.raises(UsageError):
            await ws.send("\udc80")
        with pytest.raises(UsageError):
            await ws.close(1000, "\udc80")
        ws._conn._send_close_frame(None, "")  # what a browser's close() sends: no code
        ws._conn._set_state(wskit.core.State.CLOSING)
        ws._after_core_call()
        await ws.wait_closed()

    with anyio.fail_after(5):
        async with wskit.serve(plain_close, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                assert [message async for message in ws] == []
                assert ws.close_code == 1005


def test_an_internationalized_host_is_sent_in_its_ascii_form():
    from wskit.uri import parse_uri

    assert parse_uri("ws://bücher.example/").host == "xn--bcher-kva.example"
    with pytest.raises(wskit.InvalidURI):
        parse_uri("ws://a..b\udc80/")
