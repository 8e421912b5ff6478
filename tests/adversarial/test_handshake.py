"""Attacks on the opening handshake of a real wskit server (threats H1-H13).

Each scenario sends raw bytes to ``wskit.serve`` on loopback and asserts the
exact status (or a silent close), that the connection was closed, that the
application never ran, and a resource bound: memory, time to answer, and
file descriptors, tasks and server connections back to baseline.
"""

from __future__ import annotations

import base64
import contextlib

import anyio
import pytest

import wskit
from tests.adversarial.harness import (
    OPEN_TIMEOUT,
    KiB,
    MiB,
    attacked_server,
    bounded,
    exchange,
)
from tests.frames import TEXT, frame, upgrade_request
from tests.io.raw import RawClient

pytestmark = pytest.mark.anyio

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def request(
    *,
    method: bytes = b"GET",
    target: bytes = b"/",
    version: bytes = b"HTTP/1.1",
    headers: list[bytes] | None = None,
    drop: tuple[bytes, ...] = (),
    extra: bytes = b"",
    eol: bytes = b"\r\n",
) -> bytes:
    """An upgrade request built line by line, so any part can be broken."""
    lines = headers or [
        b"Host: example.com",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + KEY,
        b"Sec-WebSocket-Version: 13",
    ]
    lines = [line for line in lines if line.split(b":")[0] not in drop]
    head = method + b" " + target + b" " + version + eol
    return head + b"".join(line + eol for line in lines) + extra + eol


