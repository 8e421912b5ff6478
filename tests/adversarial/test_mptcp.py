"""MPTCP refused by the kernel (threats M1, M4), at the level of serve() and connect().

The kernel is made to refuse with a seccomp filter in a child process (see
``tests/seccomp.py``): ``socket(..., IPPROTO_MPTCP)`` fails with each errno a real
kernel gives, and TCP socket options fail as some kernels refuse them on
MPTCP sockets. wskit must fall back to TCP (one notice per reason), or go on
without the option, and never leak a socket. The errno is real: nothing in
Python is patched. (``tests/backends/test_mptcp.py`` also turns MPTCP off
with the real sysctl, in a network namespace.)

The last scenario needs no filter: on a real MPTCP connection, Linux refuses
``TCP_USER_TIMEOUT`` with ENOPROTOOPT.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import wskit
from tests import seccomp
from tests.adversarial.harness import KiB, attacked_server, bounded
from tests.io.support import needs_mptcp
from wskit.backends.options import set_option_best_effort

ROOT = Path(wskit.__file__).resolve().parents[1]
MPTCP = 262

needs_seccomp = pytest.mark.skipif(
    not seccomp.SUPPORTED, reason="seccomp filters here know x86_64 and aarch64 only"
)


def run_child(backend: str, rules: list[tuple[str, int, dict[int, int]]]) -> dict:
    """Run the serve/connect child under a seccomp filter; return its report."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.adversarial._mptcp_child", backend, json.dumps(rules)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    if "prctl(PR_SET_SECCOMP)" in result.stderr:
        pytest.skip(f"the kernel refused the seccomp filter: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@needs_seccomp
@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EPROTONOSUPPORT, "the kernel is built without MPTCP"),
        (errno.ENOPROTOOPT, "MPTCP is disabled (sysctl net.mptcp.enabled=0)"),
        (errno.EINVAL, "the kernel predates MPTCP (Linux < 5.6)"),
    ],
    ids=["EPROTONOSUPPORT", "ENOPROTOOPT", "EINVAL"],
)
def test_mptcp_refused_by_the_kernel_falls_back_to_tcp_with_one_notice(anyio_backend, code, reason):
    report = run_child(anyio_backend, [("socket", code, {2: MPTCP})])
    assert report.get("error") is None, report
    assert report["echo"] == "over mptcp?"
    assert report["listener_proto"] == report["client_proto"] == socket.IPPROTO_TCP
    assert report["client_mptcp"] is False
    name = errno.errorcode[code]
    # Listener and client both fell back, for one reason: one notice.
    assert report["logs"] == [f"MPTCP is unavailable ({name}: {reason}); using TCP instead"]
    assert report["fds_leaked"] == 0


@needs_seccomp
def test_another_errno_from_socket_creation_is_not_mistaken_for_no_mptcp(anyio_backend):
    # EACCES (an LSM said no) is a real fault: serve() raises it, no fallback.
    report = run_child(anyio_backend, [("socket", errno.EACCES, {2: MPTCP})])
    assert report["error"] == ["PermissionError", errno.EACCES]
    assert report["logs"] == []
    assert report["fds_leaked"] == 0


@needs_seccomp
@pytest.mark.parametrize("code", [errno.ENOPROTOOPT, errno.EOPNOTSUPP], ids=errno.errorcode.get)
def test_keepalive_options_refused_on_mptcp_sockets_are_skipped(anyio_backend, code):
    # The keepalive options wskit sets, refused as older kernels refused them
    # on MPTCP sockets: on the listener, the accepted and the client socket.
    # (TCP_NODELAY is left alone: AnyIO's accept() sets it and fails the
    # accept when it is refused; see docs/threats.md.)
    options = {
        "SO_KEEPALIVE": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        "TCP_KEEPIDLE": (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        "TCP_KEEPINTVL": (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        "TCP_KEEPCNT": (socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    }
    rules = [("setsockopt", code, {1: level, 2: option}) for level, option in options.values()]
    report = run_child(anyio_backend, rules)
    assert report.get("error") is None, report
    assert report["echo"] == "over mptcp?"
    if report["listener_proto"] == MPTCP:  # the host kernel has MPTCP on
        assert report["client_mptcp"] is True
    name = errno.errorcode[code]
    refused = sorted(line.split(" refused")[0] for line in report["logs"])
    assert refused == sorted(options)  # once per option, not once per socket
    assert all(f"refused with {name}" in line for line in report["logs"])
    assert report["fds_leaked"] == 0


@needs_mptcp
@pytest.mark.anyio
async def test_tcp_user_timeout_refused_on_a_real_mptcp_connection_is_not_fatal():
    async def echo(ws: wskit.WebSocket) -> None:
        async for message in ws:
            await ws.send(message)

    async with attacked_server(echo, mptcp=True) as server:
        async with bounded(memory=512 * KiB, seconds=2, server=server):
            url = f"ws://127.0.0.1:{server.port}/"
            async with wskit.connect(url, mptcp=True) as ws:
                assert ws.transport.mptcp
                sock = ws.transport._sock
                assert sock is not None
                with pytest.raises(OSError, match="Protocol not available") as refused:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000)
                assert refused.value.errno == errno.ENOPROTOOPT
                assert not set_option_best_effort(
                    sock, socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 1000
                )
                await ws.send("still up")
                with anyio.fail_after(1):
                    assert await ws.recv() == "still up"
