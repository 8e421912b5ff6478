"""A hostile server against a real ``wskit.connect`` (threats C1-C3).

The server is a raw TCP listener on loopback that reads the request head and
writes whatever the scenario wants: broken frames, lying handshake responses,
floods of headers or body, silence, redirect loops. Each scenario asserts the
typed exception (or close code) the client ends with, the time it took, the
memory it cost, and that no socket or task is left behind.
"""

from __future__ import annotations

import contextlib
import re
import struct
import zlib

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

import wskit
from tests.adversarial.harness import KiB, MiB, bounded, hostile_server, request_key
from tests.frames import BINARY, CLOSE, TEXT, close_payload, frame
from tests.io.support import tls_contexts
from wskit.core.handshake import accept_token

pytestmark = pytest.mark.anyio

CONNECTION = 512 * KiB
OPEN_TIMEOUT = 0.5


def switching(head: bytes, *extra: bytes, accept: str | None = None) -> bytes:
    """A 101 response to a request head, with extra header lines."""
    token = accept if accept is not None else accept_token(request_key(head))
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + token.encode(),
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def client_close_code(data: bytes) -> int | None:
    """The code of the first (masked) close frame a client sent."""
    offset = 0
    while offset + 6 <= len(data):
        first, second = data[offset], data[offset + 1]
        length, at = second & 0x7F, offset + 2
        if length == 126:
            (length,), at = struct.unpack_from("!H", data, at), at + 2
        elif length == 127:
            (length,), at = struct.unpack_from("!Q", data, at), at + 8
        mask, at = data[at : at + 4], at + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[at : at + length]))
        if first & 0x0F == CLOSE:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
        offset = at + length
    return None


async def read_all(stream: anyio.abc.SocketStream, timeout: float = 1.0) -> bytes:
    data = b""
    with anyio.move_on_after(timeout):
        try:
            while True:
                data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    return data


# -------------------------------------------------------------- C1: the server breaks framing


@pytest.mark.parametrize(
    ("name", "frames", "code"),
    [
        ("a masked server frame", frame(TEXT, b"hi"), 1002),
        # The header alone: the client must refuse before any payload arrives.
        ("a declared length of 2^62", bytes([0x82, 127]) + struct.pack("!Q", 2**62), 1009),
        ("close code 1005 on the wire", frame(CLOSE, close_payload(1005), mask=False), 1002),
        ("an RSV1 frame nobody negotiated", frame(BINARY, b"x", rsv=4, mask=False), 1002),
        ("invalid UTF-8", frame(TEXT, b"\xed\xa0\x80", mask=False), 1007),
    ],
)
async def test_a_server_breaking_framing_fails_the_client_with_its_code(name, frames, code):
    sent_back: list[bytes] = []

    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(switching(head) + frames)
        sent_back.append(await read_all(stream))

    async with hostile_server(respond) as port, bounded(memory=CONNECTION, seconds=2):
        async with wskit.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.5) as ws:
            start = anyio.current_time()
            with pytest.raises(wskit.ConnectionClosedError) as caught:
                await ws.recv()
            reacted = anyio.current_time() - start
    assert caught.value.code == code, name
    assert isinstance(ws.error, wskit.ProtocolError)
    assert ws.error.close_code == code
    assert reacted < 0.2
    assert client_close_code(sent_back[0]) == code


async def test_a_decompression_bomb_from_the_server_closes_the_client_1009():
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(100 * MiB)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb_frame = frame(BINARY, bomb[:-4], rsv=4, mask=False)  # built before the bound
    sent_back: list[bytes] = []

    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        extension = b"Sec-WebSocket-Extensions: permessage-deflate"
        await stream.send(switching(head, extension) + bomb_frame)
        sent_back.append(await read_all(stream))

    async with hostile_server(respond) as port, bounded(memory=4 * MiB, seconds=2):
        async with wskit.connect(f"ws://127.0.0.1:{port}/", close_timeout=0.5) as ws:
            assert ws.compression == "permessage-deflate"
            with pytest.raises(wskit.ConnectionClosedError) as caught:
                await ws.recv()
    assert caught.value.code == 1009
    assert isinstance(ws.error, wskit.PayloadTooBig)
    assert client_close_code(sent_back[0]) == 1009


# ------------------------------------------------------ C2: lying or hostile handshake answers


async def fails_with(respond, expected: type[BaseException], *, memory: int = CONNECTION, **kw):
    """Connect to a hostile server; return the exception and how long it took."""
    async with hostile_server(respond) as port, bounded(memory=memory, seconds=2):
        start = anyio.current_time()
        with pytest.raises(expected) as caught:
            async with wskit.connect(f"ws://127.0.0.1:{port}/", open_timeout=OPEN_TIMEOUT, **kw):
                pass
        elapsed = anyio.current_time() - start
    return caught.value, elapsed


