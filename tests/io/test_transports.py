"""serve() and connect() over every transport wskit offers, on asyncio and on Trio.

TLS (a throwaway trustme CA), Unix sockets, sockets made by the caller, IPv6,
SO_REUSEPORT, TCP keepalive and MPTCP (negotiated, refused by the peer in
either direction, and refused by the kernel): each opens a real connection on
loopback, exchanges messages, and checks what ``ws.transport`` says on both
ends against what the kernel says.

A wss:// client that does not trust the server's CA (ConnectionFailed) is in
test_found_bugs.py until connect() stops leaking its socket on that path.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl

import anyio
import pytest

import wskit
from tests.backends.conftest import RefusingSocketModule
from tests.io.support import (
    MPTCP,
    RecordingEcho,
    keepalive,
    needs_ipv6,
    needs_mptcp,
    protocol,
    raw_socket,
    round_trip,
    tls_contexts,
)
from wskit.backends import MptcpInfo, options, sockets

pytestmark = pytest.mark.anyio

ONE_PATH = MptcpInfo(subflows=1, fallback=False)
FELL_BACK = MptcpInfo(subflows=1, fallback=True)


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no "already logged" MPTCP fallback or option notices."""
    monkeypatch.setattr(sockets, "_fallback_notices", set())
    monkeypatch.setattr(options, "_logged_refusals", set())


@pytest.fixture
def server_context() -> ssl.SSLContext:
    return tls_contexts()[0]


@pytest.fixture
def client_context() -> ssl.SSLContext:
    return tls_contexts()[1]


# ------------------------------------------------------------------ TLS


@pytest.mark.parametrize("mptcp", [False, pytest.param(True, marks=needs_mptcp)])
async def test_wss_with_a_trusted_ca(server_context, client_context, mptcp):
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, ssl=server_context, mptcp=mptcp) as server:
            url = f"wss://localhost:{server.port}/secure"
            async with wskit.connect(url, ssl=client_context, mptcp=mptcp) as ws:
                await round_trip(ws)
                assert ws.transport.tls
                assert echo.last.transport.tls
                assert echo.last.request is not None
                assert echo.last.request.path == "/secure"
                # TLS rides on MPTCP as on TCP: the socket facts still read through.
                assert ws.transport.mptcp is mptcp
                assert echo.last.transport.mptcp is mptcp
            assert ws.close_code == 1000


async def test_a_plain_client_to_a_tls_server_fails_cleanly(server_context):
    with anyio.fail_after(5):
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0, ssl=server_context) as server:
            with pytest.raises(wskit.HandshakeError):
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=2):
                    pass


# ----------------------------------------------------------------- Unix


async def test_unix_socket(tmp_path):
    path = str(tmp_path / "ws.sock")
    if len(path) > 100:  # sun_path holds 108 bytes
        pytest.skip(f"tmp_path too long for a Unix socket: {path}")
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, unix_path=path) as server:
            with pytest.raises(wskit.UsageError, match="Unix socket"):
                _ = server.port
            async with wskit.connect("ws://localhost/chat", unix_path=path) as ws:
                await round_trip(ws)
                for info in (ws.transport, echo.last.transport):
                    assert info.unix
                    assert not info.tls
                    assert not info.mptcp
                assert ws.transport.peer == path
                assert echo.last.transport.local == path
                assert echo.last.request is not None
                assert echo.last.request.path == "/chat"
                assert echo.last.request.header("host") == "localhost"
            assert ws.close_code == 1000


async def test_wss_over_a_unix_socket(tmp_path, server_context, client_context):
    path = str(tmp_path / "wss.sock")
    if len(path) > 100:
        pytest.skip(f"tmp_path too long for a Unix socket: {path}")
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, unix_path=path, ssl=server_context):
            async with wskit.connect("wss://localhost/", unix_path=path, ssl=client_context) as ws:
                await round_trip(ws)
                assert ws.transport.unix
                assert ws.transport.tls
                assert echo.last.transport.unix
                assert echo.last.transport.tls


# -------------------------------------------------------- pre-made sockets


