"""Regression tests for what the Autobahn|Testsuite run found (compliance/run.sh).

Each test replays a case's frames from a raw client against a wskit echo
server, on asyncio and on Trio, and checks the order of the frames that come
back: the suite grades the sequence of events, not only their presence.

* 2.10 / 2.11: ten pings in a row must get ten pongs (pongs owed were
  coalesced into one, for the latest ping);
* 5.6 / 5.7 (5.19 / 5.20 on the client side): a ping between the fragments
  of a message must be answered before the message is echoed (the pong was
  written at the writer's next ``data_to_send()``, behind the echo the
  handler had queued meanwhile).
"""

from __future__ import annotations

import contextlib

import anyio
import pytest

import wskit
from tests.frames import CLOSE, CONTINUATION, PING, PONG, TEXT, close_payload, frame
from tests.io.raw import RawClient, listening_socket, parse_frames
from tests.io.support import RecordingEcho

pytestmark = pytest.mark.anyio


async def read_frames(raw: RawClient, count: int) -> list[tuple[int, bytes]]:
    """Read until ``count`` whole frames came from the server."""
    data = raw.leftover
    raw.leftover = b""
    while len(parse_frames(data)) < count:
        data += await raw.stream.receive()
    return parse_frames(data)


@pytest.mark.parametrize("octet_wise", [False, True], ids=["2.10", "2.11"])
async def test_every_ping_of_a_burst_gets_its_pong_in_order(octet_wise):
    payloads = [f"payload-{i}".encode() for i in range(10)]
    burst = b"".join(frame(PING, payload) for payload in payloads)
    with anyio.fail_after(5):
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0) as server:
            async with await RawClient.open(server.port) as raw:
                await raw.handshake()
                if octet_wise:
                    for i in range(len(burst)):
                        await raw.send(burst[i : i + 1])
                else:
                    await raw.send(burst)
                frames = await read_frames(raw, len(payloads))
                assert frames == [(PONG, payload) for payload in payloads]
                await raw.send(frame(CLOSE, close_payload(1000)))
                assert await read_frames(raw, 1) == [(CLOSE, close_payload(1000))]


FRAGMENTS_AND_PING = [
    frame(TEXT, b"fragment1", fin=False),
    frame(PING, b"ping payload"),
    frame(CONTINUATION, b"fragment2"),
]


@pytest.mark.parametrize("frame_wise", [False, True], ids=["5.6", "5.7"])
async def test_a_ping_between_fragments_is_answered_before_the_message_is_echoed(frame_wise):
    with anyio.fail_after(5):
        async with wskit.serve(RecordingEcho(), "127.0.0.1", 0) as server:
            async with await RawClient.open(server.port) as raw:
                await raw.handshake()
                if frame_wise:
                    for data in FRAGMENTS_AND_PING:
                        await raw.send(data)
                else:
                    await raw.send(b"".join(FRAGMENTS_AND_PING))
                assert await read_frames(raw, 2) == [
                    (PONG, b"ping payload"),
                    (TEXT, b"fragment1fragment2"),
                ]
                await raw.send(frame(CLOSE, close_payload(1000)))
                assert await read_frames(raw, 1) == [(CLOSE, close_payload(1000))]


async def test_the_pong_precedes_the_echo_even_while_the_writer_is_busy():
    # The order above depended on scheduling: the writer (which produced the
    # pong) usually ran before the handler (which queues the echo). Here the
    # writer is held by a large greeting the client does not read yet (and
    # write_limit lets the handler go on), so the handler's echo is queued
    # before the writer asks for more data; the pong must still come first.
    greeting = "g" * (1024 * 1024)
    listener = listening_socket(sndbuf=16 * 1024)
    with anyio.fail_after(5), contextlib.closing(listener):
        async with wskit.serve(
            RecordingEcho(greeting), sock=listener, write_limit=4 * len(greeting)
        ) as server:
            async with await RawClient.open(server.port, rcvbuf=4 * 1024) as raw:
                await raw.handshake()
                await anyio.sleep(0.05)  # the greeting fills the pipe: the writer is stuck
                await raw.send(b"".join(FRAGMENTS_AND_PING))
                await anyio.sleep(0.05)  # the handler echoes meanwhile
                frames = await read_frames(raw, 3)
                assert frames[0] == (TEXT, greeting.encode())
                assert frames[1:] == [(PONG, b"ping payload"), (TEXT, b"fragment1fragment2")]
