"""Tests of wskit.core.http: bounded head reading, helpers and response rendering."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wskit.core.http import (
    HeadReader,
    HttpError,
    HttpLimits,
    RequestHead,
    ResponseHead,
    get_header,
    is_token,
    render_response,
    split_comma_list,
)
from wskit.errors import UsageError

LIMITS = HttpLimits()

VALID = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: example.com\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"X-Spaced:   padded value\t \r\n"
    b"\r\n"
)
EARLY_FRAME = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"


def read(data: bytes, limits: HttpLimits = LIMITS, *, response: bool = False):
    reader = HeadReader(limits, response=response)
    return reader.feed(data), reader


def status_of(data: bytes, limits: HttpLimits = LIMITS, *, response: bool = False) -> int:
    with pytest.raises(HttpError) as info:
        read(data, limits, response=response)
    return info.value.status


def request(*header_lines: bytes, line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\n" + b"".join(h + b"\r\n" for h in header_lines) + b"\r\n"


# --- valid heads -----------------------------------------------------------------


def test_valid_request_parses_with_case_and_stripped_values():
    head, reader = read(VALID + EARLY_FRAME)
    assert head == RequestHead(
        "GET",
        "/chat?room=1",
        "HTTP/1.1",
        (
            ("Host", "example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
            ("X-Spaced", "padded value"),
        ),
    )
    assert reader.trailing == EARLY_FRAME
    assert reader.buffered == 0


def test_trailing_preserved_across_feeds_and_empty_when_none():
    reader = HeadReader(LIMITS)
    assert reader.feed(VALID[:-1]) is None
    assert reader.trailing == b""
    assert reader.feed(VALID[-1:] + b"abc") is not None
    assert reader.trailing == b"abc"
    _, reader = read(VALID)
    assert reader.trailing == b""


def test_version_is_returned_as_given():
    head, _ = read(request(b"Host: a", line=b"GET / HTTP/1.0"))
    assert isinstance(head, RequestHead)
    assert head.version == "HTTP/1.0"


def test_feed_after_head_is_a_programming_error():
    _, reader = read(VALID)
    with pytest.raises(RuntimeError):
        reader.feed(b"x")


def test_failed_reader_stays_failed_and_holds_nothing():
    reader = HeadReader(LIMITS)
    with pytest.raises(HttpError) as first:
        reader.feed(b"GET / HTTP/1.1\nHost: a\n\n")
    assert reader.buffered == 0
    with pytest.raises(HttpError) as second:
        reader.feed(b"more")
    assert second.value is first.value


def test_head_exactly_at_max_head_is_accepted():
    base = request(b"X-A: ")
    limits = HttpLimits(max_head=len(base) + 100)
    exact = request(b"X-A: " + b"a" * 100)
    assert len(exact) == limits.max_head
    head, _ = read(exact, limits)
    assert head is not None
    assert status_of(request(b"X-A: " + b"a" * 101), limits) == 431


def test_line_exactly_at_max_line_is_accepted_even_when_dripped():
    limits = HttpLimits(max_line=20)
    line = b"X-A: " + b"a" * 15
    assert len(line) == 20
    reader = HeadReader(limits)
    data = request(line)
    results = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[-1] is not None
    assert status_of(request(line + b"a"), limits) == 431


# --- limits: requests ---------------------------------------------------------------


def test_request_line_too_long_is_414_and_header_line_too_long_is_431():
    assert status_of(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n") == 414
    assert status_of(request(b"X-A: " + b"a" * 9000)) == 431


def test_unfinished_request_line_fails_on_the_byte_that_passes_max_line():
    reader = HeadReader(LIMITS)
    data = b"GET /" + b"a" * 10000
    for index in range(LIMITS.max_line):
        assert reader.feed(data[index : index + 1]) is None
    with pytest.raises(HttpError, match=r"longer than 8192 bytes \(max_line\)") as info:
        reader.feed(b"a")  # byte 8193 of the request line
    assert info.value.status == 414


def test_unfinished_line_ending_in_cr_counts_cr_as_half_of_crlf():
    limits = HttpLimits(max_line=10)
    reader = HeadReader(limits)
    assert reader.feed(b"GET /abcde\r") is None  # 10 bytes plus the CR of CRLF
    with pytest.raises(HttpError) as info:
        reader.feed(b"x")  # the CR was not a line end after all: now 12 bytes
    assert info.value.status == 414


def test_too_many_headers_is_431():
    lines = [f"X-{n}: y".encode() for n in range(129)]
    with pytest.raises(HttpError) as info:
        read(request(*lines))
    assert info.value.status == 431
    assert "128" in info.value.message
    assert "max_headers" in info.value.message
    head, _ = read(request(*lines[:128]))
    assert head is not None


def test_too_many_headers_with_upgrade_last_is_431_not_a_crash():
    lines = [f"X-{n}: y".encode() for n in range(2000)] + [b"Upgrade: websocket"]
    assert status_of(request(*lines)) == 431


def test_head_too_large_is_431_naming_the_limit():
    limits = HttpLimits(max_headers=10_000)
    lines = [b"X-A: " + b"a" * 1000] * 40
    with pytest.raises(HttpError) as info:
        read(request(*lines), limits)
    assert info.value.status == 431
    assert "32768" in info.value.message
    assert "max_head" in info.value.message


@pytest.mark.parametrize(
    ("data", "status"),
    [
        # 2 MB of short header lines: the header count is passed first.
        (b"GET / HTTP/1.1\r\n" + b"X-A: y\r\n" * 262_144, 431),
        # 2 MB in a single header line.
        (b"GET / HTTP/1.1\r\nX-A: " + b"a" * 2_000_000, 431),
        # 2 MB request line.
        (b"GET /" + b"a" * 2_000_000, 414),
    ],
    ids=["many-lines", "one-line", "request-line"],
)
def test_two_megabyte_head_in_one_feed_fails_without_copying_it(data, status):
    reader = HeadReader(LIMITS)
    tracemalloc.start()
    try:
        with pytest.raises(HttpError) as info:
            reader.feed(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.status == status
    # Far below the size of the feed: only what may still be head is ever copied.
    assert peak <= LIMITS.max_head + len(data)
    assert peak < 4 * LIMITS.max_head
    assert reader.buffered == 0


def test_twenty_kilobytes_dripped_in_4_kib_pieces_fail_as_soon_as_a_limit_passes():
    data = b"GET / HTTP/1.1\r\nX-A: " + b"a" * 20_000
    pieces = [data[start : start + 4096] for start in range(0, len(data), 4096)]
    reader = HeadReader(LIMITS)
    # The header line starts at byte 16 and passes 8192 bytes in the third piece.
    for piece in pieces[:2]:
        assert reader.feed(piece) is None
        assert reader.buffered <= LIMITS.max_head
    with pytest.raises(HttpError) as info:
        reader.feed(pieces[2])
    assert info.value.status == 431


def test_many_small_lines_dripped_never_buffer_more_than_max_head():
    limits = HttpLimits(max_headers=100_000)
    data = b"GET / HTTP/1.1\r\n" + b"X-A: y\r\n" * 10_000
    reader = HeadReader(limits)
    pieces = [data[start : start + 4096] for start in range(0, len(data), 4096)]
    passing = limits.max_head // 4096  # the piece that carries the head past max_head
    for piece in pieces[:passing]:
        assert reader.feed(piece) is None
        assert reader.buffered <= limits.max_head
    with pytest.raises(HttpError, match="max_head") as info:
        reader.feed(pieces[passing])
    assert info.value.status == 431


# --- malformed requests: 400 -------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        VALID.replace(b"\r\n", b"\n"),  # bare LF everywhere
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",  # one bare LF
        request(b"X-A: a", b" b"),  # obs-fold
        request(b"X-A: a", b"\tb"),  # obs-fold with HTAB
        request(b"X-A: a\x00b"),  # NUL in a value
        request(b"X-A: a\x7fb"),  # DEL
        request(b"X-A: a\rb"),  # lone CR
        request(b"Host: \xff\xfe"),  # non-ASCII Host
        request(b"X-\xe9: a"),  # non-ASCII name
        request(b": a"),  # empty name
        request(b"X-A : a"),  # whitespace before the colon
        request(b"X-A\t: a"),
        request(b"X A: a"),  # not a token
        request(b"X-A"),  # no colon
        request(line=b"GET /\xff HTTP/1.1"),
        request(line=b"GET / HTTP/1.1 "),
        request(line=b"GET  / HTTP/1.1"),
        request(line=b"GET\t/ HTTP/1.1"),
        request(line=b"GET /"),
        request(line=b"G(T / HTTP/1.1"),
        request(line=b"GET http://example.com/ HTTP/1.1"),
        request(line=b"GET * HTTP/1.1"),
        request(line=b"GET / HTTP/11"),
        request(line=b"GET / HTTPS/1.1"),
        request(line=b"GET / HTTP/1.x"),
        request(line=b"GET / HTTP/1.10"),
        request(line=b""),
        b"\r\n" + VALID,  # empty line before the request line
    ],
)
def test_malformed_request_is_400(data):
    assert status_of(data) == 400


def test_htab_allowed_in_values():
    head, _ = read(request(b"X-A: a\tb"))
    assert isinstance(head, RequestHead)
    assert head.headers == (("X-A", "a\tb"),)


def test_messages_name_the_problem():
    with pytest.raises(HttpError, match="bare LF"):
        read(b"GET / HTTP/1.1\n\n")
    with pytest.raises(HttpError, match="obs-fold"):
        read(request(b"X-A: a", b" b"))
    with pytest.raises(HttpError, match="0xff"):
        read(request(b"Host: \xff"))


# --- responses --------------------------------------------------------------------


def test_response_heads_parse():
    data = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nxy"
    head, reader = read(data, response=True)
    assert head == ResponseHead("HTTP/1.1", 101, "Switching Protocols", (("Upgrade", "websocket"),))
    assert reader.trailing == b"xy"
    head, _ = read(b"HTTP/1.1 101\r\n\r\n", response=True)
    assert head == ResponseHead("HTTP/1.1", 101, "", ())
    head, _ = read(b"HTTP/1.1 404 \r\n\r\n", response=True)
    assert head == ResponseHead("HTTP/1.1", 404, "", ())
    head, _ = read(b"HTTP/1.0 500 Internal\tServer  Error\r\n\r\n", response=True)
    assert head == ResponseHead("HTTP/1.0", 500, "Internal\tServer  Error", ())


@pytest.mark.parametrize(
    "data",
    [
        b"HTTP/1.1 1010 X\r\n\r\n",
        b"HTTP/1.1 10 X\r\n\r\n",
        b"HTTP/1.1 1a1 X\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/1.1  101 X\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 101 X\n\n",
        b"HTTP/1.1 101 X\r\nX-A: \x00\r\n\r\n",
        b"HTTP/1.1 101 X\r\n a: b\r\n\r\n",
        b"HTTP/1.1 101 \xff\r\n\r\n",
        b"HTTP/1.1 101 X\r\n" + b"X-A: b\r\n" * 129 + b"\r\n",
        b"HTTP/1.1 101 " + b"X" * 9000 + b"\r\n\r\n",
        b"HTTP/1.1 101 X\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n",
        b"HTTP/1.1 101 X\r\n" + b"X-A: aaaaaaaaaa\r\n" * 2000,
    ],
)
def test_malformed_or_oversized_response_has_status_0(data):
    limits = HttpLimits(max_headers=10_000) if len(data) > 30_000 else LIMITS
    assert status_of(data, limits, response=True) == 0


def test_response_limit_messages_name_the_limit():
    with pytest.raises(HttpError, match=r"longer than 8192 bytes \(max_line\)"):
        read(b"HTTP/1.1 101 " + b"X" * 9000, response=True)
    with pytest.raises(HttpError, match=r"more than 128 header lines \(max_headers\)"):
        read(b"HTTP/1.1 101 X\r\n" + b"X-A: b\r\n" * 129, response=True)


# --- chunking invariants (hypothesis) -------------------------------------------------

_tokens = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefXYZ", min_size=1, max_size=12)
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@st.composite
def valid_requests(draw):
    target = "/" + draw(st.text(alphabet="abc/?=&%", max_size=20))
    headers = draw(st.lists(st.tuples(_tokens, _values), max_size=10))
    lines = [f"{draw(_tokens)} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return data, draw(st.binary(max_size=20))


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    # Cuts below len(data) keep the last chunk non-empty; a cut at 0 feeds b"" first.
    points = sorted({cut % len(data) for cut in cuts}) if data else []
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(valid_requests(), st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_of_a_valid_request_gives_the_same_result(case, cuts):
    data, trailing = case
    whole, reader = read(data + trailing)
    assert isinstance(whole, RequestHead)
    assert reader.trailing == trailing
    chunked = HeadReader(LIMITS)
    results = [chunked.feed(chunk) for chunk in _split(data, cuts)]
    assert results[-1] == whole
    assert all(result is None for result in results[:-1])
    assert chunked.trailing == b""


@settings(max_examples=20)
@given(valid_requests())
def test_one_byte_at_a_time_gives_the_same_result(case):
    data, trailing = case
    whole, _ = read(data + trailing)
    reader = HeadReader(LIMITS)
    results = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[-1] == whole
    assert reader.trailing == b""


def _mutations(data: bytes):
    return st.tuples(st.integers(0, len(data)), st.binary(max_size=4), st.integers(0, 4)).map(
        lambda m: data[: m[0]] + m[1] + data[m[0] + m[2] :]
    )


_garbage = st.one_of(
    st.binary(max_size=400),
    _mutations(VALID),
    _mutations(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
)


@given(_garbage, st.lists(st.integers(min_value=0), max_size=10), st.booleans(), st.integers(1, 64))
def test_arbitrary_bytes_only_ever_give_a_head_none_or_http_error(data, cuts, response, small):
    limits = HttpLimits(max_line=small, max_headers=small, max_head=small * 4)
    for chosen in (LIMITS, limits):
        reader = HeadReader(chosen, response=response)
        try:
            for chunk in _split(data, cuts):
                result = reader.feed(chunk)
                assert reader.buffered <= chosen.max_head
                if result is not None:
                    assert isinstance(result, ResponseHead if response else RequestHead)
                    break
        except HttpError as exc:
            status = exc.status
        else:
            continue
        assert status == 0 if response else status in (400, 414, 431)


# --- helpers ----------------------------------------------------------------------


def test_get_header_is_case_insensitive_and_ordered():
    headers = (("Via", "a"), ("X-A", "1"), ("x-a", "2"), ("X-B", "3"), ("X-A", "4"))
    assert get_header(headers, "x-A") == ["1", "2", "4"]
    assert get_header(headers, "missing") == []


def test_split_comma_list():
    assert split_comma_list(" a ,b,, \t,c\t") == ["a", "b", "c"]
    assert split_comma_list("") == []
    assert split_comma_list(" , ,") == []
    assert split_comma_list("permessage-deflate; x=1, y") == ["permessage-deflate; x=1", "y"]


def test_split_comma_list_on_pathological_values():
    assert split_comma_list("a," * 50_000) == ["a"] * 50_000
    assert split_comma_list("b" + " " * 8000 + "x") == ["b" + " " * 8000 + "x"]
    assert split_comma_list(" " * 100_000) == []
    assert split_comma_list("," * 100_000) == []


def test_is_token():
    assert is_token("websocket")
    assert is_token("chat.v2+json")
    assert not is_token("")
    assert not is_token("a b")
    assert not is_token("a,b")
    assert not is_token("a;b")


def test_limits_must_be_positive():
    with pytest.raises(UsageError, match="max_line"):
        HttpLimits(max_line=0)


# --- render_response ---------------------------------------------------------------


def test_render_response_101_has_no_content_length():
    data = render_response(101, (("Upgrade", "websocket"), ("Connection", "Upgrade")))
    assert data == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    )


def test_render_response_error_adds_length_close_and_type():
    data = render_response(405, (("Allow", "GET"),), b"use GET")
    head, reader = read(data, response=True)
    assert head == ResponseHead(
        "HTTP/1.1",
        405,
        "Method Not Allowed",
        (
            ("Allow", "GET"),
            ("Content-Length", "7"),
            ("Connection", "close"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ),
    )
    assert reader.trailing == b"use GET"


def test_render_response_keeps_callers_content_type_and_connection_close():
    given_headers = (("Content-Type", "application/json"), ("Connection", "close"))
    data = render_response(403, given_headers, b"{}")
    head, _ = read(data, response=True)
    assert isinstance(head, ResponseHead)
    assert head.headers == (
        ("Content-Type", "application/json"),
        ("Connection", "close"),
        ("Content-Length", "2"),
    )


def test_render_response_426_keeps_upgrade_and_adds_close():
    data = render_response(426, (("Upgrade", "websocket"), ("Connection", "Upgrade")))
    head, _ = read(data, response=True)
    assert isinstance(head, ResponseHead)
    assert get_header(head.headers, "connection") == ["Upgrade", "close"]
    assert get_header(head.headers, "content-type") == []  # no body, no type


def test_render_response_success_with_body():
    head, reader = read(render_response(200, body=b"ok"), response=True)
    assert head == ResponseHead("HTTP/1.1", 200, "OK", (("Content-Length", "2"),))
    assert reader.trailing == b"ok"


def test_render_response_unregistered_status_has_empty_reason():
    head, _ = read(render_response(299), response=True)
    assert isinstance(head, ResponseHead)
    assert (head.status, head.reason) == (299, "")


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (400, (("X-A", "a\r\nSet-Cookie: x=1"),), b""),
        (400, (("X-A", "a\nb"),), b""),
        (400, (("X-A", "a\x00"),), b""),
        (400, (("X-A", "caf\u00e9"),), b""),
        (400, (("X-A\r\nX-B", "a"),), b""),
        (400, (("X-A:", "a"),), b""),
        (400, (("", "a"),), b""),
        (400, (("Content-Length", "3"),), b""),
        (101, (), b"body"),
        (204, (), b"body"),
        (99, (), b""),
        (600, (), b""),
    ],
)
def test_render_response_rejects_injection_and_misuse(status, headers, body):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        render_response(status, headers, body)


@given(
    st.sampled_from([101, 200, 400, 403, 404, 405, 426, 429, 500, 503]),
    st.lists(st.tuples(_tokens, _values.map(str.strip)), max_size=5),
    st.binary(max_size=50),
)
def test_render_response_parses_back(status, headers, body):
    reserved = ("content-length", "connection", "content-type")
    headers = [h for h in headers if h[0].lower() not in reserved]
    if status == 101:
        body = b""
    data = render_response(status, tuple(headers), body)
    head, reader = read(data, response=True)
    assert isinstance(head, ResponseHead)
    assert head.status == status
    assert head.headers[: len(headers)] == tuple(headers)
    assert reader.trailing == body
    if status != 101:
        assert get_header(head.headers, "Content-Length") == [str(len(body))]