class Witness:
    """A handler that records whether any connection reached the application."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, ws: wskit.WebSocket) -> None:
        self.calls += 1
        with contextlib.suppress(wskit.ConnectionClosed):
            async for message in ws:
                await ws.send(message)


async def refused(data: bytes, *, chunk: int | None = None, memory: int = 512 * KiB):
    """Send ``data`` to a fresh server; return the exchange once the server closed."""
    witness = Witness()
    async with attacked_server(witness) as server:
        async with bounded(memory=memory, seconds=2, server=server):
            result = await exchange(server.port, data, chunk=chunk)
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:  # still serving
            await ws.send("next")
            assert await ws.recv() == "next"
    assert result.closed, "the server must close a refused connection"
    assert witness.calls == 1, "a refused request reached the application"
    assert result.elapsed < 1, f"answered after {result.elapsed:.2f} s"
    return result


# ------------------------------------------------------------- H1, H2: slow and silent


async def test_slowloris_and_silent_connections_are_cut_at_open_timeout_while_others_connect():
    witness = Witness()
    ended: dict[str, tuple[float, bytes, bool]] = {}

    async def dribble(port: int) -> None:  # one byte every 100 ms, never finishing in time
        start = anyio.current_time()
        async with await RawClient.open(port) as raw, anyio.create_task_group() as tasks:

            async def drip() -> None:
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    for byte in upgrade_request():
                        await raw.send(bytes([byte]))
                        await anyio.sleep(0.1)

            tasks.start_soon(drip)
            data, closed = await raw.read_until_closed(OPEN_TIMEOUT + 2)
            tasks.cancel_scope.cancel()
        ended["dribbler"] = (anyio.current_time() - start, data, closed)

    async def silent(port: int, index: int) -> None:
        start = anyio.current_time()
        async with await RawClient.open(port) as raw:
            data, closed = await raw.read_until_closed(OPEN_TIMEOUT + 2)
        ended[f"silent {index}"] = (anyio.current_time() - start, data, closed)

    async with attacked_server(witness) as server:
        async with bounded(memory=2 * MiB, seconds=OPEN_TIMEOUT + 1.5, server=server):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(dribble, server.port)
                for index in range(50):
                    tasks.start_soon(silent, server.port, index)
                await anyio.sleep(0.1)  # the attackers are in
                before = anyio.current_time()
                async with wskit.connect(f"ws://127.0.0.1:{server.port}/") as ws:
                    await ws.send("hi")
                    assert await ws.recv() == "hi"
                served_in = anyio.current_time() - before
    assert served_in < 0.3, f"a normal client waited {served_in:.2f} s behind the attackers"
    assert witness.calls == 1
    assert len(ended) == 51
    for name, (elapsed, data, closed) in ended.items():
        assert closed, name
        assert data == b"", (name, data)
        assert OPEN_TIMEOUT - 0.05 <= elapsed < OPEN_TIMEOUT + 0.5, (name, elapsed)


# ------------------------------------------------------------------- H3-H6: sizes


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("request line of 9000 bytes", request(target=b"/" + b"a" * 9000), 414),
        ("request line of 9000 bytes, no CRLF yet", b"GET /" + b"a" * 9000, 414),
        ("a header line of 9000 bytes", request(extra=b"X-A: " + b"a" * 9000 + b"\r\n"), 431),
        ("129 headers", request(extra=b"".join(b"X-%d: y\r\n" % i for i in range(129))), 431),
        # Five lines of 7 KB pass the line and count limits but not max_head (32 KiB).
        (
            "40 KB of head in lines under the limits",
            request(extra=b"".join(b"X-%d: " % i + b"a" * 7000 + b"\r\n" for i in range(6))),
            431,
        ),
        (
            "2000 headers with Upgrade last (ws CVE-2024-37890)",
            request(
                headers=[b"Host: a", *(b"X-%d: y" % i for i in range(2000)), b"Upgrade: websocket"]
            ),
            431,
        ),
    ],
)
async def test_oversized_heads_get_414_or_431(name, data, status):
    result = await refused(data)
    assert result.status == status, (name, result)
    assert result.headers["connection"] == "close"


@pytest.mark.parametrize("chunk", [None, 4 * KiB, 64 * KiB], ids=["one-write", "4KiB", "64KiB"])
async def test_a_2_mb_header_is_431_whatever_the_reads_without_buffering_it(chunk):
    data = request(extra=b"X-Big: " + b"a" * (2 * MiB) + b"\r\n")
    # The attacker's own 2 MB is allocated before the bound starts. wskit keeps
    # at most max_head (32 KiB) plus one read; the transport reads more at a
    # time on asyncio (256 KiB per recv(), copied twice by asyncio and AnyIO,
    # measured up to 700 KiB in all), never the whole 2 MB.
    result = await refused(data, chunk=chunk, memory=MiB)
    assert result.status == 431


# -------------------------------------------------------- H7, H8: hostile header values


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        (b"Sec-WebSocket-Protocol", b"b" + b" " * 8000 + b"x", 400),  # not a token
        (b"Sec-WebSocket-Protocol", b"a," * 4000, 101),
        (b"Sec-WebSocket-Protocol", b" ," * 4000, 101),
        (b"Sec-WebSocket-Extensions", b"a," * 4000, 101),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate;" + b" ;" * 3900, 101),
        (b"Sec-WebSocket-Extensions", b"permessage-deflate" + b" " * 8000 + b"x", 101),
    ],
)
async def test_pathological_list_headers_are_answered_at_once(header, value, status):
    data = request(extra=header + b": " + value + b"\r\n")
    async with attacked_server(Witness()) as server:
        async with bounded(memory=512 * KiB, seconds=2, server=server):
            async with await RawClient.open(server.port) as raw:
                start = anyio.current_time()
                await raw.send(data)
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await raw.stream.receive()
                answered_in = anyio.current_time() - start
    assert head.startswith(b"HTTP/1.1 %d " % status), head[:200]
    assert b"sec-websocket-extensions" not in head.lower()
    assert b"sec-websocket-protocol" not in head.lower()
    # Linear parsing answers 8 KB in well under a millisecond; a quadratic or
    # backtracking parser takes seconds (ws CVE-2021-32640). Room for a busy CI.
    assert answered_in < 0.25, f"answered after {answered_in * 1000:.1f} ms"


HOSTILE_OFFERS = [
    b"permessage-deflate; server_max_window_bits=99",
    b"permessage-deflate; server_max_window_bits=8",
    b"permessage-deflate; client_max_window_bits=7",
    b"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    b"permessage-deflate; x-unknown=1",
    b"permessage-deflate; __class__=1",
    b"permessage-deflate; server_no_context_takeover=1",
    b"permessage-deflate; client_max_window_bits=0x0f",
    b"permessage-deflate; " + b"; ".join(b"p%d" % i for i in range(1000)),
]


@pytest.mark.parametrize("offer", HOSTILE_OFFERS, ids=lambda offer: offer[20:60].decode())
async def test_hostile_deflate_offers_are_declined_with_a_plain_101(offer):
    async with attacked_server(Witness()) as server:
        async with bounded(memory=512 * KiB, seconds=2, server=server):
            async with await RawClient.open(server.port) as raw:
                await raw.send(request(extra=b"Sec-WebSocket-Extensions: " + offer + b"\r\n"))
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await raw.stream.receive()
                # The connection is usable, uncompressed: RSV1 would be refused.
                await raw.send(frame(TEXT, b"ok"))
                echoed = await raw.stream.receive()
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"sec-websocket-extensions" not in head.lower()
    assert echoed == frame(TEXT, b"ok", mask=False)


# ------------------------------------------------ H9-H11: key, version, method, HTTP version


@pytest.mark.parametrize(
    ("name", "data", "status", "header"),
    [
        (
            "15-byte key",
            request(
                drop=(b"Sec-WebSocket-Key",),
                extra=b"Sec-WebSocket-Key: " + base64.b64encode(b"x" * 15) + b"\r\n",
            ),
            400,
            None,
        ),
        (
            "key not base64",
            request(
                drop=(b"Sec-WebSocket-Key",),
                extra=b"Sec-WebSocket-Key: !!!!notbase64!!!!!!!!!==\r\n",
            ),
            400,
            None,
        ),
        ("key twice", request(extra=b"Sec-WebSocket-Key: " + KEY + b"\r\n"), 400, None),
        ("no key", request(drop=(b"Sec-WebSocket-Key",)), 400, None),
        (
            "version 8",
            request(drop=(b"Sec-WebSocket-Version",), extra=b"Sec-WebSocket-Version: 8\r\n"),
            426,
            ("sec-websocket-version", "13"),
        ),
        (
            "no version",
            request(drop=(b"Sec-WebSocket-Version",)),
            400,
            ("sec-websocket-version", "13"),
        ),
        ("POST", request(method=b"POST"), 405, ("allow", "GET")),
        ("HTTP/1.0", request(version=b"HTTP/1.0"), 505, None),
        ("HTTP/2.0", request(version=b"HTTP/2.0"), 505, None),
        ("no Upgrade", request(drop=(b"Upgrade",)), 426, ("upgrade", "websocket")),
        ("no Connection", request(drop=(b"Connection",)), 400, None),
        ("two Hosts", request(extra=b"Host: b\r\n"), 400, None),
        ("absolute target", request(target=b"http://example.com/"), 400, None),
    ],
)
async def test_invalid_upgrade_requests_get_their_status(name, data, status, header):
    result = await refused(data)
    assert result.status == status, (name, result)
    if header is not None:
        assert result.headers[header[0]] == header[1], (name, result.headers)


# ----------------------------------------------------------------- H12: malformed HTTP


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bare LF", request(eol=b"\n")),
        ("one bare LF", request(extra=b"X-A: b\n")),
        ("obs-fold", request(extra=b"X-A: a\r\n b\r\n")),
        ("NUL in a value", request(extra=b"X-A: a\x00b\r\n")),
        ("non-ASCII Host", request(headers=[b"Host: \xff\xfe", b"Upgrade: websocket"])),
        ("DEL in a name", request(extra=b"X\x7fA: b\r\n")),
        ("space before the colon", request(extra=b"X-A : b\r\n")),
        ("no colon", request(extra=b"X-A b\r\n")),
        ("CR alone", request(extra=b"X-A: a\rb\r\n")),
    ],
)
async def test_malformed_http_is_400(name, data):
    result = await refused(data)
    assert result.status == 400, (name, result)


# --------------------------------------------------------------- H13: a body on the upgrade


@pytest.mark.parametrize(
    "extra",
    [b"Content-Length: 8\r\n", b"Transfer-Encoding: chunked\r\n", b"Content-Length: 0x8\r\n"],
    ids=["content-length", "chunked", "bad-length"],
)
async def test_an_upgrade_carrying_a_body_is_400_and_the_body_is_never_a_frame(extra):
    smuggled = frame(TEXT, b"evil")  # 10 bytes a lax server would read as a frame
    result = await refused(request(extra=extra) + smuggled)
    assert result.status == 400
    assert b"\x81" not in result.body[:1], "the smuggled frame was echoed"


# --------------------------------------------------- frames sent before the 101 arrives


async def test_frames_pipelined_after_the_request_are_replayed_after_the_101():
    # Regression, 20 times over: the replayed frames' events sat in the core
    # until the reader task ran; on Trio, when the timer task ran first it
    # drained them and failed an assertion, which crashed the server.
    frames = frame(TEXT, b"early") * 100  # 1.1 KB, well under max_head
    expected = frame(TEXT, b"early", mask=False) * 100
    async with attacked_server(Witness()) as server:
        async with bounded(memory=MiB, seconds=3, server=server):
            for _ in range(20):
                async with await RawClient.open(server.port) as raw:
                    await raw.send(request() + frames)
                    data = b""
                    with anyio.fail_after(1):
                        while not data.endswith(expected):
                            data += await raw.stream.receive()
                assert data.startswith(b"HTTP/1.1 101 ")


async def test_more_than_max_head_pipelined_after_the_request_is_400_and_the_server_lives():
    # Regression: the core refuses (400) in the same read that completes the
    # request; the server used to accept anyway, then crash on InvalidState
    # while answering 500: one 33 KB write took the whole server down.
    flood = frame(TEXT, b"x" * 60) * 600  # 40 KB of frames before the 101
    result = await refused(request() + flood)
    assert result.status == 400
    assert b"exceeds the head limit" in result.body
