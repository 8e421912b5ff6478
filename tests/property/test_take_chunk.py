"""``take_chunk``: how the lean stream hands its buffered segments to ``receive()``.

For any segments read and any ``max_bytes``, the chunks taken one after the
other are the bytes read, in order, each within ``max_bytes``. Small
segments are joined as far as :data:`MERGE_UP_TO` allows, and a chunk above
it is never a copy of several segments: a large segment leaves as it came.
"""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from wskit.backends.lean import MERGE_UP_TO, take_chunk

_MAX_BYTES = st.sampled_from([7, 1000, MERGE_UP_TO, 262_144, 1 << 20])


@st.composite
def _reads(draw: st.DrawFn) -> tuple[list[int], int]:
    """Segment sizes, and a max_bytes that cuts the largest in at most ~100 chunks."""
    max_bytes = draw(_MAX_BYTES)
    largest = min(300_000, max_bytes * 100)
    sizes = st.one_of(
        st.integers(1, 64),
        st.integers(MERGE_UP_TO - 64, MERGE_UP_TO + 64).filter(lambda size: size <= largest),
        st.integers(1, largest),
    )
    return draw(st.lists(sizes, min_size=1, max_size=10)), max_bytes


@given(reads=_reads())
def test_chunks_are_the_bytes_read_in_order_within_bounds(reads: tuple[list[int], int]) -> None:
    sizes, max_bytes = reads
    segments = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    buffer = deque(segments)
    taken: list[bytes] = []
    while buffer:
        before = list(buffer)
        chunk = take_chunk(buffer, max_bytes)
        taken.append(chunk)
        assert 0 < len(chunk) <= max_bytes
        first = before[0]
        if len(chunk) > len(first):
            # Several segments were joined: only small ones, as a whole.
            assert len(chunk) <= MERGE_UP_TO
        else:
            # One segment, or the first max_bytes of it.
            assert chunk == first[: len(chunk)]
            if chunk is not first:
                assert len(chunk) == max_bytes
        # Joined as far as allowed: the next segment would not have fitted.
        if buffer and len(chunk) < max_bytes:
            assert len(chunk) + len(buffer[0]) > min(max_bytes, MERGE_UP_TO)
    assert b"".join(taken) == b"".join(segments)


def test_a_large_segment_leaves_without_a_copy() -> None:
    segment = bytes(MERGE_UP_TO * 4)
    buffer = deque([segment, b"x"])
    assert take_chunk(buffer, 1 << 20) is segment
    assert list(buffer) == [b"x"]
