"""Hypothesis strategies for WebSocket messages, frames and the ways bytes arrive.

Needs hypothesis (``pip install wskit[test]``). Typical use in a plugin's
property test::

    from hypothesis import given
    from wskit.testing import strategies as ws_st

    @given(ws_st.messages())
    def test_my_plugin_never_raises(message): ...
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import strategies as st

from .frames import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, encode_frame

__all__ = [
    "Frame",
    "binary_messages",
    "chunked",
    "close_codes",
    "frames",
    "json_texts",
    "messages",
    "text_messages",
]

_SENDABLE_CODES = sorted({1000, 1001, 1002, 1003, *range(1007, 1015)})


def text_messages(max_size: int = 1024) -> st.SearchStrategy[str]:
    """Text messages: any encodable code point (astral planes included, no surrogates)."""
    return st.text(st.characters(codec="utf-8"), max_size=max_size)


def binary_messages(max_size: int = 1024) -> st.SearchStrategy[bytes]:
    """Binary messages of up to ``max_size`` bytes."""
    return st.binary(max_size=max_size)


def messages(max_size: int = 1024) -> st.SearchStrategy[str | bytes]:
    """Text or binary messages (``str`` or ``bytes``), as ``recv()`` returns them."""
    return st.one_of(text_messages(max_size), binary_messages(max_size))


def json_texts(max_leaves: int = 20) -> st.SearchStrategy[str]:
    """Valid JSON documents as text: nested objects and arrays of JSON scalars."""
    import json  # noqa: PLC0415  (only this strategy needs it)

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**53), 2**53),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    values = st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=max_leaves,
    )
    return values.map(json.dumps)


def close_codes() -> st.SearchStrategy[int]:
    """Close codes an endpoint may send: the registered ones and 3000-4999."""
    return st.one_of(st.sampled_from(_SENDABLE_CODES), st.integers(3000, 4999))


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame's fields; :meth:`encode` gives its bytes (see :func:`encode_frame`)."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    mask: bytes | None = b"\x00\x00\x00\x00"

    def encode(self) -> bytes:
        """The frame's bytes on the wire."""
        return encode_frame(self.opcode, self.payload, fin=self.fin, rsv=self.rsv, mask=self.mask)


def frames(*, masked: bool = True, valid: bool = True) -> st.SearchStrategy[Frame]:
    """Single frames, as a client (``masked=True``) or a server would send them.

    Args:
        masked: draw a masking key (client frames) or send unmasked (server frames).
        valid: only frames a conforming peer may send on their own (complete
            data frames, control frames of at most 125 bytes); False adds
            reserved opcodes, RSV bits, unfinished and continuation frames
            and oversized control frames.
    """
    keys = st.binary(min_size=4, max_size=4) if masked else st.none()
    data = st.builds(
        Frame,
        opcode=st.sampled_from([TEXT, BINARY]),
        payload=st.binary(max_size=512),
        mask=keys,
    ).filter(lambda f: f.opcode != TEXT or _is_utf8(f.payload))
    control = st.builds(
        Frame,
        opcode=st.sampled_from([PING, PONG]),
        payload=st.binary(max_size=125),
        mask=keys,
    )
    if valid:
        return st.one_of(data, control)
    anything = st.builds(
        Frame,
        opcode=st.one_of(
            st.sampled_from([CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG]),
            st.integers(0, 15),
        ),
        payload=st.binary(max_size=300),
        fin=st.booleans(),
        rsv=st.integers(0, 7),
        mask=keys,
    )
    return st.one_of(data, control, anything)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split at drawn points: the ways TCP may deliver the same bytes.

    Joining the chunks gives ``data`` back; no chunk is empty.
    """
    if len(data) < 2:
        return [data] if data else []
    cuts = draw(st.sets(st.integers(1, len(data) - 1), max_size=min(len(data) - 1, 32)))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
