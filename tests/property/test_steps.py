"""Parsing in steps (``FrameCodec.receive(data, budget)``): the bound it keeps, the events it gives.

With compression, one read may inflate ~1000x; the I/O layer has the core
parse a read in steps and queues each step's events before the next, so that
``max_queue`` bounds memory. These properties state what a step promises,
for any bytes a peer may send (the differential tests' inputs: frames valid
and broken, compressed or not, junk), in any chunking, with any budget:

* the events are exactly those of parsing each chunk at once (a step stops
  only between frames, so even the pieces of fragment delivery are the same);
* one step produces less than ``budget`` bytes of data before its last piece,
  each piece counted with ``PIECE_COST`` (the I/O layer's bound: a step's
  events hold at most the budget plus one frame's inflated bytes);
* a stream of valid compressed messages gives the same messages as the old
  I/O-layer slicing (1 KiB of input per call).
"""

from __future__ import annotations

import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.strategies import chunkings, frame
from tests.property.test_differential import _normal, inbound, setups
from wskit.core._wsproto import InboundEvent
from wskit.core.deflate import DeflateParams, Deflater
from wskit.core.events import Fragment, Message
from wskit.core.frames import PIECE_COST, FrameCodec

# A text piece's str may hold up to 3 more bytes than its raw bytes: a code
# point split between two pieces is decoded with the later one.
UTF8_CARRY = 3


def steps(codec: FrameCodec, chunk: bytes, budget: int, bound: int) -> list[list[InboundEvent]]:
    """Feed ``chunk`` as the I/O layer does: one step, then on until nothing waits."""
    done = [codec.receive(chunk, budget)]
    while codec.has_pending_input:
        assert len(done) <= bound, "a step made no progress"
        done.append(codec.receive(b"", budget))
    return done


def piece_size(event: InboundEvent) -> int:
    assert isinstance(event, Fragment)
    data = event.data
    return len(data.encode() if isinstance(data, str) else data)


@settings(max_examples=300)
@given(data=st.data(), setup=setups(), budget=st.integers(1, 3000))
def test_steps_give_the_same_events_and_keep_the_bound(
    data: st.DataObject, setup: dict, budget: int
) -> None:
    stream = data.draw(inbound(bool(setup["client"]), setup["deflate"]))
    chunks = data.draw(chunkings(stream))
    whole = FrameCodec(**setup)
    stepped = FrameCodec(**setup)
    for chunk in chunks:
        expected = _normal(whole.receive(chunk))
        done = steps(stepped, chunk, budget, bound=len(chunk) + 1)
        assert _normal([event for step in done for event in step]) == expected
        if setup["fragments"]:
            for step in done:
                sizes = [piece_size(e) + PIECE_COST for e in step if isinstance(e, Fragment)]
                assert sum(sizes[:-1]) < budget + UTF8_CARRY
        assert not stepped.has_pending_input


@st.composite
def compressed_stream(draw: st.DrawFn) -> tuple[DeflateParams, bytes, list[Message], int]:
    """Valid compressed messages from a real compressor, some inflating ~1000x, in 1-3 frames.

    Returns the agreed parameters, the stream a client sends, its messages and a budget.
    """
    params = DeflateParams(
        server_no_context_takeover=draw(st.booleans()),
        client_no_context_takeover=draw(st.booleans()),
        server_max_window_bits=draw(st.integers(9, 15)),
        client_max_window_bits=draw(st.integers(9, 15)),
    )
    deflater = Deflater(
        params.client_max_window_bits,
        mem_level=8,
        level=draw(st.integers(0, 9)),
        reset_each_message=params.client_no_context_takeover,
    )
    stream = b""
    messages = []
    for _ in range(draw(st.integers(1, 6))):
        text = draw(st.booleans())
        unit = draw(st.text(max_size=20)).encode() if text else draw(st.binary(max_size=20))
        count = draw(st.sampled_from([1, 10, 3000]))
        # Cut between repeats of the unit: each piece of a text is valid UTF-8.
        cuts = sorted(draw(st.lists(st.integers(0, count), max_size=2)))
        bounds = list(zip([0, *cuts], [*cuts, count], strict=True))
        for index, (low, high) in enumerate(bounds):
            fin = index == len(bounds) - 1
            body = deflater.compress(unit * (high - low), fin=fin)
            opcode = (1 if text else 2) if index == 0 else 0
            mask = draw(st.binary(min_size=4, max_size=4))
            stream += frame(opcode, body, fin=fin, rsv=(index == 0, False, False), mask=mask)
        raw = unit * count
        messages.append(Message(raw.decode() if text else raw))
    return params, stream, messages, draw(st.integers(1, 70_000))


@settings(max_examples=150)
@given(case=compressed_stream())
def test_steps_give_the_messages_of_the_old_slicing(
    case: tuple[DeflateParams, bytes, list[Message], int],
) -> None:
    params, stream, messages, budget = case
    setup = {"client": False, "deflate": params, "max_message": 2**20, "max_fragments": 6}
    sliced = FrameCodec(**setup)  # type: ignore[arg-type]
    old: list[InboundEvent] = []
    for start in range(0, len(stream), 1024):
        old += sliced.receive(stream[start : start + 1024])
    stepped = FrameCodec(**setup)  # type: ignore[arg-type]
    done = steps(stepped, stream, budget, bound=len(stream) + 1)
    assert [event for step in done for event in step] == old == messages


def test_the_budget_bounds_a_read_of_small_bombs() -> None:
    # 200 messages of 1 MiB of zeros, ~1 KiB each on the wire, in one read:
    # unstepped that is 200 MiB at once; in 64 KiB steps, one message a step.
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflater.compress(bytes(2**20)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    wire = frame(2, body[:-4], rsv=(True, False, False), mask=b"abcd") * 200
    params = DeflateParams(True, True, 15, 15)
    codec = FrameCodec(client=False, deflate=params, max_message=2**20, max_fragments=4)
    done = steps(codec, wire, 65536, bound=201)
    assert [len(step) for step in done] == [1] * 200
    assert all(event == Message(bytes(2**20)) for step in done for event in step)
