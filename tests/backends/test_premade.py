"""Sockets made by the caller: serve(sock=...) and connect(sock=...)."""

from __future__ import annotations

import socket

import anyio
import pytest

from tests.backends.conftest import MPTCP, accept_while, needs_mptcp, round_trip
from wskit.backends import (
    describe,
    listener_from_socket,
    mptcp_status,
    open_tcp_stream,
    stream_from_socket,
)
from wskit.errors import UsageError


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", [socket.IPPROTO_TCP, pytest.param(MPTCP, marks=needs_mptcp)])
async def test_listening_socket_is_adopted(protocol):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, protocol)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    with anyio.fail_after(5):
        async with await listener_from_socket(sock) as listener:
            client, server = await accept_while(
                listener, lambda: open_tcp_stream("127.0.0.1", port, mptcp=protocol == MPTCP)
            )
            async with client, server:
                await round_trip(client, server)
                assert (await describe(server)).mptcp is (protocol == MPTCP)


@pytest.mark.anyio
async def test_connected_socketpair_is_adopted():
    left, right = socket.socketpair()
    with anyio.fail_after(5):
        client = await stream_from_socket(left)
        server = await stream_from_socket(right)
        async with client, server:
            await round_trip(client, server)
            info = await describe(client)
            assert info.unix
            assert not info.mptcp


@needs_mptcp
@pytest.mark.anyio
async def test_connected_mptcp_socket_is_adopted():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP) as raw_listener:
        raw_listener.bind(("127.0.0.1", 0))
        raw_listener.listen()
        left = socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP)
        left.connect(raw_listener.getsockname())
        right, _ = raw_listener.accept()
    with anyio.fail_after(5):
        client = await stream_from_socket(left)
        server = await stream_from_socket(right)
        async with client, server:
            await round_trip(client, server)
            assert (await describe(client)).mptcp
            assert mptcp_status(left)[0]
            assert left.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


@pytest.mark.anyio
async def test_wrong_kind_of_socket_is_a_usage_error():
    with anyio.fail_after(5):
        with socket.socket() as listening:
            listening.bind(("127.0.0.1", 0))
            listening.listen()
            with pytest.raises(UsageError, match="listening socket"):
                await stream_from_socket(listening)
        with socket.socket() as fresh:
            with pytest.raises(UsageError, match="not connected"):
                await stream_from_socket(fresh)
            with pytest.raises(UsageError, match="not listening"):
                await listener_from_socket(fresh)
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram,
            pytest.raises(UsageError, match="SOCK_STREAM"),
        ):
            await listener_from_socket(datagram)
        closed = socket.socket()
        closed.close()
        with pytest.raises(UsageError, match="closed"):
            await stream_from_socket(closed)
