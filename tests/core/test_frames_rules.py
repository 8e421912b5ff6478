"""What a core does with each kind of (mis)behaving frame, checked on both sides.

Each test runs for the server receiving from a client (masked frames) and for
the client receiving from a server (unmasked frames).
"""

from __future__ import annotations

import pytest

from tests.frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, close_payload, frame
from tests.pairs import Pair
from wskit.core import (
    CloseReceived,
    Config,
    Connection,
    Fragment,
    Message,
    Ping,
    Pong,
    State,
    Terminated,
)
from wskit.core.connection import _MAX_PONGS_OWED
from wskit.errors import PayloadTooBig, ProtocolError

SIDES = pytest.mark.parametrize("client", [False, True], ids=["server", "client"])


def receiver(client: bool, config: Config | None = None) -> Connection:
    """An OPEN connection on the given side, its handshake done."""
    conn = Pair.open(config).side(client)
    assert conn.state is State.OPEN
    return conn


def feed(conn: Connection, *frames: bytes, client: bool) -> list:
    """Deliver frames as the peer of ``conn`` would build them (masked toward a server)."""
    del client  # the frames were already built for the right side
    for data in frames:
        conn.receive_data(data)
    return conn.events()


def peer_frame(client: bool, opcode: int, payload: bytes = b"", **kwargs) -> bytes:
    """A frame as the peer of a ``client``-side connection sends it."""
    return frame(opcode, payload, mask=not client, **kwargs)


def terminated(events: list) -> Terminated:
    assert isinstance(events[-1], Terminated), events
    return events[-1]


def close_code_sent(conn: Connection) -> int:
    """The close code in the close frame the connection queued."""
    data = conn.data_to_send()
    assert data[0] == 0x88, data
    offset = 2 if data[1] & 0x80 == 0 else 6
    payload = data[offset:]
    if data[1] & 0x80:
        key = data[2:6]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return int.from_bytes(payload[:2], "big")


@SIDES
def test_text_and_binary_messages_arrive_whole(client):
    conn = receiver(client)
    events = feed(
        conn,
        peer_frame(client, TEXT, "héllo".encode()),
        peer_frame(client, BINARY, b"\x00\x01"),
        client=client,
    )
    assert events == [Message("héllo"), Message(b"\x00\x01")]


@SIDES
def test_fragmented_message_is_reassembled_with_control_frames_between(client):
    conn = receiver(client)
    events = feed(
        conn,
        peer_frame(client, TEXT, b"frag", fin=False),
        peer_frame(client, PING, b"p"),
        peer_frame(client, CONTINUATION, b"men", fin=False),
        peer_frame(client, CONTINUATION, b"ted"),
        client=client,
    )
    assert events == [Ping(b"p"), Message("fragmented")]


@SIDES
def test_a_valid_character_split_across_fragments_is_accepted(client):
    conn = receiver(client)
    euro = "€".encode()
    events = feed(
        conn,
        peer_frame(client, TEXT, euro[:1], fin=False),
        peer_frame(client, CONTINUATION, euro[1:]),
        client=client,
    )
    assert events == [Message("€")]


@SIDES
def test_invalid_utf8_fails_fast_before_the_message_ends(client):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, TEXT, b"ok \xed\xa0\x80", fin=False), client=client)
    end = terminated(events)
    assert end.code == 1007
    assert isinstance(end.error, ProtocolError)
    assert close_code_sent(conn) == 1007
    assert conn.state is State.CLOSED


