"""Autobahn|Testsuite client testee: an echo client on wskit.

    python compliance/client.py [--backend asyncio|trio] [URL] [AGENT]

It follows the fuzzing server's protocol: ``/getCaseCount`` gives the number
of cases; for each case ``/runCase?case=N&agent=A`` is a connection on which
every message is sent back as it came (text as text, binary as binary) until
the server closes; ``/updateReports?agent=A`` makes the server write its
report. ``compliance/run.sh`` runs it under the harness's ``test_client.sh``.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial

import anyio

import wskit

# Section 9 sends messages of up to 16 MiB, and 4 MiB in 64-byte frames.
MAX_MESSAGE = 64 * 1024 * 1024
MAX_FRAGMENTS = 2**20
# The report is written while /updateReports waits: give it time.
REPORT_TIMEOUT = 300.0


async def get_case_count(url: str) -> int:
    """Ask the fuzzing server how many cases it will run."""
    async with wskit.connect(f"{url}/getCaseCount") as ws:
        return int(json.loads(await ws.recv()))


async def run_case(url: str, case: int, agent: str) -> None:
    """Echo every message of one case until the server closes the connection."""
    try:
        async with wskit.connect(
            f"{url}/runCase?case={case}&agent={agent}",
            max_message=MAX_MESSAGE,
            max_fragments=MAX_FRAGMENTS,
            # Keepalive pings are not part of any case: keep the wire to the case's frames.
            ping_interval=None,
        ) as ws:
            try:
                async for message in ws:
                    await ws.send(message)
            except wskit.ConnectionClosed:
                pass  # the fuzzer provokes protocol errors on purpose
    except (wskit.HandshakeError, wskit.ConnectionClosed, OSError) as exc:
        print(f"case {case}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


async def update_reports(url: str, agent: str) -> None:
    """Make the fuzzing server write its report; it closes once it is written."""
    async with wskit.connect(
        f"{url}/updateReports?agent={agent}",
        open_timeout=REPORT_TIMEOUT,
        close_timeout=REPORT_TIMEOUT,
        ping_interval=None,
    ) as ws:
        try:
            async for _ in ws:
                pass
        except wskit.ConnectionClosed:
            pass


async def main(url: str, agent: str) -> None:
    """Run every case the fuzzing server has, then ask for the report."""
    count = await get_case_count(url)
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        await run_case(url, case, agent)
    await update_reports(url, agent)
    print("done", flush=True)


def cli(argv: list[str] | None = None) -> int:
    """Parse the command line and run the testee on the chosen event loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:9001")
    parser.add_argument("agent", nargs="?", default=None)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    agent = args.agent or f"wskit-{args.backend}"
    anyio.run(partial(main, args.url.rstrip("/"), agent), backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
