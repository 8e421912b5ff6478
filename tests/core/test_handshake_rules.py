"""Tests of wskit.core.handshake: RFC 6455 request and response rules."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wskit.core.handshake import (
    GUID,
    UpgradeRequest,
    UpgradeResponse,
    accept_token,
    check_upgrade_request,
    check_upgrade_response,
    new_key,
)
from wskit.core.http import HeadReader, HttpError, HttpLimits, RequestHead, ResponseHead
from wskit.errors import InvalidResponse, NegotiationError

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
# RFC 6455 §1.3. (The task brief quoted "s3pPLMBiTxaAGa9kAVgYuSGPXtc=", which is not it.)
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

BASE = (
    ("Host", "server.example.com"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", KEY),
    ("Sec-WebSocket-Version", "13"),
)


def make_request(
    headers=BASE, *, drop=(), add=(), method="GET", version="HTTP/1.1", target="/chat"
) -> RequestHead:
    kept = tuple(h for h in headers if h[0].lower() not in {d.lower() for d in drop})
    return RequestHead(method, target, version, kept + tuple(add))


def refused(head: RequestHead) -> HttpError:
    with pytest.raises(HttpError) as info:
        check_upgrade_request(head)
    return info.value


# --- keys ---------------------------------------------------------------------------


def test_accept_token_matches_rfc_6455_example():
    assert accept_token(KEY) == ACCEPT
    assert GUID == "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_new_key_is_base64_of_16_bytes():
    key = new_key(b"the sample nonce")
    assert key == KEY
    assert len(base64.b64decode(key, validate=True)) == 16
    with pytest.raises(ValueError, match="16 random bytes"):
        new_key(b"x" * 15)


@given(st.binary(min_size=16, max_size=16))
def test_any_new_key_passes_the_server_check(raw):
    head = make_request(drop=["Sec-WebSocket-Key"], add=[("Sec-WebSocket-Key", new_key(raw))])
    assert check_upgrade_request(head).key == new_key(raw)


# --- a valid request --------------------------------------------------------------------


def test_browser_like_request_passes_with_offers_in_order():
    head = make_request(
        [
            ("Host", "server.example.com:8080"),
            ("User-Agent", "Mozilla/5.0"),
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "WebSocket"),
            ("Origin", "https://example.com"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Protocol", "chat.v2, chat"),
            ("Sec-WebSocket-Protocol", "superchat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits, x-foo"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"),
            ("Content-Length", "0"),
        ],
        target="/chat?room=1",
    )
    result = check_upgrade_request(head)
    assert result == UpgradeRequest(
        target="/chat?room=1",
        headers=head.headers,
        key=KEY,
        subprotocols=("chat.v2", "chat", "superchat"),
        extensions=("permessage-deflate; client_max_window_bits", "x-foo", "permessage-deflate"),
    )


def test_request_read_from_bytes_passes():
    data = (
        b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = HeadReader(HttpLimits()).feed(data)
    assert isinstance(head, RequestHead)
    assert check_upgrade_request(head).subprotocols == ()


def test_header_names_are_case_insensitive():
    head = make_request(tuple((name.upper(), value) for name, value in BASE))
    assert check_upgrade_request(head).key == KEY


# --- statuses, in order -------------------------------------------------------------------


def test_wrong_version_is_505_even_with_other_faults():
    error = refused(make_request(version="HTTP/1.0", method="POST"))
    assert error.status == 505
    assert refused(make_request(version="HTTP/2.0")).status == 505


def test_wrong_method_is_405_with_allow():
    error = refused(make_request(method="POST"))
    assert (error.status, error.headers) == (405, (("Allow", "GET"),))
    assert refused(make_request(method="get")).status == 405


@pytest.mark.parametrize(
    "extra",
    [
        [("Content-Length", "8")],
        [("Content-Length", "00")],
        [("Content-Length", "0"), ("Content-Length", "0")],
        [("Transfer-Encoding", "chunked")],
        [("Transfer-Encoding", "identity")],
    ],
)
def test_request_with_a_body_is_400(extra):
    error = refused(make_request(add=extra))
    assert error.status == 400
    assert "must not carry a body" in error.message


@pytest.mark.parametrize(
    "hosts",
    [[], [("Host", "a"), ("Host", "b")], [("Host", "")]],
    ids=["missing", "duplicated", "empty"],
)
def test_bad_host_is_400(hosts):
    error = refused(make_request(drop=["Host"], add=hosts))
    assert error.status == 400
    assert "Host" in error.message


@pytest.mark.parametrize("upgrade", [None, "h2c", "websocket2", "web socket"])
def test_missing_upgrade_is_426_with_hints(upgrade):
    add = [] if upgrade is None else [("Upgrade", upgrade)]
    error = refused(make_request(drop=["Upgrade"], add=add))
    assert error.status == 426
    assert error.headers == (("Upgrade", "websocket"), ("Connection", "Upgrade"))


def test_upgrade_token_may_be_in_any_header_or_case():
    head = make_request(drop=["Upgrade"], add=[("Upgrade", "h2c"), ("Upgrade", "foo, WEBSOCKET")])
    assert check_upgrade_request(head).key == KEY


@pytest.mark.parametrize("connection", [None, "keep-alive", "upgrades", "close"])
def test_missing_connection_upgrade_is_400(connection):
    add = [] if connection is None else [("Connection", connection)]
    error = refused(make_request(drop=["Connection"], add=add))
    assert error.status == 400
    assert "Connection" in error.message


def test_missing_version_is_400_with_hint():
    error = refused(make_request(drop=["Sec-WebSocket-Version"]))
    assert (error.status, error.headers) == (400, (("Sec-WebSocket-Version", "13"),))


@pytest.mark.parametrize("versions", [["8"], ["13, 8"], [" 13x"], ["13", "13"], ["13", "8"], [""]])
def test_unsupported_version_is_426_with_hint(versions):
    add = [("Sec-WebSocket-Version", v) for v in versions]
    error = refused(make_request(drop=["Sec-WebSocket-Version"], add=add))
    assert (error.status, error.headers) == (426, (("Sec-WebSocket-Version", "13"),))


@pytest.mark.parametrize(
    ("keys", "fragment"),
    [
        ([], "send a Sec-WebSocket-Key"),
        ([KEY, KEY], "one Sec-WebSocket-Key"),
        ([base64.b64encode(b"x" * 15).decode()], "got 15 bytes"),
        ([base64.b64encode(b"x" * 17).decode()], "got 17 bytes"),
        (["not base64!"], "not strict base64"),
        ([KEY[:-2]], "not strict base64"),  # padding missing
        ([KEY[:4] + " " + KEY[4:]], "not strict base64"),  # inner space
        ([KEY[:-1] + "A"], "not strict base64"),  # bad padding
        ([""], "got 0 bytes"),
    ],
)
def test_bad_key_is_400(keys, fragment):
    add = [("Sec-WebSocket-Key", key) for key in keys]
    error = refused(make_request(drop=["Sec-WebSocket-Key"], add=add))
    assert error.status == 400
    assert fragment in error.message


def test_15_byte_key_message_says_what_to_fix():
    key = base64.b64encode(b"x" * 15).decode()
    error = refused(make_request(drop=["Sec-WebSocket-Key"], add=[("Sec-WebSocket-Key", key)]))
    assert error.message == "Sec-WebSocket-Key must be the base64 of 16 bytes (got 15 bytes)"


@pytest.mark.parametrize("value", ["chat, a b", "chat;v=1", "chat/2", '"chat"'])
def test_subprotocol_that_is_not_a_token_is_400(value):
    error = refused(make_request(add=[("Sec-WebSocket-Protocol", value)]))
    assert error.status == 400
    assert "not a token" in error.message


def test_first_failure_wins():
    # Missing Host and missing Upgrade: the Host rule comes first.
    assert refused(make_request(drop=["Host", "Upgrade"])).status == 400
    # Missing Upgrade and bad key: 426 comes first.
    assert refused(make_request(drop=["Upgrade", "Sec-WebSocket-Key"])).status == 426
    # Bad version and bad key: the version comes first.
    head = make_request(drop=["Sec-WebSocket-Version", "Sec-WebSocket-Key"])
    assert refused(head).headers == (("Sec-WebSocket-Version", "13"),)


# --- pathological values ------------------------------------------------------------------


def test_pathological_subprotocol_values_parse():
    # 'b' + spaces + 'x' is one element with inner spaces: not a token, 400.
    error = refused(make_request(add=[("Sec-WebSocket-Protocol", "b" + " " * 8000 + "x")]))
    assert error.status == 400
    result = check_upgrade_request(make_request(add=[("Sec-WebSocket-Protocol", "a," * 4000)]))
    assert result.subprotocols == ("a",) * 4000
    spaced = check_upgrade_request(make_request(add=[("Sec-WebSocket-Protocol", " " * 8000 + "x")]))
    assert spaced.subprotocols == ("x",)


def test_pathological_extension_values_parse():
    result = check_upgrade_request(make_request(add=[("Sec-WebSocket-Extensions", "a," * 4000)]))
    assert result.extensions == ("a",) * 4000
    value = "b" + " " * 8000 + "x"
    result = check_upgrade_request(make_request(add=[("Sec-WebSocket-Extensions", value)]))
    assert result.extensions == (value,)
    result = check_upgrade_request(make_request(add=[("Sec-WebSocket-Extensions", "," * 50_000)]))
    assert result.extensions == ()


# --- responses ------------------------------------------------------------------------------

GOOD_RESPONSE = (
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Accept", ACCEPT),
)


def make_response(*, drop=(), add=(), version="HTTP/1.1", status=101) -> ResponseHead:
    kept = tuple(h for h in GOOD_RESPONSE if h[0].lower() not in {d.lower() for d in drop})
    return ResponseHead(version, status, "Switching Protocols", kept + tuple(add))


def check(head, subprotocols=(), extensions=()):
    return check_upgrade_response(
        head, key=KEY, offered_subprotocols=subprotocols, offered_extensions=extensions
    )


def test_valid_response_passes():
    head = make_response(
        add=[
            ("Sec-WebSocket-Protocol", "chat"),
            ("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover"),
        ]
    )
    result = check(
        head,
        subprotocols=["superchat", "chat"],
        extensions=["permessage-deflate; client_max_window_bits", "x-foo"],
    )
    assert result == UpgradeResponse(
        headers=head.headers,
        subprotocol="chat",
        extensions=("permessage-deflate; server_no_context_takeover",),
    )


def test_minimal_response_selects_nothing():
    result = check(make_response(add=[("upgrade", "x")]), ["chat"], ["permessage-deflate"])
    assert (result.subprotocol, result.extensions) == (None, ())


def test_rfc_example_response_read_from_bytes_passes():
    data = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + ACCEPT.encode() + b"\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    )
    head = HeadReader(HttpLimits(), response=True).feed(data)
    assert isinstance(head, ResponseHead)
    assert check(head, ["chat"]).subprotocol == "chat"


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (make_response(status=200), "101"),
        (make_response(version="HTTP/1.0"), "HTTP/1.1"),
        (make_response(drop=["Upgrade"]), "Upgrade"),
        (make_response(drop=["Upgrade"], add=[("Upgrade", "h2c")]), "Upgrade"),
        (make_response(drop=["Connection"]), "Connection"),
        (make_response(drop=["Connection"], add=[("Connection", "close")]), "Connection"),
        (make_response(drop=["Sec-WebSocket-Accept"]), "Sec-WebSocket-Accept"),
        (make_response(add=[("Sec-WebSocket-Accept", ACCEPT)]), "Sec-WebSocket-Accept"),
        (
            make_response(drop=["Sec-WebSocket-Accept"], add=[("Sec-WebSocket-Accept", "x")]),
            "does not match",
        ),
    ],
)
def test_invalid_response(head, fragment):
    with pytest.raises(InvalidResponse, match=fragment) as info:
        check(head)
    assert not isinstance(info.value, NegotiationError)


@pytest.mark.parametrize(
    ("protocols", "offered", "fragment"),
    [
        (["chat"], [], "offered none"),
        (["other"], ["chat"], "did not offer"),
        (["chat, superchat"], ["chat", "superchat"], "one subprotocol, got 2"),
        (["chat", "superchat"], ["chat", "superchat"], "one subprotocol, got 2"),
        ([""], ["chat"], "one subprotocol, got 0"),
        (["Chat"], ["chat"], "did not offer"),
    ],
)
def test_subprotocol_negotiation_errors(protocols, offered, fragment):
    head = make_response(add=[("Sec-WebSocket-Protocol", p) for p in protocols])
    with pytest.raises(NegotiationError, match=fragment):
        check(head, subprotocols=offered)


@pytest.mark.parametrize(
    ("accepted", "offered", "fragment"),
    [
        (["permessage-deflate"], [], "not one we offered"),
        (["x-foo"], ["permessage-deflate"], "not one we offered"),
        (["Permessage-Deflate"], ["permessage-deflate"], "not one we offered"),
        (["permessage-deflate, permessage-deflate"], ["permessage-deflate"], "twice"),
        (
            ["permessage-deflate; a", "permessage-deflate ;b"],
            ["permessage-deflate; client_max_window_bits"],
            "twice",
        ),
        (["; x"], ["permessage-deflate"], "not one we offered"),
    ],
)
def test_extension_negotiation_errors(accepted, offered, fragment):
    head = make_response(add=[("Sec-WebSocket-Extensions", e) for e in accepted])
    with pytest.raises(NegotiationError, match=fragment):
        check(head, extensions=offered)


def test_extension_parameters_are_not_checked_here():
    head = make_response(add=[("Sec-WebSocket-Extensions", "permessage-deflate; bogus=99")])
    result = check(head, extensions=["permessage-deflate"])
    assert result.extensions == ("permessage-deflate; bogus=99",)


def test_pathological_response_values():
    head = make_response(add=[("Sec-WebSocket-Extensions", "x," * 4000)])
    with pytest.raises(NegotiationError, match="twice"):
        check(head, extensions=["x"])
    head = make_response(add=[("Sec-WebSocket-Protocol", "a," * 4000)])
    with pytest.raises(NegotiationError, match="got 4000"):
        check(head, subprotocols=["a"])
    head = make_response(add=[("Sec-WebSocket-Protocol", " " * 8000 + "a" + " " * 8000)])
    assert check(head, subprotocols=["a"]).subprotocol == "a"
