"""Validate: JSON Schema on text messages; bounded, non-echoing error messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wskit
from wskit.plugins import Validate
from wskit.testing import pair
from wskit.testing import strategies as ws_st

pytestmark = pytest.mark.anyio

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"type": {"const": "say"}, "text": {"type": "string", "maxLength": 100}},
    "required": ["type", "text"],
    "additionalProperties": False,
}


async def closed_with(plugin: Validate, message: str | bytes) -> tuple[int, str]:
    async with pair(plugins=[plugin]) as p:
        await p.client.send(message)
        with pytest.raises(wskit.ConnectionClosedError) as caught:
            await p.client.recv()
    return caught.value.code, caught.value.reason


async def test_valid_messages_pass() -> None:
    async with pair(plugins=[Validate(SCHEMA)]) as p:
        message = json.dumps({"type": "say", "text": "hi"})
        await p.client.send(message)
        assert await p.client.recv() == message


async def test_invalid_json_closes_1007_without_quoting_it() -> None:
    code, reason = await closed_with(Validate(SCHEMA), '{"type": "say", "text": "secret-x')
    assert code == 1007
    assert reason.startswith("invalid JSON: ")
    assert "secret" not in reason


async def test_schema_violation_closes_1008_saying_where_and_which_rule() -> None:
    code, reason = await closed_with(Validate(SCHEMA), json.dumps({"type": "say", "text": 5}))
    assert (code, reason) == (1008, 'schema violation at $.text: type "string"')


async def test_a_huge_hostile_message_gets_a_bounded_error() -> None:
    hostile_key = "k" * 100_000
    message = json.dumps({"type": "say", "text": "x", hostile_key: "v" * 100_000})
    code, reason = await closed_with(Validate(SCHEMA), message)
    assert code == 1008
    assert len(reason.encode()) <= 123
    assert "k" * 50 not in reason


async def test_deep_nesting_is_invalid_json_not_a_crash() -> None:
    code, reason = await closed_with(Validate(SCHEMA), "[" * 200_000 + "]" * 200_000)
    assert (code, reason) == (1007, "invalid JSON: nested too deeply")


async def test_reply_mode_answers_and_keeps_the_connection() -> None:
    async with pair(plugins=[Validate(SCHEMA, on_invalid="reply")]) as p:
        await p.client.send("not json")
        reply = json.loads(await p.client.recv())
        assert reply["error"] == "invalid message"
        assert reply["detail"].startswith("invalid JSON")
        ok = json.dumps({"type": "say", "text": "still open"})
        await p.client.send(ok)
        assert await p.client.recv() == ok


async def test_drop_mode_discards_silently() -> None:
    async with pair(plugins=[Validate(SCHEMA, on_invalid="drop")]) as p:
        await p.client.send("{}")
        ok = json.dumps({"type": "say", "text": "after"})
        await p.client.send(ok)
        assert await p.client.recv() == ok


async def test_binary_is_refused_1003_unless_allowed() -> None:
    assert await closed_with(Validate(SCHEMA), b"\x00") == (
        1003,
        "binary messages are not accepted here",
    )
    async with pair(plugins=[Validate(SCHEMA, binary="pass")]) as p:
        await p.client.send(b"\x00")
        assert await p.client.recv() == b"\x00"


def test_an_invalid_schema_fails_at_construction() -> None:
    with pytest.raises(wskit.UsageError, match="not a valid JSON Schema"):
        Validate({"type": "no-such-type"})


ANYTHING_OBJECT = Validate({"type": "object"})


@given(ws_st.json_texts())
def test_any_json_document_gets_a_verdict_matching_its_type(document: str) -> None:
    problem = ANYTHING_OBJECT.problem(document)
    is_object = isinstance(json.loads(document), dict)
    assert (problem is None) == is_object
    if problem is not None:
        assert problem[0] == 1008


@given(st.text(max_size=300))
def test_any_text_gets_a_bounded_answer(text: str) -> None:
    problem = Validate(SCHEMA).problem(text)
    if problem is not None:
        code, reason = problem
        assert code in (1007, 1008)
        assert len(reason.encode()) <= 123
