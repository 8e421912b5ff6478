"""TCP: connecting, listening, addresses, refusal, SO_REUSEPORT, cancellation."""

from __future__ import annotations

import errno
import functools
import os
import socket

import anyio
import pytest

from tests.backends.conftest import accept_while, needs_ipv6, proto, raw, round_trip
from wskit.backends import create_tcp_listeners, describe, open_tcp_stream
from wskit.errors import UsageError

pytestmark = pytest.mark.anyio


async def test_round_trip_over_ipv4():
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(
                listener, lambda: open_tcp_stream("127.0.0.1", port)
            )
            async with client, server:
                await round_trip(client, server)
                assert proto(raw(client)) == socket.IPPROTO_TCP
                info = await describe(client)
                assert info.peer == ("127.0.0.1", port)
                assert isinstance(info.local, tuple)
                assert not info.tls
                assert not info.mptcp
                assert not info.unix
                assert info.mptcp_info() is None
                assert raw(client).getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_open_tcp_stream_resolves_names_and_describes_the_stream():
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            infos = []

            async def connect():
                stream, info = await open_tcp_stream("localhost", port)
                infos.append(info)
                return stream, info

            client, server = await accept_while(listener, connect)
            async with client, server:
                assert infos == [await describe(client)]
                assert infos[0].peer == ("127.0.0.1", port)


@needs_ipv6
async def test_round_trip_over_ipv6():
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("::1", 0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(listener, lambda: open_tcp_stream("::1", port))
            async with client, server:
                await round_trip(client, server)
                assert raw(client).family == socket.AF_INET6
                assert (await describe(server)).local == ("::1", port)


@needs_ipv6
async def test_all_interfaces_with_port_zero_share_one_port():
    with anyio.fail_after(5):
        listeners = await create_tcp_listeners(None, 0)
        try:
            families = {raw(lst).family for lst in listeners}
            ports = {lst.extra(anyio.abc.SocketAttribute.local_port) for lst in listeners}
            assert families == {socket.AF_INET, socket.AF_INET6}
            assert len(ports) == 1
            (port,) = ports
            for listener in listeners:
                host = "127.0.0.1" if raw(listener).family == socket.AF_INET else "::1"
                client, server = await accept_while(
                    listener, functools.partial(open_tcp_stream, host, port)
                )
                async with client, server:
                    await round_trip(client, server)
        finally:
            for listener in listeners:
                await listener.aclose()


async def test_connection_refused_raises_quickly():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: refuses
        with anyio.fail_after(2), pytest.raises(ConnectionRefusedError) as info:
            await open_tcp_stream("127.0.0.1", port)
    assert info.value.errno == errno.ECONNREFUSED
    assert str(port) in str(info.value)


async def test_reuse_port_lets_two_listeners_share_a_port():
    with anyio.fail_after(5):
        (first,) = await create_tcp_listeners("127.0.0.1", 0, reuse_port=True)
        async with first:
            port = first.extra(anyio.abc.SocketAttribute.local_port)
            (second,) = await create_tcp_listeners("127.0.0.1", port, reuse_port=True)
            async with second:
                assert second.extra(anyio.abc.SocketAttribute.local_port) == port
            with pytest.raises(OSError, match="in use") as info:
                await create_tcp_listeners("127.0.0.1", port)
            assert info.value.errno == errno.EADDRINUSE


async def test_local_address_is_bound_before_connecting():
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners("127.0.0.1", 0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(
                listener, lambda: open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2")
            )
            async with client, server:
                peer = (await describe(server)).peer
                assert isinstance(peer, tuple)
                assert peer[0] == "127.0.0.2"


async def test_invalid_keepalive_is_refused_before_connecting():
    with anyio.fail_after(5):
        with pytest.raises(UsageError, match="count"):
            await open_tcp_stream("127.0.0.1", 9, tcp_keepalive=(1, 1, 0))
        with pytest.raises(UsageError, match="idle"):
            await create_tcp_listeners("127.0.0.1", 0, tcp_keepalive=(-1, 1, 1))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
async def test_cancelled_connect_closes_its_socket():
    # A listener whose accept queue is full drops SYNs, so a connect hangs.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(2):
                filler = socket.socket()
                fillers.append(filler)
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            await anyio.sleep(0.05)
            before = _open_fds()
            with anyio.fail_after(5):
                with anyio.move_on_after(0.3) as scope:
                    await open_tcp_stream("127.0.0.1", port)
                assert scope.cancelled_caught
            assert _open_fds() == before
        finally:
            for filler in fillers:
                filler.close()
