"""MPTCP over two real network paths: the figures behind docs/howto/mptcp.md.

Needs root, iproute2 and a kernel with MPTCP; it builds the same two
namespaces and two veth links as ``tests/e2e`` (see ``tests/e2e/netns.py``)
and runs the same peers (``tests/e2e/stream_peer.py``). Three measurements:

1. **Setup**: building the namespaces and links, and tearing them down.
2. **Failover**: a paced 4 MB/s stream of 4 KiB messages, echoed, over
   ``serve(mptcp=True)`` / ``connect(mptcp=True)``; path 0 breaks after
   1.4 s (link taken down, or blackholed with the link up). Reported: the
   worst round trip of any message, and when round trips were back under
   0.1 s, counted from the break; per event loop, with the kernel's default
   ``net.mptcp.stale_loss_cnt`` (4) and with 1.
3. **Unpaced full duplex**: the client sends as fast as backpressure lets
   it for a while, the server echoes; MB/s echoed in each second, for wskit
   over two subflows, over one, over TCP, and for plain blocking MPTCP
   sockets (threads, 64 KiB ``sendall``) over two subflows. Seconds under
   1 MB/s are the collapse the how-to describes.

Usage::

    .venv/bin/python benchmarks/mptcp_paths.py [--runs N] [--seconds S] [--only failover]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parents[1]))

from tests.e2e.netns import TwoPaths, run_ip
from tests.e2e.streams import SIZE, stream

BACKENDS = ("asyncio", "trio")
BREAK_AFTER = 1.4
DURATION = 4.0
SLOW_MBPS = 1.0


def setup_times(rounds: int) -> None:
    build, teardown = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        network = TwoPaths("bench")
        build.append(time.perf_counter() - start)
        start = time.perf_counter()
        network.close()
        teardown.append(time.perf_counter() - start)
    print(
        f"setup: build {statistics.median(build) * 1000:.0f} ms,"
        f" teardown {statistics.median(teardown) * 1000:.0f} ms (median of {rounds})"
    )


async def failover_once(backend: str, how: str, stale_loss_cnt: int) -> tuple[float, float]:
    network = TwoPaths("bench")
    try:
        for ns in (network.client, network.server):
            network.set_sysctl(ns, "net.mptcp.stale_loss_cnt", str(stale_loss_cnt))
        breaker = network.take_down if how == "link-down" else network.blackhole
        with tempfile.TemporaryDirectory() as workdir, anyio.fail_after(30):
            run = await stream(
                network, Path(workdir), backend, server_mptcp=True, client_mptcp=True,
                duration=DURATION, break_after=BREAK_AFTER, breaker=breaker, wait_subflows=True,
            )  # fmt: skip
    finally:
        network.close()
    received = run.client["received"]
    assert run.client["error"] is None, run.client
    assert received["count"] == run.client["sent"], run.client
    assert received["out_of_order"] == [], received
    assert run.broke_at is not None
    recovered = 0.0 if received["slow_last"] is None else received["slow_last"] - run.broke_at
    return received["max_delay"], recovered


def failover(runs: int) -> None:
    print(f"failover: worst round trip / back under 0.1 s after the break, {runs} runs each")
    print(
        "| event loop | break | stale_loss_cnt |"
        " worst round trip (median, max) | recovered (median, max) |"
    )
    print("|---|---|---|---|---|")
    for backend in BACKENDS:
        for how in ("link-down", "blackhole"):
            for stale in (4, 1):
                got = [anyio.run(failover_once, backend, how, stale) for _ in range(runs)]
                worst = [w for w, _ in got]
                back = [r for _, r in got]
                print(
                    f"| {backend} | {how} | {stale} |"
                    f" {statistics.median(worst):.2f} s, {max(worst):.2f} s |"
                    f" {statistics.median(back):.2f} s, {max(back):.2f} s |",
                    flush=True,
                )


async def duplex_wskit(backend: str, variant: str, seconds: float) -> str:
    network = TwoPaths("bench")
    try:
        if variant == "one subflow":
            run_ip("mptcp", "endpoint", "flush", netns=network.server)
        mptcp = variant != "TCP"
        with tempfile.TemporaryDirectory() as workdir, anyio.fail_after(seconds + 30):
            run = await stream(
                network, Path(workdir), backend, server_mptcp=mptcp, client_mptcp=mptcp,
                duration=seconds, unpaced=True, wait_subflows=variant == "two subflows",
            )  # fmt: skip
    finally:
        network.close()
    per_second = run.client["received"]["per_second"][: int(seconds)]
    result = str([round(count * SIZE / 1e6, 1) for count in per_second])
    error = run.client["error"]
    return result if error is None else f"{result}, then closed {error['code']}"


_BLOCKING = textwrap.dedent(
    """
    import socket, sys, threading, time
    role, seconds = sys.argv[1], float(sys.argv[2])
    if role == "server":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", 9999))
        listener.listen()
        print("ready", flush=True)
        conn, _ = listener.accept()
        while data := conn.recv(65536):
            conn.sendall(data)
        raise SystemExit
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 262)
    sock.connect((sys.argv[3], 9999))
    time.sleep(0.3)  # let the second subflow join
    per_second, start = [], time.monotonic()
    def receive():
        count, mark = 0, start
        while data := sock.recv(1 << 20):
            count += len(data)
            if time.monotonic() - mark >= 1:
                per_second.append(round(count / 1e6, 1))
                count, mark = 0, mark + 1
    threading.Thread(target=receive, daemon=True).start()
    chunk = bytes(65536)
    while time.monotonic() - start < seconds:
        sock.sendall(chunk)
    print(per_second[: int(seconds)], flush=True)
    """
)


def duplex_blocking(seconds: float) -> str:
    network = TwoPaths("bench")
    try:
        server = network_process(network, network.server, "server", seconds)
        assert server.stdout is not None
        server.stdout.readline()
        client = network_process(network, network.client, "client", seconds)
        out, _ = client.communicate(timeout=seconds + 30)
        return out.strip()
    finally:
        network.close()


def network_process(network: TwoPaths, ns: str, role: str, seconds: float) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", _BLOCKING, role, str(seconds), network.paths[0].server_addr]
    return subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.PIPE, text=True)


def duplex(seconds: float, runs: int) -> None:
    print(f"unpaced full duplex: MB/s echoed in each second, {seconds:.0f} s, {runs} runs each")
    for _ in range(runs):
        print(f"  plain blocking sockets, two subflows: {duplex_blocking(seconds)}", flush=True)
    for backend in BACKENDS:
        for variant in ("two subflows", "one subflow", "TCP"):
            for _ in range(runs):
                got = anyio.run(duplex_wskit, backend, variant, seconds)
                print(f"  wskit on {backend}, {variant}: {got}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration")
    parser.add_argument("--seconds", type=float, default=10.0, help="unpaced run length")
    parser.add_argument("--only", choices=["setup", "failover", "duplex"])
    args = parser.parse_args()
    if args.only in (None, "setup"):
        setup_times(20)
    if args.only in (None, "failover"):
        failover(args.runs)
    if args.only in (None, "duplex"):
        duplex(args.seconds, args.runs)


if __name__ == "__main__":
    main()