@pytest.mark.parametrize(
    ("name", "extra", "accept", "expected", "message"),
    [
        ("wrong Sec-WebSocket-Accept", (), "c2VjcmV0c2VjcmV0c2VjcmV0c2U=", wskit.InvalidResponse,
         "Sec-WebSocket-Accept"),
        ("unrequested extension", (b"Sec-WebSocket-Extensions: x-evil",), None,
         wskit.NegotiationError, "x-evil"),
        ("unrequested subprotocol", (b"Sec-WebSocket-Protocol: chat",), None,
         wskit.NegotiationError, "subprotocol"),
        ("deflate with window bits 99", (b"Sec-WebSocket-Extensions: permessage-deflate; "
         b"server_max_window_bits=99",), None, wskit.NegotiationError, "window"),
        ("200 header lines", tuple(b"X-%d: y" % i for i in range(200)), None,
         wskit.InvalidResponse, "max_headers"),
        ("a header line of 9000 bytes", (b"X-A: " + b"a" * 9000,), None,
         wskit.InvalidResponse, "max_line"),
        ("40 KB of head in lines under the limits",
         tuple(b"X-%d: " % i + b"a" * 7000 for i in range(6)), None,
         wskit.InvalidResponse, "max_head"),
    ],
)  # fmt: skip
async def test_a_lying_handshake_response_is_a_typed_error(name, extra, accept, expected, message):
    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(switching(head, *extra, accept=accept))
        await read_all(stream)

    error, elapsed = await fails_with(respond, expected)
    assert type(error) is expected, name
    assert message.lower() in str(error).lower(), (name, str(error))
    assert elapsed < 0.2


async def test_a_2_mb_error_body_is_truncated_to_max_body():
    body = b"e" * (2 * MiB)
    answer = memoryview(b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        for offset in range(0, len(answer), 64 * KiB):  # slices: no copy of the 2 MB
            await stream.send(answer[offset : offset + 64 * KiB])

    # The client keeps at most max_body (64 KiB) of the body, whatever is sent.
    error, elapsed = await fails_with(
        respond, wskit.HandshakeRejected, memory=CONNECTION + 2 * 64 * KiB
    )
    assert isinstance(error, wskit.HandshakeRejected)
    assert error.status_code == 500
    assert error.body == b"e" * (64 * KiB)
    assert elapsed < 0.5


@pytest.mark.parametrize("after", [b"", b"HTTP/1.1 101 Switching"], ids=["silent", "half-head"])
async def test_a_stalled_handshake_times_out_at_open_timeout(after):
    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(after)
        await read_all(stream, timeout=2)  # until the client gives up

    error, elapsed = await fails_with(respond, wskit.HandshakeTimeout)
    assert isinstance(error, TimeoutError)
    assert OPEN_TIMEOUT <= elapsed < OPEN_TIMEOUT + 0.3


# ------------------------------------------------------------------------ C3: redirects


async def test_a_redirect_loop_stops_after_max_redirects():
    hits: list[bytes] = []

    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        hits.append(head)
        await stream.send(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")

    error, elapsed = await fails_with(respond, wskit.InvalidResponse)
    assert "more than max_redirects=10 redirects" in str(error)
    assert isinstance(error.__cause__, wskit.HandshakeRejected)
    assert len(hits) == 11  # the first request and ten redirects
    assert hits[-1].startswith(b"GET /again HTTP/1.1")
    assert elapsed < 0.5


async def test_max_redirects_0_hands_the_redirect_back():
    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        await stream.send(b"HTTP/1.1 307 Temporary\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")

    error, _ = await fails_with(respond, wskit.HandshakeRejected, max_redirects=0)
    assert isinstance(error, wskit.HandshakeRejected)
    assert error.status_code == 307


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (None, "0 Location headers"),
        (b"ftp://127.0.0.1/x", "invalid Location"),
        (b"ws://127.0.0.1:99999/", "invalid Location"),
        (b"ws://127.0.0.1/#frag", "invalid Location"),
    ],
)
async def test_a_bad_location_is_an_invalid_response(location, message):
    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        where = b"" if location is None else b"Location: " + location + b"\r\n"
        await stream.send(b"HTTP/1.1 301 Moved\r\n" + where + b"Content-Length: 0\r\n\r\n")

    error, _ = await fails_with(respond, wskit.InvalidResponse)
    assert message in str(error)


