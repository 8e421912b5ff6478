"""The server core's opening handshake, end to end through ServerConnection."""

from __future__ import annotations

import pytest

from tests.frames import TEXT, frame, upgrade_request
from wskit.core import Config, HttpLimits, Message, Request, ServerConnection, State, Terminated
from wskit.errors import InvalidRequest, InvalidState, UsageError


def refused(data: bytes, config: Config | None = None) -> tuple[int, bytes, Terminated]:
    """Feed ``data`` and return the status answered, the raw answer and the final event."""
    conn = ServerConnection(config)
    conn.receive_data(data)
    answer = conn.data_to_send()
    events = conn.events()
    assert conn.state is State.CLOSED
    assert len(events) == 1
    assert isinstance(events[0], Terminated)
    assert isinstance(events[0].error, InvalidRequest)
    status = int(answer.split(b" ", 2)[1])
    assert events[0].error.status_code == status
    return status, answer, events[0]


def test_valid_request_becomes_a_request_event():
    conn = ServerConnection()
    conn.receive_data(
        upgrade_request(b"Sec-WebSocket-Protocol: chat, superchat\r\n", target=b"/room?id=7")
    )
    [request] = conn.events()
    assert isinstance(request, Request)
    assert request.path == "/room"
    assert request.query == "id=7"
    assert request.subprotocols == ("chat", "superchat")
    assert request.header("host") == "example.com"
    assert conn.data_to_send() == b""  # nothing is answered until accept() or reject()


def test_accept_answers_101_with_the_rfc_accept_token():
    conn = ServerConnection()
    conn.receive_data(upgrade_request())
    conn.events()
    conn.accept()
    answer = conn.data_to_send()
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in answer
    assert conn.state is State.OPEN


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, id="request-line"),
        pytest.param(upgrade_request(b"X-A: " + b"a" * 9000 + b"\r\n"), 431, id="header-line"),
        pytest.param(
            upgrade_request(b"".join(b"X-%d: y\r\n" % i for i in range(129))), 431, id="129-headers"
        ),
        pytest.param(upgrade_request().replace(b"GET", b"POST"), 405, id="method"),
        pytest.param(upgrade_request().replace(b"HTTP/1.1", b"HTTP/1.0"), 505, id="http-1.0"),
        pytest.param(
            upgrade_request().replace(b"Upgrade: websocket\r\n", b""), 426, id="no-upgrade"
        ),
        pytest.param(upgrade_request().replace(b"Version: 13", b"Version: 8"), 426, id="version-8"),
        pytest.param(
            upgrade_request().replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"eHh4eHh4eHh4eHh4eHh4"),
            400,
            id="15-byte-key",
        ),
        pytest.param(upgrade_request(b"Content-Length: 8\r\n"), 400, id="body"),
        pytest.param(upgrade_request(b"Transfer-Encoding: chunked\r\n"), 400, id="chunked"),
        pytest.param(upgrade_request().replace(b"\r\n", b"\n"), 400, id="bare-lf"),
        pytest.param(upgrade_request(b"X-A: a\r\n b\r\n"), 400, id="obs-fold"),
        pytest.param(upgrade_request(b"X-A: a\0b\r\n"), 400, id="nul"),
        pytest.param(
            upgrade_request().replace(b"example.com", b"\xff\xfe"), 400, id="non-ascii-host"
        ),
    ],
)
def test_bad_requests_are_answered_like_a_careful_http_server(data, status):
    got, answer, end = refused(data)
    assert got == status
    assert end.code == 1006
    assert answer.endswith(end.error.args[0].split(": ", 1)[1].encode() + b"\n")


def test_405_says_allow_get_and_426_names_version_13():
    _, answer, _ = refused(upgrade_request().replace(b"GET", b"PUT"))
    assert b"\r\nAllow: GET\r\n" in answer
    _, answer, _ = refused(upgrade_request().replace(b"Version: 13", b"Version: 8"))
    assert b"\r\nSec-WebSocket-Version: 13\r\n" in answer


