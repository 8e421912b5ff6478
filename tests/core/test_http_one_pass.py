"""A head that arrives whole is read in one pass; the outcome must not change.

``HeadReader`` reads a head found whole in its first feed with whole-head
operations, and leaves anything unusual to its line-by-line path. These
properties compare the two on heads built to break every rule: the same head
and trailing bytes, or the same error (status, message, headers), or the same
wait for more bytes.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from wskit.core.http import HeadReader, HttpError, HttpLimits, get_header, header_index

_token = st.text(alphabet="abcXYZ-_!~09.", min_size=1, max_size=8).map(str.encode)
_value = st.text(alphabet="abc XYZ\t-_!~09/.?=:;,", max_size=12).map(str.encode)
_REQUEST_LINES = [b"GET / HTTP/1.1", b"GET /chat?x=1 HTTP/1.0", b"POST /a%20b HTTP/1.1"]
_STATUS_LINES = [b"HTTP/1.1 101 Switching Protocols", b"HTTP/1.1 200 OK\tfine", b"HTTP/1.0 404 "]
# What a defect puts in a head: CR or LF alone, whitespace, a colon, a
# separator (not a token character), a control, DEL, non-ASCII, a line break
# (maybe an obs-fold), or nothing (a cut).
_DEFECTS = [b"\r", b"\n", b"\t", b" ", b":", b"(", b"@", b"\x00", b"\x7f", b"\x80", b"\r\n"]
_DEFECTS += [b"\r\n ", b""]


@st.composite
def heads(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A valid head, or one with a defect or two, then trailing bytes; and if it is a response."""
    response = draw(st.booleans())
    head = draw(st.sampled_from(_STATUS_LINES if response else _REQUEST_LINES)) + b"\r\n"
    for name, value in draw(st.lists(st.tuples(_token, _value), max_size=6)):
        head += name + draw(st.sampled_from([b": ", b":"])) + value + b"\r\n"
    head += b"\r\n"
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(head)))
        cut = draw(st.integers(0, 2))
        head = head[:at] + draw(st.sampled_from(_DEFECTS)) + head[at + cut :]
    return head + draw(st.binary(max_size=8)), response


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, bool, HttpLimits]:
    """A head, and limits of which one is often exactly at, or one off, what the head needs."""
    data, response = draw(heads())
    end = data.find(b"\r\n\r\n")
    lines = data[: end if end >= 0 else len(data)].split(b"\r\n")
    needs = {"max_line": max(map(len, lines)), "max_headers": len(lines) - 1, "max_head": end + 4}
    limit = draw(st.sampled_from([None, *needs]))
    if limit is None:
        return data, response, HttpLimits()
    value = draw(st.integers(needs[limit] - 1, needs[limit] + 1))
    return data, response, HttpLimits(**{limit: max(1, value)})


def _outcome(reader: HeadReader, chunks: list[bytes]) -> tuple[object, ...]:
    try:
        for chunk in chunks:
            head = reader.feed(chunk)
            if head is not None:
                return ("head", head, reader.trailing)
    except HttpError as exc:
        return ("error", exc.status, exc.message, exc.headers)
    return ("more", reader.buffered)


@example((b"GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz", False, HttpLimits()))
@example((b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", False, HttpLimits()))
@example((b"GET /\tx HTTP/1.1\r\n\r\n", False, HttpLimits()))
@example((b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", False, HttpLimits(max_headers=1)))
@example((b"HTTP/1.1 101 Go\tAhead\r\nX:\t1 \r\n\r\n", True, HttpLimits()))
@example((b"GET / HTTP/1.1\r\nA: 1\r\n B: 2\r\n\r\n", False, HttpLimits()))
@example((b"GET / HTTP/1.1\r\nA : 1\r\n\r\n", False, HttpLimits()))
@example((b"GET / HTTP/1.1\r\nA(b): 1\r\n\r\n", False, HttpLimits()))
@example((b"HTTP/1.1 101 OK\r\n: 1\r\n\r\n", True, HttpLimits()))
@example((b"GET / HTTP/1.1\r\n\r\n", False, HttpLimits(max_head=17)))  # one byte over
@example((b"GET / HTTP/1.1\r\n\r\n", False, HttpLimits(max_line=13)))  # one byte over
@given(cases())
def test_a_whole_head_in_one_feed_reads_as_it_does_line_by_line(case):
    data, response, limits = case
    whole = _outcome(HeadReader(limits, response=response), [data])
    # After a first byte alone, the reader holds bytes: the one-pass read is skipped.
    by_line = _outcome(HeadReader(limits, response=response), [data[:1], data[1:]])
    assert whole == by_line


@given(
    st.lists(
        st.tuples(st.sampled_from(["Host", "host", "HOST", "X-A", "x-a", "Via"]), st.text()),
        max_size=8,
    ),
    st.sampled_from(["host", "Host", "x-A", "via", "missing"]),
)
def test_the_header_index_finds_what_get_header_finds(headers, name):
    index = header_index(tuple(headers))
    assert index.get(name.lower(), []) == get_header(tuple(headers), name)
    assert sum(map(len, index.values())) == len(headers)
