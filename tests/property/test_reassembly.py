"""``Reassembly``: the pieces of a message, joined, in bounded memory.

Whatever the pieces (text or binary, large or tiny, in any order of sizes),
``finish()`` returns exactly their concatenation, of the message's type, and
leaves the object empty for the next message. The pieces it holds meanwhile
never amount to one object per small piece: every object it keeps is either
a large piece or a run of small ones between two large pieces.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wskit.core.reassembly import KEEP_WHOLE, Reassembly

_SIZES = st.one_of(
    st.integers(0, 8),
    st.integers(KEEP_WHOLE - 2, KEEP_WHOLE + 2),
    st.integers(0, 3 * KEEP_WHOLE),
)


@st.composite
def _pieces(draw: st.DrawFn) -> list[str] | list[bytes]:
    sizes = draw(st.lists(_SIZES, min_size=1, max_size=12))
    if draw(st.booleans()):
        # Multi-byte characters: a str's length is not its size in UTF-8.
        alphabet = draw(st.sampled_from(["a", "é", "€", "😀"]))
        return [alphabet * size for size in sizes]
    return [bytes([index % 251]) * size for index, size in enumerate(sizes)]


def _held_objects(assembly: Reassembly) -> int:
    """The objects the assembly holds: kept pieces, plus its open small-piece buffer."""
    parts = assembly._parts
    count = 1 if parts is None else len(parts)
    return count + (assembly._binary is not None) + (assembly._text is not None)


@given(messages=st.lists(_pieces(), min_size=1, max_size=3))
def test_finish_returns_the_concatenation_of_the_pieces(
    messages: list[list[str] | list[bytes]],
) -> None:
    assembly = Reassembly()
    for pieces in messages:
        assert assembly.empty
        for piece in pieces:
            assembly.add(piece)
            assert not assembly.empty
        result = assembly.finish()
        expected = pieces[0][:0].join(pieces)  # type: ignore[arg-type]
        assert type(result) is type(expected)
        assert result == expected
        assert assembly.empty


@given(pieces=_pieces())
def test_objects_held_stay_within_one_per_large_piece(pieces: list[str] | list[bytes]) -> None:
    assembly = Reassembly()
    large = 0
    for piece in pieces:
        assembly.add(piece)
        large += len(piece) >= KEEP_WHOLE
        # Each run of small pieces is one object, and a run lies before or
        # after a large piece: at most one run more than large pieces.
        assert _held_objects(assembly) <= 2 * large + 1


def test_a_message_in_many_tiny_pieces_is_held_in_one_buffer() -> None:
    assembly = Reassembly()
    for _ in range(10_000):
        assembly.add(b"x")
    assert _held_objects(assembly) <= 2
    assert assembly.finish() == b"x" * 10_000


def test_a_large_single_piece_is_returned_without_a_copy() -> None:
    assembly = Reassembly()
    piece = bytes(KEEP_WHOLE * 4)
    assembly.add(piece)
    assert assembly.finish() is piece
