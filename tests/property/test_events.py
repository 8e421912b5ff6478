"""The codec's quick event builders give the very values the dataclasses build."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.core.events import Fragment, Message, new_fragment, new_message

_DATA = st.one_of(st.text(max_size=20), st.binary(max_size=20))


@given(data=_DATA, fin=st.booleans())
def test_new_fragment_is_the_fragment(data: str | bytes, fin: bool) -> None:
    built = new_fragment(data, fin)
    expected = Fragment(data, fin)
    assert type(built) is Fragment
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    assert built.data is data
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.fin = not fin  # type: ignore[misc]


@given(data=_DATA)
def test_new_message_is_the_message(data: str | bytes) -> None:
    built = new_message(data)
    expected = Message(data)
    assert type(built) is Message
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    assert built.is_text == isinstance(data, str)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.data = b""  # type: ignore[misc]
