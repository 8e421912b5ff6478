"""``Connection.step_budget``: one ``receive_data()`` call parses one step of a large read.

The properties (any bytes, any chunking, any budget) are in
``tests/property/test_steps.py``; these are the connection's side of it.
"""

from __future__ import annotations

import tracemalloc

import pytest

from tests.frames import BINARY, PING, TEXT, deflate, frame
from tests.pairs import Pair
from wskit.core import Config, Fragment, Message, Ping, State
from wskit.errors import PayloadTooBig, UsageError

MiB = 1024 * 1024
SIDES = pytest.mark.parametrize("client", [False, True], ids=["server", "client"])


def zeros_message(client: bool) -> bytes:
    """1 MiB of zeros, compressed: ~1 KiB on the wire (a frame the receiver accepts)."""
    return frame(BINARY, deflate(bytes(MiB), 9), rsv=4, mask=not client)


@pytest.mark.parametrize("budget", [0, -1, 1.5, True, "64"])
def test_the_budget_is_a_positive_integer_or_none(budget):
    conn = Pair.open().server
    with pytest.raises(UsageError, match="step_budget"):
        conn.step_budget = budget
    assert conn.step_budget is None
    conn.step_budget = 1
    conn.step_budget = None


@SIDES
def test_a_read_of_small_bombs_is_parsed_one_message_a_step(client):
    receiver = Pair.open().side(client)
    receiver.step_budget = 65536
    # Unstepped, these 64 reads of ~1 KiB make 64 MiB at once.
    receiver.receive_data(zeros_message(client) * 64)
    steps = [receiver.events()]
    while receiver.has_pending_input:
        receiver.receive_data(b"")
        steps.append(receiver.events())
    assert steps == [[Message(bytes(MiB))]] * 64
    assert receiver.state is State.OPEN


@SIDES
def test_bytes_received_while_input_waits_are_parsed_after_it(client):
    receiver = Pair.open().side(client)
    receiver.step_budget = 1
    receiver.receive_data(zeros_message(client) + frame(PING, b"1", mask=not client))
    assert receiver.events() == [Message(bytes(MiB))]
    assert receiver.has_pending_input
    receiver.receive_data(frame(TEXT, b"after", mask=not client))
    assert receiver.events() == [Ping(b"1"), Message("after")]
    assert not receiver.has_pending_input


@SIDES
def test_waiting_input_can_be_taken_and_fed_again(client):
    receiver = Pair.open().side(client)
    receiver.step_budget = 1
    second = frame(TEXT, b"second", mask=not client)
    receiver.receive_data(frame(TEXT, b"first", mask=not client) + second)
    assert receiver.events() == [Message("first")]
    assert receiver.take_pending_input() == second
    assert not receiver.has_pending_input
    receiver.receive_data(b"")  # nothing waits: nothing happens
    assert receiver.events() == []
    receiver.receive_data(second)
    assert receiver.events() == [Message("second")]


@SIDES
def test_a_step_does_not_weaken_the_bomb_defence(client):
    receiver = Pair.open().side(client)
    receiver.step_budget = 65536
    bomb = frame(BINARY, deflate(bytes(100 * MiB)), rsv=4, mask=not client)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        receiver.receive_data(bomb + zeros_message(client))
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    [end] = receiver.events()
    assert end.code == 1009
    assert isinstance(end.error, PayloadTooBig)
    assert not receiver.has_pending_input
    assert peak < 4 * MiB, peak  # max_message (1 MiB) and copies of the ~100 KB frame


def test_a_whole_compressed_text_message_is_one_piece():
    # The I/O layer's configuration: fragments, a step budget. A message that
    # came whole is inflated and decoded whole: one piece, one event.
    server = Pair.open(Config(fragments=True)).server
    server.step_budget = 65536
    text = "wskit ünïcode " * 5000  # 70 KB: more than the budget, in one frame
    server.receive_data(frame(TEXT, deflate(text.encode(), 9), rsv=4))
    assert server.events() == [Fragment(text, True)]
    assert not server.has_pending_input
