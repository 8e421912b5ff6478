"""The cost of plugins per message: server CPU per echoed message, as a ratio to no plugins.

A wskit echo server runs in a child process pinned to one core, with one
plugin configuration at a time; the client (this process, pinned to the
other core) sends pipelined 32-byte messages and reads the echoes. The
child reports its own CPU time, so the client's cost does not dilute the
ratio. Configurations take turns in every round and the median of the
rounds is reported, per event loop.

    .venv/bin/python benchmarks/plugins.py            # about 1 minute
    .venv/bin/python benchmarks/plugins.py --quick    # about 15 s

Configurations (all compared with ``none``, no ``plugins`` argument):

* ``empty``: ``plugins=[]``;
* ``inert``: a plugin that overrides no hook (the chain skips it entirely);
* ``pass``: a plugin whose ``on_message`` returns PASS (the cheapest real hook);
* ``ratelimit``: ``RateLimit`` with a per-connection message and byte budget
  (never exceeded here);
* ``validate``: ``Validate`` with a small schema (messages are JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = ["none", "empty", "inert", "pass", "ratelimit", "validate"]
MESSAGE = json.dumps({"n": 1, "text": "0123456789ab"})  # 32 bytes of JSON text
assert len(MESSAGE) == 32


def make_plugins(config: str) -> list[object] | None:
    from wskit.plugins import PASS, Budget, Plugin, Rate, RateLimit, Validate

    class Inert(Plugin):
        pass

    class PassThrough(Plugin):
        def on_message(self, ws: object, message: object) -> object:
            return PASS

    if config == "none":
        return None
    if config == "empty":
        return []
    if config == "inert":
        return [Inert()]
    if config == "pass":
        return [PassThrough()]
    if config == "ratelimit":
        budget = Budget(messages=Rate(1e9, burst=1e9), bytes=Rate(1e12, burst=1e12))
        return [RateLimit(per_connection=budget)]
    if config == "validate":
        return [Validate({"type": "object"})]
    raise SystemExit(f"unknown configuration {config}")


def serve(config: str, backend: str) -> None:
    """Child process: echo on a free port, print it, then print CPU seconds used at the end."""
    import anyio

    import wskit

    os.sched_setaffinity(0, {0})
    plugins = make_plugins(config)
    options = {} if plugins is None else {"plugins": plugins}

    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with wskit.serve(echo, "127.0.0.1", 0, compression=None, **options) as server:
            print(server.port, flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # the client says when it starts
            start = time.process_time()
            await anyio.to_thread.run_sync(sys.stdin.readline)  # ... and when it is done
            print(time.process_time() - start, flush=True)

    anyio.run(main, backend=backend)


def client_run(port: int, count: int, window: int, child: subprocess.Popen[str]) -> float:
    """Send ``count`` messages, at most ``window`` unanswered; return the wall time."""
    import anyio

    import wskit

    async def main() -> float:
        async with wskit.connect(f"ws://127.0.0.1:{port}/", compression=None) as ws:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
            start = time.perf_counter()
            sent = received = 0
            while received < count:
                while sent < count and sent - received < window:
                    await ws.send(MESSAGE)
                    sent += 1
                reply = await ws.recv()
                assert reply == MESSAGE
                received += 1
            elapsed = time.perf_counter() - start
            child.stdin.write("done\n")
            child.stdin.flush()
            return elapsed

    return anyio.run(main, backend="asyncio")


def measure(config: str, backend: str, count: int, window: int) -> tuple[float, float]:
    """One run: (server CPU µs per message, wall µs per message)."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", config, "--backend", backend],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        wall = client_run(port, count, window, child)
        cpu = float(child.stdout.readline())
    finally:
        if child.stdin is not None:
            child.stdin.close()
        child.wait(timeout=30)
    return cpu / count * 1e6, wall / count * 1e6


def hook_cost(config: str, calls: int = 200_000) -> float:
    """The plugins' own cost per message, timed in-process: µs per on_message round.

    Steadier than the end-to-end figure: it times only what a configuration
    adds on the message path (the combined on_message on a real connection).
    """
    import anyio

    from wskit.testing import pair

    plugins = make_plugins(config)

    async def main() -> float:
        async with pair(plugins=plugins or []) as p:
            ws = p.server_ws
            check = ws._check
            if check is None:
                return 0.0  # nothing runs per message
            best = float("inf")
            for _ in range(5):
                start = time.process_time()
                for _ in range(calls // 5):
                    check(ws, MESSAGE)
                best = min(best, (time.process_time() - start) / (calls // 5))
            return best * 1e6

    return anyio.run(main, backend="asyncio")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds")
    parser.add_argument("--backends", default="asyncio,trio")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="asyncio", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.backend)
        return 0
    os.sched_setaffinity(0, {1})
    count, rounds = (5_000, 3) if args.quick else (20_000, 5)
    print(f"{count} pipelined 32-byte JSON text echoes per run, median of {rounds} rounds")
    hooks = {config: hook_cost(config) for config in CONFIGS}
    for backend in args.backends.split(","):
        results: dict[str, list[tuple[float, float]]] = {config: [] for config in CONFIGS}
        for round_index in range(rounds):
            order = CONFIGS[round_index % len(CONFIGS) :] + CONFIGS[: round_index % len(CONFIGS)]
            for config in order:
                results[config].append(measure(config, backend, count, window=64))
        base_cpu = statistics.median(cpu for cpu, _ in results["none"])
        base_wall = statistics.median(wall for _, wall in results["none"])
        print(f"\nserver on {backend}")
        print(
            "| plugins | server CPU µs/msg | ratio to none | wall µs/msg | ratio to none "
            "| hook µs/msg | hook share of none's CPU |"
        )
        print("|---|---|---|---|---|---|---|")
        for config in CONFIGS:
            cpu = statistics.median(c for c, _ in results[config])
            wall = statistics.median(w for _, w in results[config])
            hook = hooks[config]
            print(
                f"| {config} | {cpu:.2f} | {cpu / base_cpu:.3f} | {wall:.2f} | "
                f"{wall / base_wall:.3f} | {hook:.3f} | {hook / base_cpu:.1%} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
