"""Limits hold for any input: nothing a peer sends makes the receiver exceed them.

* ``max_message`` (drawn from 1 to 4096): for any message sizes, kinds,
  fragmentations and compression (incompressible or highly compressible
  data), every message whose size (after inflation) is within the limit
  arrives, and the first one above it ends the receiver with
  ``Terminated(1009)`` and no ``Message`` event for it (nor any later one);
* ``max_fragments``: a message split into more frames than the limit ends
  the receiver with 1009, one within it arrives;
* a data frame whose declared length would take its message over the limit is
  refused as soon as its header arrives, before any payload (and a frame
  within the limit is not);
* a ping flood (thousands of pings fed without ``data_to_send()`` in between,
  in any chunking) is answered with one pong per ping, in order, for the
  latest 16 pings at most, and ``buffered_amount`` stays bounded by one
  control frame meanwhile; a close frame after the flood is still echoed.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pairs import Pair
from tests.property.strategies import (
    OPCODES,
    Outgoing,
    chunkings,
    close_payload,
    frame,
    open_client,
    parse_frames,
    split,
)
from wskit.core import (
    CloseReceived,
    Config,
    DeflateOptions,
    Message,
    Ping,
    State,
    Terminated,
)
from wskit.core.connection import _MAX_PONGS_OWED

MASK = b"\x8a\x3f\x01\xc4"
CONTROL_FRAME_MAX = 2 + 4 + 125  # header, mask, payload


def limited_pair(receiver_is_server: bool, compression: bool, **limits) -> Pair:
    receiver = Config(compression=DeflateOptions() if compression else None, **limits)
    sender = Config(compression=DeflateOptions() if compression else None)
    if receiver_is_server:
        return Pair.open(client_config=sender, server_config=receiver)
    return Pair.open(client_config=receiver, server_config=sender)


@st.composite
def sized_messages(draw, limit: int):
    """A message around ``limit`` bytes: incompressible, repetitive, arbitrary or text.

    Sizes at and near the limit (off-by-one territory) are drawn as often as others.
    """
    size = draw(
        st.one_of(
            st.just(limit),
            st.integers(max(0, limit - 16), limit + 16),
            st.integers(0, 2 * limit + 10),
        )
    )
    kind = draw(
        st.sampled_from(["incompressible", "incompressible", "repetitive", "arbitrary", "text"])
    )
    if kind == "incompressible":
        data: str | bytes = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    elif kind == "repetitive":
        data = (draw(st.binary(min_size=1, max_size=3)) * size)[:size]
    elif kind == "arbitrary":
        data = draw(st.binary(min_size=size, max_size=size))
    else:
        data = draw(st.text(min_size=size // 3, max_size=size // 2 + 1))
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=4))
    return Outgoing(data, draw(st.sampled_from([None, True, False])), split(data, cuts))


@given(
    limit=st.integers(1, 4096),
    receiver_is_server=st.booleans(),
    compression=st.booleans(),
    data=st.data(),
)
def test_messages_within_max_message_arrive_and_a_bigger_one_ends_with_1009(
    limit, receiver_is_server, compression, data
):
    messages = data.draw(st.lists(sized_messages(limit), min_size=1, max_size=5), label="msgs")
    pair = limited_pair(receiver_is_server, compression, max_message=limit)
    sender = pair.side(receiver_is_server)  # True: the client
    for message in messages:
        message.send(sender)
    pair.pump(chunk=data.draw(st.one_of(st.none(), st.integers(1, 512)), label="chunk"))

    fits = [m.size <= limit for m in messages]
    within = messages[: fits.index(False)] if False in fits else messages
    received = pair.take(not receiver_is_server)
    assert [e.data for e in received if isinstance(e, Message)] == [m.data for m in within]
    if len(within) < len(messages):
        assert isinstance(received[-1], Terminated)
        assert received[-1].code == 1009
        assert pair.side(not receiver_is_server).state is State.CLOSED  # the receiver
    else:
        assert not any(isinstance(e, Terminated) for e in received)


@given(
    limit=st.integers(1, 12),
    receiver_is_server=st.booleans(),
    compression=st.booleans(),
    data=st.data(),
)
def test_a_message_in_more_than_max_fragments_frames_ends_with_1009(
    limit, receiver_is_server, compression, data
):
    frames = data.draw(st.integers(1, 2 * limit + 2), label="frames")
    payload = data.draw(st.one_of(st.text(max_size=30), st.binary(max_size=30)), label="data")
    cuts = data.draw(
        st.lists(st.integers(0, len(payload)), min_size=frames - 1, max_size=frames - 1)
    )
    message = Outgoing(
        payload, data.draw(st.sampled_from([None, True, False])), split(payload, cuts)
    )
    assert len(message.pieces) == frames

    pair = limited_pair(receiver_is_server, compression, max_fragments=limit)
    sender = pair.side(receiver_is_server)  # True: the client
    message.send(sender)
    sender.send_bytes(b"after")
    pair.pump()

    received = pair.take(not receiver_is_server)
    if frames <= limit:
        assert received == [Message(payload), Message(b"after")]
    else:
        assert [type(e) for e in received] == [Terminated]
        assert received[0].code == 1009


@given(
    limit=st.integers(1, 4096),
    compression=st.booleans(),
    opcode=st.sampled_from([OPCODES["text"], OPCODES["binary"]]),
    data=st.data(),
)
def test_a_frame_declaring_too_much_is_refused_at_its_header(limit, compression, opcode, data):
    pair = limited_pair(True, compression, max_message=limit)
    server = pair.server
    # Part of the message may have arrived already, in earlier fragments.
    earlier: list[int] = []
    for size in data.draw(st.lists(st.integers(0, limit), max_size=3), label="earlier"):
        if sum(earlier) + size <= limit:
            earlier.append(size)
    for i, size in enumerate(earlier):
        code = opcode if i == 0 else OPCODES["continuation"]
        server.receive_data(frame(code, b"x" * size, fin=False, mask=MASK))
    assert server.events() == []
    assert server.data_to_send() == b""
    budget = limit - sum(earlier)
    if earlier:
        opcode = OPCODES["continuation"]

    declared = data.draw(
        st.one_of(st.integers(0, 2 * limit), st.integers(0, 2**63 - 1)), label="declared"
    )
    header = frame(opcode, b"", fin=False, mask=MASK, length=declared)
    server.receive_data(header)
    events = server.events()
    if declared > budget:
        assert [type(e) for e in events] == [Terminated]
        assert events[0].code == 1009
        (close,) = parse_frames(server.data_to_send())
        assert close.opcode == OPCODES["close"]
        assert close.payload[:2] == (1009).to_bytes(2, "big")
    else:
        assert events == []
        assert server.state is State.OPEN
        assert server.data_to_send() == b""


@pytest.mark.parametrize("then_close", [False, True], ids=["flood", "flood then close"])
@settings(max_examples=20)
@given(
    count=st.one_of(st.integers(1, 50), st.integers(1000, 3000)),
    to_server=st.booleans(),
    payloads=st.lists(st.binary(max_size=125), min_size=1, max_size=8),
    data=st.data(),
)
def test_a_ping_flood_is_answered_by_a_bounded_number_of_pongs(
    count, to_server, payloads, then_close, data
):
    if to_server:
        conn = Pair.open(Config(compression=None)).server
        mask: bytes | None = MASK
    else:
        conn = open_client(Config(compression=None))
        mask = None
    pings = [payloads[i % len(payloads)] for i in range(count)]
    flood = b"".join(frame(OPCODES["ping"], p, mask=mask) for p in pings)
    if then_close:
        flood += frame(OPCODES["close"], close_payload(1001), mask=mask)
    for chunk in data.draw(chunkings(flood), label="chunks"):
        conn.receive_data(chunk)
        assert conn.buffered_amount <= CONTROL_FRAME_MAX

    events = conn.events()
    assert [e.payload for e in events if isinstance(e, Ping)] == pings
    answer = parse_frames(conn.data_to_send())
    pongs = [f for f in answer if f.opcode == OPCODES["pong"]]
    assert len(pongs) <= _MAX_PONGS_OWED
    if then_close:
        assert answer[-1].opcode == OPCODES["close"]
        assert isinstance(events[-2], CloseReceived)
        assert isinstance(events[-1], Terminated)
    else:
        # Every ping is answered, in order, up to the latest _MAX_PONGS_OWED.
        assert [p.payload for p in pongs] == pings[-_MAX_PONGS_OWED:]
        assert conn.state is State.OPEN
