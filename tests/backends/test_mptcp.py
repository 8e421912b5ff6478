"""MPTCP: negotiation, fallback in every direction, refusal by the kernel.

These run on the real Linux MPTCP stack over loopback; they skip only where
the kernel refuses MPTCP sockets outright.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import wskit
from tests import seccomp
from tests.backends.conftest import (
    MPTCP,
    RefusingSocketModule,
    accept_while,
    fallback_notices,
    needs_ipv6,
    needs_mptcp,
    proto,
    raw,
    round_trip,
)
from wskit.backends import (
    MptcpInfo,
    MptcpListener,
    create_stream_socket,
    create_tcp_listeners,
    describe,
    mptcp_status,
    open_tcp_stream,
    sockets,
)


def peer_notices(caplog):
    """The notices that a peer without MPTCP made a connection TCP."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "wskit.backends" and "MPTCP not in use" in record.getMessage()
    ]


ONE_PATH = MptcpInfo(subflows=1, fallback=False)
FELL_BACK = MptcpInfo(subflows=1, fallback=True)


async def _connect(host, *, server_mptcp, client_mptcp):
    (listener,) = await create_tcp_listeners(host, 0, mptcp=server_mptcp)
    async with listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        return await accept_while(listener, lambda: open_tcp_stream(host, port, mptcp=client_mptcp))


@needs_mptcp
@pytest.mark.anyio
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_mptcp_on_both_ends_is_negotiated(host, caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    with anyio.fail_after(5):
        client, server = await _connect(host, server_mptcp=True, client_mptcp=True)
        async with client, server:
            await round_trip(client, server)
            assert proto(raw(client)) == proto(raw(server)) == MPTCP
            assert mptcp_status(raw(client)) == (True, ONE_PATH)
            assert mptcp_status(raw(server)) == (True, ONE_PATH)
            for stream in (client, server):
                info = await describe(stream)
                assert info.mptcp
                assert info.mptcp_info() == ONE_PATH
            # asyncio leaves TCP_NODELAY off for proto 262; we set it.
            assert raw(client).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert fallback_notices(caplog) == peer_notices(caplog) == []


@needs_mptcp
@pytest.mark.anyio
async def test_mptcp_client_resolves_host_names():
    # asyncio's own sock_connect fails here with "ai_socktype not supported".
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=True)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(
                listener, lambda: open_tcp_stream("localhost", port, mptcp=True)
            )
            async with client, server:
                await round_trip(client, server)
                assert (await describe(client)).mptcp


