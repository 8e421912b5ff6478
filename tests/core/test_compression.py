"""permessage-deflate through the connection: per-message switch, threshold, bombs."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest

from tests.frames import BINARY, CONTINUATION, TEXT, deflate, frame
from tests.pairs import Pair
from wskit.core import Config, DeflateOptions, Message, State
from wskit.errors import PayloadTooBig

SIDES = pytest.mark.parametrize("client", [False, True], ids=["server", "client"])


def first_frame_rsv1(data: bytes) -> bool:
    return bool(data[0] & 0x40)


@SIDES
def test_compress_switch_and_threshold_decide_per_message(client):
    pair = Pair.open()
    sender = pair.side(client)
    text = "a" * 1000
    sender.send_text(text)  # above the 128-byte threshold: compressed
    assert first_frame_rsv1(sender.data_to_send())
    sender.send_text(text, compress=False)
    assert not first_frame_rsv1(sender.data_to_send())
    sender.send_text("short")  # below the threshold: sent as is
    assert not first_frame_rsv1(sender.data_to_send())
    sender.send_text("short", compress=True)
    assert first_frame_rsv1(sender.data_to_send())


@SIDES
def test_mixed_compressed_and_plain_messages_round_trip(client):
    pair = Pair.open()
    messages = ["x" * 5000, b"\x00" * 3000, "tiny", b"y" * 700]
    for index, message in enumerate(messages):
        compress = (None, False, True, False)[index]
        if isinstance(message, str):
            pair.side(client).send_text(message, compress=compress)
        else:
            pair.side(client).send_bytes(message, compress=compress)
    pair.pump()
    assert pair.take(not client) == [Message(m) for m in messages]


def test_a_compressed_fragmented_message_round_trips():
    pair = Pair.open()
    pair.client.send_text("ab" * 500, fin=False)
    pair.client.send_text("cd" * 500, fin=False)
    pair.client.send_text("ef" * 500)
    pair.pump()
    assert pair.take(client=False) == [Message("ab" * 500 + "cd" * 500 + "ef" * 500)]


def test_tuned_settings_reach_zlib():
    options = DeflateOptions(window_bits=10, peer_window_bits=11, mem_level=2, level=1)
    pair = Pair.open(Config(compression=options))
    assert pair.server.compression == "permessage-deflate"
    payload = bytes(range(256)) * 40
    pair.server.send_bytes(payload)
    pair.pump()
    assert pair.take(client=True) == [Message(payload)]


@SIDES
def test_a_decompression_bomb_closes_1009_with_bounded_memory(client):
    pair = Pair.open()
    receiver = pair.side(client)
    bomb = deflate(b"\0" * (100 * 1024 * 1024))
    assert len(bomb) < 200_000
    data = frame(BINARY, bomb, rsv=4, mask=not client)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        receiver.receive_data(data)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    [end] = receiver.events()
    assert end.code == 1009
    assert isinstance(end.error, PayloadTooBig)
    assert receiver.state is State.CLOSED
    # The 1 MiB output budget plus wsproto's few copies of the 100 KB frame,
    # where an unbounded inflate would reach 100 MiB.
    assert peak < 4 * 1024 * 1024, peak


@SIDES
def test_inflated_size_counts_against_the_limit_across_fragments(client):
    pair = Pair.open(Config(max_message=10_000))
    receiver = pair.side(client)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(b"z" * 6000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    second = compressor.compress(b"z" * 6000) + compressor.flush(zlib.Z_SYNC_FLUSH)
    receiver.receive_data(frame(BINARY, first, rsv=4, fin=False, mask=not client))
    assert receiver.events() == []
    receiver.receive_data(frame(CONTINUATION, second, fin=False, mask=not client))
    [end] = receiver.events()
    assert end.code == 1009


@SIDES
def test_corrupt_compressed_data_closes_1007(client):
    pair = Pair.open()
    receiver = pair.side(client)
    receiver.receive_data(frame(TEXT, b"\xff\xff\xff\xff", rsv=4, mask=not client))
    [end] = receiver.events()
    assert end.code == 1007


@SIDES
def test_rsv1_on_a_continuation_frame_is_a_protocol_error(client):
    pair = Pair.open()
    receiver = pair.side(client)
    receiver.receive_data(frame(TEXT, deflate(b"ab"), rsv=4, fin=False, mask=not client))
    receiver.receive_data(frame(CONTINUATION, deflate(b"cd"), rsv=4, mask=not client))
    [end] = receiver.events()
    assert end.code == 1002


def test_the_threshold_counts_utf8_bytes_not_characters():
    pair = Pair.open()
    pair.client.send_text("é" * 100)  # 100 characters, 200 bytes: over the 128-byte threshold
    assert first_frame_rsv1(pair.client.data_to_send())
    pair.client.send_text("é" * 60)  # 120 bytes: under it
    assert not first_frame_rsv1(pair.client.data_to_send())


def test_an_incompressible_message_at_the_limit_passes_when_sent_compressed():
    import os

    pair = Pair.open(Config(max_message=4096))
    payload = os.urandom(4096)
    pair.client.send_bytes(payload, compress=True)
    data = pair.client.data_to_send()
    assert first_frame_rsv1(data)
    pair.server.receive_data(data)
    assert pair.server.events() == [Message(payload)]
