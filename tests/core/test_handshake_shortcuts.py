"""The handshake's shortcuts give what the general code gives.

The key check accepts the one form a valid key takes without decoding it,
``accept()`` fills in the 101 without ``render_response()`` and caches its
answers to deflate offers, and header values, request targets and hosts are
checked with whole-string operations.
These properties compare each with the general rule it stands in for.
"""

from __future__ import annotations

import base64
import binascii

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.frames import upgrade_request
from wskit.core import ClientConnection, Config, DeflateOptions, ServerConnection
from wskit.core.connection import _header_pairs
from wskit.core.deflate import server_accept_offer
from wskit.core.handshake import accept_token, check_upgrade_request
from wskit.core.http import HeadReader, HttpError, HttpLimits, RequestHead, render_response
from wskit.errors import UsageError

_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Keys near the valid form: base64 digits, padding, and characters base64 refuses.
_keys = st.text(alphabet=_DIGITS + "=-_ .", min_size=20, max_size=26) | st.text(
    alphabet=_DIGITS, min_size=22, max_size=22
).map(lambda digits: digits + "==")


def _reference_key_check(key: str) -> tuple[int, str] | None:
    """The general rule: strict base64 of exactly 16 bytes (None when the key passes)."""
    rule = "Sec-WebSocket-Key must be the base64 of 16 bytes"
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        return 400, f"{rule} (it is not strict base64)"
    return None if len(raw) == 16 else (400, f"{rule} (got {len(raw)} bytes)")


def _head(key: str) -> RequestHead:
    headers = (
        ("Host", "example.com"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    )
    return RequestHead("GET", "/", "HTTP/1.1", headers)


@example("dGhlIHNhbXBsZSBub25jZQ==")
@example("dGhlIHNhbXBsZSBub25jZR==")  # non-zero trailing bits: base64 ignores them
@example("dGhlIHNhbXBsZSBub25jZQ=A")
@example("dGhlIHNhbXBsZSBub25jZ===")
@given(_keys)
def test_the_key_check_agrees_with_strict_base64_of_16_bytes(key):
    expected = _reference_key_check(key)
    if expected is None:
        assert check_upgrade_request(_head(key)).key == key
    else:
        with pytest.raises(HttpError) as info:
            check_upgrade_request(_head(key))
        assert (info.value.status, info.value.message) == expected


_token = st.text(alphabet="abcXYZ019-_.!~", min_size=1, max_size=10)
_value = st.text(alphabet="abc XYZ\t019-_.;=,/", max_size=20)


@given(
    subprotocols=st.lists(_token, max_size=3, unique=True),
    choose=st.booleans(),
    offer_deflate=st.booleans(),
    compression=st.booleans(),
    extra=st.lists(st.tuples(_token, _value), max_size=4),
)
def test_the_101_is_what_render_response_renders_for_its_headers(
    subprotocols, choose, offer_deflate, compression, extra
):
    lines = b""
    if subprotocols:
        lines += b"Sec-WebSocket-Protocol: " + ", ".join(subprotocols).encode() + b"\r\n"
    if offer_deflate:
        lines += b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    conn = ServerConnection(Config(compression=DeflateOptions() if compression else None))
    conn.receive_data(upgrade_request(lines))
    conn.events()
    subprotocol = subprotocols[-1] if choose and subprotocols else None
    extra = [(name, value.strip(" \t")) for name, value in extra]
    conn.accept(subprotocol, extra)
    answer = conn.data_to_send()

    head = HeadReader(HttpLimits(), response=True).feed(answer)
    assert head is not None
    assert answer == render_response(101, head.headers)
    expected = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_token("dGhlIHNhbXBsZSBub25jZQ==")),
    ]
    if subprotocol is not None:
        expected.append(("Sec-WebSocket-Protocol", subprotocol))
    if offer_deflate and compression:
        # The parameters are the deflate module's business (tests/core/test_compression.py).
        answer_value = head.headers[len(expected)][1]
        assert answer_value.startswith("permessage-deflate; ")
        expected.append(("Sec-WebSocket-Extensions", answer_value))
    assert list(head.headers) == expected + extra


def _visible_ascii_sp_htab(value: str) -> bool:
    return all(" " <= ch <= "~" or ch == "\t" for ch in value)


@given(st.text(alphabet=st.characters(max_codepoint=0x7FF)) | st.text())
def test_header_values_are_refused_exactly_when_not_visible_ascii_sp_or_htab(value):
    conn = ServerConnection()
    conn.receive_data(upgrade_request())
    conn.events()
    if _visible_ascii_sp_htab(value):
        conn.accept(None, [("X-Value", value)])
        assert f"\r\nX-Value: {value}\r\n".encode() in conn.data_to_send()
    else:
        with pytest.raises(UsageError, match="must be visible ASCII"):
            conn.accept(None, [("X-Value", value)])


def test_every_character_up_to_u_ffff_is_classed_like_the_rule():
    refused = set()
    for code in range(0x10000):
        try:
            _header_pairs([("X", chr(code))])
        except UsageError:
            refused.add(code)
    assert refused == set(range(0x10000)) - {0x09, *range(0x20, 0x7F)}


_targets = st.text(alphabet="/ab?=é\r\n\0 \t\x01", max_size=8).map(lambda text: "/" + text)
_hosts = st.text(alphabet="ab.:/é\r\n\0 \t\x01", max_size=8)


@given(_targets, _hosts)
def test_the_client_refuses_a_target_or_host_exactly_when_it_holds_a_breaking_character(
    target, host
):
    bad_target = any(c in target for c in " \r\n\0") or not target.isascii()
    bad_host = not host or not host.isascii() or any(c in host for c in " \r\n\0/")
    if bad_target or bad_host:
        with pytest.raises(UsageError, match="target" if bad_target else "host"):
            ClientConnection(host, target)
    else:
        request = ClientConnection(host, target).data_to_send()
        assert request.startswith(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n".encode())


_OFFERS = [
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate",
    "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
]


@given(
    offer=st.sampled_from(_OFFERS),
    window_bits=st.integers(9, 15),
    peer_window_bits=st.integers(9, 15),
    no_context_takeover=st.booleans(),
)
def test_the_deflate_answer_is_worked_out_for_each_offer_and_options(
    offer, window_bits, peer_window_bits, no_context_takeover
):
    # Answers are cached by (offer, options): connections with other options
    # must still get their own answer.
    options = DeflateOptions(
        window_bits=window_bits,
        peer_window_bits=peer_window_bits,
        no_context_takeover=no_context_takeover,
    )
    conn = ServerConnection(Config(compression=options))
    conn.receive_data(upgrade_request(f"Sec-WebSocket-Extensions: {offer}\r\n".encode()))
    conn.events()
    conn.accept()
    agreed = server_accept_offer(offer, options)
    assert agreed is not None
    expected = f"\r\nSec-WebSocket-Extensions: permessage-deflate; {agreed[1]}\r\n"
    assert expected.encode() in conn.data_to_send()