@needs_mptcp
@pytest.mark.anyio
async def test_mptcp_client_to_tcp_listener_falls_back(caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    with anyio.fail_after(5):
        ports = []
        for _ in range(2):  # twice: the notice must not repeat
            client, server = await _connect("127.0.0.1", server_mptcp=False, client_mptcp=True)
            ports.append(raw(client).getpeername()[1])
            await client.aclose()
            await server.aclose()
        client, server = await _connect("127.0.0.1", server_mptcp=False, client_mptcp=True)
        async with client, server:
            await round_trip(client, server)
            # The client still says 262; TCP_IS_MPTCP and MPTCP_INFO tell the truth.
            assert proto(raw(client)) == MPTCP
            assert mptcp_status(raw(client)) == (False, FELL_BACK)
            assert mptcp_status(raw(server)) == (False, None)
            info = await describe(client)
            assert not info.mptcp
            assert info.mptcp_info() == FELL_BACK
    assert fallback_notices(caplog) == []  # the kernel did not refuse anything
    assert peer_notices(caplog) == [
        f"MPTCP not in use: the server 127.0.0.1:{ports[0]} did not accept it; "
        "the connection runs over TCP (logged once per process)"
    ]


@needs_mptcp
@pytest.mark.anyio
async def test_tcp_client_to_mptcp_listener_gets_a_tcp_socket(caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=True)
        async with listener:
            assert isinstance(listener, MptcpListener)
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            assert listener.extra(anyio.abc.SocketAttribute.raw_socket).proto == MPTCP
            ports = []
            for _ in range(2):  # twice: the notice must not repeat
                client, server = await accept_while(
                    listener, lambda: open_tcp_stream("127.0.0.1", port, mptcp=False)
                )
                async with client, server:
                    await round_trip(client, server)
                    assert proto(raw(server)) == socket.IPPROTO_TCP
                    assert mptcp_status(raw(server)) == (False, None)
                    assert mptcp_status(raw(client)) == (False, None)
                    assert not (await describe(server)).mptcp
                    ports.append(raw(client).getsockname()[1])
    assert fallback_notices(caplog) == []
    assert peer_notices(caplog) == [
        f"MPTCP not in use: the client 127.0.0.1:{ports[0]} did not offer it; "
        "the connection runs over TCP (logged once per process)"
    ]


@pytest.mark.anyio
async def test_tcp_listener_is_not_wrapped():
    (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=False)
    async with listener:
        assert not isinstance(listener, MptcpListener)


@needs_mptcp
@pytest.mark.anyio
@pytest.mark.parametrize("code", [errno.EPROTONOSUPPORT, errno.ENOPROTOOPT, errno.EINVAL])
async def test_kernel_refusal_falls_back_to_tcp_with_one_notice(code, monkeypatch, caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    monkeypatch.setattr(sockets, "socket", RefusingSocketModule(code))
    with anyio.fail_after(5):
        for _ in range(2):  # twice: the notice must not repeat
            client, server = await _connect("127.0.0.1", server_mptcp=True, client_mptcp=True)
            async with client, server:
                await round_trip(client, server)
                assert proto(raw(client)) == proto(raw(server)) == socket.IPPROTO_TCP
                assert not (await describe(client)).mptcp
    (notice,) = fallback_notices(caplog)
    assert errno.errorcode[code] in notice
    assert "using TCP" in notice


def test_each_refusal_reason_is_noticed_once(monkeypatch, caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    for code in (errno.ENOPROTOOPT, errno.EINVAL, errno.ENOPROTOOPT, errno.EINVAL):
        monkeypatch.setattr(sockets, "socket", RefusingSocketModule(code))
        sock, used = create_stream_socket(socket.AF_INET, mptcp=True)
        sock.close()
        assert not used
    notices = fallback_notices(caplog)
    assert len(notices) == 2
    assert "ENOPROTOOPT" in notices[0]
    assert "EINVAL" in notices[1]


def test_other_socket_errors_propagate(monkeypatch, caplog):
    monkeypatch.setattr(sockets, "socket", RefusingSocketModule(errno.EMFILE))
    with pytest.raises(OSError, match="EMFILE") as info:
        create_stream_socket(socket.AF_INET, mptcp=True)
    assert info.value.errno == errno.EMFILE
    assert fallback_notices(caplog) == []


@pytest.mark.anyio
async def test_platform_without_ipproto_mptcp_uses_tcp(monkeypatch, caplog):
    caplog.set_level("INFO", logger="wskit.backends")
    monkeypatch.setattr(sockets, "MPTCP_PROTO", None)
    with anyio.fail_after(5):
        client, server = await _connect("127.0.0.1", server_mptcp=True, client_mptcp=True)
        async with client, server:
            await round_trip(client, server)
            assert proto(raw(client)) == proto(raw(server)) == socket.IPPROTO_TCP
    (notice,) = fallback_notices(caplog)
    assert "IPPROTO_MPTCP is not defined" in notice


def test_create_stream_socket_reports_what_it_made():
    sock, used = create_stream_socket(socket.AF_INET, mptcp=False)
    with sock:
        assert (proto(sock), used, sock.getblocking()) == (socket.IPPROTO_TCP, False, False)
    if sockets.MPTCP_PROTO is not None:
        sock, used = create_stream_socket(socket.AF_INET, mptcp=True)
        with sock:
            assert (proto(sock), used, sock.getblocking()) == (MPTCP, True, False)


_NETNS_SNIPPET = textwrap.dedent(
    """
    import logging, socket, sys
    import anyio
    from wskit.backends import create_stream_socket, create_tcp_listeners, open_tcp_stream

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    sock, used = create_stream_socket(socket.AF_INET, mptcp=True)
    print("made", used, sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
    sock.close()

    async def main():
        with anyio.fail_after(3):
            (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=True)
            async with listener:
                port = listener.extra(anyio.abc.SocketAttribute.local_port)
                async with anyio.create_task_group() as tg:
                    async def serve():
                        async with await listener.accept() as server:
                            await server.send(await server.receive())
                    tg.start_soon(serve)
                    client, info = await open_tcp_stream("127.0.0.1", port, mptcp=True)
                    async with client:
                        await client.send(b"hi")
                        print("echo", (await client.receive()).decode(), "mptcp", info.mptcp)

    anyio.run(main, backend=sys.argv[1])
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")
@pytest.mark.skipif(
    not (shutil.which("unshare") and shutil.which("ip")),
    reason="needs unshare and ip",
)
def test_mptcp_disabled_by_sysctl_falls_back_with_enoprotoopt(anyio_backend):
    # A fresh network namespace has its own net.mptcp.enabled; turning it
    # off there leaves the host alone.
    # Written to /proc directly: sysctl(8) (procps) may not be installed.
    script = 'ip link set lo up && echo 0 > /proc/sys/net/mptcp/enabled && exec "$@"'
    env = {**os.environ, "PYTHONPATH": str(Path(wskit.__file__).parents[1])}
    result = subprocess.run(
        [
            "unshare",
            "-n",
            "sh",
            "-c",
            script,
            "sh",
            sys.executable,
            "-c",
            _NETNS_SNIPPET,
            anyio_backend,
        ],
        capture_output=True,
        text=True,
        timeout=20,
        env=env,
        check=False,
    )
    if result.returncode != 0 and "unshare failed" in result.stderr:
        pytest.skip(f"cannot create a network namespace here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "wskit.backends: MPTCP is unavailable (ENOPROTOOPT: MPTCP is disabled "
        "(sysctl net.mptcp.enabled=0)); using TCP instead",
        "made False 6",
        "echo hi mptcp False",
    ]


_NO_TCP_IS_MPTCP_SNIPPET = textwrap.dedent(
    """
    import errno, socket, sys
    import anyio
    from tests.seccomp import refuse_tcp_is_mptcp
    from wskit.backends import create_tcp_listeners, describe, mptcp_status, open_tcp_stream

    refuse_tcp_is_mptcp()  # from here on, this process's kernel predates TCP_IS_MPTCP

    async def pair(server_mptcp):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0, mptcp=server_mptcp)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            async with anyio.create_task_group() as tg:
                accepted = []
                async def accept():
                    accepted.append(await listener.accept())
                tg.start_soon(accept)
                client, _ = await open_tcp_stream("127.0.0.1", port, mptcp=True)
        return client, accepted[0]

    async def main():
        with anyio.fail_after(5):
            for server_mptcp in (True, False):
                client, server = await pair(server_mptcp)
                async with client, server:
                    sock = client.extra(anyio.abc.SocketAttribute.raw_socket)
                    try:
                        sock.getsockopt(socket.IPPROTO_TCP, 43)
                    except OSError as exc:
                        refused = errno.errorcode[exc.errno]
                    else:
                        refused = "not refused"
                    print(server_mptcp, refused, mptcp_status(sock), (await describe(client)).mptcp)

    anyio.run(main, backend=sys.argv[1])
    """
)


@needs_mptcp
@pytest.mark.skipif(not seccomp.SUPPORTED, reason="no seccomp syscall table for this machine")
def test_kernel_without_tcp_is_mptcp_still_reports_mptcp(anyio_backend):
    # Kernels from 5.16 (MPTCP_INFO) until TCP_IS_MPTCP was added refuse the
    # latter; a seccomp filter makes this kernel answer the same way.
    root = Path(wskit.__file__).parents[1]
    result = subprocess.run(
        [sys.executable, "-c", _NO_TCP_IS_MPTCP_SNIPPET, anyio_backend],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    refused = errno.errorcode[errno.EOPNOTSUPP]  # "ENOTSUP" on Linux: the same number
    assert result.stdout.splitlines() == [
        f"True {refused} (True, {ONE_PATH!r}) True",
        f"False {refused} (False, {FELL_BACK!r}) False",
    ]
