"""Server side of the opening handshake in the wskit core against websockets', in one process.

One "handshake" is: a new server-side protocol object is made, the client's
upgrade request is fed to it as one read, its request event is taken and
accepted, and the 101 response bytes are collected. No sockets, no event
loop: the protocol cost of opening a connection, which every short-lived
connection pays once.

* ``wskit``: ``wskit.core.ServerConnection(http_requests=True)``, as
  ``wskit.serve()`` makes it: ``receive_data`` -> ``events()`` (a ``Request``)
  -> ``accept()`` -> ``data_to_send()``;
* ``websockets``: ``websockets.server.ServerProtocol``: ``receive_data`` ->
  ``events_received()`` (a ``Request``) -> ``accept()`` -> ``send_response()``
  -> ``data_to_send()``.

Two requests: ``minimal`` (the five headers RFC 6455 needs, compression off on
both sides) and ``browser`` (a Chrome-like request of 13 headers offering
permessage-deflate, which both servers accept). Ratios > 1.0 mean wskit is
faster. The CPU column (``time.process_time``) is the steadier figure on a
noisy machine.

Usage::

    .venv/bin/python benchmarks/core_handshake.py [--quick] [--repeat N] [--time SECONDS]
                                                  [--markdown]
    .venv/bin/python benchmarks/core_handshake.py --profile browser [--top 25]
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import hashlib
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import websockets.version
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.http11 import Request as WebsocketsRequest
from websockets.server import ServerProtocol

import wskit
from wskit.core import Config, Request, ServerConnection

IMPLS = ("wskit", "websockets")
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = base64.b64encode(
    hashlib.sha1((KEY + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
).decode()

MINIMAL = (
    b"GET /chat HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8765\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)

BROWSER = (
    b"GET /chat?room=lobby HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/126.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-GB,en;q=0.9,fr;q=0.8\r\n"
    b"Cookie: session=4f6c1f0a9e2b4d7c8a1e3b5d7f9a0c2e; theme=dark\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)

CASES: dict[str, tuple[bytes, bool]] = {  # name: (request, compression on both sides)
    "minimal": (MINIMAL, False),
    "browser": (BROWSER, True),
}

Handshake = Callable[[], bytes]


class BenchmarkError(Exception):
    """A correctness guard failed: the numbers would be meaningless."""


def require(condition: bool, what: str) -> None:
    # Not ``assert``: the guards must hold under ``python -O`` too.
    if not condition:
        raise BenchmarkError(what)


# ------------------------------------------------------------------- handshakes


def wskit_handshake(request: bytes, compression: bool) -> Handshake:
    config = Config(ping_interval=None) if compression else Config(compression=None)

    def handshake() -> bytes:
        server = ServerConnection(config, http_requests=True)  # as wskit.serve() makes it
        server.receive_data(request)
        (event,) = server.events()
        assert isinstance(event, Request)
        server.accept()
        return server.data_to_send()

    return handshake


def websockets_handshake(request: bytes, compression: bool) -> Handshake:
    extensions = [ServerPerMessageDeflateFactory()] if compression else None

    def handshake() -> bytes:
        server = ServerProtocol(extensions=extensions)
        server.receive_data(request)
        (event,) = server.events_received()
        assert isinstance(event, WebsocketsRequest)
        server.send_response(server.accept(event))
        return b"".join(server.data_to_send())

    return handshake


def make_handshake(impl: str, case: str) -> Handshake:
    request, compression = CASES[case]
    if impl == "wskit":
        return wskit_handshake(request, compression)
    return websockets_handshake(request, compression)


def verify(impl: str, case: str, handshake: Handshake) -> None:
    """The response must be a 101 with the right accept token and extension answer."""
    response = handshake()
    head = response.decode("ascii").lower()
    require(head.startswith("http/1.1 101 "), f"{impl} {case}: not a 101: {response[:40]!r}")
    require(f"sec-websocket-accept: {ACCEPT}\r\n".lower() in head, f"{impl} {case}: bad accept")
    require(response.endswith(b"\r\n\r\n"), f"{impl} {case}: the head is not terminated")
    deflate = "sec-websocket-extensions: permessage-deflate" in head
    require(deflate == CASES[case][1], f"{impl} {case}: permessage-deflate answer {deflate}")


# -------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    count: int
    wall: float
    cpu: float


@dataclass(frozen=True)
class Result:
    rate: float  # handshakes per second, wall clock
    cpu_us: float  # CPU microseconds per handshake


def timed_loop(handshake: Handshake, duration: float, min_count: int) -> Sample:
    """Run handshakes for ``duration`` seconds and at least ``min_count`` times."""
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # like timeit: a collection would land on whichever loop happens to run
    try:
        count, batch = 0, 1
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            for _ in range(batch):
                handshake()
            count += batch
            elapsed = time.perf_counter() - wall0
            if elapsed >= duration and count >= min_count:
                break
            # Half the remaining time per batch: few clock reads, little overshoot.
            batch = max(1, int((duration - elapsed) / (elapsed / count) / 2), min_count - count)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        if gc_was_enabled:
            gc.enable()
    return Sample(count, wall, cpu)


def compare(case: str, duration: float, repeat: int) -> dict[str, Result]:
    """Time both implementations ``repeat`` times, interleaved, rotating who goes first."""
    handshakes = {impl: make_handshake(impl, case) for impl in IMPLS}
    for impl, handshake in handshakes.items():
        verify(impl, case, handshake)
        timed_loop(handshake, duration / 5, 1)  # warm up
    samples: dict[str, list[Sample]] = {impl: [] for impl in IMPLS}
    for run in range(repeat):
        shift = run % len(IMPLS)
        for impl in IMPLS[shift:] + IMPLS[:shift]:
            samples[impl].append(timed_loop(handshakes[impl], duration, 5))
    return {
        impl: Result(
            statistics.median(s.count / s.wall for s in samples[impl]),
            statistics.median(s.cpu / s.count for s in samples[impl]) * 1e6,
        )
        for impl in IMPLS
    }


# ------------------------------------------------------------------- formatting


def render(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], md: bool) -> str:
    if md:
        lines = [f"**{title}**", "", "| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join(
        [title, line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]
    )


def table(results: dict[str, dict[str, Result]], md: bool) -> str:
    headers = [
        "request",
        "wskit CPU us",
        "websockets CPU us",
        "wskit/websockets (CPU)",
        "wskit hs/s",
        "websockets hs/s",
        "wskit/websockets",
    ]
    rows = []
    for case, result in results.items():
        ours, theirs = result["wskit"], result["websockets"]
        rows.append(
            [
                case,
                f"{ours.cpu_us:.1f}",
                f"{theirs.cpu_us:.1f}",
                f"{theirs.cpu_us / ours.cpu_us:.2f}",
                f"{ours.rate:,.0f}",
                f"{theirs.rate:,.0f}",
                f"{ours.rate / theirs.rate:.2f}",
            ]
        )
    return render("Server handshake: request bytes in, 101 bytes out", headers, rows, md)


# -------------------------------------------------------------------- profiling


def profile(case: str, seconds: float, top: int) -> None:
    """cProfile each implementation's handshake; print the top functions by tottime."""
    for impl in IMPLS:
        handshake = make_handshake(impl, case)
        verify(impl, case, handshake)
        profiler = cProfile.Profile()
        profiler.enable()
        sample = timed_loop(handshake, seconds, 1)
        profiler.disable()
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).strip_dirs().sort_stats("tottime").print_stats(top)
        print(f"=== {impl}, {case}, {sample.count:,} handshakes (profiled) ===")
        body = stream.getvalue()
        print(body[body.find("   ncalls") :].rstrip(), end="\n\n")


# ------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter loops and 3 repeats")
    parser.add_argument("--repeat", type=int, help="timed runs per case; median kept (default 7)")
    parser.add_argument("--time", type=float, help="seconds per timed run (default 0.5)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--profile", choices=sorted(CASES), help="cProfile one case, then exit")
    parser.add_argument("--top", type=int, default=20, help="functions listed by --profile")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    duration = args.time or (0.15 if args.quick else 0.5)
    if repeat < 1 or duration <= 0:
        parser.error("--repeat and --time must be positive")
    if args.profile:
        profile(args.profile, duration * 4, args.top)
        return 0
    print(
        f"wskit {wskit.__version__}, websockets {websockets.version.version}, "
        f"Python {sys.version.split()[0]}; median of {repeat} runs of {duration} s"
    )
    try:
        results = {case: compare(case, duration, repeat) for case in CASES}
    except BenchmarkError as exc:
        print(f"correctness check failed: {exc}", file=sys.stderr)
        return 1
    print(table(results, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
