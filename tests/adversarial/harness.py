"""The attackers' toolkit: a server under attack, a hostile server, and resource bounds.

Every scenario of this suite asserts two things: the exact outcome (an HTTP
status, a close code, a typed exception) and a resource bound. The bound is
:func:`bounded`: it measures the memory the process allocates while the
attack runs (tracemalloc's peak above the starting point), the wall time,
and, once the attack is over, waits for the open file descriptors, the
running tasks and the server's connections to come back to where they were.

Attackers speak raw bytes on loopback (``tests.io.raw.RawClient`` and the
frame builders in ``tests.frames``); the side under attack is the real
wskit, started with :func:`wskit.serve` on port 0 or :func:`wskit.connect`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import socket
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc

import wskit
import wskit.client  # wskit loads it lazily: load it before any bound is measured
import wskit.server
from tests.io.raw import RawClient, close_code

__all__ = [
    "CLOSE_TIMEOUT",
    "OPEN_TIMEOUT",
    "Exchange",
    "KiB",
    "MiB",
    "Usage",
    "attacked_server",
    "bounded",
    "close_after",
    "echo",
    "exchange",
    "hostile_server",
    "open_fds",
    "read_request_head",
    "request_key",
    "running_tasks",
    "upgraded",
]

KiB = 1024
MiB = 1024 * KiB

# Small timeouts keep each scenario within a second or two; the defaults they
# stand for (10 s, 20 s) are what docs/threats.md lists.
OPEN_TIMEOUT = 0.5
CLOSE_TIMEOUT = 0.5
SETTLE = 2.0  # seconds to wait for fds and tasks to come back after an attack


def open_fds() -> int:
    """How many file descriptors this process has open (Linux /proc)."""
    return len(os.listdir("/proc/self/fd"))


def running_tasks() -> int:
    """How many tasks the event loop runs now, Trio's own system tasks left out.

    Trio starts some system tasks lazily (the one behind ``TrioToken``, when a
    thread first hands work back): they are named ``<...>`` and are no leak.
    """
    return sum(not task.name.startswith("<") for task in anyio.get_running_tasks())


@dataclass
class Usage:
    """What an attack cost; filled in when :func:`bounded` exits.

    Attributes:
        memory: peak bytes allocated above the starting point (tracemalloc).
        elapsed: wall time of the attack, in seconds.
    """

    memory: int = 0
    elapsed: float = 0.0


@asynccontextmanager
async def bounded(
    *, memory: int, seconds: float, server: wskit.Server | None = None
) -> AsyncIterator[Usage]:
    """Run an attack under resource bounds, and check nothing is left behind.

    Args:
        memory: the most bytes the process may allocate above its starting
            point at any moment of the attack (attacker included).
        seconds: the most the attack may take, wall time; the block is
            cancelled (and fails) past twice that.
        server: when given, its connections must all have ended afterwards.

    Yields:
        A :class:`Usage`, filled in on exit.
    """
    gc.collect()
    await anyio.sleep(0.02)  # let tasks just started (a server's accept loops) settle
    fds, tasks = open_fds(), running_tasks()
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    usage = Usage()
    start = anyio.current_time()
    try:
        with anyio.fail_after(2 * seconds + SETTLE):
            yield usage
        usage.elapsed = anyio.current_time() - start
        usage.memory = tracemalloc.get_traced_memory()[1] - base
    finally:
        if started_tracing:
            tracemalloc.stop()
    print(f"[bounded] {usage.memory / KiB:.0f} KiB peak, {usage.elapsed:.3f} s")
    assert usage.elapsed <= seconds, f"the attack took {usage.elapsed:.2f} s (bound {seconds} s)"
    assert usage.memory <= memory, f"peak allocation {usage.memory} bytes (bound {memory})"
    # Nothing may outlive the attack: sockets, tasks, server-side connections.
    with anyio.move_on_after(SETTLE):
        while (
            open_fds() > fds or running_tasks() > tasks or (server is not None and server._active)
        ):
            await anyio.sleep(0.01)
    assert open_fds() <= fds, f"{open_fds() - fds} file descriptors leaked"
    assert running_tasks() <= tasks, [task.name for task in anyio.get_running_tasks()]
    if server is not None:
        assert server._active == 0, f"{server._active} connections still open on the server"


# ------------------------------------------------------------ the server under attack


async def echo(ws: wskit.WebSocket) -> None:
    """The application under attack: echo every message."""
    with contextlib.suppress(wskit.ConnectionClosed):
        async for message in ws:
            await ws.send(message)


@asynccontextmanager
async def attacked_server(
    handler: Callable[[wskit.WebSocket], Awaitable[None]] = echo, **options: Any
) -> AsyncIterator[wskit.Server]:
    """A real wskit server on 127.0.0.1, port 0, with short timeouts unless overridden."""
    options.setdefault("open_timeout", OPEN_TIMEOUT)
    options.setdefault("close_timeout", CLOSE_TIMEOUT)
    async with wskit.serve(handler, "127.0.0.1", 0, **options) as server:
        yield server


@dataclass
class Exchange:
    """What a raw client got back for the bytes it sent during the handshake.

    Attributes:
        status: the HTTP status code (0 when no response head came).
        headers: response header names (lower case) to values.
        body: the response body (what came after the head).
        closed: whether the server closed the connection.
        elapsed: seconds from the first byte sent to the end of the exchange.
    """

    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool
    elapsed: float


async def exchange(
    port: int, request: bytes, *, chunk: int | None = None, timeout: float = 2.0
) -> Exchange:
    """Send raw request bytes (in ``chunk``-sized writes if given), read until the server closes.

    A blocking socket in a worker thread does the talking: it sends slices of
    ``request`` without copying them, so the attacker's own allocations stay
    out of the memory the server is charged with.
    """
    start = anyio.current_time()
    data, closed = await anyio.to_thread.run_sync(_talk, port, request, chunk, timeout)
    elapsed = anyio.current_time() - start
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return Exchange(int(match.group(1)) if match else 0, headers, body, closed, elapsed)


def _talk(port: int, request: bytes, chunk: int | None, timeout: float) -> tuple[bytes, bool]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        view = memoryview(request)
        step = chunk or len(request)
        with contextlib.suppress(OSError):  # the server may refuse before the end
            for offset in range(0, len(request), step):
                sock.sendall(view[offset : offset + step])
        received = bytearray()
        while True:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                return bytes(received), False
            except OSError:  # a reset: the server closed with our bytes unread
                return bytes(received), True
            if not piece:
                return bytes(received), True
            received += piece


async def upgraded(port: int, *, rcvbuf: int | None = None) -> RawClient:
    """A raw client that completed a valid handshake (no extensions offered)."""
    raw = await RawClient.open(port, rcvbuf=rcvbuf)
    try:
        await raw.handshake()
    except BaseException:
        await raw.aclose()
        raise
    return raw


async def close_after(raw: RawClient, data: bytes, timeout: float = 2.0) -> tuple[int | None, bool]:
    """Send frames and read until the server closes; return its close code and whether it closed."""
    with contextlib.suppress(anyio.BrokenResourceError, OSError):
        await raw.send(data)
    received, closed = await raw.read_until_closed(timeout)
    return close_code(received), closed


# ------------------------------------------------------------- a hostile server


Respond = Callable[[anyio.abc.SocketStream, bytes], Awaitable[None]]


async def read_request_head(stream: anyio.abc.SocketStream) -> bytes:
    """Read a client's request head (up to the blank line)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data.partition(b"\r\n\r\n")[0]


def request_key(head: bytes) -> str:
    """The Sec-WebSocket-Key of a request head."""
    match = re.search(rb"(?im)^sec-websocket-key:\s*(\S+)", head)
    assert match, head
    return match.group(1).decode()


@asynccontextmanager
async def hostile_server(respond: Respond) -> AsyncIterator[int]:
    """A raw TCP server on 127.0.0.1 that reads each request head and calls ``respond``.

    Yields the port. ``respond(stream, head)`` writes whatever it likes; the
    stream is closed when it returns.
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def one(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                await respond(stream, await read_request_head(stream))

    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, one)
        try:
            yield listener.extra(anyio.abc.SocketAttribute.local_port)
        finally:
            tasks.cancel_scope.cancel()
