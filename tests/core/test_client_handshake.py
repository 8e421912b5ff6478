"""The client core's opening handshake: what it sends and how it checks the answer."""

from __future__ import annotations

import pytest

from tests.frames import TEXT, frame
from tests.pairs import KEY
from wskit.core import Accepted, ClientConnection, Config, Message, State, Terminated
from wskit.core.handshake import accept_token, new_key
from wskit.errors import HandshakeRejected, InvalidResponse, NegotiationError, UsageError

ACCEPT = accept_token(new_key(KEY)).encode()


def client(**kwargs) -> ClientConnection:
    conn = ClientConnection("example.com:8080", "/chat?x=1", key=KEY, **kwargs)
    conn.data_to_send()
    return conn


def response(
    *extra: bytes, accept: bytes = ACCEPT, status: bytes = b"101 Switching Protocols"
) -> bytes:
    lines = [b"HTTP/1.1 " + status, b"Upgrade: websocket", b"Connection: Upgrade"]
    lines.append(b"Sec-WebSocket-Accept: " + accept)
    return b"\r\n".join([*lines, *extra]) + b"\r\n\r\n"


def outcome(conn: ClientConnection, data: bytes) -> Terminated:
    conn.receive_data(data)
    [end] = conn.events()
    assert isinstance(end, Terminated), end
    assert conn.state is State.CLOSED
    return end


def test_the_request_carries_key_version_offers_and_extra_headers():
    conn = ClientConnection(
        "example.com:8080",
        "/chat?x=1",
        subprotocols=["chat", "superchat"],
        extra_headers=[("Origin", "https://example.com")],
        key=KEY,
    )
    request = conn.data_to_send()
    assert request.startswith(b"GET /chat?x=1 HTTP/1.1\r\nHost: example.com:8080\r\n")
    assert b"Sec-WebSocket-Key: " + new_key(KEY).encode() + b"\r\n" in request
    assert b"Sec-WebSocket-Version: 13\r\n" in request
    assert b"Sec-WebSocket-Protocol: chat, superchat\r\n" in request
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in request
    assert b"Origin: https://example.com\r\n" in request
    assert request.endswith(b"\r\n\r\n")


def test_a_valid_answer_opens_the_connection_and_keeps_early_frames():
    conn = client(config=Config(compression=None))
    conn.receive_data(response() + frame(TEXT, b"hi", mask=False))
    accepted, message = conn.events()
    assert isinstance(accepted, Accepted)
    assert message == Message("hi")
    assert conn.state is State.OPEN


def test_a_wrong_accept_token_is_an_invalid_response():
    end = outcome(client(), response(accept=b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="))
    assert isinstance(end.error, InvalidResponse)
    assert "Sec-WebSocket-Accept" in str(end.error)


def test_an_unrequested_extension_is_a_negotiation_error():
    end = outcome(
        client(config=Config(compression=None)),
        response(b"Sec-WebSocket-Extensions: permessage-deflate"),
    )
    assert isinstance(end.error, NegotiationError)


def test_an_unrequested_subprotocol_is_a_negotiation_error():
    end = outcome(client(subprotocols=["chat"]), response(b"Sec-WebSocket-Protocol: superchat"))
    assert isinstance(end.error, NegotiationError)


def test_invalid_deflate_parameters_in_the_answer_are_a_negotiation_error():
    end = outcome(
        client(),
        response(b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99"),
    )
    assert isinstance(end.error, NegotiationError)


def test_negotiated_deflate_and_subprotocol_are_reported():
    conn = client(subprotocols=["chat"])
    conn.receive_data(
        response(
            b"Sec-WebSocket-Protocol: chat",
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12",
        )
    )
    [accepted] = conn.events()
    assert accepted == Accepted(accepted.headers, "chat", ("permessage-deflate",))
    assert conn.compression == "permessage-deflate"
    assert conn.subprotocol == "chat"


def test_two_hundred_header_lines_are_an_invalid_response():
    lines = [b"X-%d: y" % i for i in range(200)]
    end = outcome(client(), response(*lines))
    assert isinstance(end.error, InvalidResponse)
    assert "128" in str(end.error)


def test_a_rejection_keeps_status_headers_and_a_bounded_body():
    conn = client()
    body = b"x" * 2_000_000
    head = b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\nX-Why: nope\r\n\r\n" % len(body)
    end = outcome(conn, head + body)
    assert isinstance(end.error, HandshakeRejected)
    assert end.error.status_code == 403
    assert ("X-Why", "nope") in end.error.headers
    assert end.error.body == b"x" * conn.config.http.max_body


def test_a_short_rejection_body_waits_for_content_length_or_eof():
    conn = client()
    conn.receive_data(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\nbusy")
    assert conn.events() == []
    conn.receive_data(b" now!!")
    [end] = conn.events()
    assert end.error.body == b"busy now!!"
    conn = client()
    conn.receive_data(b"HTTP/1.1 500 Oops\r\n\r\npartial")
    conn.receive_eof()
    [end] = conn.events()
    assert end.error.body == b"partial"


def test_eof_before_the_answer_is_an_invalid_response():
    conn = client()
    conn.receive_data(b"HTTP/1.1 101 Swi")
    conn.receive_eof()
    [end] = conn.events()
    assert isinstance(end.error, InvalidResponse)


@pytest.mark.parametrize(
    ("host", "target"),
    [("exa mple.com", "/"), ("example.com", "chat"), ("example.com", "/a\r\nX: y"), ("", "/")],
)
def test_bad_host_or_target_is_a_usage_error(host, target):
    with pytest.raises(UsageError):
        ClientConnection(host, target)


def test_header_injection_is_a_usage_error():
    with pytest.raises(UsageError):
        ClientConnection("example.com", extra_headers=[("X-A", "a\r\nX-B: b")])
