"""MPTCP falls back to TCP cleanly and visibly, between two real namespaces.

Each way MPTCP can be missing, end to end with ``serve(mptcp=True)`` and
``connect(mptcp=True)``: disabled by sysctl, a peer that does not speak it
(each direction), a Python without ``IPPROTO_MPTCP``, and a kernel built
without MPTCP (its EPROTONOSUPPORT made by a seccomp filter on the real
``socket()`` call). Every time the messages flow over TCP, exactly one
notice is logged by the side that asked, and ``ws.transport.mptcp`` is False.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests import seccomp
from tests.e2e.streams import stream

DURATION = 0.3
REPO = Path(__file__).parents[2]


def _notices(log):
    return [line for line in log.splitlines() if "MPTCP" in line]


def _flowed(run):
    sent = run.client["sent"]
    assert sent > 0
    for result in (run.client, run.server):
        assert result["received"]["count"] == sent
        assert result["received"]["out_of_order"] == []
        assert result["error"] is None
        assert result["close_code"] == 1000


def _plain_tcp(opened):
    """What ws.transport says about a socket that is plain TCP."""
    assert (opened["mptcp"], opened["subflows"], opened["fallback"]) == (False, None, None)


async def _run(two_paths, tmp_path, backend, **kwargs):
    with anyio.fail_after(20):
        return await stream(two_paths, tmp_path, backend, duration=DURATION, **kwargs)


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_mptcp_disabled_by_sysctl(two_paths, tmp_path, anyio_backend):
    for ns in (two_paths.client, two_paths.server):
        two_paths.set_sysctl(ns, "net.mptcp.enabled", "0")
    run = await _run(two_paths, tmp_path, anyio_backend, server_mptcp=True, client_mptcp=True)
    _flowed(run)
    _plain_tcp(run.client_open)
    _plain_tcp(run.server_open)
    notice = (
        "wskit.backends: MPTCP is unavailable (ENOPROTOOPT: MPTCP is disabled"
        " (sysctl net.mptcp.enabled=0)); using TCP instead"
    )
    assert _notices(run.client_log) == _notices(run.server_log) == [notice]


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_server_without_mptcp(two_paths, tmp_path, anyio_backend):
    run = await _run(two_paths, tmp_path, anyio_backend, server_mptcp=False, client_mptcp=True)
    _flowed(run)
    # The client's socket is still an MPTCP one, and says it fell back.
    assert (run.client_open["mptcp"], run.client_open["subflows"]) == (False, 1)
    assert run.client_open["fallback"] is True
    _plain_tcp(run.server_open)
    (notice,) = _notices(run.client_log)
    assert notice.startswith("wskit.backends: MPTCP not in use: the server 10.201.1.2:")
    assert notice.endswith(
        " did not accept it; the connection runs over TCP (logged once per process)"
    )
    assert _notices(run.server_log) == []


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_client_without_mptcp(two_paths, tmp_path, anyio_backend):
    run = await _run(two_paths, tmp_path, anyio_backend, server_mptcp=True, client_mptcp=False)
    _flowed(run)
    # An MPTCP listener hands a TCP client a plain TCP socket.
    _plain_tcp(run.client_open)
    _plain_tcp(run.server_open)
    (notice,) = _notices(run.server_log)
    assert notice.startswith("wskit.backends: MPTCP not in use: the client 10.201.1.1:")
    assert notice.endswith(
        " did not offer it; the connection runs over TCP (logged once per process)"
    )
    assert _notices(run.client_log) == []


PLATFORMS = {
    # Python built where socket has no IPPROTO_MPTCP (macOS, Windows, old Linux builds).
    "no-IPPROTO_MPTCP": (
        # Trio copies socket's names when imported: let it, then remove the
        # constant before wskit is imported and looks for it.
        "import socket, trio; del socket.IPPROTO_MPTCP",
        "wskit.backends: MPTCP is unavailable (IPPROTO_MPTCP is not defined on this"
        " platform); using TCP instead",
    ),
    # A Linux kernel built without CONFIG_MPTCP.
    "kernel-without-mptcp": (
        f"import sys; sys.path.insert(0, {str(REPO)!r});"
        " from tests.seccomp import refuse_mptcp_sockets; refuse_mptcp_sockets()",
        "wskit.backends: MPTCP is unavailable (EPROTONOSUPPORT: the kernel is built"
        " without MPTCP); using TCP instead",
    ),
}


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("platform", list(PLATFORMS))
async def test_platform_without_mptcp(two_paths, tmp_path, anyio_backend, platform):
    prelude, notice = PLATFORMS[platform]
    if platform == "kernel-without-mptcp" and not seccomp.SUPPORTED:
        pytest.skip("no seccomp syscall table for this machine")
    run = await _run(
        two_paths, tmp_path, anyio_backend, server_mptcp=True, client_mptcp=True, prelude=prelude
    )
    _flowed(run)
    _plain_tcp(run.client_open)
    _plain_tcp(run.server_open)
    assert _notices(run.client_log) == _notices(run.server_log) == [notice]