@SIDES
@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(peer_frame(False, TEXT, b"x", rsv=4), 1002, id="rsv1-without-deflate"),
        pytest.param(peer_frame(False, TEXT, b"x", rsv=2), 1002, id="rsv2"),
        pytest.param(peer_frame(False, 0x3, b"x"), 1002, id="reserved-opcode-3"),
        pytest.param(peer_frame(False, 0xB, b"x"), 1002, id="reserved-opcode-b"),
        pytest.param(peer_frame(False, PING, b"x" * 126), 1002, id="ping-126-bytes"),
        pytest.param(peer_frame(False, PING, b"x", fin=False), 1002, id="fragmented-ping"),
        pytest.param(peer_frame(False, CLOSE, b"\x03"), 1002, id="close-1-byte"),
        pytest.param(peer_frame(False, CONTINUATION, b"x"), 1002, id="continuation-first"),
    ],
)
def test_protocol_violations_fail_with_the_right_code(client, data, code):
    conn = receiver(client, Config(compression=None))
    if client:  # rebuild unmasked for a client receiver
        data = _unmask(data)
    events = feed(conn, data, client=client)
    end = terminated(events)
    assert end.code == code
    assert close_code_sent(conn) == code


def _unmask(masked: bytes) -> bytes:
    length = masked[1] & 0x7F
    header_end = 2 + {126: 2, 127: 8}.get(length, 0)
    key = masked[header_end : header_end + 4]
    payload = bytes(b ^ key[i % 4] for i, b in enumerate(masked[header_end + 4 :]))
    return bytes([masked[0], masked[1] & 0x7F]) + masked[2:header_end] + payload


@SIDES
def test_new_message_inside_a_fragmented_one_is_a_protocol_error(client):
    conn = receiver(client)
    events = feed(
        conn,
        peer_frame(client, TEXT, b"a", fin=False),
        peer_frame(client, TEXT, b"b"),
        client=client,
    )
    assert terminated(events).code == 1002


def test_server_refuses_an_unmasked_client_frame():
    conn = receiver(client=False)
    events = feed(conn, frame(TEXT, b"hi", mask=False), client=False)
    assert terminated(events).code == 1002


def test_client_refuses_a_masked_server_frame():
    conn = receiver(client=True)
    events = feed(conn, frame(TEXT, b"hi", mask=True), client=True)
    assert terminated(events).code == 1002


@SIDES
def test_a_huge_declared_length_fails_with_1009_before_any_payload(client):
    conn = receiver(client)
    header_only = peer_frame(client, BINARY, b"", length=2**63 - 1)
    events = feed(conn, header_only, client=client)
    end = terminated(events)
    assert end.code == 1009
    assert isinstance(end.error, PayloadTooBig)


@SIDES
def test_a_64_bit_length_with_the_top_bit_set_is_a_protocol_error(client):
    conn = receiver(client)
    header = bytes([0x82, (0 if client else 0x80) | 127]) + (2**63).to_bytes(8, "big")
    events = feed(conn, header, client=client)
    assert terminated(events).code == 1002


@SIDES
def test_non_minimal_length_encoding_is_refused(client):
    # A strict choice (wsproto's): RFC 6455 §5.2 says the minimal encoding MUST be used.
    conn = receiver(client)
    header = bytes([0x82, (0 if client else 0x80) | 126]) + (5).to_bytes(2, "big")
    events = feed(conn, header + (b"" if client else b"\0\0\0\0") + b"hello", client=client)
    assert terminated(events).code == 1002


@SIDES
def test_message_limit_trips_as_soon_as_the_running_total_passes_it(client):
    conn = receiver(client, Config(max_message=1000))
    events = feed(conn, peer_frame(client, BINARY, b"a" * 600, fin=False), client=client)
    assert events == []
    # The message is not finished (no FIN yet) but it has passed the limit.
    events = feed(conn, peer_frame(client, CONTINUATION, b"b" * 600, fin=False), client=client)
    end = terminated(events)
    assert end.code == 1009
    assert "1000" in end.reason


@SIDES
def test_a_message_exactly_at_the_limit_is_accepted(client):
    conn = receiver(client, Config(max_message=1000))
    events = feed(
        conn,
        peer_frame(client, BINARY, b"a" * 400, fin=False),
        peer_frame(client, CONTINUATION, b"b" * 600),
        client=client,
    )
    assert events == [Message(b"a" * 400 + b"b" * 600)]


