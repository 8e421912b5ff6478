"""Echo servers over loopback: wskit against its peers, server and client in separate processes.

Each server is an echo server run by this script in a child process of its own
(``--serve IMPL``), pinned to one CPU; the load generator runs here, pinned to
another. One load generator drives every server: a raw WebSocket client on
asyncio Protocols (uvloop when installed) that sends pre-masked frames and,
while timing, counts the bytes (or messages) that come back instead of parsing
them. It costs far less CPU per message than any Python server here, so the
server sets the pace on the throughput rows (the CPU-use table shows where it
does not: round trips wait on latency, and picows can outrun the client). Every workload is first
checked once per server: each echo must come back intact, in order, as one
unmasked frame of the right type.

Rows: pipelined echo (batches written at once, two in flight) of 32 B, 1 KiB,
64 KiB and 1 MiB binary messages; round trips (send, wait for the echo) of 32 B
and 1 MiB; many connections x 20 round trips of 256 B, all at once; handshakes
(open, close handshake, TCP close; 32 at a time); idle memory per connection (a
fresh server process, its RSS before and after opening idle connections), with
and without permessage-deflate negotiated; permessage-deflate on 16 KiB JSON
text, pipelined.

Tables: msgs/s relative to python websockets on asyncio (= 1.00), the same for
the server's CPU time per message (read from the server's own getrusage), then
the raw numbers and how busy each CPU was. Medians of several runs; the servers
take turns in every round, and the one that goes first changes from round to
round. The rounds are spread over three passes over all rows (``--passes``),
each with fresh server processes: a row's median then spans the whole run
rather than one minute of a shared host, and one process's luck (its memory
layout) weighs on a third of its runs, not on all of them.

Usage::

    .venv/bin/python benchmarks/io_echo.py [--quick] [--markdown] [--repeat N] [--time S]
                                           [--impls a,b] [--workloads a,b]
                                           [--connections N] [--idle N] [--write PAGE]
    .venv/bin/python benchmarks/io_echo.py --profile wskit/asyncio [--profiler py-spy|cprofile]
                                           [--profile-workload many|handshake|deflate...]
    .venv/bin/python benchmarks/io_echo.py --serve wskit/trio --port 0   # one server, by hand
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import hashlib
import importlib.metadata
import importlib.util
import io
import itertools
import json
import math
import os
import platform
import pstats
import random
import re
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

KiB = 1024
MiB = 1024 * KiB
HOST = "127.0.0.1"
# The CPUs that servers and the load generator are pinned to; set by main() (empty: no pinning).
PINNING: dict[str, int] = {}
# glibc's malloc moves its mmap and trim thresholds as a process runs, so a 1 MiB
# buffer is sometimes recycled and sometimes returned to the kernel and faulted in
# again: the 1 MiB rows then flip between two modes from run to run (as in
# core_pair.py). Every server gets these fixed thresholds unless --system-malloc.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(16 * MiB), "MALLOC_TRIM_THRESHOLD_": str(64 * MiB)}
SERVER_ENV: dict[str, str] = {}
MAX_MESSAGE = 64 * MiB  # every server accepts messages this large (the 1 MiB rows)
READ_SIZE = 256 * KiB  # trio-websocket's receive_buffer_size, as wskit's READ_SIZE
SEED = 20240607

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE = 0x0, 0x1, 0x2, 0x8


class BenchmarkError(Exception):
    """A correctness check failed, or a server misbehaved: the numbers would mean nothing."""


def require(condition: bool, what: str) -> None:
    # Not ``assert``: the checks must hold under ``python -O`` too.
    if not condition:
        raise BenchmarkError(what)


def choose_cpus() -> None:
    """Pick a CPU for the servers and another for the load generator (the first two we may use).

    Nothing is pinned on a single-CPU machine, or without an affinity API.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return
    if len(cpus) >= 2:
        PINNING["server"], PINNING["client"] = cpus[0], cpus[1]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# ============================================================ implementations


@dataclass(frozen=True)
class Impl:
    name: str  # column header, and the value of --serve
    modules: tuple[str, ...]  # must be importable
    version_of: str  # the distribution whose version is reported
    deflate: bool  # can negotiate permessage-deflate
    setup: str  # how it is configured here


IMPLS = (
    Impl(
        "websockets",
        ("websockets",),
        "websockets",
        True,
        "websockets.asyncio.server.serve on the asyncio loop; max_queue=None, max_size 64 MiB, "
        "ping_interval=None",
    ),
    Impl(
        "wskit/asyncio",
        ("wskit", "anyio"),
        "wskit",
        True,
        "wskit.serve under anyio.run(backend='asyncio'); max_queue=None, max_message 64 MiB, "
        "ping_interval=None",
    ),
    Impl(
        "wskit/uvloop",
        ("wskit", "anyio", "uvloop"),
        "wskit",
        True,
        "the same, backend_options={'use_uvloop': True}",
    ),
    Impl("wskit/trio", ("wskit", "anyio", "trio"), "wskit", True, "the same on backend='trio'"),
    Impl(
        "aiohttp",
        ("aiohttp",),
        "aiohttp",
        True,
        "aiohttp.web WebSocketResponse on the asyncio loop; max_msg_size 64 MiB, no heartbeat, "
        "access log off",
    ),
    Impl(
        "trio-websocket",
        ("trio_websocket", "trio"),
        "trio-websocket",
        False,
        "serve_websocket; message_queue_size=inf, max_message_size 64 MiB, "
        "receive_buffer_size 256 KiB (default 4 KiB), as wskit reads; no compression support",
    ),
    Impl(
        "picows/uvloop",
        ("picows", "uvloop"),
        "picows",
        False,
        "ws_create_server on uvloop (aiofastnet when installed, picows' default); "
        "echoes each frame from on_ws_frame; no compression support",
    ),
)
IMPL_BY_NAME = {impl.name: impl for impl in IMPLS}
BASELINE = "websockets"


def missing_modules(impl: Impl) -> list[str]:
    return [name for name in impl.modules if importlib.util.find_spec(name) is None]


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


# ================================================================ server side


def announce(port: int) -> None:
    os.write(1, f"ready {port}\n".encode())


def _report_cpu(_signum: int, _frame: object) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    os.write(1, f"cpu {usage.ru_utime + usage.ru_stime!r}\n".encode())


