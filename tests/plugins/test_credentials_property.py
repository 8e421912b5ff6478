"""Credential sources on hostile input: a credential or a clean refusal, no secret left."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.core import Request
from wskit.plugins.credentials import (
    Bearer,
    Cookie,
    MalformedCredential,
    Query,
    Subprotocol,
    read_basic,
)

# Header values as the core lets them through: visible ASCII, spaces and tabs.
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"), max_size=80)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


def request(
    *headers: tuple[str, str], target: str = "/", subprotocols: tuple[str, ...] = ()
) -> Request:
    return Request(target=target, headers=headers, subprotocols=subprotocols)


@given(st.lists(values, max_size=3))
def test_any_authorization_headers_give_a_token_none_or_malformed(header_values: list[str]) -> None:
    req = request(*(("Authorization", v) for v in header_values))
    for take in (Bearer().take, read_basic):
        try:
            found = take(req)
        except MalformedCredential:
            assert len(header_values) > 1 or header_values[0].strip().lower().startswith("basic")
            continue
        if found is not None:
            rest = found.request if hasattr(found, "request") else found[1]
            assert rest.header("authorization") is None  # the secret is gone


@given(tokens.filter(lambda t: ";" not in t and "=" not in t), st.lists(values, max_size=2))
def test_a_cookie_is_found_among_any_others(token: str, others: list[str]) -> None:
    cookie = "; ".join([*others, f"session={token}"])
    found = Cookie("session").take(request(("Cookie", cookie)))
    assert found is not None
    # The first "session" cookie wins; ours is last, so it is found unless
    # another value happens to carry one too.
    if not any("session=" in other for other in others):
        assert found.credential == token.strip().strip('"')


@given(st.text(max_size=60), tokens)
def test_a_query_token_is_taken_out_of_the_target(rest: str, token: str) -> None:
    query = urllib.parse.urlencode([("room", rest), ("access_token", token)])
    try:
        found = Query().take(request(target=f"/chat?{query}"))
    except MalformedCredential:
        pytest.fail("one access_token parameter is not malformed")
    assert found is not None
    assert found.credential == token
    assert "access_token" not in found.request.target
    assert urllib.parse.parse_qs(found.request.query).get("room", [""]) == (
        [rest] if rest else [""]
    )


@given(
    st.lists(tokens.filter(lambda t: "," not in t), max_size=4),
    tokens.filter(lambda t: "," not in t),
)
def test_a_subprotocol_token_never_stays_in_the_offer(offered: list[str], token: str) -> None:
    clean = [p for p in offered if not p.startswith("bearer.")]
    req = request(subprotocols=(*clean, f"bearer.{token}"))
    found = Subprotocol().take(req)
    assert found is not None
    assert found.credential == token
    assert all(not p.startswith("bearer.") for p in found.request.subprotocols)
    assert f"bearer.{token}" not in (found.request.header("sec-websocket-protocol") or "")
