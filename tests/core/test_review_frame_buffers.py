"""Review of frame buffers: steps, input handed back and the Connection's paths, against wsproto.

``tests/property/test_frame_buffer.py`` mixes reads into the buffer with
``receive()`` calls that parse everything. An I/O layer on a compressed
connection parses in steps (a budget) and may take back the input a step
left (``take_pending_input``) to feed it later, as the pull mode hands it to
the reader task; these properties mix all of that in, and state:

* the events are wsproto's for the same bytes, whatever the mix;
* while input a step left waits, or was taken back and not fed again, no
  frame buffer is offered: bytes read into it would overtake older ones.

The connection-level tests check what ``Connection`` adds on top of the
codec: the held bytes of a large frame survive ``receive_data(b"")``, and a
close or failure while a frame waits ends the connection with the right code.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.frames import BINARY, CLOSE, PING, close_payload, frame
from tests.pairs import Pair
from tests.property.test_differential import EXAMPLES, MASKERS, _normal, using
from tests.property.test_frame_buffer import _joined, large_stream, setups, thresholds
from wskit.core import CloseReceived, Message, Ping, State, Terminated
from wskit.core._wsproto import FrameEngine
from wskit.core.frames import FrameCodec

LEAST = 1000


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=max(1, EXAMPLES // 4), deadline=None)
@given(data=st.data(), least=thresholds)
def test_steps_and_input_taken_back_keep_the_events_of_wsproto(
    masker: str, data: st.DataObject, least: int
) -> None:
    # Without fragments, the events do not depend on how the bytes were cut
    # (the input taken back is fed again joined to newer bytes: other cuts
    # than the transport's), so wsproto may take the stream in one go.
    setup = {**data.draw(setups(least)), "fragments": False}
    client = bool(setup["client"])
    stream = data.draw(large_stream(not client, setup["deflate"] is not None, least))
    oracle = FrameEngine(**setup)  # type: ignore[arg-type]
    codec = FrameCodec(**setup, frame_buffer_min=least)  # type: ignore[arg-type]
    budgets = st.none() | st.integers(1, 3 * least)
    expected: list[object] = list(oracle.receive(stream))
    got: list[object] = []
    rest = memoryview(stream)
    carry = b""  # input taken back from the codec, to be fed before anything newer
    with using(masker):
        while rest or carry or codec.has_pending_input:
            if carry or codec.has_pending_input:
                # Older bytes wait: a buffer read now would put newer ones first.
                assert codec.frame_rest == 0
            action = data.draw(st.sampled_from(["receive", "buffer", "step", "take"]))
            if action == "buffer" and codec.frame_rest and rest:
                lacking = codec.frame_rest
                view = codec.frame_buffer(data.draw(st.sampled_from([lacking, len(rest)])))
                if view is None:
                    continue
                count = min(len(view), len(rest)) - data.draw(st.integers(0, 3))
                count = max(0, count)
                view[:count] = rest[:count]
                rest = rest[count:]
                got += codec.frame_filled(count)
            elif action == "take" and codec.has_pending_input:
                carry = codec.take_pending_input() + carry
                assert not codec.has_pending_input
            elif action == "step" and codec.has_pending_input:
                got += codec.receive(b"", data.draw(budgets), more=data.draw(st.booleans()))
            elif rest or carry:
                # The simplest case reads it all; reads of up to 2 thresholds cut frames.
                count = data.draw(
                    st.sampled_from([len(rest), min(len(rest), least)])
                    | st.integers(min(1, len(rest)), min(len(rest), 2 * least)),
                    label="chunk",
                )
                fed = carry + bytes(rest[:count])
                carry = b""
                rest = rest[count:]
                got += codec.receive(fed, data.draw(budgets), more=data.draw(st.booleans()))
            else:
                got += codec.receive(b"", data.draw(budgets))
        got += codec.receive(b"")  # a piece still held comes now
    assert _joined(_normal(got)) == _joined(_normal(expected))


def _held_pair(client: bool) -> tuple[Pair, bytes]:
    """A pair whose receiving side holds the start of a large binary frame; returns its rest."""
    pair = Pair.open()
    receiver = pair.side(client)
    receiver.frame_buffer_min = LEAST
    wire = frame(BINARY, bytes(range(256)) * 12, mask=not client)
    receiver.receive_data(wire[:700], more=True)
    assert receiver.events() == []
    assert receiver.frame_rest == len(wire) - 700
    return pair, wire[700:]


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_held_bytes_survive_an_empty_feed_and_come_with_the_next(client: bool) -> None:
    """``receive_data(b"")`` (what a step's loop feeds) neither loses nor reorders them."""
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    receiver.receive_data(b"")
    receiver.receive_data(b"", more=True)
    assert receiver.events() == []
    receiver.receive_data(rest[:10], more=True)
    receiver.receive_data(rest[10:] + frame(PING, b"p", mask=not client))
    assert receiver.events() == [Message(bytes(range(256)) * 12), Ping(b"p")]


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_a_close_frame_after_a_buffered_frame_ends_normally(client: bool) -> None:
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    view = receiver.frame_buffer(len(rest) + 8)
    assert view is not None
    view[:100] = rest[:100]
    receiver.frame_filled(100)
    # The rest of the frame and a close frame in one receive_data call: the
    # buffer takes its part first, in order.
    receiver.receive_data(rest[100:] + frame(CLOSE, close_payload(1000), mask=not client))
    events = receiver.events()
    assert events[0] == Message(bytes(range(256)) * 12)
    assert isinstance(events[1], CloseReceived)
    assert events[1].code == 1000


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
@pytest.mark.parametrize("cut", ["held", "buffer"])
def test_eof_while_a_frame_waits_terminates_with_1006(client: bool, cut: str) -> None:
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    if cut == "buffer":
        view = receiver.frame_buffer(len(rest))
        assert view is not None
        view[:5] = rest[:5]
        receiver.frame_filled(5)
    receiver.receive_eof()
    events = receiver.events()
    assert [type(event) for event in events] == [Terminated]
    assert events[0].code == 1006  # type: ignore[attr-defined]
    assert receiver.state is State.CLOSED
    # A late read into the buffer changes nothing once closed.
    receiver.frame_filled(0)
    assert receiver.events() == []


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_a_frame_that_breaks_a_rule_after_a_buffered_one_fails_after_its_message(
    client: bool,
) -> None:
    """The buffered message comes first; the broken frame behind it still fails (1002)."""
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    view = receiver.frame_buffer(len(rest))
    assert view is not None
    view[:] = rest
    receiver.frame_filled(len(rest))
    receiver.receive_data(frame(0, b"x", mask=not client))  # a continuation of nothing
    events = receiver.events()
    assert events[0] == Message(bytes(range(256)) * 12)
    assert isinstance(events[-1], Terminated)
    assert events[-1].code == 1002


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_frame_rest_is_0_once_frame_buffer_min_is_none(client: bool) -> None:
    """Turned off while a frame's bytes wait for their rest: no buffer is offered for it."""
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    receiver.frame_buffer_min = None
    assert receiver.frame_rest == 0
    assert receiver.frame_buffer(len(rest)) is None


@pytest.mark.parametrize("client", [False, True], ids=["server", "client"])
def test_turning_frame_buffers_off_mid_frame_loses_nothing(client: bool) -> None:
    """Turned off while bytes wait: they still come, in order, with the next."""
    pair, rest = _held_pair(client)
    receiver = pair.side(client)
    receiver.frame_buffer_min = None
    receiver.receive_data(rest)
    assert receiver.events() == [Message(bytes(range(256)) * 12)]
    assert receiver.frame_rest == 0