def test_a_two_megabyte_head_in_one_read_is_refused_with_431():
    head = upgrade_request(b"X-Big: " + b"a" * 8000 + b"\r\n" * 0)
    huge = head[:-2] + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(500)) + b"\r\n"
    assert len(huge) > 2_000_000
    status, _, _ = refused(huge)
    assert status == 431


def test_the_total_head_cap_is_configurable():
    config = Config(http=HttpLimits(max_head=1024))
    status, _, _ = refused(upgrade_request(b"X-A: " + b"a" * 1000 + b"\r\n"), config)
    assert status == 431


def test_the_head_may_arrive_one_byte_at_a_time():
    conn = ServerConnection()
    for byte in upgrade_request():
        conn.receive_data(bytes([byte]))
    assert isinstance(conn.events()[0], Request)


def test_frames_sent_with_the_request_are_delivered_after_accept():
    conn = ServerConnection(Config(compression=None))
    conn.receive_data(upgrade_request() + frame(TEXT, b"early"))
    assert isinstance(conn.events()[0], Request)
    conn.accept()
    assert conn.events() == [Message("early")]


def test_reject_answers_the_status_and_ends_the_connection():
    conn = ServerConnection()
    conn.receive_data(upgrade_request())
    conn.events()
    conn.reject(401, [("WWW-Authenticate", 'Bearer realm="chat"')], b"who are you?")
    answer = conn.data_to_send()
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'WWW-Authenticate: Bearer realm="chat"' in answer
    assert answer.endswith(b"who are you?")
    [end] = conn.events()
    assert isinstance(end, Terminated)
    assert conn.state is State.CLOSED


def test_accept_refuses_a_subprotocol_the_client_did_not_offer():
    conn = ServerConnection()
    conn.receive_data(upgrade_request(b"Sec-WebSocket-Protocol: chat\r\n"))
    with pytest.raises(UsageError, match="not offered"):
        conn.accept("superchat")
    conn.accept("chat")
    assert b"Sec-WebSocket-Protocol: chat\r\n" in conn.data_to_send()
    assert conn.subprotocol == "chat"


def test_accept_and_reject_need_a_pending_request():
    conn = ServerConnection()
    with pytest.raises(InvalidState):
        conn.accept()
    conn.receive_data(upgrade_request())
    conn.accept()
    with pytest.raises(InvalidState):
        conn.reject(400)
    with pytest.raises(InvalidState):
        conn.accept()


def test_eof_during_the_handshake_terminates_with_1006():
    conn = ServerConnection()
    conn.receive_data(upgrade_request()[:20])
    conn.receive_eof()
    [end] = conn.events()
    assert end.code == 1006


@pytest.mark.parametrize(
    "offer",
    [
        b"permessage-deflate; server_max_window_bits=99",
        b"permessage-deflate; server_max_window_bits=8",
        b"permessage-deflate; client_max_window_bits=7",
        b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        b"permessage-deflate; __class__=1",
        b"permessage-deflate; " + b"; ".join(b"x%d" % i for i in range(1000)),
    ],
)
def test_hostile_deflate_offers_are_declined_not_errors(offer):
    conn = ServerConnection()
    conn.receive_data(upgrade_request(b"Sec-WebSocket-Extensions: " + offer + b"\r\n"))
    conn.events()
    conn.accept()
    answer = conn.data_to_send()
    assert answer.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Extensions" not in answer
    assert conn.compression is None


def test_the_first_acceptable_deflate_offer_wins():
    offers = (
        b"permessage-deflate; server_max_window_bits=99, "
        b"permessage-deflate; server_max_window_bits=10, permessage-deflate"
    )
    conn = ServerConnection()
    conn.receive_data(upgrade_request(b"Sec-WebSocket-Extensions: " + offers + b"\r\n"))
    conn.accept()
    answer = conn.data_to_send()
    assert b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n" in answer
    assert conn.compression == "permessage-deflate"


def test_compression_none_never_negotiates_deflate():
    conn = ServerConnection(Config(compression=None))
    conn.receive_data(upgrade_request(b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
    conn.accept()
    assert b"Sec-WebSocket-Extensions" not in conn.data_to_send()
