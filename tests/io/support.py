"""Helpers for the I/O tests: a recording echo handler, socket facts, TLS, the echo command."""

from __future__ import annotations

import functools
import os
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trustme
from anyio.streams.buffered import BufferedByteReceiveStream

import wskit
from tests.backends.conftest import ipv6_loopback_available, mptcp_available
from wskit import WebSocket

MPTCP = 262

needs_mptcp = pytest.mark.skipif(
    not mptcp_available(), reason="this kernel refuses IPPROTO_MPTCP sockets (net.mptcp.enabled=0?)"
)
needs_ipv6 = pytest.mark.skipif(
    not ipv6_loopback_available(), reason="the host has no IPv6 loopback (::1)"
)


class RecordingEcho:
    """An echo handler that keeps every server-side WebSocket it was given."""

    def __init__(self, greeting: str | None = None) -> None:
        self.greeting = greeting
        self.connections: list[WebSocket] = []

    async def __call__(self, ws: WebSocket) -> None:
        self.connections.append(ws)
        if self.greeting is not None:
            await ws.send(self.greeting)
        async for message in ws:
            await ws.send(message)

    @property
    def last(self) -> WebSocket:
        assert self.connections, "the handler has not run yet"
        return self.connections[-1]


async def round_trip(ws: WebSocket) -> None:
    """Echo a text and a binary message through the server."""
    await ws.send("héllo ✓")
    assert await ws.recv() == "héllo ✓"
    await ws.send(b"\x00\xff" * 100)
    assert await ws.recv() == b"\x00\xff" * 100


def raw_socket(ws: WebSocket) -> socket.socket:
    """The socket under a connection (TransportInfo keeps it privately)."""
    sock = ws.transport._sock
    assert sock is not None
    return sock


def keepalive(sock: socket.socket) -> tuple[int, int, int, int]:
    """(SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) as the kernel reports them."""
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    )


def protocol(sock: socket.socket) -> int:
    """SO_PROTOCOL: 6 for TCP, 262 for MPTCP."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)


@functools.cache
def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts from one throwaway CA; the server's cert names localhost."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1", "::1").configure_cert(server)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(client)
    return server, client


def stranger_context() -> ssl.SSLContext:
    """A client context that trusts only a CA nobody uses."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    trustme.CA().configure_trust(context)
    return context


def open_fds() -> int:
    """How many file descriptors this process has open (Linux)."""
    return len(os.listdir("/proc/self/fd"))


# ------------------------------------------------- the wskit echo command

ROOT = Path(wskit.__file__).resolve().parents[1]
STARTUP = 10  # seconds for the interpreter to start and print its port
EXIT = 5  # seconds for a clean shutdown after the signal


@dataclass
class EchoProcess:
    process: anyio.abc.Process
    port: int
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def log(self) -> str:
        return self.stderr.decode(errors="replace")


async def _drain(stream: anyio.abc.ByteReceiveStream | None, into: bytearray) -> None:
    assert stream is not None
    try:
        async for chunk in stream:
            into += chunk
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass


@asynccontextmanager
async def echo_process(backend: str, *options: str) -> AsyncIterator[EchoProcess]:
    """Start ``python -m wskit echo --port 0``; yield it once it printed its port."""
    command = [sys.executable, "-m", "wskit", "echo", "--host", "127.0.0.1", "--port", "0"]
    process = await anyio.open_process(
        [*command, "--backend", backend, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    async with process, anyio.create_task_group() as tasks:
        stderr = bytearray()
        tasks.start_soon(_drain, process.stderr, stderr)
        try:
            assert process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            with anyio.fail_after(STARTUP):
                first = await stdout.receive_until(b"\n", 1024)
            match = re.fullmatch(rb"listening on ws://127\.0\.0\.1:(\d+)/", first)
            assert match, first
            yield EchoProcess(process, int(match.group(1)), stderr)
        finally:
            with anyio.CancelScope(shield=True):
                if process.returncode is None:
                    process.kill()
                    await process.wait()
        # stderr reaches EOF once the process is gone: the drain ends by itself.


async def wait_exit(echo: EchoProcess) -> int:
    with anyio.fail_after(EXIT):
        return await echo.process.wait()