@SIDES
def test_a_flood_of_empty_continuation_frames_is_cut_at_max_fragments(client):
    conn = receiver(client, Config(max_fragments=100))
    frames = [peer_frame(client, BINARY, b"", fin=False)]
    frames += [peer_frame(client, CONTINUATION, b"", fin=False)] * 99
    assert feed(conn, b"".join(frames), client=client) == []
    events = feed(conn, peer_frame(client, CONTINUATION, b"", fin=False), client=client)
    end = terminated(events)
    assert end.code == 1009
    assert "100 frames" in end.reason


@SIDES
def test_ping_is_answered_with_a_pong_carrying_its_payload(client):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, PING, b"abc"), client=client)
    assert events == [Ping(b"abc")]
    data = conn.data_to_send()
    assert data[0] == 0x8A  # FIN + PONG
    assert data.endswith(b"abc") or client  # a client masks its pong


def pongs_sent(pair: Pair, client: bool) -> list[bytes]:
    """The payloads of the pongs the ``client``-side end sends now, as its peer reads them."""
    peer = pair.side(not client)
    peer.receive_data(pair.side(client).data_to_send())
    return [event.payload for event in peer.events() if isinstance(event, Pong)]


@SIDES
@pytest.mark.parametrize("chunk", [None, 1], ids=["one-read", "octet-wise"])
def test_every_ping_of_a_burst_gets_its_own_pong_in_order(client, chunk):
    # Autobahn 2.10 and 2.11: ten pings in a row (in one read, or one octet
    # per read), then a close; every ping must be answered (only the last
    # one was, when pongs owed were coalesced into one).
    pair = Pair.open()
    conn = pair.side(client)
    payloads = [f"payload-{i}".encode() for i in range(10)]
    data = b"".join(peer_frame(client, PING, payload) for payload in payloads)
    pieces = [data] if chunk is None else [data[i : i + 1] for i in range(len(data))]
    for piece in pieces:
        conn.receive_data(piece)
    assert conn.events() == [Ping(payload) for payload in payloads]
    assert pongs_sent(pair, client) == payloads


@SIDES
def test_pongs_owed_before_our_close_frame_leave_before_it(client):
    pair = Pair.open()
    conn = pair.side(client)
    conn.receive_data(peer_frame(client, PING, b"1") + peer_frame(client, PING, b"2"))
    conn.close(1000)
    peer = pair.side(not client)
    peer.receive_data(conn.data_to_send())
    events = peer.events()
    assert [type(event).__name__ for event in events][:3] == ["Pong", "Pong", "CloseReceived"]
    assert [event.payload for event in events[:2]] == [b"1", b"2"]


@SIDES
def test_a_pong_owed_leaves_before_the_reply_to_a_message_that_came_after_its_ping(client):
    # Autobahn 5.6/5.7 (and 5.19/5.20 on the client side): a ping between two
    # fragments of a message; the pong must precede the echo of the message
    # (it was written only at data_to_send(), after the echo already queued).
    pair = Pair.open()
    conn = pair.side(client)
    conn.receive_data(
        peer_frame(client, TEXT, b"fragment1", fin=False)
        + peer_frame(client, PING, b"ping payload")
        + peer_frame(client, CONTINUATION, b"fragment2")
    )
    [ping, message] = conn.events()
    assert ping == Ping(b"ping payload")
    assert message == Message("fragment1fragment2")
    conn.send_text(message.data)
    peer = pair.side(not client)
    peer.receive_data(conn.data_to_send())
    assert peer.events() == [Pong(b"ping payload"), Message("fragment1fragment2")]


