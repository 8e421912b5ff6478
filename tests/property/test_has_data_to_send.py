"""``has_data_to_send``: true exactly when ``data_to_send()`` would return bytes.

The WebSocket starts its writer task on it, so a false negative would leave
an owed pong or a frame unsent. Any sequence of the peer's pings and close,
our sends, pings and close, on either side, is checked at drains after
any of them.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.pairs import Pair
from wskit.core import Config, State

OPS = st.sampled_from(["peer_ping", "peer_close", "send", "ping", "close", "deliver"])


@given(ops=st.lists(st.tuples(OPS, st.booleans()), max_size=30), client=st.booleans())
def test_has_data_to_send_matches_data_to_send(ops: list[tuple[str, bool]], client: bool) -> None:
    pair = Pair.open(Config(compression=None))
    us, peer = pair.side(client), pair.side(not client)
    peer_out = b""
    for index, (op, drain) in enumerate(ops):
        if op == "peer_ping" and peer.state is State.OPEN:
            peer.send_ping(bytes([index]))
            peer_out += peer.data_to_send()
        elif op == "peer_close" and peer.state is State.OPEN:
            peer.close(1000, "")
            peer_out += peer.data_to_send()
        elif op == "deliver" and peer_out and us.state is not State.CLOSED:
            us.receive_data(peer_out)
            peer_out = b""
            us.events()
        elif op == "send" and us.state is State.OPEN:
            us.send_bytes(b"x" * index)
        elif op == "ping" and us.state is State.OPEN:
            us.send_ping(b"p" + bytes([index]))
        elif op == "close" and us.state is State.OPEN:
            us.close(1000, "")
        if drain:  # else what is pending builds up for a later drain
            expected = us.has_data_to_send
            assert expected == bool(us.data_to_send())
            assert not us.has_data_to_send
    expected = us.has_data_to_send
    assert expected == bool(us.data_to_send())
