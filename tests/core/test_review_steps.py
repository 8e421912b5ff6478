"""Review of the step budget (issue 6): handing a step's unparsed input back to the I/O layer.

When the queue fills mid-read, the I/O layer takes what the core has not
parsed yet (``take_pending_input``) and feeds it again later, ahead of the
next bytes read (``_handoff_data + data``). The property: whatever the
bytes, the chunking, the budget and the points where the rest is taken,
the events are those of parsing, without a budget, the bytes in the order
they were fed (a step stops only between frames, so even pieces match).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.strategies import chunkings
from tests.property.test_differential import _normal, inbound, setups
from wskit.core._wsproto import InboundEvent
from wskit.core.frames import FrameCodec


@settings(max_examples=200)
@given(data=st.data(), setup=setups(), budget=st.integers(1, 64))
def test_input_taken_from_a_step_and_fed_again_gives_the_same_events(
    data: st.DataObject, setup: dict, budget: int
) -> None:
    stream = data.draw(inbound(bool(setup["client"]), setup["deflate"]))
    chunks = data.draw(chunkings(stream))
    oracle = FrameCodec(**setup)
    stepped = FrameCodec(**setup)
    carry = b""
    parsed_so_far = b""  # what the stepped codec parsed, in order
    rounds = iter(chunks)
    while True:
        # The next read, or (after the last one) what was handed over alone.
        chunk = next(rounds, None)
        if chunk is None and not carry:
            break
        fed, carry = carry + (chunk or b""), b""
        if not fed:
            continue
        got: list[InboundEvent] = stepped.receive(fed, budget)
        while stepped.has_pending_input:
            if data.draw(st.booleans(), label="hand the rest over"):
                carry = stepped.take_pending_input()
                assert carry  # a step stops only with input left
                assert not stepped.has_pending_input
                break
            got += stepped.receive(b"", budget)
        parsed = fed[: len(fed) - len(carry)]
        assert parsed  # every call makes progress
        parsed_so_far += parsed
        assert _normal(got) == _normal(oracle.receive(parsed))
    assert not stepped.has_pending_input
    # Nothing lost, duplicated or reordered by the hand-overs.
    assert parsed_so_far == stream
