"""TCP and MPTCP sockets: creation, connecting and listening.

MPTCP has to be chosen when the socket is created (``IPPROTO_MPTCP`` as the
third argument of ``socket()``), so wskit creates its TCP sockets itself
rather than through ``anyio.connect_tcp``. Two measured pitfalls shape the
code:

* Name resolution must ask for ``IPPROTO_TCP``. asyncio re-resolves with the
  socket's protocol inside ``sock_connect`` and getaddrinfo rejects 262 with
  "ai_socktype not supported" (python/cpython#123174), so we resolve once
  with TCP and connect by hand: non-blocking ``connect_ex``, wait until
  writable, read ``SO_ERROR``. AnyIO then wraps the connected socket.
* The kernel may refuse MPTCP (EPROTONOSUPPORT: built without it,
  ENOPROTOOPT: ``net.mptcp.enabled=0``, EINVAL: older than 5.6). We fall back
  to TCP and log one notice per reason per process: a server accepting
  thousands of connections must not log thousands of times.
* The peer may not speak MPTCP, and the kernel then falls back to TCP on its
  own. That is noticed too, once per process and side: on the client when
  the connection is made, on the server at accept (:class:`MptcpListener`
  wraps MPTCP listeners for that).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.abc

from wskit.backends.lean import lean_accept, lean_stream
from wskit.backends.mptcp import mptcp_status
from wskit.backends.options import KeepaliveSettings, configure_accepted, validate_keepalive
from wskit.backends.premade import listener_from_socket, stream_from_socket
from wskit.backends.transport import TransportInfo, describe
from wskit.backends.trio_accept import direct_accept
from wskit.backends.unix import create_unix_listener, open_unix_stream
from wskit.errors import UsageError

# configure_accepted and the Unix and pre-made socket functions live in their
# own modules; they are re-exported so every way to get a socket is here.
__all__ = [
    "MPTCP_PROTO",
    "MptcpListener",
    "configure_accepted",
    "create_stream_socket",
    "create_tcp_listeners",
    "create_unix_listener",
    "fast_accept",
    "listener_from_socket",
    "open_tcp_stream",
    "open_unix_stream",
    "stream_from_socket",
]

logger = logging.getLogger("wskit.backends")

MPTCP_PROTO: int | None = getattr(socket, "IPPROTO_MPTCP", None)
"""The MPTCP protocol number (262 on Linux), or None where Python lacks it."""

# Why the kernel refuses an MPTCP socket (https://mptcp.dev/implementation.html).
_FALLBACK_REASONS = {
    errno.EPROTONOSUPPORT: "the kernel is built without MPTCP",
    errno.ENOPROTOOPT: "MPTCP is disabled (sysctl net.mptcp.enabled=0)",
    errno.EINVAL: "the kernel predates MPTCP (Linux < 5.6)",
}
_NO_CONSTANT = "no-constant"
_PEER_SERVER = "peer-server"  # we connected with MPTCP, the server answered TCP
_PEER_CLIENT = "peer-client"  # our MPTCP listener accepted a TCP client
_fallback_notices: set[int | str] = set()
_Stream = TypeVar("_Stream", bound=anyio.abc.SocketStream)
_MAX_BACKLOG = 65536  # what anyio allows too
_PORT_ATTEMPTS = 10  # rebinding rounds to find a port free on every address


def create_stream_socket(family: int, *, mptcp: bool) -> tuple[socket.socket, bool]:
    """Create a non-blocking stream socket, MPTCP if asked and available.

    Args:
        family: ``socket.AF_INET`` or ``socket.AF_INET6``.
        mptcp: ask for an MPTCP socket.

    Returns:
        ``(sock, mptcp_used)``: ``mptcp_used`` is False when MPTCP was not
        asked for or the platform refused it and a TCP socket was made.
        Whether the *connection* then negotiates MPTCP is a later question
        (see :func:`wskit.backends.mptcp_status`).

    Raises:
        OSError: socket creation failed for a reason other than MPTCP being
            unavailable (for example EAFNOSUPPORT, EMFILE).
    """
    if mptcp:
        if MPTCP_PROTO is None:
            _notice_fallback(_NO_CONSTANT, "IPPROTO_MPTCP is not defined on this platform")
        else:
            try:
                sock = socket.socket(family, socket.SOCK_STREAM, MPTCP_PROTO)
            except OSError as exc:
                if exc.errno not in _FALLBACK_REASONS:
                    raise
                name = errno.errorcode[exc.errno]
                _notice_fallback(exc.errno, f"{name}: {_FALLBACK_REASONS[exc.errno]}")
            else:
                sock.setblocking(False)
                return sock, True
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setblocking(False)
    return sock, False


async def open_tcp_stream(
    host: str,
    port: int,
    *,
    mptcp: bool = False,
    tcp_keepalive: KeepaliveSettings | None = None,
    local_address: str | None = None,
) -> tuple[anyio.abc.SocketStream, TransportInfo]:
    """Connect to ``host:port`` over TCP or MPTCP.

    The resolved addresses are tried in order, one at a time.

    Args:
        host: a host name or IP address.
        port: the TCP port.
        mptcp: use MPTCP when the kernel allows it (falls back to TCP).
        tcp_keepalive: ``(idle, interval, count)`` TCP keepalive settings.
        local_address: the local IP address to bind before connecting.

    Returns:
        The connected stream and what it runs over.

    Raises:
        UsageError: ``tcp_keepalive`` is not valid.
        OSError: resolution failed, or no address accepted the connection
            (the last address's error, e.g. ``ConnectionRefusedError``).
    """
    keepalive = validate_keepalive(tcp_keepalive) if tcp_keepalive is not None else None
    addresses = await anyio.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    last_error: OSError = OSError(f"no address found for {host!r}")
    for family, _, _, _, sockaddr in addresses:
        try:
            sock, asked = await _connect(family, sockaddr, mptcp=mptcp, local_address=local_address)
        except OSError as exc:
            last_error = exc
            continue
        if asked and not mptcp_status(sock)[0]:
            _notice_peer(_PEER_SERVER, f"the server {_host_port(sockaddr)} did not accept it")
        try:
            configure_accepted(sock, keepalive)
            stream = lean_stream(await anyio.abc.SocketStream.from_socket(sock))
        except BaseException:
            sock.close()
            raise
        return stream, await describe(stream)
    raise last_error


async def _connect(
    family: int, sockaddr: tuple[str, int], *, mptcp: bool, local_address: str | None
) -> tuple[socket.socket, bool]:
    """Connect one new socket to one address; close it on any failure.

    Returns the socket and whether it is an MPTCP socket.
    """
    sock, made_mptcp = create_stream_socket(family, mptcp=mptcp)
    try:
        if local_address is not None:
            sock.bind((local_address, 0))
        err = sock.connect_ex(sockaddr)
        if err == errno.EINPROGRESS:
            await anyio.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            # OSError(errno, ...) picks the subclass: ConnectionRefusedError, ...
            raise OSError(err, f"{os.strerror(err)} (connecting to {sockaddr[0]}:{sockaddr[1]})")
    except BaseException:
        sock.close()
        raise
    return sock, made_mptcp


async def create_tcp_listeners(
    host: str | None,
    port: int,
    *,
    mptcp: bool = False,
    reuse_port: bool = False,
    backlog: int = _MAX_BACKLOG,
    tcp_keepalive: KeepaliveSettings | None = None,
) -> list[anyio.abc.SocketListener]:
    """Listen on every address ``host`` resolves to, TCP or MPTCP.

    An MPTCP listener also accepts plain TCP clients (their sockets are plain
    TCP). With ``port=0`` and several addresses, all listeners share the
    port the first one got.

    Args:
        host: the interface name or address; None for all interfaces.
        port: the port, 0 for one the kernel picks.
        mptcp: create MPTCP listeners when the kernel allows it.
        reuse_port: set SO_REUSEPORT so several processes can share the port.
        backlog: the listen queue length (at most 65536).
        tcp_keepalive: ``(idle, interval, count)``; set on the listening
            sockets, which Linux copies into accepted ones. Portable code
            still passes it to :func:`configure_accepted` for each accept.

    Returns:
        One listener per address.

    Raises:
        UsageError: ``tcp_keepalive`` is not valid, or ``reuse_port`` is not
            supported on this platform.
        OSError: resolving or binding failed.

    An MPTCP listener is an :class:`MptcpListener`, which notices (once) the
    first client that connects with plain TCP.
    """
    keepalive = validate_keepalive(tcp_keepalive) if tcp_keepalive is not None else None
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise UsageError("reuse_port=True is not supported on this platform; leave it False")
    infos = await anyio.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )
    # dict.fromkeys: drop duplicates (a glibc quirk) but keep the resolver's order.
    addresses = list(dict.fromkeys((family, sockaddr[0]) for family, *_, sockaddr in infos))
    for _ in range(_PORT_ATTEMPTS):
        socks: list[socket.socket] = []
        kinds: list[bool] = []  # whether each socket is an MPTCP one
        bound_port = port
        try:
            for family, address in addresses:
                try:
                    sock, made_mptcp = _bind_listener(
                        family,
                        (address, bound_port),
                        mptcp=mptcp,
                        reuse_port=reuse_port,
                        backlog=backlog,
                        keepalive=keepalive,
                    )
                except OSError as exc:
                    # "All interfaces" on a host without IPv6: listen on what exists.
                    if host is None and exc.errno == errno.EAFNOSUPPORT and len(addresses) > 1:
                        continue
                    raise
                socks.append(sock)
                kinds.append(made_mptcp)
                bound_port = sock.getsockname()[1]
        except BaseException as exc:
            for sock in socks:
                sock.close()
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE and port == 0 and socks:
                # The first address's ephemeral port is taken on another
                # address: start over with a different first address.
                addresses.append(addresses.pop(0))
                continue
            raise
        listeners = [await anyio.abc.SocketListener.from_socket(sock) for sock in socks]
        return [
            MptcpListener(listener) if made_mptcp else listener
            for listener, made_mptcp in zip(listeners, kinds, strict=True)
        ]
    raise OSError(errno.EADDRINUSE, f"no free port common to all addresses of {host!r}")


def _bind_listener(
    family: int,
    address: tuple[str, int],
    *,
    mptcp: bool,
    reuse_port: bool,
    backlog: int,
    keepalive: KeepaliveSettings | None,
) -> tuple[socket.socket, bool]:
    """Create, configure, bind and listen one socket; close it on failure.

    Returns the socket and whether it is an MPTCP socket.
    """
    sock, made_mptcp = create_stream_socket(family, mptcp=mptcp)
    try:
        # On Windows SO_REUSEADDR lets another process steal the port.
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One listener per family: "::" must not also claim IPv4.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(min(backlog, _MAX_BACKLOG))
        configure_accepted(sock, keepalive)
    except BaseException:
        sock.close()
        raise
    return sock, made_mptcp


class MptcpListener(anyio.abc.SocketListener):
    """An MPTCP listener that notices clients which connect with plain TCP.

    The kernel hands such clients out as plain TCP sockets, silently; this
    logs one notice per process the first time it happens, so a server
    whose clients never get MPTCP says so. Everything else is the wrapped
    listener's.

    Args:
        listener: the AnyIO listener over an MPTCP listening socket; owned.
    """

    def __init__(self, listener: anyio.abc.SocketListener) -> None:
        self._listener = listener

    @property
    def _raw_socket(self) -> socket.socket:
        sock: socket.socket = self._listener.extra(anyio.abc.SocketAttribute.raw_socket)
        return sock

    async def accept(self) -> anyio.abc.SocketStream:
        """Accept a connection, noticing a client without MPTCP.

        Returns:
            The accepted stream, MPTCP or plain TCP.
        """
        return self._noticed(await self._listener.accept())

    def lean_accept(self) -> Callable[[], Awaitable[anyio.abc.SocketStream]] | None:
        """:func:`fast_accept`'s accept of the wrapped listener, still noticing.

        Returns:
            The accept function, or None where the wrapped listener has no
            faster one than its own.
        """
        inner = _faster_accept(self._listener)
        if inner is None:
            return None

        async def accept() -> anyio.abc.SocketStream:
            return self._noticed(await inner())

        return accept

    def _noticed(self, stream: _Stream) -> _Stream:
        if _PEER_CLIENT not in _fallback_notices:  # one getsockopt until then
            sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
            if not mptcp_status(sock)[0]:
                peer = stream.extra(anyio.abc.SocketAttribute.remote_address, ("?", 0))
                _notice_peer(_PEER_CLIENT, f"the client {_host_port(peer)} did not offer it")
        return stream

    async def aclose(self) -> None:
        """Close the listening socket."""
        await self._listener.aclose()


def fast_accept(
    listener: anyio.abc.SocketListener,
) -> Callable[[], Awaitable[anyio.abc.SocketStream]]:
    """The cheapest ``accept()`` for a plain (not TLS) server's listener.

    A :class:`~wskit.backends.lean.LeanStream` accepted directly where
    :func:`~wskit.backends.lean.lean_accept` can (TCP and MPTCP listeners
    on asyncio and uvloop), AnyIO's stream accepted without Trio's scheduler
    pass on Trio (:func:`~wskit.backends.trio_accept.direct_accept`), else
    the listener's own ``accept()``. Every one of them sets TCP_NODELAY.

    Args:
        listener: a listener from :func:`create_tcp_listeners`,
            :func:`create_unix_listener` or :func:`listener_from_socket`.

    Returns:
        An async function returning the next accepted stream.
    """
    if isinstance(listener, MptcpListener):
        accept = listener.lean_accept()
    else:
        accept = _faster_accept(listener)
    return listener.accept if accept is None else accept


def _faster_accept(
    listener: anyio.abc.SocketListener,
) -> Callable[[], Awaitable[anyio.abc.SocketStream]] | None:
    """The backend's faster accept for one of AnyIO's own listeners, or None."""
    accept = lean_accept(listener)
    return direct_accept(listener) if accept is None else accept


def _notice_fallback(reason: int | str, detail: str) -> None:
    """Log, once per process and reason, that MPTCP was asked for but TCP is used."""
    if reason in _fallback_notices:
        return
    _fallback_notices.add(reason)
    logger.info("MPTCP is unavailable (%s); using TCP instead", detail)


def _notice_peer(reason: str, detail: str) -> None:
    """Log, once per process and side, that a peer's lack of MPTCP made a connection TCP."""
    if reason in _fallback_notices:
        return
    _fallback_notices.add(reason)
    # Not "unavailable": MPTCP works here, this peer (or a middlebox that
    # strips TCP options) is why. Later such connections are not logged.
    logger.info(
        "MPTCP not in use: %s; the connection runs over TCP (logged once per process)", detail
    )


def _host_port(address: object) -> str:
    """``host:port`` (``[host]:port`` for IPv6) of a socket address, for log messages."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return str(address)