@SIDES
def test_a_ping_flood_leaves_a_bounded_number_of_pongs_to_send(client):
    pair = Pair.open()
    conn = pair.side(client)
    pings = b"".join(peer_frame(client, PING, str(i).encode()) for i in range(10_000))
    conn.receive_data(pings)
    assert len(conn.events()) == 10_000
    assert conn.buffered_amount == 0  # the owed pongs are not buffered until asked for
    # Only the latest pings of the flood are answered (RFC 6455 §5.5.3).
    expected = [str(i).encode() for i in range(10_000 - _MAX_PONGS_OWED, 10_000)]
    assert pongs_sent(pair, client) == expected


@SIDES
def test_unsolicited_pong_is_reported_without_rtt(client):
    conn = receiver(client)
    assert feed(conn, peer_frame(client, PONG, b"hb"), client=client) == [Pong(b"hb", None)]


@SIDES
@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 5000])
def test_invalid_close_codes_fail_with_1002(client, code):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, CLOSE, close_payload(code)), client=client)
    assert terminated(events).code == 1002


@SIDES
@pytest.mark.parametrize(
    "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
)
def test_valid_close_codes_are_echoed(client, code):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, CLOSE, close_payload(code, b"why")), client=client)
    assert events == [CloseReceived(code, "why"), Terminated(code, "why")]
    assert close_code_sent(conn) == code
    assert conn.state is State.CLOSED


@SIDES
def test_close_without_code_is_1005_and_echoed_empty(client):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, CLOSE, b""), client=client)
    assert events == [CloseReceived(1005, ""), Terminated(1005, "")]
    data = conn.data_to_send()
    assert data[0] == 0x88
    assert data[1] & 0x7F == 0


@SIDES
def test_close_reason_with_invalid_utf8_fails_with_1007(client):
    conn = receiver(client)
    events = feed(conn, peer_frame(client, CLOSE, close_payload(1000, b"\xff")), client=client)
    assert terminated(events).code == 1007


@SIDES
def test_nothing_after_terminated_and_eof_is_idempotent(client):
    conn = receiver(client)
    feed(conn, peer_frame(client, CLOSE, close_payload(1000)), client=client)
    conn.data_to_send()
    conn.receive_data(peer_frame(client, TEXT, b"late"))
    conn.receive_eof()
    conn.receive_eof()
    assert conn.events() == []
    assert conn.data_to_send() == b""


@SIDES
def test_eof_without_close_frame_is_1006(client):
    conn = receiver(client)
    conn.receive_eof()
    assert conn.events() == [Terminated(1006)]


@SIDES
def test_a_ping_then_a_close_in_one_read_echoes_the_close_only(client):
    conn = receiver(client)
    events = feed(
        conn,
        peer_frame(client, PING, b"p") + peer_frame(client, CLOSE, close_payload(1000)),
        client=client,
    )
    assert events == [Ping(b"p"), CloseReceived(1000, ""), Terminated(1000, "")]
    assert close_code_sent(conn) == 1000


@SIDES
def test_with_fragments_on_pieces_arrive_as_they_come(client):
    conn = receiver(client, Config(fragments=True, compression=None))
    euro = "€".encode()
    events = feed(
        conn,
        peer_frame(client, TEXT, b"ab" + euro[:1], fin=False),
        peer_frame(client, CONTINUATION, b"", fin=False),
        peer_frame(client, CONTINUATION, euro[1:] + b"cd"),
        peer_frame(client, BINARY, b"\x00"),
        client=client,
    )
    assert events == [Fragment("ab", False), Fragment("€cd", True), Fragment(b"\x00", True)]


@SIDES
def test_with_fragments_on_limits_still_hold(client):
    conn = receiver(client, Config(fragments=True, max_message=100))
    events = feed(conn, peer_frame(client, BINARY, b"a" * 80, fin=False), client=client)
    assert events == [Fragment(b"a" * 80, False)]
    events = feed(conn, peer_frame(client, CONTINUATION, b"b" * 30), client=client)
    assert terminated(events).code == 1009
