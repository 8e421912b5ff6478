"""Chunking invariance: how the transport splits the bytes never changes what happens.

The exact bytes one side sends (opening handshake, messages of any kind and
fragmentation, pings, a close frame, even junk after it) are captured once and
fed to a fresh peer (a) in one call, (b) one byte at a time and (c) cut at
hypothesis-drawn points. The peer behaves in a fixed way (a server accepts as
soon as the Request appears). Then:

* the event lists are equal, whatever the chunking;
* when ``data_to_send()`` is drained once at the end, everything the peer
  sends back is equal too (byte for byte from a server; frame for frame, once
  unmasked, from a client, whose masks are random);
* when it is drained after every call, the answer differs only in how pongs
  are coalesced: every other frame is equal, and pongs answer pings that were
  sent, each at most once, in order.

Both directions: client to server, and server to client (the 101 response and
the frames after it, fed to a ``ClientConnection`` with the same ``key=``).
Nothing ticks: keepalive ping payloads are random.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.pairs import KEY
from tests.property.strategies import (
    OPCODES,
    accepted_server,
    chunkings,
    close_codes,
    close_reasons,
    configs,
    modest_payloads,
    outgoing,
    parse_frames,
    split_http,
)
from wskit.core import ClientConnection, Config, Connection, Request, ServerConnection

PONG = OPCODES["pong"]


@st.composite
def scripts(draw):
    """What the sending side does once open: messages, pings, maybe a close, maybe junk.

    At most ~13 KiB in all: a server keeps what a client sends before its 101
    (the "whole" feed) within the head limit (32 KiB) and refuses more.
    """
    actions = draw(st.lists(st.one_of(outgoing(modest_payloads), st.just("ping")), max_size=6))
    close = draw(st.one_of(st.none(), st.tuples(close_codes, close_reasons)))
    junk = draw(st.binary(max_size=20)) if close is not None else b""
    return actions, close, junk


def perform(conn: Connection, script) -> bytes:
    """Run ``script`` on an open connection and return the bytes it produced."""
    actions, close, junk = script
    out = b""
    for n, action in enumerate(actions):
        if action == "ping":
            conn.send_ping(b"ping-%d" % n)
        else:
            action.send(conn)
        out += conn.data_to_send()
    if close is not None:
        conn.close(*close)
        out += conn.data_to_send()
    return out + junk


def client_bytes(config: Config, script) -> bytes:
    """The exact bytes a client (key=KEY) sends: its upgrade request, then ``script``."""
    client = ClientConnection("example.com", "/", config=config, key=KEY)
    request = client.data_to_send()
    _, response = accepted_server(config)
    client.receive_data(response)
    client.events()
    return request + perform(client, script)


def server_bytes(config: Config, script) -> bytes:
    """The exact bytes a server sends to a client (key=KEY): its 101, then ``script``."""
    server, response = accepted_server(config)
    return response + perform(server, script)


def feed(conn: Connection, chunks: list[bytes], *, drain_each: bool):
    """Feed ``chunks``; accept any Request at once; return (events, bytes sent back)."""
    events = []
    conn.data_to_send()  # a client's own upgrade request is not an answer
    out = b""
    for chunk in chunks:
        conn.receive_data(chunk)
        new = conn.events()
        if any(isinstance(e, Request) for e in new):
            assert isinstance(conn, ServerConnection)
            conn.accept()
            new += conn.events()
        events += new
        if drain_each:
            out += conn.data_to_send()
    return events, out + conn.data_to_send()


def answer_frames(out: bytes, *, server: bool):
    """The frames in an answer (after the 101 head when the server sent it)."""
    if server:
        head, out = split_http(out)
        assert head.startswith(b"HTTP/1.1 101 ")
    return parse_frames(out)


def peer_frames(data: bytes):
    """The frames in the captured bytes (after the head), up to the close frame."""
    return parse_frames(split_http(data)[1], until_close=True)


def check_invariance(make_conn, data: bytes, chunks: list[bytes], *, server: bool) -> None:
    assert b"".join(chunks) == data
    pings = [f.payload for f in peer_frames(data) if f.opcode == OPCODES["ping"]]
    chunkings_ = {
        "whole": [data],
        "bytewise": [data[i : i + 1] for i in range(len(data))],
        "drawn": chunks,
    }
    # Drained at the end: identical events and identical answers.
    results = {
        name: feed(make_conn(), pieces, drain_each=False) for name, pieces in chunkings_.items()
    }
    events, out = results["whole"]
    for name, (other_events, other_out) in results.items():
        assert other_events == events, name
        if server:
            assert other_out == out, name
        else:
            assert answer_frames(other_out, server=False) == answer_frames(out, server=False)

    # Drained after every call: identical events; identical answers but for pongs.
    frames = answer_frames(out, server=server)
    for name, pieces in chunkings_.items():
        each_events, each_out = feed(make_conn(), pieces, drain_each=True)
        assert each_events == events, name
        each_frames = answer_frames(each_out, server=server)
        assert [f for f in each_frames if f.opcode != PONG] == [
            f for f in frames if f.opcode != PONG
        ], name
        # Pongs answer pings that were sent, once each, in order.
        pongs = [f.payload for f in each_frames if f.opcode == PONG]
        assert pongs == [p for p in pings if p in pongs], name


@given(config=configs, script=scripts(), data=st.data())
def test_server_events_and_answers_do_not_depend_on_chunking(config, script, data):
    sent = client_bytes(config, script)
    chunks = data.draw(chunkings(sent), label="chunks")
    check_invariance(lambda: ServerConnection(config), sent, chunks, server=True)


@given(config=configs, script=scripts(), data=st.data())
def test_client_events_and_answers_do_not_depend_on_chunking(config, script, data):
    sent = server_bytes(config, script)
    chunks = data.draw(chunkings(sent), label="chunks")

    def make_client() -> ClientConnection:
        return ClientConnection("example.com", "/", config=config, key=KEY)

    check_invariance(make_client, sent, chunks, server=False)
