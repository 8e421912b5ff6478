"""Large frames read into a buffer of their own, against wsproto, the oracle.

With ``frame_buffer_min`` set, a binary message in one large frame that one
read holds only part of may have its rest read straight into a buffer
(``FrameCodec.frame_buffer``/``frame_filled``) instead of arriving through
``receive()``. Whatever an I/O layer does, for any stream of frames (large
binary messages in one frame or several, control frames between them, large
text, compressed and broken frames around them) and any mix of reads into
the buffer and plain ``receive()`` calls, in any sizes:

* without ``fragments``, every call returns the events wsproto returns for
  the same bytes; with it, the same events once the pieces of one frame that
  arrived together are joined (a piece may wait for the frame's next bytes,
  when ``receive(more=True)`` says that they are there already);
* the buffer is offered exactly when the bytes said to have arrived cover
  what the frame lacks: a peer gets no more memory held for it than it has
  sent.

Both maskers run, as in ``test_differential.py``. The threshold is drawn
small, so that large frames cost little here.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.strategies import frame
from tests.property.test_differential import EXAMPLES, MASKERS, _normal, deflate_params, using
from wskit.core._wsproto import FrameEngine
from wskit.core.events import Fragment
from wskit.core.frames import HOLD_FACTOR, FrameCodec

thresholds = st.sampled_from([1024, 126, 65536]) | st.integers(1, 4096)


def _payload(draw: st.DrawFn, size: int) -> bytes:
    return random.Random(draw(st.integers(0, 2**32))).randbytes(size)


@st.composite
def large_stream(draw: st.DrawFn, masked: bool, deflate: bool, least: int) -> bytes:
    """Frames a peer might send, with large binary ones among them."""
    large = st.sampled_from([least - 1, least, least + 1]) | st.integers(least, 3 * least)
    out = b""

    def key() -> bytes | None:
        return draw(st.binary(min_size=4, max_size=4)) if masked else None

    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["binary"] * 3 + ["fragmented"] * 2 + ["text", "small", "odd"]))
        if kind == "binary":
            out += frame(2, _payload(draw, max(0, draw(large))), mask=key())
        elif kind == "fragmented":
            # A binary message in 2-3 frames, large or small, a ping between.
            count = draw(st.integers(2, 3))
            for index in range(count):
                size = max(0, draw(large | st.integers(0, 10)))
                opcode = 2 if index == 0 else 0
                out += frame(opcode, _payload(draw, size), fin=index == count - 1, mask=key())
                if draw(st.booleans()):
                    out += frame(9, b"p", mask=key())
        elif kind == "text":  # never read into a buffer: its UTF-8 is checked as it comes
            size = max(0, draw(large))
            text = (draw(st.sampled_from(["a", "\u00e9"])) * size).encode()[:size]
            out += frame(1, text, mask=key())
        elif kind == "small":
            out += frame(2, _payload(draw, draw(st.integers(0, 300))), mask=key())
        else:
            # A large frame that breaks a rule, or a compressed one: the
            # buffer must not hide the failure, nor take an inflated message.
            odd = draw(st.sampled_from(["continuation", "unfinished", "rsv1", "mask"]))
            payload = _payload(draw, max(0, draw(large)))
            if odd == "continuation":
                out += frame(0, payload, mask=key())
            elif odd == "unfinished":  # a new message before the last one ended
                out += frame(2, b"x", fin=False, mask=key()) + frame(2, payload, mask=key())
            elif odd == "rsv1":
                out += frame(2, payload, rsv=(True, False, False), mask=key())
            else:  # the wrong mask bit for this side
                out += frame(2, payload, mask=None if masked else b"abcd")
    return out


@st.composite
def setups(draw: st.DrawFn, least: int) -> dict[str, object]:
    """Keyword arguments that both engines take, with limits around the sizes drawn."""
    return {
        "client": draw(st.booleans()),
        "deflate": draw(deflate_params()),
        "max_message": draw(st.one_of(st.none(), st.integers(max(0, least - 1), 4 * least))),
        "max_fragments": draw(st.integers(1, 4)),
        "fragments": draw(st.integers(0, 3)) == 0,
    }


def _joined(events: list[object]) -> list[object]:
    """Events with the adjacent pieces of one message joined (how ``fragments`` are compared)."""
    out: list[object] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Fragment) and isinstance(last, Fragment) and not last.fin:
            out[-1] = Fragment(last.data + event.data, event.fin)  # type: ignore[operator]
        else:
            out.append(event)
    return out


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=max(1, EXAMPLES // 2), deadline=None)
@given(data=st.data(), least=thresholds)
def test_reading_into_the_frame_buffer_matches_wsproto(
    masker: str, data: st.DataObject, least: int
) -> None:
    setup = data.draw(setups(least))
    client = bool(setup["client"])
    stream = data.draw(large_stream(not client, setup["deflate"] is not None, least))
    oracle = FrameEngine(**setup)  # type: ignore[arg-type]
    codec = FrameCodec(**setup, frame_buffer_min=least)  # type: ignore[arg-type]
    expected: list[object] = []
    got: list[object] = []
    rest = memoryview(stream)
    with using(masker):
        while rest:
            lacking = codec.frame_rest
            if lacking and data.draw(st.sampled_from([True, False]), label="read into the buffer"):
                arrived = data.draw(
                    st.sampled_from([len(rest), lacking, lacking - 1]) | st.integers(0, len(rest)),
                    label="arrived",
                )
                fresh = codec._buffer is None  # else one is offered whatever arrived
                view = codec.frame_buffer(arrived)
                if view is None:
                    assert fresh
                    assert arrived < lacking
                    continue
                assert len(view) == lacking
                assert arrived >= lacking or not fresh
                most = min(len(view), len(rest))
                count = most - data.draw(st.integers(0, most), label="read short by")
                view[:count] = rest[:count]
                now = list(codec.frame_filled(count))
            else:
                # The simplest case reads it all; reads of up to 2 thresholds cut frames.
                count = data.draw(
                    st.sampled_from(
                        [len(rest), min(len(rest), least), min(len(rest), 1 + least // 2)]
                    )
                    | st.integers(1, min(len(rest), 2 * least)),
                    label="chunk",
                )
                more = data.draw(st.sampled_from([True, False]), label="more")
                now = list(codec.receive(bytes(rest[:count]), more=more))
            then = list(oracle.receive(bytes(rest[:count])))
            rest = rest[count:]
            if not setup["fragments"]:
                assert _normal(now) == _normal(then)
            got += now
            expected += then
        got += codec.receive(b"")  # a piece still waiting comes now
    assert _joined(_normal(got)) == _joined(_normal(expected))


@given(
    least=thresholds,
    size=st.integers(1, 3 * 4096),
    sent=st.integers(0, 3 * 4096),
    arrived=st.integers(0, 3 * 4096),
)
def test_a_frame_buffer_is_never_made_for_bytes_not_arrived(
    least: int, size: int, sent: int, arrived: int
) -> None:
    codec = FrameCodec(
        client=False, deflate=None, max_message=None, max_fragments=8, frame_buffer_min=least
    )
    wire = frame(2, bytes(size), mask=b"\x01\x02\x03\x04")
    header = len(wire) - size
    sent = min(sent, size - 1, HOLD_FACTOR * least)  # part of the frame only, all held
    assert codec.receive(wire[: header + sent], more=True) == []
    if size < least:
        assert codec.frame_rest == 0
        assert codec.frame_buffer(arrived) is None
        return
    assert codec.frame_rest == size - sent
    view = codec.frame_buffer(arrived)
    assert (view is None) == (arrived < size - sent)
    if view is not None:
        view[:] = wire[header + sent :]
        [message] = codec.frame_filled(len(view))
        assert message.data == bytes(size)  # type: ignore[union-attr]
        assert codec.frame_rest == 0


@st.composite
def binary_stream(draw: st.DrawFn, masked: bool, least: int) -> bytes:
    """Binary messages only, most of them large, in one frame or several, pongs between."""
    out = b""
    for _ in range(draw(st.integers(1, 4))):
        count = draw(st.sampled_from([1, 1, 2, 3]))
        for index in range(count):
            key = draw(st.binary(min_size=4, max_size=4)) if masked else None
            size = draw(st.integers(least, 3 * least) | st.integers(0, least))
            out += frame(
                2 if index == 0 else 0, _payload(draw, size), fin=index == count - 1, mask=key
            )
            if draw(st.booleans()):
                out += frame(10, b"", mask=key)
    return out


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=max(1, EXAMPLES // 4), deadline=None)
@given(data=st.data(), client=st.booleans(), least=thresholds)
def test_a_reader_that_takes_every_buffer_offered_matches_wsproto(
    masker: str, data: st.DataObject, client: bool, least: int
) -> None:
    """As wskit's Trio reader does: reads of ``least`` bytes, and the buffer whenever offered.

    The bytes arrive in bursts: ``arrived`` is what the peer has sent and
    the reader has not read yet.
    """
    stream = data.draw(binary_stream(not client, least))
    oracle = FrameEngine(client=client, deflate=None, max_message=None, max_fragments=8)
    codec = FrameCodec(
        client=client, deflate=None, max_message=None, max_fragments=8, frame_buffer_min=least
    )
    read = 0
    sent = 0
    with using(masker):
        while read < len(stream):
            if sent == read or data.draw(st.booleans(), label="more arrives"):
                burst = 4 * least - data.draw(st.integers(0, 4 * least - 1), label="short")
                sent = min(len(stream), sent + burst)
            view = codec.frame_buffer(sent - read) if codec.frame_rest else None
            if view is not None:
                count = min(len(view), sent - read)
                view[:count] = stream[read : read + count]
                got = codec.frame_filled(count)
            else:
                count = min(least, sent - read)
                got = codec.receive(stream[read : read + count], more=sent - read > count)
            expected = oracle.receive(stream[read : read + count])
            assert _normal(list(got)) == _normal(list(expected))
            read += count
    assert codec.frame_rest == 0


@given(data=st.data(), least=st.integers(1, 64) | st.integers(1, 4096))
def test_the_bytes_held_for_a_buffer_never_pass_the_hold_factor(
    data: st.DataObject, least: int
) -> None:
    """Fed with ``more=True`` and never asked for its buffer, a codec holds at most
    ``HOLD_FACTOR * frame_buffer_min`` bytes of a frame, from at most HOLD_FACTOR
    calls: the rest is delivered.

    Held bytes are what the peer sent and no piece shows yet: the payload fed
    less what the pieces (``fragments``) delivered.
    """
    codec = FrameCodec(
        client=False,
        deflate=None,
        max_message=None,
        max_fragments=8,
        fragments=True,
        frame_buffer_min=least,
    )
    size = data.draw(st.integers(1, 6 * least), label="size")
    chunks = data.draw(st.lists(st.integers(1, 3 * least), min_size=1, max_size=40))
    wire = frame(2, random.Random(size).randbytes(size), mask=b"\x01\x02\x03\x04")
    header = len(wire) - size
    read = 0
    delivered = b""
    for chunk in chunks:
        if read >= len(wire):
            break
        events = codec.receive(wire[read : read + chunk], more=True)
        read += len(wire[read : read + chunk])
        pieces = [e.data for e in events if isinstance(e, Fragment)]
        delivered += b"".join(pieces)  # type: ignore[arg-type]
        held = max(0, read - header) - len(delivered)
        assert 0 <= held <= HOLD_FACTOR * least
        # What is released comes as the pieces of at most HOLD_FACTOR calls,
        # then this one's: a peer sending a byte per read gets no more.
        assert len(pieces) <= HOLD_FACTOR + 1
    if read >= len(wire):
        assert delivered == random.Random(size).randbytes(size)
