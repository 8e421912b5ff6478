"""``chunks_to_send()``: the same bytes as ``data_to_send()``, in fewer copies.

Two servers in the same state are given the same messages; one is drained
with ``data_to_send()``, the other with ``chunks_to_send()``. The buffers
joined are the bytes, small frames share a buffer, and a large payload is a
buffer of its own (the very object handed to the core when it is bytes).
``buffers_to_send()`` gives the same bytes too, with each large payload's
header joined to the payload's first 64 KiB and the rest a view of it.
"""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from tests.pairs import Pair
from wskit.core import Config, Message

LARGE = 256 * 1024
SIZES = [0, 5, 125, 126, 4095, 4096, 65536, LARGE - 1, LARGE, LARGE + 9]


@given(
    sizes=st.lists(st.sampled_from(SIZES), max_size=8),
    pings=st.lists(st.booleans(), max_size=8),
)
def test_chunks_join_to_the_bytes_of_data_to_send(sizes: list[int], pings: list[bool]) -> None:
    config = Config(compression=None)
    joined_side = Pair.open(config).server
    chunked_side = Pair.open(config).server
    payloads = [bytes([index % 256]) * size for index, size in enumerate(sizes)]
    for index, payload in enumerate(payloads):
        for server in (joined_side, chunked_side):
            server.send_bytes(payload)
            if index < len(pings) and pings[index]:
                server.send_ping(bytes([index]))
    expected = joined_side.data_to_send()
    buffers = chunked_side.chunks_to_send()
    assert b"".join(buffers) == expected
    assert chunked_side.chunks_to_send() == []
    assert chunked_side.buffered_amount == 0
    # Small frames are never written alone next to each other.
    for first, second in itertools.pairwise(buffers):
        assert len(first) >= LARGE or len(second) >= LARGE
    # Each large payload is one buffer, not copied.
    for payload in payloads:
        if len(payload) >= LARGE:
            assert any(buffer is payload for buffer in buffers)


LEAD = 64 * 1024


@given(
    sizes=st.lists(st.sampled_from(SIZES), max_size=8),
    pings=st.lists(st.booleans(), max_size=8),
)
def test_buffers_join_to_the_bytes_of_data_to_send(sizes: list[int], pings: list[bool]) -> None:
    config = Config(compression=None)
    joined_side = Pair.open(config).server
    buffered_side = Pair.open(config).server
    payloads = [bytes([index % 256]) * size for index, size in enumerate(sizes)]
    for index, payload in enumerate(payloads):
        for server in (joined_side, buffered_side):
            server.send_bytes(payload)
            if index < len(pings) and pings[index]:
                server.send_ping(bytes([index]))
    expected = joined_side.data_to_send()
    buffers = buffered_side.buffers_to_send()
    assert b"".join(buffers) == expected
    assert buffered_side.buffers_to_send() == []
    assert buffered_side.buffered_amount == 0
    # Copies and views alternate: small frames share a copy, and no header
    # leaves alone ahead of its payload.
    for first, second in itertools.pairwise(buffers):
        assert isinstance(first, memoryview) != isinstance(second, memoryview)
    large = [payload for payload in payloads if len(payload) >= LARGE]
    views = [buffer for buffer in buffers if isinstance(buffer, memoryview)]
    # Each large payload's rest is a view of the very object sent: not copied.
    assert len(views) == len(large)
    for view, payload in zip(views, large, strict=True):
        assert view.obj is payload
        assert len(view) == len(payload) - LEAD
    for index, buffer in enumerate(buffers):
        if isinstance(buffer, memoryview):
            assert len(buffers[index - 1]) > LEAD  # the header and the payload's lead


@given(sizes=st.lists(st.sampled_from(SIZES), min_size=1, max_size=4))
def test_a_client_buffers_carry_its_masked_messages_to_the_server(sizes: list[int]) -> None:
    pair = Pair.open(Config(compression=None))
    payloads = [bytes([index % 256]) * size for index, size in enumerate(sizes)]
    for payload in payloads:
        pair.client.send_bytes(payload)
    # Fed to the server one buffer at a time, as a writer writes them.
    for buffer in pair.client.buffers_to_send():
        pair.server.receive_data(bytes(buffer))
    received = [event.data for event in pair.server.events() if isinstance(event, Message)]
    assert received == payloads