@pytest.mark.parametrize("proto", [socket.IPPROTO_TCP, pytest.param(MPTCP, marks=needs_mptcp)])
async def test_premade_listening_and_connected_sockets(proto):
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    port = listening.getsockname()[1]
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, sock=listening) as server:
            assert server.port == port
            connected = socket.socket(socket.AF_INET, socket.SOCK_STREAM, proto)
            connected.settimeout(2)
            connected.connect(("127.0.0.1", port))  # loopback: completes at once
            local = connected.getsockname()
            async with wskit.connect(f"ws://127.0.0.1:{port}/", sock=connected) as ws:
                await round_trip(ws)
                assert ws.transport.peer == ("127.0.0.1", port)
                assert ws.transport.local == local
                assert echo.last.transport.peer == local
                assert ws.transport.mptcp is (proto == MPTCP)
                assert echo.last.transport.mptcp is (proto == MPTCP)
            assert ws.close_code == 1000
            # connect() took ownership of the socket and released it.
            assert connected.fileno() == -1
    # So did serve().
    assert listening.fileno() == -1


async def test_premade_unix_listening_socket(tmp_path):
    path = str(tmp_path / "pre.sock")
    if len(path) > 100:
        pytest.skip(f"tmp_path too long for a Unix socket: {path}")
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(path)
    listening.listen()
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, sock=listening):
            connected = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connected.connect(path)
            async with wskit.connect("ws://localhost/", sock=connected) as ws:
                await round_trip(ws)
                assert ws.transport.unix
                assert echo.last.transport.unix


async def test_premade_sockets_of_the_wrong_kind_are_usage_errors():
    with socket.socket() as unbound, socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with anyio.fail_after(5):
            with pytest.raises(wskit.UsageError, match="not listening"):
                async with wskit.serve(RecordingEcho(), sock=unbound):
                    pass
            with pytest.raises(wskit.UsageError, match="listening socket"):
                async with wskit.connect("ws://127.0.0.1/", sock=listening):
                    pass
            with pytest.raises(wskit.UsageError, match="not connected"):
                async with wskit.connect("ws://127.0.0.1/", sock=unbound):
                    pass


# ----------------------------------------------------------------- IPv6


@needs_ipv6
async def test_ipv6_loopback():
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "::1", 0) as server:
            port = server.port
            assert [s.family for s in server.sockets] == [socket.AF_INET6]
            async with wskit.connect(f"ws://[::1]:{port}/six") as ws:
                await round_trip(ws)
                assert ws.transport.peer == ("::1", port)
                assert echo.last.transport.local == ("::1", port)
                assert isinstance(echo.last.transport.peer, tuple)
                assert echo.last.transport.peer[0] == "::1"
                assert echo.last.request is not None
                assert echo.last.request.header("host") == f"[::1]:{port}"


# ------------------------------------------------------------ reuse_port


async def test_reuse_port_lets_two_servers_share_a_port():
    first_echo, second_echo = RecordingEcho("first"), RecordingEcho("second")
    with anyio.fail_after(10):
        async with wskit.serve(first_echo, "127.0.0.1", 0, reuse_port=True) as first:
            port = first.port
            with pytest.raises(OSError, match="in use") as caught:
                async with wskit.serve(RecordingEcho(), "127.0.0.1", port):
                    pass
            assert caught.value.errno == errno.EADDRINUSE
            async with wskit.serve(second_echo, "127.0.0.1", port, reuse_port=True) as second:
                assert second.port == port
                greetings = set()
                # The kernel spreads connections by a hash of the 4-tuple:
                # 40 connections all landing on one server has odds 2**-39.
                for _ in range(40):
                    async with wskit.connect(f"ws://127.0.0.1:{port}/") as ws:
                        greetings.add(await ws.recv())
                    if greetings == {"first", "second"}:
                        break
                assert greetings == {"first", "second"}


# ----------------------------------------------------------- keepalive


@pytest.mark.parametrize("mptcp", [False, pytest.param(True, marks=needs_mptcp)])
async def test_tcp_keepalive_is_applied_to_both_ends(mptcp):
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(
            echo, "127.0.0.1", 0, tcp_keepalive=(7, 3, 4), mptcp=mptcp
        ) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            # Fractions round up: a probe never comes earlier than asked.
            async with wskit.connect(url, tcp_keepalive=(4.5, 1.2, 5), mptcp=mptcp) as ws:
                await round_trip(ws)
                assert ws.transport.mptcp is mptcp
                assert keepalive(raw_socket(ws)) == (1, 5, 2, 5)
                assert keepalive(raw_socket(echo.last)) == (1, 7, 3, 4)
            # Without the option, wskit leaves the system's setting alone (off).
            async with wskit.connect(url, mptcp=mptcp) as ws:
                await round_trip(ws)
                assert raw_socket(ws).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0


