"""Transports on AnyIO: TCP, MPTCP, TLS, Unix and pre-made sockets.

One code path serves asyncio and Trio: every function here runs under
whichever event loop is running and returns AnyIO streams and listeners.

* :func:`open_tcp_stream` / :func:`create_tcp_listeners`: TCP, or MPTCP with
  ``mptcp=True`` (falling back to TCP, with one logged notice, where the
  kernel refuses it); ``tcp_keepalive=(idle, interval, count)``.
* :func:`open_unix_stream` / :func:`create_unix_listener`: Unix sockets.
* :func:`stream_from_socket` / :func:`listener_from_socket`: sockets the
  caller made (``sock=``).
* :func:`wrap_client_tls` / :func:`wrap_server_tls`: TLS over any stream.
* :class:`TransportInfo` (from :func:`describe`) says what a connection runs
  over; :func:`mptcp_status` and :class:`MptcpInfo` report whether MPTCP was
  actually negotiated, the subflow count and fallback.
"""

from __future__ import annotations

from wskit.backends.mptcp import MptcpInfo as MptcpInfo
from wskit.backends.mptcp import mptcp_status as mptcp_status
from wskit.backends.options import apply_keepalive as apply_keepalive
from wskit.backends.options import set_option_best_effort as set_option_best_effort
from wskit.backends.sockets import MPTCP_PROTO as MPTCP_PROTO
from wskit.backends.sockets import MptcpListener as MptcpListener
from wskit.backends.sockets import configure_accepted as configure_accepted
from wskit.backends.sockets import create_stream_socket as create_stream_socket
from wskit.backends.sockets import create_tcp_listeners as create_tcp_listeners
from wskit.backends.sockets import create_unix_listener as create_unix_listener
from wskit.backends.sockets import listener_from_socket as listener_from_socket
from wskit.backends.sockets import open_tcp_stream as open_tcp_stream
from wskit.backends.sockets import open_unix_stream as open_unix_stream
from wskit.backends.sockets import stream_from_socket as stream_from_socket
from wskit.backends.transport import TransportInfo as TransportInfo
from wskit.backends.transport import describe as describe
from wskit.backends.transport import wrap_client_tls as wrap_client_tls
from wskit.backends.transport import wrap_server_tls as wrap_server_tls

__all__ = [
    "MPTCP_PROTO",
    "MptcpInfo",
    "MptcpListener",
    "TransportInfo",
    "apply_keepalive",
    "configure_accepted",
    "create_stream_socket",
    "create_tcp_listeners",
    "create_unix_listener",
    "describe",
    "listener_from_socket",
    "mptcp_status",
    "open_tcp_stream",
    "open_unix_stream",
    "set_option_best_effort",
    "stream_from_socket",
    "wrap_client_tls",
    "wrap_server_tls",
]
