"""The server's opening handshake: bounded by open_timeout, dropped on close(), set up cheaply.

Plain TCP handshakes are bounded by the timer service (no cancel scope); TLS
ones, and hooks that may await anything, by a scope. Both kinds are run here,
on both backends, against real sockets.
"""

from __future__ import annotations

import logging
import socket

import anyio
import anyio.abc
import pytest

import wskit
from tests.frames import upgrade_request
from tests.io.raw import RawClient
from tests.io.support import RecordingEcho, raw_socket, round_trip, tls_contexts

pytestmark = pytest.mark.anyio

OPEN_TIMEOUT = 0.3
DROPPED = "handshake not completed within open_timeout"


def serve_options(tls: bool) -> dict[str, object]:
    return {"ssl": tls_contexts()[0]} if tls else {}


async def wait_for(predicate) -> None:
    while not predicate():
        await anyio.sleep(0.005)


# A TLS server meets a plain request head as a bad ClientHello, and fails at once.
@pytest.mark.parametrize(
    ("tls", "sends"),
    [(False, b""), (False, upgrade_request()[:20]), (True, b"")],
    ids=["tcp-silent", "tcp-partial", "tls-silent"],
)
async def test_a_client_that_does_not_finish_is_dropped_at_open_timeout_and_logged(
    tls: bool, sends: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wskit.server")
    with anyio.fail_after(5):
        async with wskit.serve(
            RecordingEcho(), "127.0.0.1", 0, open_timeout=OPEN_TIMEOUT, **serve_options(tls)
        ) as server:
            start = anyio.current_time()
            async with await RawClient.open(server.port) as raw:
                await raw.send(sends)
                data, closed = await raw.read_until_closed(timeout=OPEN_TIMEOUT + 2)
            elapsed = anyio.current_time() - start
            await wait_for(lambda: server._active == 0)
    assert closed
    assert data == b""  # no answer at all: dropped
    assert OPEN_TIMEOUT <= elapsed < OPEN_TIMEOUT + 1
    assert caplog.text.count(DROPPED) == 1


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_close_drops_a_handshake_in_progress_at_once(tls: bool) -> None:
    with anyio.fail_after(5):
        async with wskit.serve(
            RecordingEcho(), "127.0.0.1", 0, open_timeout=30, **serve_options(tls)
        ) as server:
            async with await RawClient.open(server.port) as raw:
                if not tls:  # (TLS would refuse it at once: see above)
                    await raw.send(upgrade_request()[:20])
                await wait_for(lambda: len(server._handshakes) == 1)
                await anyio.sleep(0.05)  # the handshake now waits for more bytes
                start = anyio.current_time()
                server.close()
                await server.wait_closed()
                data, closed = await raw.read_until_closed(timeout=2)
                elapsed = anyio.current_time() - start
    assert closed
    assert data == b""
    assert elapsed < 1  # not open_timeout (30 s), nor close_timeout (10 s)


async def test_close_drops_a_handshake_waiting_in_process_request() -> None:
    entered = anyio.Event()

    async def forever(request: wskit.Request) -> wskit.Response | None:
        entered.set()
        await anyio.sleep_forever()
        return None

    with anyio.fail_after(5):
        async with wskit.serve(
            RecordingEcho(), "127.0.0.1", 0, open_timeout=30, process_request=forever
        ) as server:
            async with await RawClient.open(server.port) as raw:
                await raw.send(upgrade_request())
                await entered.wait()
                start = anyio.current_time()
                server.close()
                await server.wait_closed()
                data, closed = await raw.read_until_closed(timeout=2)
                elapsed = anyio.current_time() - start
    assert closed
    assert data == b""
    assert elapsed < 1


async def test_a_hook_slower_than_open_timeout_is_dropped_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wskit.server")

    async def slow(request: wskit.Request) -> wskit.Response | None:
        await anyio.sleep(10)
        return None

    with anyio.fail_after(5):
        async with wskit.serve(
            RecordingEcho(), "127.0.0.1", 0, open_timeout=OPEN_TIMEOUT, process_request=slow
        ) as server:
            start = anyio.current_time()
            async with await RawClient.open(server.port) as raw:
                await raw.send(upgrade_request())
                data, closed = await raw.read_until_closed(timeout=OPEN_TIMEOUT + 2)
            elapsed = anyio.current_time() - start
    assert closed
    assert data == b""
    assert OPEN_TIMEOUT <= elapsed < OPEN_TIMEOUT + 1
    assert caplog.text.count(DROPPED) == 1


async def test_deadlines_of_finished_handshakes_do_not_pile_up() -> None:
    count = 300
    with anyio.fail_after(20):
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0, open_timeout=60) as server:
            for _ in range(count):
                async with await RawClient.open(server.port) as raw:
                    await raw.handshake()
            await wait_for(lambda: server._active == 0)
            # One entry per handshake would be 300; stale ones are dropped as they pile up.
            assert len(server._timers) < count // 2


def premade_listener(proto: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    "how", ["tcp", "tls", "premade proto 0", "premade proto 6"], ids=lambda how: how
)
async def test_accepted_connections_have_tcp_nodelay_and_their_addresses(how: str) -> None:
    echo = RecordingEcho()
    options: dict[str, object] = {}
    if how == "tls":
        options["ssl"] = tls_contexts()[0]
    if how.startswith("premade"):
        options["sock"] = premade_listener(int(how.rsplit(" ", 1)[1]))
    else:
        options["host"] = "127.0.0.1"
    scheme = "wss" if how == "tls" else "ws"
    client_tls = {"ssl": tls_contexts()[1]} if how == "tls" else {}
    with anyio.fail_after(5):
        async with wskit.serve(echo, port=0, **options) as server:
            url = f"{scheme}://localhost:{server.port}/" if how == "tls" else None
            async with wskit.connect(url or f"ws://127.0.0.1:{server.port}/", **client_tls) as ws:
                await round_trip(ws)
                accepted = raw_socket(echo.last)
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                assert echo.last.transport.peer == ws.transport.local
                assert echo.last.transport.local == ws.transport.peer
                assert echo.last.transport.tls is (how == "tls")
                assert not echo.last.transport.mptcp


def bound_listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("silent", [False, True], ids=["upgrades", "silent"])
async def test_handle_bounds_a_socket_stream_accepted_elsewhere(
    silent: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # AnyIO's own socket stream: interrupted on Trio, under a scope on asyncio.
    caplog.set_level(logging.INFO, logger="wskit.server")
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with (
            wskit.serve(echo, listen=False, open_timeout=OPEN_TIMEOUT) as server,
            await anyio.abc.SocketListener.from_socket(bound_listener()) as listener,
        ):
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with await RawClient.open(port) as raw, anyio.create_task_group() as tasks:
                tasks.start_soon(server.handle, await listener.accept())
                start = anyio.current_time()
                if not silent:
                    await raw.handshake()
                    await wait_for(lambda: len(echo.connections) == 1)
                    assert echo.last.transport.peer == raw.socket.getsockname()
                    await raw.aclose()  # handle() returns once the connection is over
                    return
                data, closed = await raw.read_until_closed(timeout=OPEN_TIMEOUT + 2)
            elapsed = anyio.current_time() - start
    assert closed
    assert data == b""
    assert OPEN_TIMEOUT <= elapsed < OPEN_TIMEOUT + 1
    assert caplog.text.count(DROPPED) == 1
