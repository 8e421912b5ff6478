"""Socket options: keepalive, best-effort setting, validation."""

from __future__ import annotations

import errno
import logging
import socket
from typing import cast

import anyio
import pytest

from tests.backends.conftest import MPTCP, accept_while, needs_mptcp, raw
from wskit.backends import (
    apply_keepalive,
    configure_accepted,
    create_tcp_listeners,
    open_tcp_stream,
    set_option_best_effort,
)
from wskit.backends.options import validate_keepalive
from wskit.errors import UsageError

ALL_APPLIED = {
    "SO_KEEPALIVE": True,
    "TCP_KEEPIDLE": True,
    "TCP_KEEPINTVL": True,
    "TCP_KEEPCNT": True,
}


@pytest.fixture(params=[socket.IPPROTO_TCP, pytest.param(MPTCP, marks=needs_mptcp)])
def connected(request):
    """A connected (client, accepted) pair of blocking loopback sockets of one protocol."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, request.param) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, request.param) as client:
            client.settimeout(5)
            client.connect(listener.getsockname())
            accepted, _ = listener.accept()
            with accepted:
                yield client, accepted


def _keepalive(sock):
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
    )


def test_apply_keepalive_sets_and_reports_each_option(connected):
    client, accepted = connected
    # Linux 6.18 accepts the keepalive options on MPTCP sockets too; older
    # kernels refused them (EOPNOTSUPP), which would read False here.
    assert apply_keepalive(client, 7, 3, 4) == ALL_APPLIED
    assert _keepalive(client) == (1, 7, 3, 4)
    # The kernel counts whole seconds: fractions round up, never earlier.
    assert apply_keepalive(accepted, 1.5, 0.2, 1) == ALL_APPLIED
    assert _keepalive(accepted) == (1, 2, 1, 1)


class _RefusesKeepidle:
    """A socket stand-in that refuses TCP_KEEPIDLE like an old MPTCP kernel."""

    family = socket.AF_INET

    def __init__(self):
        self.set = {}

    def setsockopt(self, level, option, value):
        if option == socket.TCP_KEEPIDLE and level == socket.IPPROTO_TCP:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        self.set[option] = value

    def getsockopt(self, level, option):
        return MPTCP


def test_apply_keepalive_reports_a_refused_option_and_sets_the_rest(caplog):
    caplog.set_level(logging.DEBUG, logger="wskit.backends")
    fake = _RefusesKeepidle()
    sock = cast(socket.socket, fake)
    assert apply_keepalive(sock, 10, 5, 3) == {**ALL_APPLIED, "TCP_KEEPIDLE": False}
    assert fake.set == {socket.SO_KEEPALIVE: 1, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}
    assert apply_keepalive(sock, 10, 5, 3)["TCP_KEEPIDLE"] is False
    (record,) = caplog.records  # logged once, not once per call
    assert record.levelno == logging.DEBUG
    assert record.getMessage() == (
        f"TCP_KEEPIDLE refused with {errno.errorcode[errno.EOPNOTSUPP]} on an MPTCP socket; "
        "continuing without it"
    )


@needs_mptcp
@pytest.mark.parametrize("option", ["TCP_USER_TIMEOUT", "TCP_QUICKACK"])
def test_options_mptcp_refuses_are_skipped_without_raising(option, caplog):
    caplog.set_level(logging.DEBUG, logger="wskit.backends")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, MPTCP) as client:
            client.connect(listener.getsockname())
            number = getattr(socket, option)
            assert not set_option_best_effort(client, socket.IPPROTO_TCP, number, 1)
            assert set_option_best_effort(client, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.accept()[0].close()
    (record,) = caplog.records
    assert record.getMessage().startswith(f"{option} refused with ENOPROTOOPT on an MPTCP")


def test_set_option_best_effort_propagates_real_faults():
    sock = socket.socket()
    sock.close()
    with pytest.raises(OSError, match="Bad file descriptor") as info:
        set_option_best_effort(sock, socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert info.value.errno == errno.EBADF


def test_configure_accepted_leaves_unix_sockets_alone():
    left, right = socket.socketpair()
    with left, right:
        configure_accepted(left, (5, 5, 5))
        assert not left.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ((0, 1, 1), "idle"),
        ((-1.5, 1, 1), "idle"),
        ((40000, 1, 1), "idle"),
        (("1", 1, 1), "idle"),
        ((True, 1, 1), "idle"),
        ((1, 0, 1), "interval"),
        ((1, None, 1), "interval"),
        ((1, 1, 0), "count"),
        ((1, 1, 1.5), "count"),
        ((1, 1, 128), "count"),
        ((1, 1), "3 items"),
        ((1, 1, 1, 1), "3 items"),
        ("abc", "tuple"),
        (5, "tuple"),
    ],
)
def test_invalid_keepalive_settings_name_the_field(settings, field):
    with pytest.raises(UsageError, match=field):
        validate_keepalive(settings)
    if isinstance(settings, tuple) and len(settings) == 3:
        with socket.socket() as sock, pytest.raises(UsageError, match=field):
            apply_keepalive(sock, *settings)
        with socket.socket() as sock:  # nothing was set before the check
            assert not sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)


def test_valid_keepalive_settings_are_normalized():
    assert validate_keepalive([30, 2.5, 4]) == (30.0, 2.5, 4)


@pytest.mark.anyio
@pytest.mark.parametrize("mptcp", [False, pytest.param(True, marks=needs_mptcp)])
async def test_tcp_keepalive_reaches_both_ends(mptcp):
    with anyio.fail_after(5):
        (listener,) = await create_tcp_listeners(
            "127.0.0.1", 0, mptcp=mptcp, tcp_keepalive=(11, 4, 6)
        )
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            client, server = await accept_while(
                listener,
                lambda: open_tcp_stream("127.0.0.1", port, mptcp=mptcp, tcp_keepalive=(9, 3, 5)),
            )
            async with client, server:
                assert _keepalive(raw(client)) == (1, 9, 3, 5)
                # Linux copies the listener's options into accepted sockets.
                assert _keepalive(raw(server)) == (1, 11, 4, 6)
                configure_accepted(raw(server), (12, 4, 6))
                assert _keepalive(raw(server)) == (1, 12, 4, 6)
