"""Socket options, applied best-effort.

MPTCP sockets refuse some TCP options that plain TCP sockets accept (on Linux
6.18 ``TCP_QUICKACK`` and ``TCP_USER_TIMEOUT`` fail with ENOPROTOOPT, and older
kernels refused the keepalive trio with EOPNOTSUPP). A refused option must
never break a connection, so every option wskit sets goes through
:func:`set_option_best_effort`: a refusal is logged once at DEBUG and reported
as ``False``; any other error is a real fault and propagates.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
from collections.abc import Sequence

from wskit.errors import UsageError

__all__ = [
    "KeepaliveSettings",
    "apply_keepalive",
    "configure_accepted",
    "set_option_best_effort",
    "validate_keepalive",
]

logger = logging.getLogger("wskit.backends")

KeepaliveSettings = tuple[float, float, int]
"""``(idle, interval, count)``: seconds before the first probe, seconds
between probes, probes lost before the connection is dropped."""

# The errnos that mean "this socket does not support this option", as opposed
# to "something is wrong with the socket" (EBADF, ENOTSOCK, ...).
_REFUSALS = frozenset({errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL})

# Linux caps (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). Checking
# them here turns a value the kernel would refuse with EINVAL, which the
# best-effort path would only log at DEBUG, into an error the caller sees.
_MAX_SECONDS = 32767
_MAX_COUNT = 127

# (level, option, errno) triples already logged, so a server setting the same
# refused option on every accepted socket logs it once, not once per client.
_logged_refusals: set[tuple[int, int, int]] = set()


def set_option_best_effort(sock: socket.socket, level: int, option: int, value: int) -> bool:
    """Set one socket option, tolerating sockets that do not support it.

    Args:
        sock: the socket to configure.
        level: the protocol level (``socket.IPPROTO_TCP``, ``socket.SOL_SOCKET``, ...).
        option: the option number (``socket.TCP_NODELAY``, ...).
        value: the integer value to set.

    Returns:
        True if the option was set, False if the socket refused it with
        ENOPROTOOPT, EOPNOTSUPP or EINVAL (logged once per option and errno
        at DEBUG on the ``wskit.backends`` logger).

    Raises:
        OSError: for any other failure, such as a closed socket.
    """
    try:
        sock.setsockopt(level, option, value)
    except OSError as exc:
        if exc.errno not in _REFUSALS:
            raise
        key = (level, option, exc.errno)
        if key not in _logged_refusals:
            _logged_refusals.add(key)
            logger.debug(
                "%s refused with %s on %s socket; continuing without it",
                _option_name(level, option),
                errno.errorcode.get(exc.errno, str(exc.errno)),
                _protocol_name(sock),
            )
        return False
    return True


def validate_keepalive(settings: object) -> KeepaliveSettings:
    """Check a ``tcp_keepalive`` argument and return it as a normalized tuple.

    Args:
        settings: the value the caller passed as ``tcp_keepalive``.

    Returns:
        ``(idle, interval, count)`` with the numbers unchanged.

    Raises:
        UsageError: if it is not a 3-tuple of positive idle and interval
            seconds (at most 32767) and a positive integer count (at most 127).
    """
    if not isinstance(settings, Sequence) or isinstance(settings, str | bytes):
        raise UsageError(f"tcp_keepalive must be a tuple (idle, interval, count), not {settings!r}")
    if len(settings) != 3:
        raise UsageError(
            f"tcp_keepalive must have 3 items (idle, interval, count), got {len(settings)}"
        )
    idle, interval, count = settings
    for name, seconds in (("idle", idle), ("interval", interval)):
        # bool is an int subclass; True as a number of seconds is a bug.
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise UsageError(f"tcp_keepalive {name} must be a number of seconds, not {seconds!r}")
        if not 0 < seconds <= _MAX_SECONDS:
            raise UsageError(
                f"tcp_keepalive {name} must be > 0 and <= {_MAX_SECONDS} seconds, got {seconds!r}"
            )
    if isinstance(count, bool) or not isinstance(count, int):
        raise UsageError(f"tcp_keepalive count must be an int, not {count!r}")
    if not 0 < count <= _MAX_COUNT:
        raise UsageError(f"tcp_keepalive count must be between 1 and {_MAX_COUNT}, got {count}")
    return (float(idle), float(interval), count)


def apply_keepalive(
    sock: socket.socket, idle: float, interval: float, count: int
) -> dict[str, bool]:
    """Turn on TCP keepalive with the given timing, best-effort.

    The kernel counts in whole seconds, so fractional values are rounded up
    (a probe never comes earlier than asked).

    Args:
        sock: a TCP or MPTCP socket (connected, or listening: Linux copies the
            options into accepted sockets).
        idle: seconds of silence before the first probe.
        interval: seconds between probes.
        count: unanswered probes before the connection is dropped.

    Returns:
        ``{"SO_KEEPALIVE": ..., "TCP_KEEPIDLE": ..., "TCP_KEEPINTVL": ...,
        "TCP_KEEPCNT": ...}``: which options the socket accepted. An option
        the platform does not define reads False.

    Raises:
        UsageError: if the numbers are not valid keepalive settings.
        OSError: for a failure other than the socket refusing an option.
    """
    idle, interval, count = validate_keepalive((idle, interval, count))
    applied = {
        "SO_KEEPALIVE": set_option_best_effort(sock, socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    }
    for name, value in (
        ("TCP_KEEPIDLE", math.ceil(idle)),
        ("TCP_KEEPINTVL", math.ceil(interval)),
        ("TCP_KEEPCNT", count),
    ):
        option = getattr(socket, name, None)
        applied[name] = option is not None and set_option_best_effort(
            sock, socket.IPPROTO_TCP, option, value
        )
    return applied


def configure_accepted(sock: socket.socket, tcp_keepalive: KeepaliveSettings | None) -> None:
    """Set TCP_NODELAY and keepalive on a TCP or MPTCP socket, best-effort.

    Called on every connected and accepted socket. asyncio only sets
    TCP_NODELAY on sockets whose protocol is exactly TCP, so without this an
    MPTCP connection on asyncio would batch small frames (Nagle). Unix and
    other non-inet sockets are left alone.

    Args:
        sock: the socket (``stream.extra(SocketAttribute.raw_socket)``).
        tcp_keepalive: ``(idle, interval, count)``, or None to leave the
            system's keepalive setting as it is.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    set_option_best_effort(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tcp_keepalive is not None:
        apply_keepalive(sock, *tcp_keepalive)


def _option_name(level: int, option: int) -> str:
    """Name a socket option for log messages ("TCP_USER_TIMEOUT", ...)."""
    prefix = {socket.IPPROTO_TCP: "TCP_", socket.SOL_SOCKET: "SO_"}.get(level)
    if prefix is not None:
        for name in sorted(vars(socket)):
            if name.startswith(prefix) and getattr(socket, name) == option:
                return name
    return f"socket option {option} at level {level}"


def _protocol_name(sock: socket.socket) -> str:
    """Name the socket's protocol for log messages ("MPTCP", "TCP", ...)."""
    try:
        proto = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    except (OSError, AttributeError):  # AttributeError: no SO_PROTOCOL on this platform
        return "a"
    return {6: "a TCP", 262: "an MPTCP"}.get(proto, f"a protocol-{proto}")
