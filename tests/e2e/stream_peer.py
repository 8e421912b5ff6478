"""One end of the two-path tests, run inside a network namespace.

``python stream_peer.py server ...`` serves one WebSocket connection that echoes
every message back; ``python stream_peer.py client ...`` connects, streams
sequence-numbered messages at a paced rate for a while, checks that every
echo comes back exactly once and in order, and closes. Both print JSON
lines on stdout: ``listening`` / ``open`` / ``subflows`` when they happen,
and one ``result`` at the end with what they saw. Times are
``time.monotonic()``, which every network namespace shares, so the test can
compare them with the moment it broke a link.

Nothing is asserted here: the test reads the results and decides.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import struct
import sys
import time
from typing import Any

import anyio

import wskit

HEADER = struct.Struct("!Qd")  # sequence number, send time (monotonic)
SLOW = 0.1  # a message delayed more than this counts as stalled (seconds)
SUBFLOW_POLL = 0.05
CONNECT_WAIT = 10.0  # seconds the client waits for the server to listen


def emit(event: str, **fields: Any) -> None:
    """Print one JSON line and flush it: the test reads them as they come."""
    print(json.dumps({"event": event, "at": time.monotonic(), **fields}), flush=True)


def info_fields(ws: wskit.WebSocket) -> dict[str, Any]:
    """The transport facts the test checks."""
    info = ws.transport.mptcp_info()
    return {
        "mptcp": ws.transport.mptcp,
        "subflows": None if info is None else info.subflows,
        "fallback": None if info is None else info.fallback,
    }


class Arrivals:
    """Checks that numbered messages arrive exactly once and in order."""

    def __init__(self) -> None:
        self.expected = 0
        self.count = 0
        self.out_of_order: list[tuple[int, int]] = []  # (expected, got), first few
        self.max_delay = 0.0
        self.slow: list[tuple[float, float]] = []  # (arrival, delay) of stalled messages
        self.first: float | None = None  # arrival of the first message
        self.per_second: list[int] = []  # messages that arrived in each second since

    def take(self, message: bytes) -> None:
        """Account for one message that just arrived."""
        seq, sent = HEADER.unpack_from(message)
        now = time.monotonic()
        if seq != self.expected and len(self.out_of_order) < 10:
            self.out_of_order.append((self.expected, seq))
        self.expected = seq + 1
        self.count += 1
        if self.first is None:
            self.first = now
        second = int(now - self.first)
        self.per_second.extend([0] * (second + 1 - len(self.per_second)))
        self.per_second[second] += 1
        delay = now - sent
        self.max_delay = max(self.max_delay, delay)
        if delay > SLOW:
            self.slow.append((now, delay))

    def summary(self) -> dict[str, Any]:
        """What arrived, for the result event."""
        return {
            "count": self.count,
            "last": self.expected - 1,
            "out_of_order": self.out_of_order,
            "max_delay": self.max_delay,
            "slow_first": self.slow[0][0] if self.slow else None,
            "slow_last": self.slow[-1][0] if self.slow else None,
            "slow_count": len(self.slow),
            "per_second": self.per_second,
        }


def keepalive(args: argparse.Namespace) -> dict[str, Any]:
    """The options both ends pass to serve() and connect()."""
    return {
        "ping_interval": args.ping_interval,
        "ping_timeout": args.ping_timeout,
        "close_timeout": args.close_timeout,
        "compression": None,  # random payloads: deflate would only cost CPU
    }


async def watch_subflows(ws: wskit.WebSocket, samples: list[tuple[float, int | None]]) -> None:
    """Record every change of the subflow count; announce the first time it is 2 or more."""
    announced = False
    last: int | None = -1
    while True:
        info = ws.transport.mptcp_info()
        count = None if info is None else info.subflows
        if count != last:
            samples.append((time.monotonic(), count))
            last = count
        if not announced and count is not None and count >= 2:
            emit("subflows", count=count)
            announced = True
        await anyio.sleep(SUBFLOW_POLL)


async def run_server(args: argparse.Namespace) -> None:
    """Serve one connection that echoes every message, then report."""
    done = anyio.Event()
    result: dict[str, Any] = {}

    async def handler(ws: wskit.WebSocket) -> None:
        emit("open", **info_fields(ws))
        seen = Arrivals()
        samples: list[tuple[float, int | None]] = []
        error = None
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_subflows, ws, samples)
                try:
                    async for message in ws:
                        assert isinstance(message, bytes)
                        seen.take(message)
                        await ws.send(message)
                except wskit.ConnectionClosed as exc:
                    error = {"type": type(exc).__name__, "code": exc.code, "at": time.monotonic()}
                tg.cancel_scope.cancel()
        finally:
            result.update(
                received=seen.summary(),
                error=error,
                close_code=ws.close_code,
                subflow_samples=samples,
                closed_at=time.monotonic(),
                **info_fields(ws),
            )
            done.set()

    serving = wskit.serve(handler, args.host, args.port, mptcp=args.mptcp, **keepalive(args))
    async with serving as server:
        emit("listening", port=server.port)
        await done.wait()
    emit("result", **result)


async def connect_when_listening(
    stack: contextlib.AsyncExitStack[Any], url: str, args: argparse.Namespace
) -> wskit.WebSocket:
    """Connect, retrying while the server (started at the same time) is not listening yet."""
    # A deadline, not fail_after: the connection's own scopes, entered here,
    # must outlive this function.
    deadline = time.monotonic() + CONNECT_WAIT
    while True:
        try:
            return await stack.enter_async_context(
                wskit.connect(url, mptcp=args.mptcp, **keepalive(args))
            )
        except wskit.ConnectionFailed as exc:
            if not isinstance(exc.__cause__, ConnectionRefusedError):
                raise
            if time.monotonic() > deadline:
                raise
        await anyio.sleep(0.02)


async def run_client(args: argparse.Namespace) -> None:
    """Stream paced messages, check the echoes, close, then report."""
    seen = Arrivals()
    samples: list[tuple[float, int | None]] = []
    sent = 0
    first_sent: float | None = None
    last_sent: float | None = None
    error = None
    payload = os.urandom(args.size - HEADER.size)
    period = args.size / args.rate  # seconds per message at the target rate
    # Send in 5 ms bursts, like a real producer (one at a time when unpaced).
    batch = 1 if args.unpaced else max(1, round(0.005 / period))

    async def sender(ws: wskit.WebSocket) -> None:
        nonlocal sent, first_sent, last_sent
        start = time.monotonic()
        next_at = start
        while time.monotonic() - start < args.duration:
            for _ in range(batch):
                now = time.monotonic()
                await ws.send(HEADER.pack(sent, now) + payload)
                sent += 1
                last_sent = now
                first_sent = now if first_sent is None else first_sent
            if args.unpaced:
                continue  # as fast as send() returns: only backpressure slows it
            # Paced, with no catch-up burst after a stall: a stall must show
            # as delay, not turn into a flood that measures something else.
            next_at = max(next_at + batch * period, time.monotonic())
            await anyio.sleep(max(0.0, next_at - time.monotonic()))

    async def receiver(ws: wskit.WebSocket) -> None:
        while True:  # cancelled once every echo is in (or the drain time is up)
            message = await ws.recv()
            assert isinstance(message, bytes)
            seen.take(message)

    url = f"ws://{args.host}:{args.port}/"
    async with contextlib.AsyncExitStack() as stack:
        ws = await connect_when_listening(stack, url, args)
        emit("open", **info_fields(ws))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch_subflows, ws, samples)
                tg.start_soon(receiver, ws)
                await sender(ws)
                # Every echo must come back; bounded so a lost one fails the
                # test with a result instead of hanging it.
                with anyio.move_on_after(args.drain):
                    while seen.count < sent:
                        await anyio.sleep(0.01)
                tg.cancel_scope.cancel()
        except* wskit.ConnectionClosed as group:
            exc = group.exceptions[0]
            assert isinstance(exc, wskit.ConnectionClosed)
            error = {"type": type(exc).__name__, "code": exc.code, "at": time.monotonic()}
        final = info_fields(ws)
    emit(
        "result",
        sent=sent,
        first_sent_at=first_sent,
        last_sent_at=last_sent,
        received=seen.summary(),
        error=error,
        close_code=ws.close_code,
        subflow_samples=samples,
        closed_at=time.monotonic(),
        **final,
    )


def main() -> None:
    """Parse the command line and run one end on the chosen event loop."""
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--backend", default="asyncio")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mptcp", action="store_true")
    parser.add_argument("--ping-interval", type=float, default=1.0)
    parser.add_argument("--ping-timeout", type=float, default=5.0)
    parser.add_argument("--close-timeout", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=4e6, help="bytes per second")
    parser.add_argument("--size", type=int, default=4096, help="bytes per message")
    parser.add_argument("--unpaced", action="store_true", help="send as fast as possible")
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--drain", type=float, default=5.0)
    args = parser.parse_args()
    # The fallback notices go to stderr, where the test looks for them.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
    run = run_server if args.role == "server" else run_client
    anyio.run(run, args, backend=args.backend)


if __name__ == "__main__":
    main()
