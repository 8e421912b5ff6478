"""Run one paced stream between the namespaces, optionally breaking a path mid-way."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from tests.e2e.netns import TwoPaths
from tests.e2e.processes import start_peer

__all__ = ["PING_INTERVAL", "PING_TIMEOUT", "Run", "stream"]

# The same heartbeat for MPTCP and TCP, so the contrast is fair: a 1 s
# interval and 5 s timeout declare a connection dead after at most 6 s of
# silence. MPTCP's failover pauses stay inside: the worst round trip seen in
# about 50 runs was 2.4 s (most are under 1 s; see docs/howto/mptcp.md).
PING_INTERVAL = 1.0
PING_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.5
RATE = 4e6  # bytes per second: paced, see the MPTCP how-to's known limits
SIZE = 4096  # bytes per message
PORT = 8765


@dataclass
class Run:
    """What one stream produced."""

    client: dict[str, Any]  # the client's result event
    server: dict[str, Any]  # the server's result event
    client_open: dict[str, Any]
    server_open: dict[str, Any]
    client_subflows: dict[str, Any] | None  # the event saying 2 subflows, if awaited
    server_subflows: dict[str, Any] | None
    client_log: str
    server_log: str
    broke_at: float | None  # time.monotonic() when the path was broken


async def stream(
    network: TwoPaths,
    workdir: Path,
    backend: str,
    *,
    server_mptcp: bool,
    client_mptcp: bool,
    duration: float,
    break_after: float | None = None,
    breaker: Callable[[int], None] | None = None,
    wait_subflows: bool = False,
    prelude: str | None = None,
    unpaced: bool = False,
    rate: float = RATE,
) -> Run:
    """Stream from the client namespace to the server's first address and back.

    Args:
        network: the namespaces.
        workdir: where the peers' output goes.
        backend: "asyncio" or "trio", for both peers.
        server_mptcp: serve with ``mptcp=True``.
        client_mptcp: connect with ``mptcp=True``.
        duration: seconds the client streams.
        break_after: seconds after the connection opened to break path 0.
        breaker: how to break it (``network.take_down`` or ``network.blackhole``).
        wait_subflows: wait until both ends see two subflows before going on.
        prelude: Python both peers run first (see :func:`start_peer`).
        unpaced: send as fast as backpressure allows instead of at ``rate``.
        rate: the paced rate, in bytes per second.
    """
    common = [
        "--backend", backend,
        "--ping-interval", str(PING_INTERVAL),
        "--ping-timeout", str(PING_TIMEOUT),
        "--close-timeout", str(CLOSE_TIMEOUT),
    ]  # fmt: skip
    # 0.0.0.0, not the first address: the second subflow joins at the
    # announced address, and needs a listener there.
    # A fixed port, free in a namespace made for this run, lets the two
    # start together (the client retries until the server listens): 0.4 s
    # less per run than waiting for the server to report a port.
    server = start_peer(
        network, network.server, "server", "--host", "0.0.0.0", "--port", str(PORT), *common,
        *(["--mptcp"] if server_mptcp else []), workdir=workdir, prelude=prelude,
    )  # fmt: skip
    client = start_peer(
        network, network.client, "client", "--host", network.paths[0].server_addr,
        "--port", str(PORT), "--duration", str(duration), "--rate", str(rate),
        "--size", str(SIZE), *common, *(["--mptcp"] if client_mptcp else []),
        *(["--unpaced"] if unpaced else []),
        workdir=workdir, prelude=prelude,
    )  # fmt: skip
    assert (await server.event("listening"))["port"] == PORT
    client_open = await client.event("open")
    server_open = await server.event("open")
    client_subflows = server_subflows = None
    if wait_subflows:
        client_subflows = await client.event("subflows")
        server_subflows = await server.event("subflows")
    broke_at = None
    if break_after is not None:
        assert breaker is not None
        await anyio.sleep(max(0.0, client_open["at"] + break_after - time.monotonic()))
        broke_at = time.monotonic()
        breaker(0)
    return Run(
        client=await client.result(),
        server=await server.result(),
        client_open=client_open,
        server_open=server_open,
        client_subflows=client_subflows,
        server_subflows=server_subflows,
        client_log=client.stderr,
        server_log=server.stderr,
        broke_at=broke_at,
    )
