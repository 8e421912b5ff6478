"""Accepting straight into a lean stream (real sockets on loopback, both loops, uvloop).

On asyncio :func:`fast_accept` makes :class:`LeanStream` directly from TCP and
MPTCP listeners; on Trio it accepts AnyIO's stream from the socket without
Trio's scheduler pass (:func:`direct_accept`); for Unix listeners it is the
listener's own ``accept()``. The streams behave as those from the AnyIO path
did: the same addresses, TCP_NODELAY, EOF, reset, and cancelling an accept
accepts nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

import wskit
from wskit.backends import create_tcp_listeners, create_unix_listener, listener_from_socket
from wskit.backends.direct import CHECKPOINT_EVERY, DirectSocket
from wskit.backends.lean import LeanStream, lean_accept, lean_open, lean_socket_accept
from wskit.backends.mptcp import mptcp_status
from wskit.backends.sockets import MptcpListener, fast_accept
from wskit.backends.trio_accept import direct_accept

from .conftest import needs_ipv6, needs_mptcp

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def tcp_listener(host: str = "127.0.0.1") -> AsyncIterator[anyio.abc.SocketListener]:
    """One TCP listener on ``host``, any port."""
    (listener,) = await create_tcp_listeners(host, 0)
    async with listener:
        yield listener


def connect(listener: anyio.abc.SocketListener, *, proto: int = 0) -> socket.socket:
    """A plain blocking client socket connected to ``listener`` (the kernel completes it)."""
    sock: socket.socket = listener.extra(anyio.abc.SocketAttribute.raw_socket)
    client = socket.socket(sock.family, socket.SOCK_STREAM, proto)
    client.settimeout(5)
    client.connect(sock.getsockname()[:2])
    return client


@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_accepted_streams_are_lean_on_asyncio_with_the_same_addresses(
    host: str, anyio_backend_name: str
) -> None:
    with anyio.fail_after(5):
        async with tcp_listener(host) as listener:
            accept = fast_accept(listener)
            with connect(listener) as client:
                async with await accept() as stream:
                    assert isinstance(stream, LeanStream) is (anyio_backend_name == "asyncio")
                    attr = anyio.abc.SocketAttribute
                    assert stream.extra(attr.remote_address) == client.getsockname()[:2]
                    assert stream.extra(attr.local_address) == client.getpeername()[:2]
                    assert stream.extra(attr.family) == client.family
                    raw = stream.extra(attr.raw_socket)
                    assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                    client.sendall(b"hello")
                    assert await stream.receive() == b"hello"
                    await stream.send(b"world")
                    assert client.recv(16) == b"world"


async def test_bytes_sent_before_the_accept_and_then_eof_are_all_read() -> None:
    with anyio.fail_after(5):
        async with tcp_listener() as listener:
            with connect(listener) as client:
                client.sendall(b"early")
                client.shutdown(socket.SHUT_WR)
                async with await fast_accept(listener)() as stream:
                    assert await stream.receive() == b"early"
                    with pytest.raises(anyio.EndOfStream):
                        await stream.receive()
                    # Our side stays open after the peer's EOF.
                    await stream.send(b"still here")
                    assert client.recv(16) == b"still here"


async def test_a_reset_connection_is_broken() -> None:
    with anyio.fail_after(5):
        async with tcp_listener() as listener:
            client = connect(listener)
            async with await fast_accept(listener)() as stream:
                # SO_LINGER 0: close() sends RST instead of FIN.
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()
                with pytest.raises(anyio.BrokenResourceError):
                    await stream.receive()


async def test_a_cancelled_accept_accepts_nothing_and_the_next_one_works() -> None:
    with anyio.fail_after(5):
        async with tcp_listener() as listener:
            accept = fast_accept(listener)
            with anyio.move_on_after(0.05) as scope:
                await accept()
            assert scope.cancelled_caught
            # The connection waits in the backlog for the next accept.
            with connect(listener) as client:
                async with await accept() as stream:
                    client.sendall(b"x")
                    assert await stream.receive() == b"x"


@pytest.mark.parametrize("kind", ["streams", "sockets"])
async def test_a_burst_of_waiting_connections_does_not_hold_the_loop(
    anyio_backend_name: str, kind: str
) -> None:
    # "sockets": what a plain server accepts on asyncio (it makes the streams
    # in the connections' tasks); Trio has no such accept, and takes streams.
    count = 4 * CHECKPOINT_EVERY
    passes = 0

    async def count_passes() -> None:
        nonlocal passes
        while True:
            passes += 1
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10), contextlib.ExitStack() as clients:
        async with tcp_listener() as listener:
            accept_socket = lean_socket_accept(listener)
            assert (accept_socket is not None) is (anyio_backend_name == "asyncio")
            accept: Callable[[], Awaitable[object]] = fast_accept(listener)
            if kind == "sockets" and accept_socket is not None:
                accept = accept_socket
            for _ in range(count):  # all of them wait in the backlog
                clients.enter_context(connect(listener))
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(count_passes)
                await anyio.sleep(0.01)  # the counter runs
                before = passes
                accepted = [await accept() for _ in range(count)]
                during = passes - before
                tasks.cancel_scope.cancel()
            for item in accepted:
                if isinstance(item, socket.socket):
                    assert item.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                    async with await lean_open(item) as stream:
                        assert isinstance(stream, LeanStream)
                    continue
                assert isinstance(item, anyio.abc.SocketStream)
                # On Trio, the stream is the one the WebSocket writes to directly.
                assert (DirectSocket.of(item) is not None) is (anyio_backend_name == "trio")
                await item.aclose()
    # Accepts that never wait still let other tasks run, at least every
    # CHECKPOINT_EVERY (Trio runs a batch of ready tasks in random order, so
    # the first and last passes may fall outside the measured window).
    assert during >= count // CHECKPOINT_EVERY - 2


async def test_direct_accept_is_for_anyio_tcp_listeners_on_trio_only(
    anyio_backend_name: str,
) -> None:
    async with tcp_listener() as listener:
        assert (direct_accept(listener) is not None) is (anyio_backend_name == "trio")
    with tempfile.TemporaryDirectory() as directory:
        async with await create_unix_listener(str(Path(directory) / "s")) as unix:
            assert direct_accept(unix) is None


async def test_closing_the_listener_ends_an_accept_that_waits() -> None:
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0)
        accept = fast_accept(listener)
        raw: socket.socket = listener.extra(anyio.abc.SocketAttribute.raw_socket)
        address = raw.getsockname()
        async with anyio.create_task_group() as tasks:

            async def accept_until_cancelled() -> None:
                with anyio.CancelScope() as scope:
                    stopper.append(scope)
                    await accept()
                    pytest.fail("accepted a connection nobody made")

            stopper: list[anyio.CancelScope] = []
            tasks.start_soon(accept_until_cancelled)
            await anyio.wait_all_tasks_blocked()
            stopper[0].cancel()  # what Server.close() does to its accept loops
        await listener.aclose()
        assert raw.fileno() == -1
        with pytest.raises(ConnectionRefusedError), socket.create_connection(address, timeout=5):
            pass


async def test_unix_listeners_keep_their_own_accept() -> None:
    with anyio.fail_after(5), tempfile.TemporaryDirectory() as tmp:
        listener = await create_unix_listener(str(Path(tmp) / "s"))
        async with listener:
            assert lean_accept(listener) is None
            assert fast_accept(listener) == listener.accept


async def test_premade_tcp_sockets_are_accepted_lean_on_asyncio(anyio_backend_name: str) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    with anyio.fail_after(5):
        async with await listener_from_socket(sock) as listener:
            with connect(listener) as client:
                async with await fast_accept(listener)() as stream:
                    assert isinstance(stream, LeanStream) is (anyio_backend_name == "asyncio")
                    client.sendall(b"premade")
                    assert await stream.receive() == b"premade"


@needs_mptcp
async def test_mptcp_listeners_accept_lean_and_still_notice_tcp_clients(
    anyio_backend_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wskit.backends")
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=True)
        assert isinstance(listener, MptcpListener)
        async with listener:
            accept = fast_accept(listener)
            with connect(listener, proto=262) as client:
                async with await accept() as stream:
                    assert isinstance(stream, LeanStream) is (anyio_backend_name == "asyncio")
                    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                    assert mptcp_status(raw)[0]
                    client.sendall(b"mp")
                    assert await stream.receive() == b"mp"
            assert "did not offer it" not in caplog.text
            with connect(listener) as client:  # plain TCP
                async with await accept() as stream:
                    assert not mptcp_status(stream.extra(anyio.abc.SocketAttribute.raw_socket))[0]
            assert caplog.text.count("did not offer it") == 1


def test_uvloop_accepts_lean_too() -> None:
    # The suite's loops are asyncio and Trio: this runs its own uvloop loop.
    pytest.importorskip("uvloop")

    async def main() -> None:
        with anyio.fail_after(5):
            async with tcp_listener() as listener:
                accept = fast_accept(listener)
                with anyio.move_on_after(0.05):
                    await accept()
                with connect(listener) as client:
                    async with await accept() as stream:
                        assert isinstance(stream, LeanStream)
                        attr = anyio.abc.SocketAttribute
                        assert stream.extra(attr.remote_address) == client.getsockname()
                        raw = stream.extra(attr.raw_socket)
                        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                        client.sendall(b"uv")
                        client.shutdown(socket.SHUT_WR)
                        assert await stream.receive() == b"uv"
                        with pytest.raises(anyio.EndOfStream):
                            await stream.receive()
                        await stream.send(b"back")
                        assert client.recv(16) == b"back"

    anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})


async def test_a_server_backs_off_and_logs_when_accept_fails_then_serves(
    caplog: pytest.LogCaptureFixture, anyio_backend_name: str
) -> None:
    # A real EMFILE: the soft fd limit is lowered to the lowest free fd
    # number, so the server's next accept() has no fd to return.
    caplog.set_level(logging.WARNING, logger="wskit.server")

    async def handler(ws: wskit.WebSocket) -> None:
        await ws.send("hi")

    request = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with anyio.fail_after(5):
        async with wskit.serve(handler, "127.0.0.1", 0) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
                free = os.dup(0)
                os.close(free)
                resource.setrlimit(resource.RLIMIT_NOFILE, (free, hard))
                try:
                    while "accept failed" not in caplog.text:
                        await anyio.sleep(0.005)
                finally:
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                assert "Too many open files" in caplog.text  # the kernel's error, both loops
                client.sendall(request)
                reply = await anyio.to_thread.run_sync(client.recv, 4096)
                assert reply.startswith(b"HTTP/1.1 101")
