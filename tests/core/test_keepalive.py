"""Keepalive, RTT and the close timeout, driven by a clock the test holds."""

from __future__ import annotations

import pytest

from tests.pairs import Pair
from wskit.core import Config, Pong, State, Terminated

SIDES = pytest.mark.parametrize("client", [False, True], ids=["server", "client"])


@SIDES
def test_pings_follow_the_interval_and_pongs_measure_latency(client):
    pair = Pair.open(Config(ping_interval=5, ping_timeout=3))
    side, peer = pair.side(client), pair.side(not client)
    assert side.next_deadline() == 0.0  # arm the timer at once
    side.tick(100.0)
    assert side.next_deadline() == 105.0
    side.tick(104.9)
    assert side.data_to_send() == b""
    side.tick(105.0)
    ping = side.data_to_send()
    assert ping[0] == 0x89
    assert side.next_deadline() == 108.0  # waiting for the pong now
    peer.receive_data(ping)
    peer.events()
    side.receive_data(peer.data_to_send(), now=105.25)
    [pong] = side.events()
    assert isinstance(pong, Pong)
    assert pong.rtt == pytest.approx(0.25)
    assert side.latency == pytest.approx(0.25)
    assert side.next_deadline() == 110.0


@SIDES
def test_a_missing_pong_fails_with_1011_at_the_timeout(client):
    pair = Pair.open(Config(ping_interval=5, ping_timeout=3))
    side = pair.side(client)
    side.tick(0.0)
    side.tick(5.0)
    side.data_to_send()
    side.tick(7.999)
    assert side.events() == []
    side.tick(8.0)
    [end] = side.events()
    assert end == Terminated(1011, "keepalive ping timeout")
    assert side.data_to_send()[0] == 0x88
    assert side.state is State.CLOSED


def test_no_keepalive_when_ping_interval_is_none():
    pair = Pair.open(Config(ping_interval=None))
    assert pair.server.next_deadline() is None
    pair.server.tick(1e9)
    assert pair.server.data_to_send() == b""


def test_ping_timeout_none_keeps_pinging_without_failing():
    pair = Pair.open(Config(ping_interval=1, ping_timeout=None))
    pair.server.tick(0.0)
    sent = 0
    for now in range(1, 50):
        pair.server.tick(float(now))
        sent += pair.server.data_to_send().count(b"\x89\x04")
    assert sent == 49
    assert pair.server.state is State.OPEN


@SIDES
def test_an_application_ping_reports_its_rtt(client):
    pair = Pair.open()
    side, peer = pair.side(client), pair.side(not client)
    side.send_ping(b"app", now=10.0)
    peer.receive_data(side.data_to_send())
    peer.events()
    side.receive_data(peer.data_to_send(), now=10.5)
    assert side.events() == [Pong(b"app", 0.5, (b"app",))]


@SIDES
def test_the_close_timeout_ends_an_unanswered_close(client):
    pair = Pair.open(Config(close_timeout=2))
    side = pair.side(client)
    side.close(1000)
    assert side.state is State.CLOSING
    assert side.next_deadline() == 0.0
    side.tick(50.0)
    assert side.next_deadline() == 52.0
    side.tick(51.9)
    assert side.events() == []
    side.tick(52.0)
    [end] = side.events()
    assert end.code == 1006
    assert side.state is State.CLOSED


def test_a_completed_close_handshake_leaves_no_deadline():
    pair = Pair.open()
    pair.client.close(1001, "bye")
    pair.pump()
    assert pair.client.state is State.CLOSED
    assert pair.server.state is State.CLOSED
    assert pair.client.next_deadline() is None
    assert pair.server.next_deadline() is None


def test_without_an_arrival_time_a_pong_carries_no_rtt():
    pair = Pair.open(Config(ping_interval=1, ping_timeout=5))
    pair.server.tick(0.0)
    pair.server.tick(1.0)
    pair.client.receive_data(pair.server.data_to_send())
    pair.client.events()
    pair.server.receive_data(pair.client.data_to_send())  # no now=
    [pong] = pair.server.events()
    assert pong.rtt is None
    assert pair.server.latency == 0.0
    assert pair.server.state is State.OPEN  # the pong still answered the keepalive


def test_a_silent_peer_does_not_grow_the_ping_table_without_a_timeout():
    pair = Pair.open(Config(ping_interval=1, ping_timeout=None))
    pair.server.tick(0.0)
    for now in range(1, 1000):
        pair.server.tick(float(now))
        pair.server.data_to_send()
    assert len(pair.server._pending_pings) <= 1


def test_a_pong_acknowledges_every_earlier_ping_and_says_so():
    from tests.frames import PONG, frame

    pair = Pair.open()
    pair.client.send_ping(b"a", now=1.0)
    pair.client.send_ping(b"b", now=2.0)
    pair.client.data_to_send()
    pair.client.receive_data(frame(PONG, b"b", mask=False), now=2.5)
    assert pair.client.events() == [Pong(b"b", 0.5, (b"a", b"b"))]