async def test_a_cross_origin_redirect_strips_credentials():
    target_heads: list[bytes] = []

    async def target(stream: anyio.abc.SocketStream, head: bytes) -> None:
        target_heads.append(head)
        await stream.send(switching(head))
        await stream.receive()  # the client's close frame; then close TCP

    async with hostile_server(target) as target_port:
        # "localhost" and "127.0.0.1" are different origins for the same server.
        hops = {
            b"/start": b"/same-origin",  # same origin: credentials stay
            b"/same-origin": b"ws://localhost:%d/other" % target_port,
        }

        async def redirector(stream: anyio.abc.SocketStream, head: bytes) -> None:
            path = head.split(b" ")[1]
            if path in hops:
                answer = b"HTTP/1.1 302 Found\r\nLocation: " + hops[path] + b"\r\n"
                await stream.send(answer + b"Content-Length: 0\r\n\r\n")

        async with hostile_server(redirector) as port, bounded(memory=CONNECTION, seconds=2):
            url = f"ws://user:secret@127.0.0.1:{port}/start"
            headers = [("Cookie", "session=1"), ("X-Trace", "kept")]
            async with wskit.connect(url, extra_headers=headers, open_timeout=1) as ws:
                assert ws.state is wskit.core.State.OPEN
    (head,) = target_heads
    assert re.search(rb"(?im)^host: localhost:%d\r?$" % target_port, head)
    assert re.search(rb"(?im)^x-trace: kept\r?$", head)
    assert not re.search(rb"(?im)^(authorization|cookie):", head), head


async def test_a_same_origin_redirect_keeps_credentials():
    heads: list[bytes] = []

    async def respond(stream: anyio.abc.SocketStream, head: bytes) -> None:
        heads.append(head)
        if head.startswith(b"GET /start "):
            await stream.send(b"HTTP/1.1 308 Moved\r\nLocation: /end\r\nContent-Length: 0\r\n\r\n")
        else:
            await stream.send(switching(head))
            await stream.receive()  # the client's close frame; then close TCP

    async with hostile_server(respond) as port, bounded(memory=CONNECTION, seconds=2):
        url = f"ws://user:secret@127.0.0.1:{port}/start"
        async with wskit.connect(url, extra_headers=[("Cookie", "session=1")], open_timeout=1):
            pass
    assert len(heads) == 2
    assert heads[1].startswith(b"GET /end HTTP/1.1")
    assert re.search(rb"(?im)^authorization: Basic dXNlcjpzZWNyZXQ=\r?$", heads[1])
    assert re.search(rb"(?im)^cookie: session=1\r?$", heads[1])


async def test_a_redirect_from_wss_to_ws_is_refused():
    server_context, client_context = tls_contexts()
    hits: list[bytes] = []

    async def one(stream: anyio.abc.ByteStream) -> None:
        # The client drops the connection without a TLS close_notify.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.EndOfStream):
            async with stream:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive()
                hits.append(head)
                redirect = b"HTTP/1.1 302 Found\r\nLocation: ws://localhost/\r\n"
                await stream.send(redirect + b"Content-Length: 0\r\n\r\n")

    listener = TLSListener(await anyio.create_tcp_listener(local_host="127.0.0.1"), server_context)
    port = listener.listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, one)
        async with bounded(memory=CONNECTION, seconds=2):
            with pytest.raises(wskit.InvalidResponse, match="wss:// to ws://"):
                async with wskit.connect(f"wss://localhost:{port}/", ssl=client_context):
                    pass
        tasks.cancel_scope.cancel()
    assert len(hits) == 1


async def test_a_cross_origin_redirect_strips_a_client_plugin_s_token():
    from wskit.plugins import ClientToken

    target_heads: list[bytes] = []

    async def target(stream: anyio.abc.SocketStream, head: bytes) -> None:
        target_heads.append(head)
        await stream.send(switching(head))
        await stream.receive()

    async with hostile_server(target) as target_port:

        async def redirector(stream: anyio.abc.SocketStream, head: bytes) -> None:
            answer = b"HTTP/1.1 307 Moved\r\nLocation: ws://localhost:%d/x\r\n" % target_port
            await stream.send(answer + b"Content-Length: 0\r\n\r\n")

        async with hostile_server(redirector) as port, bounded(memory=CONNECTION, seconds=2):
            plugins = [
                ClientToken("s3cret"),
                ClientToken("s3cret", carrier="cookie"),
                ClientToken("s3cret", carrier="subprotocol"),
                ClientToken("s3cret", carrier="query"),
            ]
            async with wskit.connect(f"ws://127.0.0.1:{port}/", plugins=plugins, open_timeout=1):
                pass
    (head,) = target_heads
    assert b"s3cret" not in head, head
