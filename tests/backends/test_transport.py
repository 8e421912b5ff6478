"""MPTCP_INFO decoding and TransportInfo on streams without sockets."""

from __future__ import annotations

import errno
import socket
import struct

import anyio
import anyio.abc
import pytest
from anyio._core._sockets import convert_ipv6_sockaddr  # the reference for _address
from hypothesis import given
from hypothesis import strategies as st

from wskit.backends import (
    MptcpInfo,
    TransportInfo,
    create_tcp_listeners,
    create_unix_listener,
    describe,
    mptcp_status,
    open_tcp_stream,
    open_unix_stream,
)
from wskit.backends.transport import _address

from .conftest import accept_while, needs_ipv6

LAYOUT = "=6B2xII3Q3BxI4QB3x3I"  # struct mptcp_info on Linux 6.18, 96 bytes


def _info_bytes(*, subflows=0, flags=0, subflows_total=1, size=96):
    fields = [subflows, 0, 0, 2, 0, 0, flags, 1234, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0]
    data = struct.pack(LAYOUT, *fields, subflows_total, 0, 0, 0)
    return data[:size]


class FakeMptcpSocket:
    """Answers getsockopt like a kernel would for an MPTCP socket."""

    def __init__(self, info=b"", *, is_mptcp=1, info_error=None, protocol=262):
        self.info, self.is_mptcp, self.info_error, self.protocol = (
            info,
            is_mptcp,
            info_error,
            protocol,
        )

    def getsockopt(self, level, option, buflen=None):
        if (level, option) == (socket.SOL_SOCKET, socket.SO_PROTOCOL):
            return self.protocol
        if (level, option) == (socket.IPPROTO_TCP, 43):
            return self.is_mptcp
        assert (level, option) == (284, 1)
        if self.info_error is not None:
            raise OSError(self.info_error, "refused")
        return self.info[:buflen]


def test_layout_is_96_bytes():
    assert struct.calcsize(LAYOUT) == 96


@pytest.mark.parametrize(
    ("sock", "expected"),
    [
        (FakeMptcpSocket(_info_bytes()), (True, MptcpInfo(1, False))),
        # Two paths: mptcpi_subflows counts the additional one.
        (FakeMptcpSocket(_info_bytes(subflows=1, subflows_total=2)), (True, MptcpInfo(2, False))),
        # Before subflows_total existed (kernels < 6.6): subflows + 1.
        (FakeMptcpSocket(_info_bytes(subflows=1, size=80)), (True, MptcpInfo(2, False))),
        (FakeMptcpSocket(_info_bytes(subflows=2, subflows_total=0)), (True, MptcpInfo(3, False))),
        # MPTCP_INFO_FLAG_FALLBACK
        (FakeMptcpSocket(_info_bytes(flags=1)), (False, MptcpInfo(1, True))),
        (FakeMptcpSocket(is_mptcp=0, info_error=errno.EOPNOTSUPP), (False, MptcpInfo(1, True))),
        (FakeMptcpSocket(_info_bytes(size=4)), (False, MptcpInfo(1, True))),
        (FakeMptcpSocket(protocol=6), (False, None)),
    ],
)
def test_mptcp_status_decodes_the_kernel_answer(sock, expected):
    assert mptcp_status(sock) == expected


def test_mptcp_status_never_raises_on_a_closed_socket():
    sock = socket.socket()
    sock.close()
    assert mptcp_status(sock) == (False, None)


class _MemoryByteStream(anyio.abc.ByteStream):
    """A byte stream with no socket under it, as tests and in-process pipes use."""

    async def receive(self, max_bytes=65536):
        raise anyio.EndOfStream

    async def send(self, item):
        pass

    async def send_eof(self):
        pass

    async def aclose(self):
        pass


@pytest.mark.anyio
async def test_stream_without_a_socket_is_described_with_nones():
    with anyio.fail_after(5):
        info = await describe(_MemoryByteStream())
    assert info == TransportInfo(peer=None, local=None, tls=False, mptcp=False, unix=False)
    assert info.mptcp_info() is None


@pytest.mark.anyio
async def test_a_tcp_stream_is_described_as_its_typed_attributes_read():
    # describe() reads AnyIO's attribute table once; each fact must be what
    # stream.extra() gives for it.
    with anyio.fail_after(5):
        async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
            [tcp] = listener.listeners
            port = tcp.extra(anyio.abc.SocketAttribute.local_port)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                async with await tcp.accept() as server:
                    for stream in (client, server):
                        info = await describe(stream)
                        attr = anyio.abc.SocketAttribute
                        assert info.peer == stream.extra(attr.remote_address)
                        assert info.local == stream.extra(attr.local_address)
                        assert info.peer != info.local
                        assert (info.tls, info.unix) == (False, False)
                        assert info.mptcp == mptcp_status(stream.extra(attr.raw_socket))[0]


def _from_attributes(stream: anyio.abc.SocketStream) -> tuple[object, object]:
    """(peer, local) as AnyIO's typed attributes give them, normalized as describe() does."""
    return (
        _address(stream.extra(anyio.abc.SocketAttribute.remote_address)),
        _address(stream.extra(anyio.abc.SocketAttribute.local_address)),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["127.0.0.1", pytest.param("::1", marks=needs_ipv6)])
async def test_socket_streams_are_described_as_their_attributes_say(host: str) -> None:
    # describe() reads the addresses from the socket itself (one extra()
    # call, not four): the answer must be AnyIO's, on both sides.
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners(host, 0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(listener, lambda: open_tcp_stream(host, port))
            async with client, server:
                for stream in (client, server):
                    info = await describe(stream)
                    assert (info.peer, info.local) == _from_attributes(stream)
                    assert not info.tls
                    assert not info.unix
                assert (await describe(client)).peer == (host, port)


@pytest.mark.anyio
async def test_unix_socket_streams_are_described_as_their_attributes_say(tmp_path) -> None:
    path = str(tmp_path / "s.sock")
    with anyio.fail_after(5):
        listener = await create_unix_listener(path, mode=0o600)
        async with listener:
            client, server = await accept_while(listener, lambda: open_unix_stream(path))
            async with client, server:
                for stream in (client, server):
                    info = await describe(stream)
                    assert (info.peer, info.local) == _from_attributes(stream)
                    assert info.unix
                    assert not info.tls
                assert (await describe(client)).peer == path


@given(
    host=st.ip_addresses(v=6).map(str),
    port=st.integers(0, 65535),
    flowinfo=st.integers(0, 2**20 - 1),
    scope=st.integers(0, 2**32 - 1),
)
def test_ipv6_addresses_are_normalized_as_anyio_does(
    host: str, port: int, flowinfo: int, scope: int
) -> None:
    sockaddr = (host, port, flowinfo, scope)
    assert _address(sockaddr) == convert_ipv6_sockaddr(sockaddr)