class _ProfileToggle:
    """SIGUSR2 starts a profiler in the server; the next SIGUSR2 stops it and writes its data.

    ``cprofile``: cProfile, dumped as pstats. ``sampler``: every millisecond of the
    process's CPU time (SIGPROF), the main thread's Python stack is counted; written
    as collapsed stacks (py-spy's raw format). C code, syscalls included, counts for
    the Python function that called it.
    """

    def __init__(self, kind: str, path: str) -> None:
        self.kind, self.path = kind, path
        self.profiler: cProfile.Profile | None = None
        self.stacks: Counter[tuple[Any, ...]] = Counter()
        self.running = False

    def __call__(self, _signum: int, _frame: object) -> None:
        if not self.running:
            self.running = True
            if self.kind == "cprofile":
                self.profiler = cProfile.Profile()
                self.profiler.enable()
            else:
                signal.signal(signal.SIGPROF, self._sample)
                signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)
            os.write(1, b"profiling\n")
            return
        self.running = False
        if self.profiler is not None:
            self.profiler.disable()
            self.profiler.dump_stats(self.path)
        else:
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            with open(self.path, "w") as out:
                for stack, count in self.stacks.items():
                    frames = ";".join(f"{c.co_qualname} ({c.co_filename})" for c in stack)
                    out.write(f"thread (0): MainThread;{frames} {count}\n")
        os.write(1, b"dumped\n")

    def _sample(self, _signum: int, frame: Any) -> None:
        codes = []
        while frame is not None:
            codes.append(frame.f_code)
            frame = frame.f_back
        codes.reverse()
        self.stacks[tuple(codes)] += 1


def _run_asyncio(main: Callable[[], Any], *, uvloop: bool) -> None:
    if uvloop:
        import uvloop as _uvloop

        with asyncio.Runner(loop_factory=_uvloop.new_event_loop) as runner:
            runner.run(main())
    else:
        asyncio.run(main())


