"""Keepalive and close timeout under a simulated clock: on schedule, never early, never late.

Time is a sequence of increasing tick times drawn by hypothesis (often exactly
at ``next_deadline()`` or just before it, to probe the boundaries), with the
interval and the timeout drawn as floats, and the peer answering each ping
after a drawn delay, or never.

* ``Heartbeat`` alone: for any sequence of ticks and pong arrivals,
  ``deadline()`` never lies: ``due(now)`` is NOTHING for every ``now`` before
  it, and at or after it the due thing happens (arming, a ping, or the
  timeout when a ping is unanswered).
* A connection: a keepalive ping frame appears in ``data_to_send()`` exactly
  when ``now >= previous ping + interval`` (the first tick arms the schedule),
  never earlier, never while a ping awaits its pong (with a timeout); the
  connection fails with ``Terminated(1011, "keepalive ping timeout")`` exactly
  at the first tick with ``now >= ping time + timeout`` and no pong delivered;
  when pongs arrive in time it never fails, and ``latency`` (and the ``Pong``
  event's ``rtt``) equals the simulated delay; ``next_deadline()`` is exactly
  the time of the next due thing. (Without a timeout, a keepalive ping still
  unanswered when the next one is sent is forgotten: its late pong has no rtt.)
* The close timeout: after ``close()`` with no answer, ``Terminated(1006)``
  happens exactly at the first tick at or after the arming tick plus
  ``close_timeout``; nothing is sent meanwhile.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from tests.pairs import Pair
from tests.property.strategies import OPCODES, parse_frames
from wskit.core import Config, Pong, State, Terminated
from wskit.core.heartbeat import Due, Heartbeat

durations = st.floats(0.05, 50, allow_nan=False, allow_infinity=False)


def next_time(data, now: float, deadline: float | None, scale: float) -> float:
    """The next tick time: at the deadline, just before it, or a drawn step later."""
    choice = data.draw(st.sampled_from(["at", "before", "step", "step"]), label="when")
    if deadline is not None and deadline >= now:
        if choice == "at":
            return deadline
        if choice == "before":
            return max(now, math.nextafter(deadline, -math.inf))
    return now + data.draw(st.floats(0, 1.5 * scale), label="step")


# ------------------------------------------------------------- Heartbeat alone


@given(
    interval=st.one_of(st.none(), durations),
    timeout=st.one_of(st.none(), durations),
    data=st.data(),
)
def test_heartbeat_deadline_never_lies(interval, timeout, data):
    heartbeat = Heartbeat(interval, timeout)
    now = 0.0
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        if heartbeat.awaiting_pong and data.draw(st.booleans(), label="pong"):
            heartbeat.pong_received()
            assert not heartbeat.awaiting_pong
        deadline = heartbeat.deadline()
        if interval is None:
            assert deadline is None
            assert heartbeat.due(now) is Due.NOTHING
            now += 1
            continue
        assert deadline is not None
        now = next_time(
            data, now, deadline, interval if timeout is None else min(interval, timeout)
        )
        armed = heartbeat.armed
        due = heartbeat.due(now)
        if now < deadline:
            assert due is Due.NOTHING
            assert heartbeat.deadline() == deadline  # asking changed nothing
        elif not armed:
            assert deadline == 0.0
            assert due is Due.NOTHING  # arming is the due thing
            assert heartbeat.armed
            assert heartbeat.deadline() == now + interval
        elif heartbeat.awaiting_pong and timeout is not None:
            assert due is Due.TIMEOUT
            return
        else:
            assert due is Due.PING
            heartbeat.ping_sent(now)
            assert heartbeat.awaiting_pong
            expected = now + timeout if timeout is not None else now + interval
            assert heartbeat.deadline() == expected


# ------------------------------------------------------------- on a connection


def keepalive_pair(interval: float, timeout: float | None) -> Pair:
    """The client keeps alive; the server never pings on its own."""
    return Pair.open(
        client_config=Config(ping_interval=interval, ping_timeout=timeout),
        server_config=Config(ping_interval=None),
    )


@given(interval=durations, timeout=st.one_of(st.none(), durations), data=st.data())
def test_keepalive_pings_on_schedule_and_fails_exactly_when_a_pong_is_overdue(
    interval, timeout, data
):
    pair = keepalive_pair(interval, timeout)
    client, server = pair.client, pair.server
    now = 0.0
    next_ping: float | None = None  # the model: None until the first tick arms it
    awaiting: float | None = None  # send time of the keepalive ping without its pong
    pending: dict[bytes, float] = {}  # ping payload -> send time, in send order
    last_payload = b""

    arrivals: list[tuple[float, bytes, bytes, float]] = []  # (time, pong bytes, payload, delay)
    delays = st.one_of(st.none(), st.floats(0, 2 * (timeout or interval)))

    for _ in range(data.draw(st.integers(1, 25), label="ticks")):
        model_deadline = (
            0.0
            if next_ping is None
            else awaiting + timeout
            if awaiting is not None and timeout is not None
            else next_ping
        )
        assert client.next_deadline() == model_deadline
        now = next_time(data, now, model_deadline, min(interval, timeout or interval))

        # Pongs due by now arrive first, at their own time.
        arrivals.sort()
        while arrivals and arrivals[0][0] <= now:
            at, pong, payload, delay = arrivals.pop(0)
            client.receive_data(pong, now=at)
            assert client.data_to_send() == b""
            (pong_event,) = client.events()
            assert isinstance(pong_event, Pong)
            assert pong_event.payload == payload
            if payload in pending:
                event("pong timed")
                assert pong_event.rtt == pytest.approx(delay, abs=1e-6)
                assert client.latency == pytest.approx(delay, abs=1e-6)
                order = list(pending)
                for acked in order[: order.index(payload) + 1]:
                    if acked == last_payload:
                        awaiting = None
                    del pending[acked]
            else:
                assert pong_event.rtt is None  # acknowledged, or forgotten, already

        client.tick(now)
        raw = client.data_to_send()
        sent = parse_frames(raw)
        events = client.events()
        if next_ping is None:
            next_ping = now + interval
            assert sent == []
            assert events == []
        elif awaiting is not None and timeout is not None and now >= awaiting + timeout:
            (terminated,) = events
            assert isinstance(terminated, Terminated)
            assert terminated.code == 1011
            assert "keepalive ping timeout" in terminated.reason
            assert [f.opcode for f in sent] == [OPCODES["close"]]
            assert client.state is State.CLOSED
            event("keepalive timed out")
            return
        elif (awaiting is None or timeout is None) and now >= next_ping:
            (ping,) = sent
            assert ping.opcode == OPCODES["ping"]
            assert events == []
            next_ping = now + interval
            if awaiting is not None:
                # Still unanswered (only without a timeout): the core forgets
                # it, so that a silent peer cannot grow its table of pings.
                del pending[last_payload]
            awaiting = now
            last_payload = ping.payload
            pending[ping.payload] = now
            # The server answers at once; the pong travels for a drawn delay, or is lost.
            server.receive_data(raw)
            pong = server.data_to_send()
            server.events()
            delay = data.draw(delays, label="delay")
            if delay is not None:
                arrivals.append((now + delay, pong, ping.payload, delay))
        else:
            assert sent == [], (now, model_deadline)
            assert events == [], (now, model_deadline)
        assert client.state is State.OPEN


@given(
    interval=st.one_of(st.none(), durations),
    close_timeout=durations,
    data=st.data(),
)
def test_close_timeout_ends_the_connection_exactly_on_time(interval, close_timeout, data):
    client = Pair.open(
        client_config=Config(ping_interval=interval, close_timeout=close_timeout),
        server_config=Config(ping_interval=None),
    ).client
    now = 0.0
    if data.draw(st.booleans(), label="armed heartbeat"):
        client.tick(now)
    client.close()
    assert [f.opcode for f in parse_frames(client.data_to_send())] == [OPCODES["close"]]
    assert client.state is State.CLOSING

    armed_at: float | None = None
    for _ in range(data.draw(st.integers(1, 12), label="ticks")):
        deadline = client.next_deadline()
        assert deadline == (0.0 if armed_at is None else armed_at + close_timeout)
        now = next_time(data, now, deadline, close_timeout)
        client.tick(now)
        assert client.data_to_send() == b""  # no keepalive while closing
        events = client.events()
        if armed_at is None:
            armed_at = now
            assert events == []
        elif now >= armed_at + close_timeout:
            (terminated,) = events
            assert isinstance(terminated, Terminated)
            assert terminated.code == 1006
            assert client.state is State.CLOSED
            assert client.next_deadline() is None
            return
        else:
            assert events == []
        assert client.state is State.CLOSING
