"""The spare buffers large frames are read into: reused, never shared by two frames at once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wskit.core import spare_buffers
from wskit.core.spare_buffers import KEEP, KEEP_UP_TO, give_back, take

# Sizes around the largest kept, and small ones that reuse larger spares.
sizes = st.integers(1, 4096) | st.sampled_from([KEEP_UP_TO - 1, KEEP_UP_TO, KEEP_UP_TO + 1])
steps = st.lists(st.tuples(st.booleans(), sizes, st.integers(0, 7)), max_size=30)


@given(steps=steps)
def test_buffers_taken_at_once_never_share_memory_and_few_are_kept(
    steps: list[tuple[bool, int, int]],
) -> None:
    """Any interleaving of takes and give-backs (``True``: take one of ``size``
    bytes; ``False``: give back the live one at ``index``): every view has
    the size asked for, writing one never changes another, and the spares
    kept stay within KEEP buffers of at most KEEP_UP_TO bytes."""
    live: list[tuple[memoryview, int]] = []  # each view, and the byte written all over it
    for serial, (taking, size, index) in enumerate(steps):
        if taking or not live:
            view = take(size)
            assert len(view) == size
            assert not view.readonly
            mark = serial % 251
            view[:] = bytes([mark]) * size
            live.append((view, mark))
        else:
            view, _ = live.pop(index % len(live))
            give_back(view)
        for view, mark in live:
            assert view[:1] == bytes([mark])
            assert view[-1:] == bytes([mark])
        kept = spare_buffers._spares
        assert len(kept) <= KEEP
        assert all(len(spare) <= KEEP_UP_TO for spare in kept)
    for view, _ in live:
        give_back(view)
