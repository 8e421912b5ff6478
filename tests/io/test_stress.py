"""Behaviour under stress, on real loopback sockets, on asyncio and on Trio.

Each test bounds its run time (``anyio.fail_after``), asserts the exact outcome
(close codes, who closed the socket and when) and a resource bound (messages
queued, bytes buffered, file descriptors, tasks, traced memory). Timeouts are
small (open/close timeouts of 0.5 s, pings every 0.3 s) so the file stays quick.

Raw-socket attackers live in ``tests/io/raw.py``. Some assertions read private
attributes of the server side (``ws._queue``, ``ws._buffered()``,
``server._active``): they are the quantities the bounds are about.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import socket
import tracemalloc

import anyio
import anyio.abc
import pytest

import wskit
from tests.frames import BINARY, PONG, frame, upgrade_request
from tests.io.raw import (
    RawClient,
    close_code,
    kernel_buffer,
    listening_socket,
    parse_frames,
    small_socket,
)
from wskit import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, WebSocket
from wskit.core import State
from wskit.core.connection import _MAX_PONGS_OWED
from wskit.websocket import READ_SIZE

pytestmark = pytest.mark.anyio

OPEN_TIMEOUT = 0.5
CLOSE_TIMEOUT = 0.5
KiB = 1024


def url(server: wskit.Server, path: str = "/") -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


async def echo(ws: WebSocket) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def raise_fd_limit(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit if ``needed`` fds might not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft != resource.RLIM_INFINITY and soft < needed:
        pytest.skip(f"needs {needed} file descriptors, the hard limit is {hard}")


async def wait_for(predicate, interval: float = 0.005) -> None:
    while not predicate():
        await anyio.sleep(interval)


# --------------------------------------------------------------------- 1. handshake


async def _time_until_dropped(port: int, *, dribble: bool) -> tuple[float, bytes, bool]:
    """Open a raw connection that dribbles its request (or says nothing); return how
    long the server took to close it, what it sent, and whether it closed it."""
    start = anyio.current_time()
    async with await RawClient.open(port) as raw, anyio.create_task_group() as tasks:
        if dribble:

            async def drip() -> None:
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    for byte in upgrade_request():
                        await raw.send(bytes([byte]))
                        await anyio.sleep(0.05)

            tasks.start_soon(drip)
        data, closed = await raw.read_until_closed(timeout=OPEN_TIMEOUT + 2)
        elapsed = anyio.current_time() - start
        tasks.cancel_scope.cancel()
    return elapsed, data, closed


async def test_a_dribbled_or_silent_handshake_is_dropped_at_open_timeout():
    results: dict[str, tuple[float, bytes, bool]] = {}

    async def attack(name: str, dribble: bool) -> None:
        results[name] = await _time_until_dropped(server.port, dribble=dribble)

    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, open_timeout=OPEN_TIMEOUT) as server:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(attack, "dribbler", True)
                tasks.start_soon(attack, "silent", False)
            assert server._active == 0
    for name, (elapsed, data, closed) in results.items():
        print(f"{name}: dropped after {elapsed:.3f} s")
        assert closed, name
        assert data == b"", name  # no 101, no response at all
        assert OPEN_TIMEOUT <= elapsed < OPEN_TIMEOUT + 1, (name, elapsed)


async def test_500_silent_connections_do_not_delay_a_real_client():
    count = 500
    open_timeout = 1.5  # long enough to connect them all and test while they hang
    raise_fd_limit(open_fds() + 2 * count + 100)
    with anyio.fail_after(8), contextlib.ExitStack() as sockets:
        async with wskit.serve(echo, "127.0.0.1", 0, open_timeout=open_timeout) as server:
            start = anyio.current_time()
            silent = [
                sockets.enter_context(socket.create_connection(("127.0.0.1", server.port)))
                for _ in range(count)
            ]
            await wait_for(lambda: server._active >= count)
            accepted_at = anyio.current_time() - start

            before = anyio.current_time()
            async with wskit.connect(url(server)) as ws:
                await ws.send("still served")
                assert await ws.recv() == "still served"
            served_in = anyio.current_time() - before
            assert server._active >= count, "the silent ones must still be hanging"

            await wait_for(lambda: server._active == 0)
            dropped_at = anyio.current_time() - start
            print(
                f"{count} silent: accepted in {accepted_at:.3f} s, real client served in "
                f"{served_in:.3f} s, all dropped at {dropped_at:.3f} s"
            )
            assert served_in < 1
            assert open_timeout <= dropped_at < open_timeout + 1
            for sock in silent:  # each one sees the server's FIN, and nothing before
                sock.settimeout(1)
                assert sock.recv(1) == b""


# -------------------------------------------------------------- 2. read backpressure


async def test_a_handler_that_never_reads_stops_the_reader_at_max_queue():
    max_queue, size, write_limit = 4, KiB, 32 * KiB
    server_side: list[WebSocket] = []
    release = anyio.Event()
    queue_lengths: list[int] = []

    async def sink(ws: WebSocket) -> None:
        server_side.append(ws)
        while not release.is_set():  # never reads; samples its queue meanwhile
            queue_lengths.append(len(ws._queue))
            with anyio.move_on_after(0.002):
                await release.wait()

    # Small kernel buffers, so the bound below is tight: on loopback Linux
    # would otherwise grow them to megabytes.
    listener = listening_socket(rcvbuf=8 * KiB)
    rcvbuf = kernel_buffer(listener, socket.SO_RCVBUF)
    client_sock = small_socket(sndbuf=8 * KiB)
    sndbuf = kernel_buffer(client_sock, socket.SO_SNDBUF)
    with anyio.fail_after(5), contextlib.closing(listener), contextlib.closing(client_sock):
        async with wskit.serve(
            sink,
            sock=listener,
            max_queue=max_queue,
            compression=None,
            close_timeout=CLOSE_TIMEOUT,
        ) as server:
            client_sock.connect(("127.0.0.1", server.port))
            async with wskit.connect(
                url(server), sock=client_sock, compression=None, write_limit=write_limit
            ) as client:
                sent, attempts = 0, 100_000
                tracemalloc.start()
                try:
                    base = tracemalloc.get_traced_memory()[0]
                    with anyio.move_on_after(0.3):
                        for _ in range(attempts):
                            await client.send(b"x" * size)
                            sent += 1
                    with anyio.move_on_after(0.1) as stuck:
                        await client.send(b"x" * size)
                    growth = tracemalloc.get_traced_memory()[1] - base
                finally:
                    tracemalloc.stop()
                (ws,) = server_side
                # What the client got out sits in: the server's queue, one read of
                # parsed messages, the two kernel buffers, the client's write_limit.
                bound = max_queue + (READ_SIZE + rcvbuf + sndbuf + write_limit) // size + 2
                print(
                    f"read backpressure: sent {sent} of {attempts} (bound {bound}); server "
                    f"queue max {max(queue_lengths)}; traced peak growth {growth / KiB:.0f} KiB"
                )
                assert stuck.cancelled_caught, "send() must block"
                assert sent <= bound
                assert max(queue_lengths) <= max_queue
                assert len(ws._queue) == max_queue
                assert growth < 1024 * KiB  # both ends together
                release.set()
                # The server's handler returned with its queue full: it still
                # reads the client's close echo (it does not wait out close_timeout).
                start = anyio.current_time()
                with pytest.raises(ConnectionClosedOK):
                    await client.recv()
            closed_in = anyio.current_time() - start
    assert client.close_code == 1000
    assert ws.close_code == 1000
    assert closed_in < CLOSE_TIMEOUT


async def test_closing_with_a_full_receive_queue_is_prompt_and_clean():
    async def flood(ws: WebSocket) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send(b"y" * KiB)

    with anyio.fail_after(5):
        async with wskit.serve(flood, "127.0.0.1", 0, compression=None) as server:
            async with wskit.connect(url(server), max_queue=2, compression=None) as ws:
                await wait_for(lambda: len(ws._queue) == 2)
                await anyio.sleep(0.1)  # the client's reader is now paused
                start = anyio.current_time()
                await ws.close()
                elapsed = anyio.current_time() - start
    print(f"close with a full queue: {elapsed:.3f} s")
    assert ws.close_code == 1000
    assert elapsed < 1  # the default close_timeout is 10 s


# ------------------------------------------------------------- 3. write backpressure


async def test_send_waits_for_a_peer_that_never_reads():
    write_limit, size = 32 * KiB, 64 * KiB
    sent = 0
    buffered: list[int] = []
    handler_ws: list[WebSocket] = []
    outcome: list[BaseException] = []

    async def producer(ws: WebSocket) -> None:
        nonlocal sent
        handler_ws.append(ws)
        try:
            while True:
                await ws.send(b"z" * size)
                sent += 1
                buffered.append(ws._buffered())
        except ConnectionClosed as exc:
            outcome.append(exc)

    listener = listening_socket(sndbuf=64 * KiB)
    sndbuf = kernel_buffer(listener, socket.SO_SNDBUF)
    with anyio.fail_after(5), contextlib.closing(listener):
        async with wskit.serve(
            producer, sock=listener, write_limit=write_limit, close_timeout=CLOSE_TIMEOUT
        ) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * KiB) as raw:
                await raw.handshake()
                rcvbuf = kernel_buffer(raw.socket, socket.SO_RCVBUF)
                await wait_for(lambda: bool(handler_ws))
                (ws,) = handler_ws
                samples: list[int] = []
                with anyio.move_on_after(0.3):
                    while True:
                        samples.append(ws._buffered())
                        await anyio.sleep(0.001)
                sent_in_window = sent
                await anyio.sleep(0.1)
                assert sent == sent_in_window, "send() must stay blocked"
                server.close()
                await ws.wait_closed()
    biggest = max(samples + buffered)
    bound = (write_limit + size + sndbuf + rcvbuf) // size + 1
    print(
        f"write backpressure: {sent} x 64 KiB sent, then blocked (bound {bound}); "
        f"max buffered {biggest / KiB:.1f} KiB"
    )
    assert sent <= bound
    assert biggest <= write_limit + size + 14  # + one frame header
    assert [type(exc) for exc in outcome] == [ConnectionClosedError]


async def test_a_ping_flood_from_a_peer_that_never_reads_does_not_pile_up_pongs():
    handler_ws: list[WebSocket] = []
    stuffed = anyio.Event()
    pings = 8 * KiB  # 1 MiB of 125-byte pings

    async def stuff_then_idle(ws: WebSocket) -> None:
        handler_ws.append(ws)
        with anyio.move_on_after(0.1):  # fill the pipe: the writer is now stuck
            while True:
                await ws.send(b"s" * 64 * KiB)
        stuffed.set()
        with contextlib.suppress(ConnectionClosed):
            await ws.recv()

    listener = listening_socket(sndbuf=16 * KiB)
    with anyio.fail_after(5), contextlib.closing(listener):
        async with wskit.serve(
            stuff_then_idle, sock=listener, close_timeout=CLOSE_TIMEOUT
        ) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * KiB) as raw:
                await raw.handshake()
                await stuffed.wait()
                (ws,) = handler_ws
                before = ws._buffered()
                samples: list[int] = []

                async def sample() -> None:
                    while True:
                        samples.append(ws._buffered())
                        await anyio.sleep(0.001)

                tracemalloc.start()
                try:
                    base = tracemalloc.get_traced_memory()[0]
                    start = anyio.current_time()
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(sample)
                        await raw.send_pings(pings)
                        tasks.cancel_scope.cancel()
                    elapsed = anyio.current_time() - start
                    current, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                # Now read everything the server wrote: the data, then the pongs.
                data, _ = await raw.read_until_closed(timeout=0.2)
                pongs = sum(1 for opcode, _ in parse_frames(data) if opcode == PONG)
    print(
        f"ping flood on a stuck writer: {pings} pings ({pings * 131 / KiB / KiB:.1f} MiB) "
        f"in {elapsed:.2f} s -> {pongs} pongs; buffered {before} B before, max "
        f"{max(samples)} B during; traced growth {(current - base) / KiB:.0f} KiB "
        f"(peak {(peak - base) / KiB:.0f} KiB)"
    )
    # Pongs owed are bounded: at most _MAX_PONGS_OWED owed, as many in flight.
    pong_size = 2 + 125
    assert max(samples) <= before + 2 * _MAX_PONGS_OWED * pong_size
    assert 1 <= pongs <= 3 * _MAX_PONGS_OWED
    assert peak - base < 2 * 1024 * KiB


# ------------------------------------------------------- 4. heartbeat, full write buffer


async def test_the_heartbeat_fires_while_the_write_buffer_is_full():
    ping_interval = ping_timeout = 0.3
    outcome: dict[str, object] = {}
    handler_ws: list[WebSocket] = []

    async def producer(ws: WebSocket) -> None:
        handler_ws.append(ws)
        start = last_return = anyio.current_time()
        try:
            while True:
                await ws.send(b"h" * 64 * KiB)
                last_return = anyio.current_time()
        except ConnectionClosedError as exc:
            outcome["raised_after"] = anyio.current_time() - start
            outcome["blocked_for"] = anyio.current_time() - last_return
            outcome["error"] = exc

    listener = listening_socket(sndbuf=16 * KiB)
    with anyio.fail_after(5), contextlib.closing(listener):
        async with wskit.serve(
            producer,
            sock=listener,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=CLOSE_TIMEOUT,
        ) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * KiB) as raw:
                await raw.handshake()
                start = anyio.current_time()
                await wait_for(lambda: bool(handler_ws))
                (ws,) = handler_ws
                await ws.wait_closed()
                closed_after = anyio.current_time() - start
                _, closed = await raw.read_until_closed(timeout=2)
                assert closed
    print(
        f"heartbeat with a full buffer: send raised after {outcome['raised_after']:.3f} s "
        f"(blocked for {outcome['blocked_for']:.3f} s), transport closed after "
        f"{closed_after:.3f} s"
    )
    error = outcome["error"]
    assert isinstance(error, ConnectionClosedError)
    assert (error.code, error.reason) == (1011, "keepalive ping timeout")
    assert (ws.close_code, ws.close_reason) == (1011, "keepalive ping timeout")
    due = ping_interval + ping_timeout
    assert due <= outcome["raised_after"] < due + 0.3  # type: ignore[operator]
    # send() was blocked on the full buffer since before the keepalive ping was due.
    assert outcome["blocked_for"] > due - ping_interval  # type: ignore[operator]
    assert due <= closed_after < due + CLOSE_TIMEOUT + 0.3


# ----------------------------------------------------------- 5. handlers that raise


async def test_many_handlers_raising_at_once_close_1011_and_the_server_goes_on(caplog):
    count = 50

    async def broken(ws: WebSocket) -> None:
        if ws.request and ws.request.path == "/boom":
            await anyio.sleep(0.05)  # so they all raise together
            raise RuntimeError("boom")
        await echo(ws)

    codes: list[int] = []

    async def victim() -> None:
        async with wskit.connect(url(server, "/boom")) as ws:
            with pytest.raises(ConnectionClosedError) as caught:
                await ws.recv()
            codes.append(caught.value.code)

    with anyio.fail_after(5):
        async with wskit.serve(broken, "127.0.0.1", 0) as server:
            async with anyio.create_task_group() as tasks:
                for _ in range(count):
                    tasks.start_soon(victim)
            async with wskit.connect(url(server, "/fine")) as ws:
                await ws.send("still here")
                assert await ws.recv() == "still here"
            await wait_for(lambda: not server.connections)
    assert codes == [1011] * count
    assert caplog.text.count("RuntimeError: boom") == count


# ----------------------------------------------------- 6. a peer that vanishes (RST)


async def test_peers_that_vanish_mid_message_leak_nothing():
    rounds = 50
    outcomes: list[int] = []

    async def reader(ws: WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosedError as exc:
            outcomes.append(exc.code)

    async def vanish(port: int) -> None:
        async with await RawClient.open(port) as raw:
            await raw.handshake()
            message = frame(BINARY, b"m" * 1000)
            await raw.send(message[: len(message) // 2])
            await wait_for(lambda: len(server.connections) == 1)
            raw.reset_on_close()
        await wait_for(lambda: server._active == 0)

    with anyio.fail_after(8):
        async with wskit.serve(reader, "127.0.0.1", 0) as server:
            for _ in range(5):  # warm up: imports, caches, the first-use allocations
                await vanish(server.port)
            gc.collect()
            fds = open_fds()
            tasks = len(anyio.get_running_tasks())
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                for _ in range(rounds):
                    await vanish(server.port)
                gc.collect()
                growth = tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
            print(
                f"{rounds} RSTs mid-message: fds {fds} -> {open_fds()}, tasks {tasks} -> "
                f"{len(anyio.get_running_tasks())}, traced growth {growth / KiB:.1f} KiB"
            )
            assert server.connections == frozenset()
            assert open_fds() <= fds + 2
            assert len(anyio.get_running_tasks()) <= tasks
            # A connection left behind would cost well over 10 KiB each (50 of
            # them: > 500 KiB). What remains is allocator and event-loop noise,
            # such as Trio's deadline heap, which drops stale entries lazily.
            assert growth < 128 * KiB
    assert outcomes == [1006] * (rounds + 5)


# --------------------------------------------------------- 7. leaving serve: 1001


async def test_leaving_serve_is_bounded_by_close_timeout_despite_a_peer_that_ignores_it():
    codes: list[int | None] = []

    async def client(port: int) -> None:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as ws:
            with contextlib.suppress(ConnectionClosedOK):
                await ws.recv()
        codes.append(ws.close_code)

    with anyio.fail_after(5):
        async with contextlib.AsyncExitStack() as peers, anyio.create_task_group() as clients:
            async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=CLOSE_TIMEOUT) as server:
                # A peer that completes the handshake, then ignores everything.
                ignorer = await peers.enter_async_context(await RawClient.open(server.port))
                await ignorer.handshake()
                # One that never even finishes its handshake (open_timeout is 10 s).
                peers.enter_context(socket.create_connection(("127.0.0.1", server.port)))
                for _ in range(3):
                    clients.start_soon(client, server.port)
                await wait_for(lambda: len(server.connections) == 4 and server._active == 5)
                start = anyio.current_time()
            elapsed = anyio.current_time() - start
            data, closed = await ignorer.read_until_closed(timeout=0.1)
    print(f"leaving serve with a peer that ignores the close: {elapsed:.3f} s")
    assert CLOSE_TIMEOUT <= elapsed < CLOSE_TIMEOUT + 0.3
    assert codes == [1001] * 3
    assert closed
    assert close_code(data) == 1001
    assert server.connections == frozenset()
    assert server._active == 0


# --------------------------------------------------- 8. close against a silent peer


@pytest.mark.parametrize("full_buffer", [False, True], ids=["idle", "full-buffer"])
async def test_close_against_a_peer_that_never_answers_is_cut_at_close_timeout(full_buffer):
    result: dict[str, float | int | None] = {}

    async def closer(ws: WebSocket) -> None:
        if full_buffer:  # fill wskit's buffer and the kernel's: the close frame is stuck
            with anyio.move_on_after(0.1):
                while True:
                    await ws.send(b"f" * 64 * KiB)
        start = anyio.current_time()
        await ws.close()
        result["elapsed"] = anyio.current_time() - start
        result["code"] = ws.close_code

    listener = listening_socket(sndbuf=16 * KiB)
    with anyio.fail_after(5), contextlib.closing(listener):
        async with wskit.serve(closer, sock=listener, close_timeout=CLOSE_TIMEOUT) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * KiB) as raw:
                await raw.handshake()
                await wait_for(lambda: "elapsed" in result)
                data, closed = await raw.read_until_closed(timeout=1)
                assert closed
    print(f"close against a silent peer ({'full' if full_buffer else 'idle'}): {result}")
    assert result["code"] == 1006
    assert CLOSE_TIMEOUT <= result["elapsed"] < CLOSE_TIMEOUT + 0.2  # type: ignore[operator]
    if not full_buffer:
        assert close_code(data) == 1000  # our close frame did go out


# ---------------------------------------------------------------- 9. cancellation


async def test_cancelling_the_task_that_runs_serve_closes_everything_promptly():
    codes: list[int | None] = []
    servers: list[wskit.Server] = []
    left = anyio.Event()

    async def run_server(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=CLOSE_TIMEOUT) as server:
                servers.append(server)
                task_status.started()
                await server.serve_forever()
        finally:
            left.set()

    async def client(port: int) -> None:
        async with wskit.connect(f"ws://127.0.0.1:{port}/") as ws:
            with contextlib.suppress(ConnectionClosedOK):
                await ws.recv()
        codes.append(ws.close_code)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as clients:
            with anyio.CancelScope() as server_scope:
                async with anyio.create_task_group() as tasks:
                    await tasks.start(run_server)
                    (server,) = servers
                    for _ in range(5):
                        clients.start_soon(client, server.port)
                    await wait_for(lambda: len(server.connections) == 5)
                    start = anyio.current_time()
                    server_scope.cancel()
            await left.wait()
            elapsed = anyio.current_time() - start
    print(f"cancelling serve: left in {elapsed:.3f} s")
    assert server_scope.cancelled_caught
    assert elapsed < 0.3
    assert server.connections == frozenset()
    assert server._active == 0
    assert codes == [1001] * 5


async def test_cancelling_a_client_blocked_in_recv_exits_connect_cleanly():
    seen: list[int] = []

    async def watcher(ws: WebSocket) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            seen.append(exc.code)

    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            # A cancelled recv() loses nothing: the connection still works after it.
            async with wskit.connect(url(server)) as ws:
                with anyio.move_on_after(0.05):
                    await ws.recv()
                await ws.send("after a cancelled recv")
                assert await ws.recv() == "after a cancelled recv"
            assert ws.close_code == 1000

        async with wskit.serve(watcher, "127.0.0.1", 0) as server:
            with anyio.CancelScope() as scope:
                async with wskit.connect(url(server)) as ws:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(ws.recv)
                        await anyio.sleep(0.05)
                        start = anyio.current_time()
                        scope.cancel()
            elapsed = anyio.current_time() - start
            await wait_for(lambda: bool(seen))
    print(f"cancelled client: left connect() in {elapsed:.3f} s")
    assert scope.cancelled_caught
    assert elapsed < 0.3
    assert ws.state is State.CLOSED
    assert ws.close_code == 1001  # going away: cancellation is not an error
    assert seen == [1001]


# ------------------------------------------------------ 10. shutdown with 100 clients


async def test_graceful_shutdown_with_100_clients():
    count = 100
    codes: list[int | None] = []
    echoed = 0

    async def client() -> None:
        nonlocal echoed
        async with wskit.connect(url(server)) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            echoed += 1
            with contextlib.suppress(ConnectionClosedOK):
                await ws.recv()
        codes.append(ws.close_code)

    with anyio.fail_after(8):
        async with anyio.create_task_group() as tasks:
            async with wskit.serve(echo, "127.0.0.1", 0, close_timeout=2) as server:
                for _ in range(count):
                    tasks.start_soon(client)
                await wait_for(lambda: echoed == count)
                assert len(server.connections) == count
                start = anyio.current_time()
            elapsed = anyio.current_time() - start
    print(f"shutdown of {count} clients: {elapsed:.3f} s")
    assert codes == [1001] * count
    assert elapsed < 1