async def test_invalid_tcp_keepalive_is_a_usage_error():
    with anyio.fail_after(5):
        with pytest.raises(wskit.UsageError, match="count"):
            async with wskit.serve(RecordingEcho(), "127.0.0.1", 0, tcp_keepalive=(1, 1, 0)):
                pass
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0) as server:
            with pytest.raises(wskit.UsageError, match="idle"):
                async with wskit.connect(
                    f"ws://127.0.0.1:{server.port}/", tcp_keepalive=(-1, 1, 1)
                ):
                    pass


# ----------------------------------------------------------------- MPTCP


@needs_mptcp
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_mptcp_on_both_ends(host, caplog):
    caplog.set_level(logging.INFO, logger="wskit.backends")
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, host, 0, mptcp=True) as server:
            url = f"ws://{'[::1]' if ':' in host else host}:{server.port}/"
            async with wskit.connect(url, mptcp=True) as ws:
                await round_trip(ws)
                for side in (ws, echo.last):
                    assert side.transport.mptcp
                    assert side.transport.mptcp_info() == ONE_PATH
                    assert protocol(raw_socket(side)) == MPTCP
                    # asyncio only sets TCP_NODELAY for proto 6; wskit sets it for 262.
                    assert raw_socket(side).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    assert "MPTCP is unavailable" not in caplog.text


@needs_mptcp
async def test_mptcp_client_to_a_plain_server_falls_back():
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0) as server:
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/", mptcp=True) as ws:
                await round_trip(ws)
                assert not ws.transport.mptcp
                assert not echo.last.transport.mptcp
                # The client asked (proto 262) and the kernel fell back, silently.
                assert protocol(raw_socket(ws)) == MPTCP
                assert ws.transport.mptcp_info() == FELL_BACK
                assert echo.last.transport.mptcp_info() is None


@needs_mptcp
async def test_plain_client_to_an_mptcp_server_gets_tcp():
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, mptcp=True) as server:
            assert all(protocol(s) == MPTCP for s in server.sockets)
            async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                await round_trip(ws)
                assert not ws.transport.mptcp
                assert not echo.last.transport.mptcp
                assert ws.transport.mptcp_info() is None
                assert echo.last.transport.mptcp_info() is None
                assert protocol(raw_socket(echo.last)) == socket.IPPROTO_TCP


@pytest.mark.parametrize("refusal", ["no-constant", "ENOPROTOOPT", "EPROTONOSUPPORT"])
async def test_forced_mptcp_fallback_works_with_one_notice(refusal, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="wskit.backends")
    if refusal == "no-constant":
        monkeypatch.setattr(sockets, "MPTCP_PROTO", None)
    else:
        monkeypatch.setattr(sockets, "socket", RefusingSocketModule(getattr(errno, refusal)))
    echo = RecordingEcho()
    with anyio.fail_after(5):
        async with wskit.serve(echo, "127.0.0.1", 0, mptcp=True) as server:
            assert all(protocol(s) == socket.IPPROTO_TCP for s in server.sockets)
            for _ in range(2):  # a second connection must not log again
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/", mptcp=True) as ws:
                    await round_trip(ws)
                    assert not ws.transport.mptcp
                    assert not echo.last.transport.mptcp
                    assert ws.transport.mptcp_info() is None
                    assert protocol(raw_socket(ws)) == socket.IPPROTO_TCP
    notices = [
        record
        for record in caplog.records
        if record.name == "wskit.backends" and "MPTCP is unavailable" in record.getMessage()
    ]
    assert len(notices) == 1, [record.getMessage() for record in notices]
    assert notices[0].levelno == logging.INFO
    assert "using TCP" in notices[0].getMessage()
    if refusal != "no-constant":
        assert refusal in notices[0].getMessage()
