"""A WebSocket session over MPTCP survives losing its network path; over TCP it dies.

Two namespaces, two links (see ``netns.py``). The client streams paced,
sequence-numbered messages to the server's first address, the server echoes
them, and mid-stream the first link breaks: taken down, or silently
blackholed with its link still up. Over MPTCP every message must arrive
exactly once and in order, with no error, over the second subflow. Over TCP,
with the same heartbeat, the session stalls and the heartbeat closes it with
1011 within ``ping_interval + ping_timeout``.
"""

from __future__ import annotations

import anyio
import pytest

from tests.e2e.streams import PING_INTERVAL, PING_TIMEOUT, stream

BREAK_AFTER = 0.8  # seconds of streaming on two paths before path 0 breaks
DURATION = 2.8  # seconds of streaming in all: 2 s after the break
# The TCP stream breaks half-way between two heartbeat pings (every 1 s from
# the open), so its detection time is not decided by a ping that happens to
# leave just before the break.
TCP_BREAK_AFTER = 0.5
SCHEDULING_SLACK = 0.25  # event-loop latency allowed on top of a deadline


def _in_order_exactly_once(received, sent):
    assert received["out_of_order"] == []
    assert received["count"] == sent
    assert received["last"] == sent - 1


@pytest.mark.anyio
@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["link-down", "blackhole"])
async def test_mptcp_session_survives_losing_its_path(
    two_paths, tmp_path, anyio_backend, how, record_figure
):
    breaker = two_paths.take_down if how == "link-down" else two_paths.blackhole
    with anyio.fail_after(30):
        run = await stream(
            two_paths, tmp_path, anyio_backend, server_mptcp=True, client_mptcp=True,
            duration=DURATION, break_after=BREAK_AFTER, breaker=breaker, wait_subflows=True,
        )  # fmt: skip
    client, server = run.client, run.server
    assert run.broke_at is not None
    # MPTCP in use on both ends, over two subflows before the break.
    for opened in (run.client_open, run.server_open):
        assert opened["mptcp"] is True
        assert opened["fallback"] is False
    for seen in (run.client_subflows, run.server_subflows):
        assert seen is not None
        assert seen["count"] == 2
        assert seen["at"] < run.broke_at
    # No error reached the application; the session ended with a normal close.
    assert client["error"] is None
    assert server["error"] is None
    assert client["close_code"] == server["close_code"] == 1000
    # Every message, both ways, exactly once and in order.
    _in_order_exactly_once(server["received"], client["sent"])
    _in_order_exactly_once(client["received"], client["sent"])
    # The stream went on long after the break (paced: no burst at the end).
    assert client["last_sent_at"] > run.broke_at + (DURATION - BREAK_AFTER) / 2
    # A clean run logs no fallback notice.
    assert "MPTCP" not in run.client_log + run.server_log
    stall = client["received"]["max_delay"]
    slow_last = client["received"]["slow_last"]
    recovered = "no message over 0.1 s" if slow_last is None else (
        f"back under 0.1 s {slow_last - run.broke_at:.2f} s after the break"
    )  # fmt: skip
    record_figure(
        f"MPTCP failover ({anyio_backend}, {how}): worst round trip {stall:.2f} s, {recovered};"
        f" {client['sent']} messages of 4 KiB, none lost"
    )


@pytest.mark.anyio
@pytest.mark.timeout(60)
async def test_tcp_session_stalls_and_the_heartbeat_closes_it(
    two_paths, tmp_path, anyio_backend, record_figure
):
    with anyio.fail_after(30):
        run = await stream(
            two_paths, tmp_path, anyio_backend, server_mptcp=False, client_mptcp=False,
            duration=DURATION, break_after=TCP_BREAK_AFTER, breaker=two_paths.blackhole,
        )  # fmt: skip
    client, server = run.client, run.server
    assert run.broke_at is not None
    assert run.client_open["mptcp"] is run.server_open["mptcp"] is False
    # The session stalled: what was in flight at the break never arrived...
    assert client["received"]["count"] < client["sent"]
    assert client["received"]["out_of_order"] == server["received"]["out_of_order"] == []
    # ...and the heartbeat declared it dead, on both sides, with an error the
    # application saw, within ping_interval + ping_timeout of the break.
    bound = PING_INTERVAL + PING_TIMEOUT + SCHEDULING_SLACK
    detected = {}
    for name, result in (("client", client), ("server", server)):
        error = result["error"]
        assert error is not None, f"{name} saw no error"
        assert (error["type"], error["code"], result["close_code"]) == (
            "ConnectionClosedError", 1011, 1011,
        )  # fmt: skip
        detected[name] = error["at"] - run.broke_at
        assert 0 < detected[name] <= bound, (name, detected[name])
    record_figure(
        f"TCP on a blackholed path ({anyio_backend}): closed 1011 after"
        f" {detected['client']:.2f} s (client), {detected['server']:.2f} s (server);"
        f" bound {PING_INTERVAL + PING_TIMEOUT:.0f} s"
    )
