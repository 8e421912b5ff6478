"""``Connection.frame_buffer_min``, ``frame_rest``, ``frame_buffer`` and ``frame_filled``.

The properties (any stream, any mix of reads into the buffer and ``receive_data``
calls, against wsproto) are in ``tests/property/test_frame_buffer.py``; these
are the connection's side of it: who may use it, and what misuse gets.
"""

from __future__ import annotations

import random

import pytest

from tests.frames import BINARY, TEXT, deflate, frame
from tests.pairs import Pair
from wskit.core import Message, State
from wskit.errors import UsageError

SIDES = pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
LEAST = 1000


def split(wire: bytes, at: int) -> tuple[bytes, bytes]:
    return wire[:at], wire[at:]


@pytest.mark.parametrize("size", [0, -1, 1.5, True, "64"])
def test_the_threshold_is_a_positive_integer_or_none(size):
    conn = Pair.open().server
    with pytest.raises(UsageError, match="frame_buffer_min"):
        conn.frame_buffer_min = size
    assert conn.frame_buffer_min is None
    conn.frame_buffer_min = 1
    conn.frame_buffer_min = None


@SIDES
def test_the_rest_of_a_large_binary_frame_is_read_into_its_buffer(client):
    receiver = Pair.open().side(client)
    receiver.frame_buffer_min = LEAST
    payload = bytes(range(256)) * 10
    first, rest = split(frame(BINARY, payload, mask=not client), 600)
    receiver.receive_data(first, more=True)
    assert receiver.events() == []
    assert receiver.frame_rest == len(rest)
    assert receiver.frame_buffer(len(rest) - 1) is None  # not all of it has arrived
    view = receiver.frame_buffer(len(rest))
    assert view is not None
    assert len(view) == len(rest)
    view[:10] = rest[:10]
    receiver.frame_filled(10)
    assert receiver.events() == []
    view = receiver.frame_buffer(0)  # made already: offered whatever arrived says
    assert view is not None
    view[:] = rest[10:]
    receiver.frame_filled(len(view))
    assert receiver.events() == [Message(payload)]
    assert receiver.frame_rest == 0


@SIDES
def test_frames_that_are_not_read_this_way_say_so(client):
    """Off by default, and for text, compressed or small frames, or when nothing more waits."""
    receiver = Pair.open().side(client)  # permessage-deflate negotiated
    big = random.Random(0).randbytes(3 * LEAST)  # stays large compressed
    cases = {
        "off": (None, frame(BINARY, big, mask=not client), True),
        "text": (LEAST, frame(TEXT, b"a" * 3 * LEAST, mask=not client), True),
        "compressed": (LEAST, frame(BINARY, deflate(big), rsv=4, mask=not client), True),
        "small": (LEAST, frame(BINARY, bytes(LEAST - 1), mask=not client), True),
        "no more waiting": (LEAST, frame(BINARY, big, mask=not client), False),
    }
    for name, (least, wire, more) in cases.items():
        receiver.frame_buffer_min = least
        first, rest = split(wire, len(wire) // 2 if name != "compressed" else 8)
        receiver.receive_data(first, more=more)
        assert receiver.frame_rest == 0, name
        assert receiver.frame_buffer(1 << 30) is None, name
        receiver.receive_data(rest)
        assert len(receiver.events()) == 1, name


def test_filling_without_a_buffer_or_past_its_end_is_refused():
    receiver = Pair.open().server
    receiver.frame_buffer_min = LEAST
    with pytest.raises(UsageError, match="frame_filled"):
        receiver.frame_filled(1)
    first, rest = split(frame(BINARY, bytes(2 * LEAST)), 100)
    receiver.receive_data(first, more=True)
    view = receiver.frame_buffer(len(rest))
    assert view is not None
    for wrong in (-1, len(view) + 1):
        with pytest.raises(UsageError, match="frame_filled"):
            receiver.frame_filled(wrong)
    receiver.frame_filled(0)
    assert receiver.frame_rest == len(rest)


def test_after_the_end_filling_does_nothing():
    receiver = Pair.open().server
    receiver.frame_buffer_min = LEAST
    first, rest = split(frame(BINARY, bytes(2 * LEAST)), 100)
    receiver.receive_data(first, more=True)
    view = receiver.frame_buffer(len(rest))
    assert view is not None
    receiver.receive_eof()
    assert receiver.state is State.CLOSED
    receiver.frame_filled(len(view))  # as receive_data() after the end: ignored
    assert receiver.frame_rest == 0
    assert receiver.frame_buffer(len(rest)) is None
