"""Regression tests for bugs the I/O suite found (all fixed): each names its bug.

A TLS failure leaked the client's socket; leaving serve() waited close_timeout
+ 1 s for connections still in their handshake; an incompressible message at
max_message, sent compressed, closed 1009; wskit echo could miss an early
SIGINT/SIGTERM. Every test is bounded so it fails fast.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import ssl
from functools import partial

import anyio
import pytest
from websockets.exceptions import ConnectionClosed as WsClosed
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import ServerConnection as WsServerConnection
from websockets.sync.server import serve as ws_serve

import wskit
from tests.io.support import (
    EXIT,
    STARTUP,
    RecordingEcho,
    echo_process,
    open_fds,
    round_trip,
    stranger_context,
    tls_contexts,
    wait_exit,
)
from wskit import ConnectionFailed

pytestmark = pytest.mark.anyio


async def test_wss_with_the_wrong_ca_fails_closes_its_socket_and_the_server_goes_on():
    # Bug 1: connect() leaks its TCP socket when the TLS handshake fails
    # (client.py, Connect._open_transport: TLSStream.wrap leaves the transport
    # open on failure, and nothing closes it). On asyncio the server then
    # waits for the rest of the handshake until it is shut down.
    server_context, client_context = tls_contexts()
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, ssl=server_context, close_timeout=1) as server:
            url = f"wss://localhost:{server.port}/"
            gc.collect()
            before = open_fds()
            gc.disable()  # a leaked socket must not be closed by the collector meanwhile
            try:
                for kwargs in (
                    {"ssl": stranger_context()},  # a CA we do not trust
                    {},  # wss:// without ssl=: the system's trust store
                    {"ssl": client_context, "server_hostname": "example.org"},  # wrong name
                ):
                    with pytest.raises(ConnectionFailed) as caught:
                        async with wskit.connect(url, **kwargs):
                            pass
                    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
                    del caught
                    # Both ends of the failed connection live in this process:
                    # give the server a moment to close its side too.
                    with anyio.move_on_after(1):
                        while open_fds() != before:
                            await anyio.sleep(0.01)
                    assert open_fds() == before, "a socket of the failed handshake is still open"
            finally:
                gc.enable()
            # The server saw the handshakes fail and keeps no connection for them.
            with anyio.fail_after(1):
                while server._active:
                    await anyio.sleep(0.01)
            assert echo.connections == []
            async with wskit.connect(url, ssl=client_context) as ws:
                await round_trip(ws)


async def test_leaving_serve_with_a_handshake_in_progress_returns_within_close_timeout():
    # Bug 2: Server.close() only closes upgraded connections; one still in its
    # opening handshake keeps wait_closed() waiting until close_timeout + 1 s
    # (server.py, Server.wait_closed adds 1.0, and _handshake never looks at
    # _closing while it waits for the request).
    with anyio.fail_after(5):
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0, close_timeout=1) as server:
            silent = await anyio.connect_tcp("127.0.0.1", server.port)
            await anyio.sleep(0.05)
            started = anyio.current_time()
        elapsed = anyio.current_time() - started
        await silent.aclose()
    assert elapsed <= 1.1, f"leaving serve took {elapsed:.2f} s with close_timeout=1"


# Bug 3: a compressed frame for a message of exactly max_message incompressible
# bytes is refused with 1009. Deflate at memLevel 5 (wskit's default and
# websockets') adds ~5 bytes per 2 KiB of incompressible input: 1 MiB of random
# bytes becomes a 1_051_139-byte frame, but wskit/core/_wsproto.py
# (_Guard.frame_inbound_header) allows only budget + budget/4096 + budget/16384
# + 64 = 1_048_960 bytes on the wire (zlib's deflateBound for memLevel 8).
# The inflater already enforces the exact limit on the output.
MIB = 1024 * 1024


async def test_wskit_to_wskit_exchanges_an_incompressible_message_of_max_message():
    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    payload = os.urandom(MIB)
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                assert ws.compression == "permessage-deflate"
                await ws.send(payload)
                assert await ws.recv() == payload


async def test_wskit_server_accepts_a_max_size_message_deflated_by_websockets():
    async def measure(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(str(len(message)))

    def client(url: str) -> str | bytes:
        with ws_connect(url, open_timeout=5, close_timeout=5) as ws:  # deflate on by default
            ws.send(os.urandom(MIB))
            return ws.recv(timeout=5)

    with anyio.fail_after(10):
        async with wskit.serve(measure, "127.0.0.1", 0, close_timeout=1) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            answer = await anyio.to_thread.run_sync(client, url, abandon_on_cancel=True)
    assert answer == str(MIB)


async def test_wskit_client_accepts_a_max_size_message_deflated_by_websockets():
    def handler(ws: WsServerConnection) -> None:
        with contextlib.suppress(WsClosed):
            ws.recv(timeout=5)
            ws.send(os.urandom(MIB))
            ws.recv(timeout=5)

    server = ws_serve(handler, "127.0.0.1", 0, open_timeout=5, close_timeout=5)
    port = server.socket.getsockname()[1]
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            partial(anyio.to_thread.run_sync, server.serve_forever, abandon_on_cancel=True)
        )
        try:
            with anyio.fail_after(5):
                async with wskit.connect(f"ws://127.0.0.1:{port}/", close_timeout=1) as ws:
                    assert ws.compression == "permessage-deflate"
                    await ws.send("go")
                    assert len(await ws.recv()) == MIB
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await anyio.to_thread.run_sync(server.shutdown, abandon_on_cancel=True)


# Bug 4: ``wskit echo`` prints its "listening on ..." line (the readiness signal
# tools wait for) before it installs its SIGINT/SIGTERM handlers (wskit/cli.py,
# run_echo: the print comes before ``anyio.open_signal_receiver``). A signal
# sent as soon as the line is read kills it with KeyboardInterrupt (exit 1 and
# a traceback on Trio, -SIGINT on asyncio) or, for SIGTERM, the default action.
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_echo_shuts_down_cleanly_on_a_signal_right_after_it_says_it_listens(
    anyio_backend, signum
):
    for _ in range(3):  # the window is small: try a few times
        with anyio.fail_after(STARTUP + EXIT):
            async with echo_process(anyio_backend) as echo:
                echo.process.send_signal(signum)
                assert await wait_exit(echo) == 0, echo.log
        assert "Traceback" not in echo.log, echo.log