def serve_wskit(flavour: str, compression: bool) -> None:
    import anyio

    import wskit
    from wskit.errors import ConnectionClosed

    async def echo(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async def main() -> None:
        async with wskit.serve(
            echo,
            HOST,
            0,
            compression="deflate" if compression else None,
            max_message=MAX_MESSAGE,
            max_queue=None,
            ping_interval=None,
        ) as server:
            announce(server.port)
            await anyio.sleep_forever()

    backend = "trio" if flavour == "trio" else "asyncio"
    options = {"use_uvloop": True} if flavour == "uvloop" else {}
    anyio.run(main, backend=backend, backend_options=options)


def serve_websockets(compression: bool) -> None:
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def echo(ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                await ws.send(message)

    async def main() -> None:
        async with serve(
            echo,
            HOST,
            0,
            compression="deflate" if compression else None,
            max_size=MAX_MESSAGE,
            max_queue=None,
            ping_interval=None,
        ) as server:
            announce(server.sockets[0].getsockname()[1])
            await asyncio.get_running_loop().create_future()

    _run_asyncio(main, uvloop=False)


def serve_aiohttp(compression: bool) -> None:
    from aiohttp import WSMsgType, web

    async def echo(request: Any) -> Any:
        ws = web.WebSocketResponse(compress=compression, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                await ws.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await ws.send_str(message.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, HOST, 0)
        await site.start()
        announce(runner.addresses[0][1])
        await asyncio.get_running_loop().create_future()

    _run_asyncio(main, uvloop=False)


def serve_trio_websocket() -> None:
    import functools

    import trio
    from trio_websocket import ConnectionClosed, serve_websocket

    async def echo(request: Any) -> None:
        ws = await request.accept()
        with contextlib.suppress(ConnectionClosed):
            while True:
                await ws.send_message(await ws.get_message())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                functools.partial(
                    serve_websocket,
                    echo,
                    HOST,
                    0,
                    ssl_context=None,
                    message_queue_size=math.inf,  # type: ignore[arg-type]  # trio allows inf
                    max_message_size=MAX_MESSAGE,
                    receive_buffer_size=READ_SIZE,
                )
            )
            announce(server.port)

    trio.run(main)


def serve_picows() -> None:
    import logging

    from picows import WSListener, WSMsgType, ws_create_server

    # picows logs every write-buffer pause/resume (flow control, expected when pipelining).
    logging.getLogger("picows").setLevel(logging.ERROR)

    data_types = (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION)

    class Echo(WSListener):
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            kind = frame.msg_type
            if kind in data_types:
                transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
            elif kind == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    async def main() -> None:
        server = await ws_create_server(
            lambda _request: Echo(),
            HOST,
            0,
            max_frame_size=MAX_MESSAGE,
            websocket_handshake_timeout=None,
        )
        announce(server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().create_future()

    _run_asyncio(main, uvloop=True)


def server_main(
    impl: str, port: int, cpu: int | None, compression: bool, profiler: str | None
) -> None:
    require(port == 0, "--port: only 0 (any free port, printed on the ready line) is supported")
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    raise_fd_limit()
    signal.signal(signal.SIGUSR1, _report_cpu)
    if profiler:
        kind, _, path = profiler.partition(":")
        signal.signal(signal.SIGUSR2, _ProfileToggle(kind, path))
    if impl.startswith("wskit/"):
        serve_wskit(impl.removeprefix("wskit/"), compression)
    elif impl == "websockets":
        serve_websockets(compression)
    elif impl == "aiohttp":
        serve_aiohttp(compression)
    elif impl == "trio-websocket":
        require(not compression, "trio-websocket does not support permessage-deflate")
        serve_trio_websocket()
    elif impl == "picows/uvloop":
        require(not compression, "picows does not support permessage-deflate")
        serve_picows()
    else:
        raise BenchmarkError(f"unknown implementation {impl!r}")


class Server:
    """A ``--serve`` child process: its port, its CPU time (SIGUSR1) and its RSS (/proc)."""

    def __init__(
        self, impl: str, *, compression: bool = False, profiler: str | None = None
    ) -> None:
        self.impl = impl
        self.compression = compression
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open while the server runs)
            mode="w+b", prefix="io_echo-server-", suffix=".log"
        )
        command = [sys.executable, os.path.abspath(__file__), "--serve", impl, "--port", "0"]
        if compression:
            command.append("--compression")
        if profiler:
            command += ["--profiler-in-server", profiler]
        if "server" in PINNING:
            command += ["--cpu", str(PINNING["server"])]
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, **SERVER_ENV},
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
        self._pending = b""
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port it listens on; waits for the server to be ready the first time."""
        if self._port is None:
            try:
                self._port = int(self.read_line("ready", timeout=30))
                if "server" in PINNING:
                    affinity = os.sched_getaffinity(self.pid)
                    require(affinity == {PINNING["server"]}, f"{self.impl} runs on CPUs {affinity}")
            except BaseException:
                self.stop()
                raise
        return self._port

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_line(self, kind: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self._fd], [], [], max(left, 0))
            if not readable:
                raise BenchmarkError(f"{self.impl}: no {kind!r} line within {timeout} s")
            chunk = os.read(self._fd, 4096)
            if not chunk:
                raise BenchmarkError(f"{self.impl}: the server exited\n{self.stderr_tail()}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        word, _, value = line.decode().partition(" ")
        require(word == kind, f"{self.impl}: expected a {kind!r} line, got {line!r}")
        return value

    def cpu(self) -> float:
        """The server's user + system CPU seconds so far, from its own getrusage."""
        os.kill(self.pid, signal.SIGUSR1)
        return float(self.read_line("cpu"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise BenchmarkError("no VmRSS in /proc/PID/status")

    def stderr_lines(self) -> list[str]:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace").splitlines()

    def stderr_tail(self, count: int = 20) -> str:
        return "\n".join(self.stderr_lines()[-count:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ================================================================ client side

_MASK_RNG = random.Random(SEED)


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    size = len(payload)
    keys = (key * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(keys, "little")
    return masked.to_bytes(size, "little")


def client_frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """One final, masked client frame."""
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 65536:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    key = _MASK_RNG.randbytes(4)
    return header + key + mask(payload, key)


def server_frame_size(payload_size: int) -> int:
    """Bytes of one unmasked, final server frame carrying ``payload_size`` bytes."""
    if payload_size < 126:
        return 2 + payload_size
    if payload_size < 65536:
        return 4 + payload_size
    return 10 + payload_size


@dataclass(frozen=True)
class Frame:
    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes


def parse_frames(data: bytes | bytearray) -> tuple[list[Frame], int]:
    """Complete server frames at the start of ``data``, and the bytes they take."""
    frames = []
    position, end = 0, len(data)
    while end - position >= 2:
        first, second = data[position], data[position + 1]
        require(not second & 0x80, "a server frame is masked")
        size, header = second & 0x7F, 2
        if size >= 126:
            header = 4 if size == 126 else 10
            if end - position < header:
                break
            size = int.from_bytes(data[position + 2 : position + header], "big")
        if end - position - header < size:
            break
        start = position + header
        frames.append(
            Frame(
                bool(first & 0x80),
                bool(first & 0x40),
                first & 0x0F,
                bytes(data[start : start + size]),
            )
        )
        position = start + size
    return frames, position


CLOSE_FRAME = client_frame(OP_CLOSE, (1000).to_bytes(2, "big"))
KEY = base64.b64encode(random.Random(SEED).randbytes(16)).decode()
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()
# What a browser offers, for the idle-memory row.
OFFER_DEFLATE = "permessage-deflate; client_max_window_bits"
# For the deflate throughput row: the client compresses every message on its own
# (RFC 7692 section 7.1.1.1), so its frames can be made once, before timing.
OFFER_DEFLATE_NO_TAKEOVER = "permessage-deflate; client_no_context_takeover; client_max_window_bits"


def upgrade_request(port: int, offer: str | None) -> bytes:
    lines = [
        "GET / HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
    ]
    if offer:
        lines.append(f"Sec-WebSocket-Extensions: {offer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


COLLECT, COUNT_BYTES, COUNT_MESSAGES = 0, 1, 2


def _never() -> bool:
    return False


class Conn(asyncio.Protocol):
    """The load generator's end of one connection.

    COLLECT keeps what arrives in ``buf`` (handshakes, checks); COUNT_BYTES and
    COUNT_MESSAGES only count, until ``target``, which is what timed runs do.
    """

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.mode = COLLECT
        self.buf = bytearray()
        self.until: Callable[[], bool] = _never
        self.received = 0
        self.messages = 0
        self.target = 0
        self._skip = 0
        self._partial = b""
        self.waiter: asyncio.Future[None] | None = None
        self.lost: asyncio.Future[None] = self.loop.create_future()

    # ----------------------------------------------------------- protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        mode = self.mode
        if mode == COUNT_BYTES:
            self.received += len(data)
            if self.received >= self.target:
                self._wake()
        elif mode == COUNT_MESSAGES:
            self.received += len(data)
            self._count_messages(data)
            if self.messages >= self.target:
                self._wake()
        else:
            self.buf += data
            if self.until():
                self._wake()

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, _exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError("the server closed the connection"))

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _count_messages(self, data: bytes) -> None:
        """Count final data frames, skipping payloads (server frames are unmasked)."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        position, end, skip = 0, len(data), self._skip
        while True:
            if skip:
                left = end - position
                if skip >= left:
                    self._skip = skip - left
                    return
                position += skip
                skip = 0
            if end - position < 2:
                self._partial = data[position:]
                self._skip = 0
                return
            first, size = data[position], data[position + 1] & 0x7F
            if size < 126:
                position += 2
            else:
                header = 4 if size == 126 else 10
                if end - position < header:
                    self._partial = data[position:]
                    self._skip = 0
                    return
                size = int.from_bytes(data[position + 2 : position + header], "big")
                position += header
            if first & 0x80 and (first & 0x0F) < 8:
                self.messages += 1
            skip = size

    # ------------------------------------------------------------ waiting

    async def _wait(self) -> None:
        if self.lost.done():
            raise ConnectionError("the server closed the connection")
        waiter = self.loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            self.waiter = None

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def collect_until(self, until: Callable[[], bool]) -> None:
        self.mode = COLLECT
        self.until = until
        if not until():
            await self._wait()
        self.until = _never

    def count_bytes(self) -> None:
        """Switch to counting bytes; ``target`` is then in bytes, from here."""
        require(not self.buf, "unexpected bytes before the timed runs")
        self.mode, self.received, self.target = COUNT_BYTES, 0, 0

    def count_messages(self) -> None:
        require(not self.buf, "unexpected bytes before the timed runs")
        self.mode, self.received, self.messages, self.target = COUNT_MESSAGES, 0, 0, 0
        self._skip, self._partial = 0, b""

    async def bytes_reached(self) -> None:
        if self.received < self.target:
            await self._wait()

    async def messages_reached(self) -> None:
        if self.messages < self.target:
            await self._wait()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def handshake(
    port: int, offer: str | None = None, *, check: bool = False
) -> tuple[Conn, str]:
    """Open one connection and upgrade it; return it and the Sec-WebSocket-Extensions answer."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(Conn, HOST, port)
    conn.send(upgrade_request(port, offer))
    await conn.collect_until(lambda: b"\r\n\r\n" in conn.buf)
    head, _, rest = bytes(conn.buf).partition(b"\r\n\r\n")
    conn.buf = bytearray(rest)
    status, *lines = head.decode("latin-1").split("\r\n")
    require(status.startswith("HTTP/1.1 101 "), f"the upgrade was refused: {status!r}")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    if check:
        require(headers.get("sec-websocket-accept") == [ACCEPT], "wrong Sec-WebSocket-Accept")
        require(not rest, "bytes after the 101 response")
    return conn, ", ".join(headers.get("sec-websocket-extensions", []))


async def open_many(
    port: int, count: int, offer: str | None = None, concurrency: int = 64
) -> list[tuple[Conn, str]]:
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[Conn, str]:
        async with gate:
            return await handshake(port, offer)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def goodbye(conns: Sequence[Conn], timeout: float = 5.0) -> None:
    """Close handshake on each connection, then wait (bounded) for the server to close TCP."""
    for conn in conns:
        conn.mode = COLLECT
        conn.buf.clear()
        if not conn.lost.done():
            conn.send(CLOSE_FRAME)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(conn.lost for conn in conns))
    for conn in conns:
        conn.abort()


def check_echo(frames: Sequence[Frame], sent: Sequence[bytes | str], what: str) -> None:
    require(len(frames) == len(sent), f"{what}: {len(frames)} frames back for {len(sent)} sent")
    for frame, message in zip(frames, sent, strict=True):
        opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
        require(frame.fin and frame.opcode == opcode, f"{what}: frame fin/opcode {frame}")
        require(not frame.rsv1, f"{what}: compressed although no compression was negotiated")
        payload = message.encode() if isinstance(message, str) else message
        require(frame.payload == payload, f"{what}: the echo differs from what was sent")


# ================================================================== workloads


@dataclass
class Sample:
    msgs: int
    wall: float
    cpu: float  # server CPU seconds
    client_cpu: float  # the load generator's CPU seconds
    core_busy: float  # seconds the server's CPU was busy, whoever with (/proc/stat)


class Workload:
    """One row: open a session on a server, check it once, run it for a while, close it."""

    key = ""
    label = ""
    deflate = False  # needs servers started with compression on
    unit = "msgs"
    warm_up = True  # a short untimed run after the check

    async def open(self, port: int) -> Any:
        raise NotImplementedError

    async def verify(self, session: Any) -> str | None:
        """Check the echoes once (BenchmarkError if wrong); may return a note for the tables."""
        raise NotImplementedError

    async def run(self, session: Any, seconds: float) -> int:
        raise NotImplementedError

    async def close(self, session: Any) -> None:
        raise NotImplementedError


async def keep_busy(
    conn: Conn,
    *,
    wire: bytes,
    step: int,
    batch: int,
    seconds: float,
    depth: int,
    reached: Callable[[], Awaitable[None]],
) -> int:
    """Keep ``depth`` batches in flight until ``seconds`` are up, then drain; return messages.

    ``step`` is what one batch adds to ``conn.target`` (bytes or messages). With two
    batches in flight, the server has the next one to work on while the client takes
    in the last echoes of the previous one and writes another.
    """
    deadline = time.perf_counter() + seconds
    for _ in range(depth):
        conn.send(wire)
    outstanding, count = depth, 0
    while outstanding:
        conn.target += step
        await reached()
        outstanding -= 1
        count += batch
        if time.perf_counter() < deadline:
            conn.send(wire)
            outstanding += 1
    return count


def stamped_messages(size: int, count: int) -> list[bytes]:
    """``count`` distinct binary messages of ``size`` bytes (so a reordering shows)."""
    base = random.Random(SEED + size).randbytes(size)
    return [(index.to_bytes(4, "big") + base)[:size] for index in range(count)]


class Echo(Workload):
    """``batch`` messages of ``size`` bytes written at once, then all the echoes read.

    With ``batch == 1`` this is the round-trip workload.
    """

    def __init__(self, key: str, label: str, size: int, batch: int) -> None:
        self.key, self.label, self.size, self.batch = key, label, size, batch
        self.messages = stamped_messages(size, batch)
        self.wire = b"".join(client_frame(OP_BINARY, message) for message in self.messages)
        self.reply = batch * server_frame_size(size)

    async def open(self, port: int) -> Conn:
        conn, _ = await handshake(port, check=True)
        return conn

    async def verify(self, conn: Conn) -> None:
        conn.send(self.wire)
        await conn.collect_until(lambda: len(conn.buf) >= self.reply)
        frames, used = parse_frames(conn.buf)
        require(used == len(conn.buf) == self.reply, f"{self.label}: unexpected bytes")
        check_echo(frames, self.messages, self.label)
        conn.buf.clear()
        conn.count_bytes()

    async def run(self, conn: Conn, seconds: float) -> int:
        depth = 2 if self.batch > 1 else 1
        return await keep_busy(
            conn,
            wire=self.wire,
            step=self.reply,
            batch=self.batch,
            seconds=seconds,
            depth=depth,
            reached=conn.bytes_reached,
        )

    async def close(self, conn: Conn) -> None:
        require(conn.received == conn.target, f"{self.label}: unexpected bytes during the runs")
        await goodbye([conn])


class ManyConnections(Workload):
    """``connections`` open connections; each does ``rounds`` round trips, all at once."""

    def __init__(self, connections: int, rounds: int = 20, size: int = 256) -> None:
        self.key = "many"
        self.warm_up = False  # one pass can take a second; the check already warmed each one
        self.label = f"{connections:,} connections x {rounds} round trips of {size} B"
        self.connections, self.rounds, self.size = connections, rounds, size
        [self.message] = stamped_messages(size, 1)
        self.wire = client_frame(OP_BINARY, self.message)
        self.reply = server_frame_size(size)

    async def open(self, port: int) -> list[Conn]:
        return [conn for conn, _ in await open_many(port, self.connections)]

    async def verify(self, conns: list[Conn]) -> None:
        async def one(conn: Conn) -> None:
            conn.send(self.wire)
            await conn.collect_until(lambda: len(conn.buf) >= self.reply)
            frames, used = parse_frames(conn.buf)
            require(used == len(conn.buf), f"{self.label}: unexpected bytes")
            check_echo(frames, [self.message], self.label)
            conn.buf.clear()
            conn.count_bytes()

        await asyncio.gather(*(one(conn) for conn in conns))

    async def run(self, conns: list[Conn], seconds: float) -> int:
        wire, reply, rounds = self.wire, self.reply, self.rounds

        async def client(conn: Conn) -> None:
            for _ in range(rounds):
                conn.send(wire)
                conn.target += reply
                await conn.bytes_reached()

        deadline = time.perf_counter() + seconds
        count = 0
        while True:
            await asyncio.gather(*(client(conn) for conn in conns))
            count += len(conns) * rounds
            if time.perf_counter() >= deadline:
                return count

    async def close(self, conns: list[Conn]) -> None:
        require(
            all(conn.received == conn.target for conn in conns),
            f"{self.label}: unexpected bytes during the runs",
        )
        await goodbye(conns)


class Handshakes(Workload):
    """Open, upgrade, close handshake, wait for the server to close TCP; a few at a time."""

    key = "handshake"
    unit = "handshakes"

    def __init__(self, concurrency: int = 8) -> None:
        self.concurrency = concurrency
        self.label = f"handshakes (open + close, {concurrency} at a time)"

    async def open(self, port: int) -> int:
        return port

    async def verify(self, port: int) -> None:
        conn, _ = await handshake(port, check=True)
        conn.send(CLOSE_FRAME)
        async with asyncio.timeout(5):
            await conn.lost
        frames, used = parse_frames(conn.buf)
        require(used == len(conn.buf), "trailing bytes after the close frame")
        require(
            [(f.opcode, f.payload[:2]) for f in frames] == [(OP_CLOSE, b"\x03\xe8")],
            f"the close handshake: {frames}",
        )

    async def run(self, port: int, seconds: float) -> int:
        deadline = time.perf_counter() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                conn, _ = await handshake(port)
                conn.send(CLOSE_FRAME)
                await conn.lost  # the server closes TCP after the close handshake
                done += 1

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return done

    async def close(self, port: int) -> None:
        pass


_FIRST = ["Ana", "Bruno", "Chloé", "Dmitri", "Eve", "Farah", "Günter", "Hiro", "Ines", "Jules"]
_LAST = ["Martin", "Nguyen", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Müller", "Silva"]
_TAGS = ["admin", "beta", "billing", "eu-west", "mobile", "premium", "support", "trial"]
_ACTIONS = ["login", "logout", "purchase", "refund", "upload", "comment", "share"]
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def json_page(rng: random.Random, size: int) -> str:
    """A repetitive, realistic JSON page of exactly ``size`` UTF-8 bytes."""
    items: list[dict[str, object]] = []
    doc: dict[str, object] = {"page": rng.randrange(1000), "items": items, "cursor": ""}
    while len(json.dumps(doc, ensure_ascii=False).encode()) < size - 400:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        items.append(
            {
                "id": rng.randrange(10**6, 10**7),
                "user": {
                    "name": f"{first} {last}",
                    "email": f"{first.lower()}.{last.lower()}@example.com",
                    "tags": rng.sample(_TAGS, rng.randint(1, 3)),
                },
                "event": rng.choice(_ACTIONS),
                "amount": round(rng.uniform(0, 500), 2),
                "active": rng.random() < 0.8,
            }
        )
    padding = size - len(json.dumps(doc, ensure_ascii=False).encode())
    doc["cursor"] = "".join(rng.choice(_ALPHABET) for _ in range(padding))
    text = json.dumps(doc, ensure_ascii=False)
    require(len(text.encode()) == size, "the JSON generator missed its size")
    return text


@dataclass
class DeflateSession:
    conn: Conn
    answer: str
    wire: bytes = b""
    pool_wire: bytes = b""


class DeflateJSON(Workload):
    """Pipelined 16 KiB JSON text messages with permessage-deflate, 32 distinct ones cycled."""

    key = "deflate"
    deflate = True

    def __init__(self, size: int = 16 * KiB, pool: int = 32, batch: int = 96) -> None:
        self.size, self.batch = size, batch
        self.label = f"permessage-deflate, {size // KiB} KiB JSON text, pipelined"
        rng = random.Random(SEED)
        self.pool = [json_page(rng, size) for _ in range(pool)]

    def frames(self, client_bits: int) -> list[bytes]:
        frames = []
        for text in self.pool:
            compressor = zlib.compressobj(wbits=-client_bits)
            data = compressor.compress(text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
            require(data.endswith(b"\x00\x00\xff\xff"), "zlib did not end on a sync flush")
            frames.append(client_frame(OP_TEXT, data[:-4], rsv1=True))
        return frames

    async def open(self, port: int) -> DeflateSession:
        conn, answer = await handshake(port, OFFER_DEFLATE_NO_TAKEOVER, check=True)
        require("permessage-deflate" in answer, f"compression was not negotiated: {answer!r}")
        match = re.search(r"client_max_window_bits=(\d+)", answer)
        frames = self.frames(int(match.group(1)) if match else 15)
        wire = b"".join(frames[i % len(frames)] for i in range(self.batch))
        return DeflateSession(conn, answer, wire, b"".join(frames))

    async def verify(self, session: DeflateSession) -> str:
        conn, count = session.conn, len(self.pool)
        # Twice round the pool: the second pass runs on a warm server context.
        conn.send(session.pool_wire + session.pool_wire)
        await conn.collect_until(lambda: len(parse_frames(conn.buf)[0]) >= 2 * count)
        frames, used = parse_frames(conn.buf)
        require(used == len(conn.buf) and len(frames) == 2 * count, "deflate: unexpected bytes")
        inflater = zlib.decompressobj(wbits=-15)  # fits any server window; keeps its context
        for frame, text in zip(frames, self.pool + self.pool, strict=True):
            require(frame.fin and frame.opcode == OP_TEXT, f"deflate: frame {frame.opcode}")
            require(frame.rsv1, "deflate: a 16 KiB JSON echo came back uncompressed")
            echoed = inflater.decompress(frame.payload + b"\x00\x00\xff\xff")
            require(echoed == text.encode(), "deflate: the echo differs from what was sent")
        conn.buf.clear()
        conn.count_messages()
        wire = statistics.mean(len(frame.payload) for frame in frames[count:])
        return f"{wire:,.0f} B on the wire per echo; negotiated: {session.answer}"

    async def run(self, session: DeflateSession, seconds: float) -> int:
        conn = session.conn
        return await keep_busy(
            conn,
            wire=session.wire,
            step=self.batch,
            batch=self.batch,
            seconds=seconds,
            depth=2,
            reached=conn.messages_reached,
        )

    async def close(self, session: DeflateSession) -> None:
        conn = session.conn
        require(conn.messages == conn.target and not conn._skip, "deflate: unexpected frames")
        await goodbye([conn])


def workloads(connections: int) -> list[Workload]:
    return [
        Echo("pipe32", "pipelined echo, 32 B", 32, 1000),
        Echo("pipe1k", "pipelined echo, 1 KiB", KiB, 1000),
        Echo("pipe64k", "pipelined echo, 64 KiB", 64 * KiB, 64),
        Echo("pipe1m", "pipelined echo, 1 MiB", MiB, 8),
        Echo("rtt32", "round trip, 32 B", 32, 1),
        Echo("rtt1m", "round trip, 1 MiB", MiB, 1),
        ManyConnections(connections),
        Handshakes(32),
        DeflateJSON(),
    ]


# ================================================================ measurement


@dataclass
class Row:
    label: str
    unit: str
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # impl -> what verify() observed

    def rate(self, impl: str) -> float:
        return statistics.median(s.msgs / s.wall for s in self.samples[impl])

    def spread(self, impl: str) -> float:
        """Half the range of the runs' msgs/s, relative to the median."""
        rates = [s.msgs / s.wall for s in self.samples[impl]]
        return (max(rates) - min(rates)) / 2 / statistics.median(rates)

    def cpu_us(self, impl: str) -> float:
        return statistics.median(s.cpu / s.msgs * 1e6 for s in self.samples[impl])

    def busy(self, impl: str) -> tuple[float, float, float]:
        """Median shares of a core: the server's, the load generator's, and the rest of the
        server's CPU (other processes, interrupts)."""
        samples = self.samples[impl]
        return (
            statistics.median(s.cpu / s.wall for s in samples),
            statistics.median(s.client_cpu / s.wall for s in samples),
            statistics.median(max(s.core_busy - s.cpu, 0) / s.wall for s in samples),
        )


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def core_busy() -> float:
    """Seconds the server's CPU has been busy since boot, from /proc/stat (0.0 if unknown)."""
    if "server" not in PINNING:
        return 0.0
    name = f"cpu{PINNING['server']} "
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith(name):
                    ticks = [int(field) for field in line.split()[1:]]
                    # user nice system idle iowait irq softirq steal ...: all but idle and iowait
                    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _TICK
    except OSError:
        pass
    return 0.0


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def measure(
    workload: Workload,
    row: Row,
    *,
    servers: dict[str, Server],
    impls: Sequence[str],
    rounds: range,
    seconds: float,
    timeout: float,
) -> None:
    """Add ``rounds`` rounds of ``workload`` to ``row``: every server once per round.

    The rounds are numbered across passes, so the server that goes first
    keeps rotating from one pass to the next.
    """
    sessions: dict[str, Any] = {}
    began = time.perf_counter()
    progress(f"{workload.label}: ")
    try:
        for impl in impls:
            try:
                async with asyncio.timeout(timeout):
                    session = await workload.open(servers[impl].port)
                    sessions[impl] = session
                    note = await workload.verify(session)
                    if note:
                        row.notes[impl] = note
                    if workload.warm_up:
                        await workload.run(session, seconds / 2)
            except (TimeoutError, ConnectionError) as exc:
                raise BenchmarkError(
                    f"{workload.label} on {impl}: {type(exc).__name__} {exc}\n"
                    f"{servers[impl].stderr_tail()}"
                ) from None
            except BenchmarkError as exc:
                raise BenchmarkError(f"{workload.label} on {impl}: {exc}") from None
            row.samples.setdefault(impl, [])
        checked = time.perf_counter() - began
        for run in rounds:
            shift = run % len(impls)
            for impl in [*impls[shift:], *impls[:shift]]:
                server = servers[impl]
                cpu0 = server.cpu()
                core0 = core_busy()
                client0 = time.process_time()
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        count = await workload.run(sessions[impl], seconds)
                except (TimeoutError, ConnectionError) as exc:
                    raise BenchmarkError(
                        f"{workload.label} on {impl}: {type(exc).__name__} {exc}\n"
                        f"{server.stderr_tail()}"
                    ) from None
                wall = time.perf_counter() - started
                client = time.process_time() - client0
                core = core_busy() - core0
                row.samples[impl].append(Sample(count, wall, server.cpu() - cpu0, client, core))
        for session in sessions.values():
            await workload.close(session)
        progress(
            f"  {len(impls)} servers checked and warmed up in {checked:.1f} s, "
            f"measured in {time.perf_counter() - began - checked:.1f} s"
        )
    finally:
        for session in sessions.values():
            for conn in _conns_of(session):
                conn.abort()


def _conns_of(session: Any) -> list[Conn]:
    if isinstance(session, Conn):
        return [session]
    if isinstance(session, DeflateSession):
        return [session.conn]
    if isinstance(session, list):
        return session
    return []


async def idle_memory(server: Server, count: int) -> tuple[float, int]:
    """KiB of server RSS per idle connection, and the RSS before them (KiB); stops ``server``."""
    impl, compression = server.impl, server.compression
    offer = OFFER_DEFLATE if compression else None
    conns: list[Conn] = []
    try:
        async with asyncio.timeout(60):
            # One connection first, so that lazily imported code is already in.
            conn, answer = await handshake(server.port, offer, check=True)
            require(
                ("permessage-deflate" in answer) == compression,
                f"{impl}: negotiated {answer!r} with compression={compression}",
            )
            await goodbye([conn])
            await asyncio.sleep(0.05)
            before = server.rss_kib()
            opened = await open_many(server.port, count, offer)
            conns = [conn for conn, _ in opened]
            require(
                all(("permessage-deflate" in answer) == compression for _, answer in opened),
                f"{impl}: compression not negotiated on every connection",
            )
            await asyncio.sleep(0.2)  # the server's per-connection tasks start after the 101
            after = server.rss_kib()
    finally:
        server.stop()
        for conn in conns:
            conn.abort()
    return (after - before) / count, before


# ==================================================================== output


def fmt_num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool
) -> str:
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
        lines.append("|---|" + "|".join("---:" for _ in headers[1:]) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [title, "-" * len(title), line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out) + "\n"


def tables(
    rows: list[Row],
    memory: dict[tuple[str, bool], tuple[float, int] | None],
    impls: Sequence[str],
    idle: int,
    markdown: bool,
) -> str:
    headers = ["workload", *impls]
    base = BASELINE
    ratio_rows, cpu_rows, rate_rows, cpu_raw_rows, busy_rows = [], [], [], [], []
    for row in rows:
        ratio, cpu, rate = [row.label], [row.label], [f"{row.label}, {row.unit}/s"]
        cpu_raw, busy = [row.label], [row.label]
        for impl in impls:
            if impl not in row.samples:
                for cells in (ratio, cpu, rate, cpu_raw, busy):
                    cells.append("n/a")
                continue
            ratio.append(f"{row.rate(impl) / row.rate(base):.2f}")
            cpu.append(f"{row.cpu_us(base) / row.cpu_us(impl):.2f}")
            rate.append(f"{fmt_num(row.rate(impl))} ±{row.spread(impl):.0%}")
            cpu_raw.append(fmt_num(row.cpu_us(impl)))
            server_busy, client_busy, other = row.busy(impl)
            busy.append(f"{server_busy:.0%} / {client_busy:.0%} / {other:.0%}")
        ratio_rows.append(ratio)
        cpu_rows.append(cpu)
        rate_rows.append(rate)
        cpu_raw_rows.append(cpu_raw)
        busy_rows.append(busy)
    memory_rows = []
    for compression in (False, True):
        values = [memory.get((impl, compression)) for impl in impls]
        if not any(values):
            continue
        label = "idle memory, KiB/connection" + (", deflate" if compression else "")
        ratio_rows.append(
            [f"{label} (lower is better)", *(f"{v[0]:.1f}" if v else "n/a" for v in values)]
        )
        memory_rows.append(
            [label, *(f"{v[0]:.1f} (RSS {v[1] / 1024:.0f} MiB)" if v else "n/a" for v in values)]
        )
    out = [
        render(
            f"msgs/s relative to {base} (asyncio) = 1.00, > 1.00 = faster; "
            f"memory rows: KiB per idle connection ({idle} connections), lower is better",
            headers,
            ratio_rows,
            markdown,
        ),
        render(
            f"server CPU per message relative to {base}: {base}' CPU/msg divided by this "
            "server's, > 1.00 = less CPU",
            headers,
            cpu_rows,
            markdown,
        ),
    ]
    if rows:
        out += [
            render(
                "raw: msgs/s (median, ± half the range of the runs)", headers, rate_rows, markdown
            ),
            render("raw: server CPU us per message (median)", headers, cpu_raw_rows, markdown),
            render(
                "CPU use during the runs, % of a core: server / load generator / other work on "
                "the server's CPU",
                headers,
                busy_rows,
                markdown,
            ),
        ]
    else:
        out.pop(1)  # no CPU ratios without timed rows
    if memory_rows:
        out.append(
            render(
                f"raw: idle memory, KiB of server RSS per connection over {idle} connections "
                "(RSS before them)",
                headers,
                memory_rows,
                markdown,
            )
        )
    for row in rows:
        if row.notes:
            out.append(f"{row.label}:")
            out += [f"  {impl}: {note}" for impl, note in row.notes.items()]
            out.append("")
    return "\n".join(out)


# ==================================================================== driver


def choose_impls(names: str | None) -> tuple[list[str], list[str]]:
    wanted = [n.strip() for n in names.split(",")] if names else [i.name for i in IMPLS]
    chosen, notes = [], []
    for name in wanted:
        impl = IMPL_BY_NAME.get(name)
        if impl is None:
            raise SystemExit(f"unknown implementation {name!r}; known: {', '.join(IMPL_BY_NAME)}")
        missing = missing_modules(impl)
        if missing:
            notes.append(f"{name}: skipped, not installed ({', '.join(missing)})")
        else:
            chosen.append(name)
    if BASELINE not in chosen:
        raise SystemExit(f"{BASELINE} is the baseline: it must be installed and selected")
    chosen.remove(BASELINE)
    return [BASELINE, *chosen], notes


def client_loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return uvloop.new_event_loop, "uvloop"
    return asyncio.new_event_loop, "asyncio"


def pass_rounds(repeat: int, passes: int) -> list[range]:
    """Split ``repeat`` rounds into ``passes`` consecutive ranges, as even as can be."""
    bounds = [repeat * index // passes for index in range(passes + 1)]
    return [range(low, high) for low, high in itertools.pairwise(bounds) if high > low]


async def bench(args: argparse.Namespace, impls: list[str]) -> str:
    selected = [
        w for w in workloads(args.connections) if not args.workloads or w.key in args.workloads
    ]
    rows = {w.key: Row(w.label, w.unit) for w in selected}
    plain = [w for w in selected if not w.deflate]
    deflating = [w for w in selected if w.deflate]
    deflate_impls = [i for i in impls if IMPL_BY_NAME[i].deflate]
    noisy: dict[str, list[str]] = {}
    passes = pass_rounds(args.repeat, args.passes)
    for number, rounds in enumerate(passes, 1):
        if len(passes) > 1:
            progress(f"pass {number} of {len(passes)}: fresh servers, {len(rounds)} run(s) per row")
        for group, kinds, compression, suffix in (
            (plain, impls, False, ""),
            (deflating, deflate_impls, True, " (deflate)"),
        ):
            if not group:
                continue
            # Fresh processes in every pass: one process's luck (its memory
            # layout) weighs on a third of a row's runs, not on all of them.
            servers = {impl: Server(impl, compression=compression) for impl in kinds}
            try:
                for server in servers.values():  # they start side by side
                    _ = server.port
                for workload in group:
                    await measure(
                        workload,
                        rows[workload.key],
                        servers=servers,
                        impls=kinds,
                        rounds=rounds,
                        seconds=args.time,
                        timeout=args.timeout,
                    )
            finally:
                for server in servers.values():
                    server.stop()
            for impl, server in servers.items():
                if server.stderr_lines():
                    noisy.setdefault(impl + suffix, []).extend(server.stderr_lines())
    memory: dict[tuple[str, bool], tuple[float, int] | None] = {}
    if not args.workloads or "memory" in args.workloads:
        progress(f"idle memory, {args.idle} connections per fresh server ...")
        for compression in (False, True):
            eligible = [i for i in impls if IMPL_BY_NAME[i].deflate or not compression]
            fresh = {impl: Server(impl, compression=compression) for impl in eligible}
            try:
                for impl, server in fresh.items():
                    memory[impl, compression] = await idle_memory(server, args.idle)
            finally:
                for server in fresh.values():
                    server.stop()
    out = tables(list(rows.values()), memory, impls, args.idle, args.markdown)
    print(out)
    for name, lines in noisy.items():
        print(f"note: the {name} server wrote {len(lines)} line(s) to stderr; the last:")
        print("    " + "\n    ".join(lines[-3:]))
    return out


async def profile(args: argparse.Namespace) -> None:
    """Profile one server on echo (``--profile-size``, ``--profile-batch``) or on another row.

    ``--profile-workload`` picks a row by key (``many``, ``handshake``, ``deflate``...);
    without it, the echo is built from the size and batch options.
    """
    impl, kind = args.profile, args.profiler
    workload: Workload
    if args.profile_workload:
        by_key = {w.key: w for w in workloads(args.connections or 1000)}
        require(
            args.profile_workload in by_key,
            f"--profile-workload: one of {', '.join(by_key)}",
        )
        workload = by_key[args.profile_workload]
    else:
        size = args.profile_size
        batch = args.profile_batch or max(8, min(1000, 8 * MiB // size))
        what = "round trip" if batch == 1 else f"pipelined echo ({batch} at a time)"
        workload = Echo("profile", f"{what}, {size} B", size, batch)
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if kind == "py-spy" and spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy, or use another --profiler")
    handle, path = tempfile.mkstemp(prefix="io_echo-", suffix=".prof")
    os.close(handle)
    server = Server(
        impl,
        compression=workload.deflate,
        profiler=None if kind == "py-spy" else f"{kind}:{path}",
    )
    try:
        conn = await workload.open(server.port)
        await workload.verify(conn)
        await workload.run(conn, 0.5)
        cpu0 = server.cpu()
        started = time.perf_counter()
        if kind == "py-spy":
            command = [spy or "py-spy", "record", "--pid", str(server.pid)]
            command += ["--duration", str(max(1, round(args.profile_seconds)))]  # whole seconds
            command += ["--rate", "500", "--threads", "--format", "raw", "--output", path]
            spy_proc = await asyncio.create_subprocess_exec(
                *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            count = 0
            while spy_proc.returncode is None:
                count += await workload.run(conn, 0.2)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.001):
                        await spy_proc.wait()
            _, err = await spy_proc.communicate()
            require(spy_proc.returncode == 0, f"py-spy failed: {err.decode()[-500:]}")
        else:
            os.kill(server.pid, signal.SIGUSR2)
            server.read_line("profiling")
            count = await workload.run(conn, args.profile_seconds)
        wall = time.perf_counter() - started
        cpu = server.cpu() - cpu0
        if kind != "py-spy":
            os.kill(server.pid, signal.SIGUSR2)
            server.read_line("dumped")
        await workload.close(conn)
    finally:
        server.stop()
    print(
        f"{impl}, {workload.label}, profiled with {kind}: {count / wall:,.0f} msgs/s, "
        f"server CPU {cpu / count * 1e6:.2f} us/msg (profiler overhead included)\n"
    )
    try:
        if kind == "cprofile":
            stream = io.StringIO()
            stats = pstats.Stats(path, stream=stream)
            stats.strip_dirs().sort_stats("tottime").print_stats(args.top)
            body = stream.getvalue()
            print(body[body.find("   ncalls") :].rstrip())
        else:
            print(collapse_report(path, args.top))
    finally:
        if args.keep_profile:
            print(f"\nprofile data kept in {path}")
        else:
            os.unlink(path)


_ROOT = re.escape(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PATH_PREFIX = re.compile(rf"\((\S*/(site-packages|lib/python[\d.]+)|{_ROOT})/")


def collapse_report(path: str, top: int) -> str:
    """Self and inclusive sample shares per function from collapsed stacks (py-spy's raw format).

    Only the main thread counts: py-spy takes an idle thread-pool worker (blocked on
    its queue) for a busy one, and the servers run their event loop in the main thread.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            thread, _, stack = stack.partition(";")
            if not thread.endswith(" MainThread") or not stack:
                continue
            frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
            frames = [_PATH_PREFIX.sub("(", f) for f in frames]
            total += count
            leaf = frames[-1]
            if leaf.endswith("(<string>)") and len(frames) > 1:  # generated code: name its caller
                leaf = f"{leaf} called by {frames[-2]}"
            own[leaf] += count
            for name in set(frames):
                inclusive[name] += count
    if not total:
        return "no samples were taken"
    out = [
        f"{total:,} busy samples of the main thread; self time (the function itself), "
        "then inclusive:"
    ]
    out += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    out.append(
        "inclusive (frames in 95% of the samples or more, the loop's scaffolding, left out):"
    )
    shown = [(name, n) for name, n in inclusive.most_common() if n < 0.95 * total][:top]
    out += [f"  {n / total:6.1%}  {name}" for name, n in shown]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 short runs per row (~40 s)")
    parser.add_argument("--repeat", type=int, help="timed runs per row; median kept (5, quick 3)")
    parser.add_argument("--time", type=float, help="seconds per timed run (0.35, quick 0.1)")
    parser.add_argument(
        "--passes",
        type=int,
        help="the runs of every row are spread over this many passes, each with fresh server "
        "processes (3, quick 1)",
    )
    parser.add_argument("--impls", help="comma-separated servers (default: all installed)")
    parser.add_argument(
        "--workloads",
        type=lambda s: set(s.split(",")),
        help="comma-separated rows: pipe32,pipe1k,pipe64k,pipe1m,rtt32,rtt1m,many,handshake,"
        "deflate,memory (default: all)",
    )
    parser.add_argument(
        "--connections", type=int, help="for the many-connections row (200, quick 100)"
    )
    parser.add_argument("--idle", type=int, help="idle connections for the memory rows (500)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-run safety timeout")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument(
        "--write",
        metavar="PAGE",
        help="also write the tables, as markdown, into PAGE (docs/performance.md) between markers",
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's moving malloc thresholds in the servers (default: fixed ones)",
    )
    parser.add_argument("--profile", metavar="IMPL", help="profile this server, then exit")
    parser.add_argument(
        "--profiler",
        choices=("sampler", "py-spy", "cprofile"),
        default="sampler",
        help="sampler: SIGPROF stack sampling inside the server (default); py-spy: py-spy "
        "record from outside; cprofile: cProfile inside the server",
    )
    parser.add_argument("--profile-size", type=int, default=32, help="message size (32)")
    parser.add_argument(
        "--profile-batch", type=int, help="messages per batch (1: round trips; default as the row)"
    )
    parser.add_argument(
        "--profile-workload", metavar="KEY", help="profile this row instead (many, handshake...)"
    )
    parser.add_argument("--profile-seconds", type=float, default=5.0)
    parser.add_argument(
        "--keep-profile", action="store_true", help="keep the profile's data file (for pstats)"
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    parser.add_argument("--serve", metavar="IMPL", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--compression", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profiler-in-server", help=argparse.SUPPRESS)  # KIND:PATH
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        server_main(args.serve, args.port, args.cpu, args.compression, args.profiler_in_server)
        return 0

    if args.write:
        args.markdown = True
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.time is None:
        args.time = 0.1 if args.quick else 0.35
    if args.passes is None:
        args.passes = 1 if args.quick else 3
    args.passes = min(args.passes, args.repeat)
    if args.connections is None:
        args.connections = 100 if args.quick else 200
    if args.idle is None:
        args.idle = 200 if args.quick else 500
    if min(args.repeat, args.passes, args.connections, args.idle) < 1 or args.time <= 0:
        parser.error("--repeat, --passes, --time, --connections and --idle must be positive")
    raise_fd_limit()
    if not args.system_malloc and not any(name in os.environ for name in PINNED_MALLOC):
        SERVER_ENV.update(PINNED_MALLOC)
    choose_cpus()
    if "client" in PINNING:
        os.sched_setaffinity(0, {PINNING["client"]})
    loop_factory, loop_name = client_loop_factory()

    if args.profile:
        require(args.profile in IMPL_BY_NAME, f"unknown implementation {args.profile!r}")
        try:
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                runner.run(profile(args))
        except BenchmarkError as exc:
            print(f"profiling failed: {exc}", file=sys.stderr)
            return 1
        return 0

    impls, notes = choose_impls(args.impls)
    started = time.perf_counter()
    versions = " | ".join(
        f"{name} {version(name)}"
        for name in ("wskit", "websockets", "aiohttp", "trio-websocket", "picows", "uvloop")
    )
    versions += (
        f" | anyio {version('anyio')} | trio {version('trio')} | wsproto {version('wsproto')}"
    )
    preamble = [
        versions,
        f"Python {platform.python_version()} ({platform.python_implementation()}) | "
        f"{platform.machine()}, {os.cpu_count()} CPUs | load average at start "
        f"{os.getloadavg()[0]:.2f}",
    ]
    if PINNING:
        preamble.append(
            f"servers pinned to CPU {PINNING['server']}, the load generator to CPU "
            f"{PINNING['client']} (os.sched_setaffinity; checked on every server)"
        )
    else:
        preamble.append(
            "NOT pinned: fewer than 2 CPUs available, server and client share the machine"
        )
    preamble.append(
        f"load generator: a raw client (pre-masked frames, byte counting) on {loop_name}; "
        "median of "
        f"{args.repeat} run(s) of {args.time:g} s per row, servers interleaved, first one "
        f"rotating; the runs spread over {args.passes} pass(es) over all rows, each with fresh "
        "servers"
    )
    preamble.append(
        "every server: compression off on the plain rows (on for the deflate row), "
        "keepalive pings off, unbounded receive queues, messages up to 64 MiB; malloc: "
        + (" ".join(f"{k}={v}" for k, v in SERVER_ENV.items()) or "the system's defaults")
    )
    preamble += [f"  {impl}: {IMPL_BY_NAME[impl].setup}" for impl in impls]
    preamble += [f"  {note}" for note in notes]
    print("\n".join(preamble))
    print()
    sys.stdout.flush()
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            out = runner.run(bench(args, impls))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"total {time.perf_counter() - started:.0f} s, load average at end {os.getloadavg()[0]:.2f}"
    )
    if args.write:
        write_page(args.write, preamble, out, argv)
        print(f"tables written to {args.write}")
    return 0


PAGE_START = "<!-- benchmarks/io_echo.py --write: start -->"
PAGE_END = "<!-- benchmarks/io_echo.py --write: end -->"


def write_page(
    path: str, preamble: list[str], tables_text: str, argv: Sequence[str] | None
) -> None:
    """Put the run's tables into ``path`` between the two markers (the page's prose stays)."""
    command = " ".join(["benchmarks/io_echo.py", *(sys.argv[1:] if argv is None else argv)])
    block = "\n".join(
        [
            PAGE_START,
            f"Measured {time.strftime('%Y-%m-%d')} with `{command}`:",
            "",
            "```text",
            *preamble,
            "```",
            "",
            tables_text,
            PAGE_END,
        ]
    )
    try:
        with open(path, encoding="utf-8") as page:
            text = page.read()
    except FileNotFoundError:
        text = f"# Performance\n\n{PAGE_START}\n{PAGE_END}\n"
    start, end = text.find(PAGE_START), text.find(PAGE_END)
    require(start >= 0 and end > start, f"{path} lacks the markers {PAGE_START} ... {PAGE_END}")
    text = text[:start] + block + text[end + len(PAGE_END) :]
    with open(path, "w", encoding="utf-8") as page:
        page.write(text)


if __name__ == "__main__":
    sys.exit(main())
