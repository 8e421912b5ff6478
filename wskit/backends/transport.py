"""What a connection runs over, and TLS on top of any byte stream.

:class:`TransportInfo` is the answer to "what is this connection carried by":
addresses, TLS, Unix socket, MPTCP. It is read once from AnyIO's typed
attributes when the connection opens (:func:`describe`); only the MPTCP
facts, which change as subflows come and go, are read fresh on request.

TLS uses ``standard_compatible=False`` on both sides, as websockets does: a
WebSocket ends with its own closing handshake, so a peer that drops TCP
without a TLS close_notify has not truncated anything we care about.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, final

import anyio
import anyio.abc
from anyio.streams.tls import TLSAttribute, TLSStream

from wskit.backends.errors import TransportClosed
from wskit.backends.lean import LeanStream
from wskit.backends.mptcp import MptcpInfo, mptcp_status

__all__ = [
    "Address",
    "TransportInfo",
    "describe",
    "raw_socket",
    "wrap_client_tls",
    "wrap_server_tls",
]

Address = tuple[str, int] | str | None
"""``(host, port)`` for TCP, a filesystem path for a Unix socket, None if unknown."""


@final
@dataclass(frozen=True, slots=True)
class TransportInfo:
    """Facts about the transport under one connection.

    Attributes:
        peer: the other end's address (``(host, port)``, a Unix path, or None).
        local: this end's address, in the same forms.
        tls: True if the stream is wrapped in TLS.
        mptcp: True if the connection uses MPTCP (negotiated, not merely
            requested: a fallback to TCP reads False).
        unix: True for a Unix domain socket.
    """

    peer: Address
    local: Address
    tls: bool
    mptcp: bool
    unix: bool
    # The socket, kept only so mptcp_info() can read live facts; not part of
    # the value (equality, repr) and never used to do I/O.
    _sock: socket.socket | None = field(default=None, compare=False, repr=False)

    def mptcp_info(self) -> MptcpInfo | None:
        """Read the current MPTCP facts of the connection.

        Returns:
            Subflow count and fallback flag, read from the kernel now; None
            when the socket is not an MPTCP socket (or is not a socket, or is
            already closed).
        """
        if self._sock is None:
            return None
        return mptcp_status(self._sock)[1]


async def describe(stream: anyio.abc.AnyByteStream) -> TransportInfo:
    """Describe the transport of a stream from AnyIO's typed attributes.

    Works for socket streams, TLS streams over them, and streams without a
    socket (in-memory test streams), whose addresses read None.

    Args:
        stream: the byte stream a connection runs over.

    Returns:
        The stream's :class:`TransportInfo`.
    """
    if isinstance(stream, LeanStream):
        # The addresses asyncio's transport read when it was made: no
        # system call here (AnyIO's extra() would build its whole attribute
        # table again, with a getpeername() in it).
        raw = stream.raw_socket
        return TransportInfo(
            peer=_address(stream.transport_info("peername")),
            local=_address(stream.transport_info("sockname")),
            tls=False,
            mptcp=_is_mptcp(raw),
            unix=False,  # lean streams carry TCP and MPTCP only
            _sock=raw,
        )
    if isinstance(stream, anyio.abc.SocketStream):
        sock: socket.socket = stream._raw_socket
        # A socket stream has nothing above its socket (TLS streams are not
        # SocketStreams): read the addresses from it, not through AnyIO's
        # attribute table, which extra() builds anew on every call.
        return TransportInfo(
            peer=_address(sock.getpeername()),
            local=_address(sock.getsockname()),
            tls=False,
            mptcp=_is_mptcp(sock),
            unix=sock.family == getattr(socket, "AF_UNIX", None),
            _sock=sock,
        )
    # Anything else (TLS, in memory): build AnyIO's table once and read the facts from it.
    attributes = stream.extra_attributes

    def attribute(key: Any) -> Any:
        getter = attributes.get(key)
        return None if getter is None else getter()

    under: socket.socket | None = attribute(anyio.abc.SocketAttribute.raw_socket)
    unix = under is not None and under.family == getattr(socket, "AF_UNIX", None)
    mptcp = under is not None and _is_mptcp(under)
    return TransportInfo(
        peer=_address(attribute(anyio.abc.SocketAttribute.remote_address)),
        local=_address(attribute(anyio.abc.SocketAttribute.local_address)),
        tls=attribute(TLSAttribute.ssl_object) is not None,
        mptcp=mptcp,
        unix=unix,
        _sock=under,
    )


def raw_socket(stream: anyio.abc.AnyByteStream) -> socket.socket | None:
    """The socket under ``stream``, read without building AnyIO's attribute table.

    ``stream.extra(SocketAttribute.raw_socket)`` builds the stream's whole
    table of typed attributes first, with a ``getpeername()`` system call
    in it (~10 µs on Trio); an AnyIO socket stream (a lean stream included)
    holds its socket in the ``_raw_socket`` property its abstract class
    declares, which that table reads too.

    Args:
        stream: any AnyIO byte stream.

    Returns:
        The socket, or None for a stream without one (in memory, say). For a
        TLS stream, the socket under it.
    """
    if isinstance(stream, anyio.abc.SocketStream):
        sock: socket.socket = stream._raw_socket
        return sock
    found: socket.socket | None = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    return found


def _is_mptcp(sock: socket.socket) -> bool:
    """Whether the connection on ``sock`` uses MPTCP, asking the kernel only when it may.

    A socket made for TCP (by wskit, by AnyIO, or accepted from such a
    listener) says so in ``proto``, and cannot use MPTCP: no
    ``getsockopt()`` for it.
    """
    if sock.proto == socket.IPPROTO_TCP:
        return False
    return mptcp_status(sock)[0]


async def wrap_client_tls(
    stream: anyio.abc.AnyByteStream, ssl_context: ssl.SSLContext, server_hostname: str | None
) -> TLSStream:
    """Do the client side of a TLS handshake over ``stream``.

    Args:
        stream: a connected byte stream; owned by the result, closed on failure.
        ssl_context: the client context (CA, verification mode, ALPN).
        server_hostname: the name to verify and send as SNI (None to skip both,
            which only a context with ``check_hostname=False`` accepts).

    Returns:
        The TLS stream.

    Raises:
        ssl.SSLError: the handshake failed (bad certificate, protocol mismatch).
        TransportClosed: the transport ended or broke during the handshake.
    """
    return await _wrap(stream, server_side=False, hostname=server_hostname, context=ssl_context)


async def wrap_server_tls(
    stream: anyio.abc.AnyByteStream, ssl_context: ssl.SSLContext
) -> TLSStream:
    """Do the server side of a TLS handshake over an accepted ``stream``.

    Args:
        stream: an accepted byte stream; owned by the result, closed on failure.
        ssl_context: the server context holding the certificate chain.

    Returns:
        The TLS stream.

    Raises:
        ssl.SSLError: the handshake failed (the client sent garbage, or
            refused our certificate with an alert).
        TransportClosed: the transport ended or broke during the handshake
            (often a client that rejected our certificate and hung up).
    """
    return await _wrap(stream, server_side=True, hostname=None, context=ssl_context)


async def _wrap(
    stream: anyio.abc.AnyByteStream,
    *,
    server_side: bool,
    hostname: str | None,
    context: ssl.SSLContext,
) -> TLSStream:
    """Run the handshake, closing the transport if it does not complete."""
    try:
        # Not under map_transport_errors: an ssl.SSLError here (a bad
        # certificate) must reach the caller as itself, not as a closed transport.
        try:
            return await TLSStream.wrap(
                stream,
                server_side=server_side,
                hostname=hostname,
                ssl_context=context,
                standard_compatible=False,
            )
        except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            raise TransportClosed("the connection ended during the TLS handshake") from exc
    except BaseException:
        # TLSStream.wrap leaves the transport open on failure (and on
        # cancellation); the caller has no handle on it any more.
        await anyio.aclose_forcefully(stream)
        raise


def _address(value: object) -> Address:
    """Normalize an AnyIO address attribute, or a socket's own address, to :data:`Address`."""
    if isinstance(value, tuple) and len(value) == 4 and value[3]:
        # An IPv6 socket address with a scope: "host%scope", as AnyIO writes it.
        return (f"{str(value[0]).split('%')[0]}%{value[3]}", int(value[1]))
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    if isinstance(value, str | bytes):
        # Unix socket paths; an unnamed socket reads "" and abstract ones
        # start with NUL, both kept as given.
        return value.decode(errors="surrogateescape") if isinstance(value, bytes) else value
    return None
