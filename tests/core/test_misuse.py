"""Local misuse raises wskit's typed errors, with messages that say what to do."""

from __future__ import annotations

import pytest

from tests.pairs import Pair
from wskit.core import ClientConnection, Config, ServerConnection, State
from wskit.errors import InvalidState, UsageError


def test_sending_before_the_handshake_is_an_invalid_state():
    for conn in (ServerConnection(), ClientConnection("example.com")):
        with pytest.raises(InvalidState, match="connecting"):
            conn.send_text("too early")
        with pytest.raises(InvalidState):
            conn.close()


def test_sending_after_close_is_an_invalid_state_and_close_is_idempotent():
    pair = Pair.open()
    pair.client.close()
    pair.client.close()
    with pytest.raises(InvalidState, match="closing"):
        pair.client.send_bytes(b"late")
    pair.pump()
    assert pair.client.state is State.CLOSED
    with pytest.raises(InvalidState, match="closed"):
        pair.client.send_ping()
    pair.client.close()


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_close_codes_that_may_not_be_sent_are_refused(code):
    pair = Pair.open()
    with pytest.raises(UsageError, match="may not be sent"):
        pair.client.close(code)
    assert pair.client.state is State.OPEN


def test_a_close_reason_over_123_bytes_is_refused():
    pair = Pair.open()
    with pytest.raises(UsageError, match="123 bytes"):
        pair.client.close(1000, "é" * 62)


def test_wrong_payload_types_and_sizes_are_refused():
    pair = Pair.open()
    with pytest.raises(UsageError, match="str"):
        pair.client.send_text(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="bytes"):
        pair.client.send_bytes("text")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="125 bytes"):
        pair.client.send_ping(b"x" * 126)
    pair.client.send_ping(b"once")
    with pytest.raises(UsageError, match="still waiting"):
        pair.client.send_ping(b"once")


def test_a_fragmented_message_cannot_switch_type():
    pair = Pair.open()
    pair.client.send_text("part", fin=False)
    with pytest.raises(UsageError, match="fragmented text message"):
        pair.client.send_bytes(b"other")
    pair.client.send_text("end")
    pair.client.send_bytes(b"now fine")


@pytest.mark.parametrize(
    "kwargs",
    [{"max_message": 0}, {"max_fragments": 0}, {"ping_interval": 0}, {"close_timeout": -1}],
)
def test_invalid_settings_are_refused_with_the_field_named(kwargs):
    with pytest.raises(UsageError, match=next(iter(kwargs))):
        Config(**kwargs)


@pytest.mark.parametrize(
    "header",
    [("X-A", "a\r\nX-B: b"), ("X-A", "café"), ("X: y", "z"), ("", "v"), ("Content-Length", "3")],
)
def test_bad_extra_headers_are_usage_errors_on_both_sides(header):
    with pytest.raises(UsageError):
        ClientConnection("example.com", extra_headers=[header])
    server = ServerConnection()
    server.receive_data(ClientConnection("example.com").data_to_send())
    with pytest.raises(UsageError):
        server.accept(extra_headers=[header])
    with pytest.raises(UsageError):
        server.reject(403, [header])


def test_a_client_key_must_be_16_bytes():
    with pytest.raises(UsageError, match="16 random bytes"):
        ClientConnection("example.com", key=b"x" * 15)


def test_settings_in_config_work_for_both_sides():
    config = Config(max_message=10)
    assert ServerConnection(config).config is config
