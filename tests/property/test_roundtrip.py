"""Round trip: whatever one side sends arrives unchanged, whole and in order at the other.

For any sequence of text (non-ASCII and astral code points included) and
binary messages, empty to 64 KiB, with permessage-deflate negotiated or not,
any per-message ``compress=`` choice and any fragmentation into ``fin=False``
... ``fin=True`` pieces, sent client to server or server to client, delivered
whole or in chunks of any size and at any moment, the receiver's ``Message``
events are exactly the messages sent. Pings interleaved anywhere (between
messages and between the fragments of one message) are answered with pongs and
do not disturb the messages. A text message that another implementation cuts
into frames anywhere, even inside a code point, arrives whole too.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.pairs import Pair
from tests.property.strategies import (
    OPCODES,
    PLAIN,
    Outgoing,
    chunkings,
    config_pairs,
    configs,
    frame,
    open_pair,
    outgoing,
    split,
    texts,
)
from wskit.core import Message, Ping, Pong, State, Terminated

MASK = b"\x37\xfa\x21\x3d"
chunk_sizes = st.one_of(st.none(), st.integers(1, 16), st.integers(17, 70_000))


def messages_of(events):
    return [e.data for e in events if isinstance(e, Message)]


@given(
    config=configs,
    from_client=st.booleans(),
    messages=st.lists(outgoing(), max_size=8),
    chunk=chunk_sizes,
)
def test_messages_arrive_unchanged_and_in_order(config, from_client, messages, chunk):
    check_roundtrip(open_pair(config), from_client, messages, chunk)


@given(
    configs=config_pairs(),
    from_client=st.booleans(),
    messages=st.lists(outgoing(), max_size=6),
)
def test_messages_arrive_unchanged_whatever_the_compression_settings(
    configs, from_client, messages
):
    """Any window sizes, memory and compression levels, thresholds, context takeover."""
    client_config, server_config = configs
    pair = Pair.open(client_config=client_config, server_config=server_config)
    # Both ends agree on whether compression is in use: it is when both want it.
    both = client_config.compression is not None and server_config.compression is not None
    assert pair.client.compression == pair.server.compression
    assert (pair.client.compression == "permessage-deflate") == both
    check_roundtrip(pair, from_client, messages, None)


def check_roundtrip(pair, from_client, messages, chunk):
    sender = pair.side(from_client)
    for message in messages:
        message.send(sender)
    pair.pump(chunk=chunk)

    received = pair.take(not from_client)
    # str == bytes is always False, so this also checks every message's type.
    assert messages_of(received) == [m.data for m in messages]
    assert pair.take(from_client) == []
    assert pair.client.state is State.OPEN
    assert pair.server.state is State.OPEN


@given(
    config=configs,
    messages=st.lists(st.tuples(st.booleans(), outgoing()), max_size=8),
    pumps=st.lists(st.one_of(st.none(), st.integers(1, 512)), min_size=8, max_size=8),
)
def test_both_directions_at_once_with_deliveries_in_between(config, messages, pumps):
    """Messages going both ways, with deliveries (in chunks) at arbitrary points."""
    pair = open_pair(config)
    sent: dict[bool, list[str | bytes]] = {True: [], False: []}
    for (from_client, message), chunk in zip(messages, pumps, strict=False):
        message.send(pair.side(from_client))
        sent[from_client].append(message.data)
        if chunk is not None:
            pair.pump(chunk=chunk)
    pair.pump()
    assert messages_of(pair.take(False)) == sent[True]
    assert messages_of(pair.take(True)) == sent[False]


@st.composite
def scripts(draw):
    """Messages and pings: each ping goes after a drawn fragment of a message, or alone."""
    steps = []
    for message in draw(st.lists(outgoing(), max_size=6)):
        ping_after = draw(st.sets(st.integers(0, len(message.pieces) - 1), max_size=3))
        steps.append((message, frozenset(ping_after)))
    trailing_pings = draw(st.integers(0, 3))
    return steps, trailing_pings


@given(
    config=configs,
    from_client=st.booleans(),
    script=scripts(),
    chunk=chunk_sizes,
    pump_each_step=st.booleans(),
)
def test_pings_interleaved_with_messages_do_not_disturb_them(
    config, from_client, script, chunk, pump_each_step
):
    pair = open_pair(config)
    sender = pair.side(from_client)
    steps, trailing_pings = script
    pings: list[bytes] = []

    def ping() -> None:
        payload = b"ping-%d" % len(pings)
        pings.append(payload)
        sender.send_ping(payload)
        if pump_each_step:
            pair.pump(chunk=chunk)

    message: Outgoing
    for message, ping_after in steps:
        for i in range(len(message.pieces)):
            message.send_piece(sender, i)
            if i in ping_after:
                ping()
    for _ in range(trailing_pings):
        ping()
    pair.pump(chunk=chunk)

    received = pair.take(not from_client)
    assert messages_of(received) == [m.data for m, _ in steps]
    # The receiver sees every ping, in order, among the messages.
    assert [e.payload for e in received if isinstance(e, Ping)] == pings
    assert not any(isinstance(e, Terminated) for e in received)
    # Pongs may be coalesced (only the latest ping of a burst is answered, which
    # acknowledges the earlier ones), but they come in order and the last ping
    # is always answered.
    answered = [e.payload for e in pair.take(from_client) if isinstance(e, Pong)]
    assert answered == [p for p in pings if p in answered]
    if pings:
        assert answered[-1] == pings[-1]
    else:
        assert answered == []


@given(
    text=texts,
    cuts=st.lists(st.integers(0, 2**20), max_size=6),
    pings_after=st.sets(st.integers(0, 6), max_size=3),
    data=st.data(),
)
def test_text_split_inside_code_points_by_a_peer_arrives_whole(text, cuts, pings_after, data):
    """Another implementation may cut a text message anywhere, even inside a code point."""
    encoded = text.encode()
    pieces = split(encoded, [c % (len(encoded) + 1) for c in cuts])
    wire = b""
    for i, piece in enumerate(pieces):
        opcode = OPCODES["text"] if i == 0 else OPCODES["continuation"]
        wire += frame(opcode, piece, fin=i == len(pieces) - 1, mask=MASK)
        if i in pings_after:
            wire += frame(OPCODES["ping"], b"%d" % i, mask=MASK)
    pair = open_pair(PLAIN)
    for chunk in data.draw(chunkings(wire), label="chunks"):
        pair.server.receive_data(chunk)
    events = pair.server.events()
    assert [e for e in events if isinstance(e, Message)] == [Message(text)]
    assert pair.server.state is State.OPEN
