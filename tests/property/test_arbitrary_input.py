"""Arbitrary input: nothing a peer sends makes the core raise or break its event contract.

Fed in arbitrary chunks to a ``ServerConnection`` (accepting any Request at
once) or to a ``ClientConnection`` (before or after a valid 101):

* arbitrary bytes;
* a valid handshake followed by arbitrary bytes;
* a valid handshake followed by well-formed frames in any order (control
  frames anywhere, odd close codes, invalid UTF-8, broken fragmentation);
* a valid handshake followed by mostly valid frames with random corruptions
  (reserved opcodes, RSV bits, wrong masking, bad FIN on control frames,
  oversized control frames, bad close codes, invalid UTF-8, lying lengths),
  with compression negotiated or not.

Whatever the input: no exception escapes; only the events that side documents
appear (Request or Accepted only first; CloseReceived only just before
Terminated); every ``CloseReceived`` carries a valid peer code (or 1005) and every
``Terminated`` a documented code; there is at most one ``Terminated``, it is the
last event, and nothing at all (events or bytes) follows it whatever is fed,
ticked or closed later; ``state`` is CLOSED exactly when ``Terminated`` was
emitted; and ``receive_eof()`` always ends the connection with exactly one
``Terminated``.

Two judgments are checked exactly: a text message (split anywhere, compressed
or not) is delivered if and only if it is valid UTF-8, else the connection
ends with 1007; and a close frame is echoed when valid (1005 when empty), and
otherwise ends the connection with 1002 (bad length or code) or 1007 (reason
not UTF-8).
"""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pairs import KEY
from tests.property.strategies import (
    COMPRESSING,
    OPCODES,
    PEER_CODES,
    PLAIN,
    TERMINATED_CODES,
    accepted_server,
    chunkings,
    client_request,
    close_payload,
    configs,
    frame,
    open_client,
    open_pair,
    parse_frames,
    raw_frames,
    split,
)
from wskit.core import (
    Accepted,
    ClientConnection,
    CloseReceived,
    Connection,
    Message,
    Ping,
    Pong,
    Request,
    ServerConnection,
    State,
    Terminated,
)

MASK = b"\x5c\x01\xee\x90"
SERVER_EVENTS = (Request, Message, Ping, Pong, CloseReceived, Terminated)
CLIENT_EVENTS = (Accepted, Message, Ping, Pong, CloseReceived, Terminated)


class Observer:
    """Drives one connection and checks the event contract after every call."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.allowed = SERVER_EVENTS if isinstance(conn, ServerConnection) else CLIENT_EVENTS
        self.events: list = []
        self.conn.data_to_send()

    @property
    def terminated(self) -> bool:
        return any(isinstance(e, Terminated) for e in self.events)

    def _collect(self) -> None:
        was_terminated = self.terminated
        new = self.conn.events()
        if any(isinstance(e, Request) for e in new):
            assert isinstance(self.conn, ServerConnection)
            self.conn.accept()
            new += self.conn.events()
        sent = self.conn.data_to_send()
        if was_terminated:
            assert new == [], "events after Terminated"
            assert sent == b"", "bytes queued after Terminated"
        for event in new:
            assert isinstance(event, self.allowed), event
            if isinstance(event, Message):
                assert isinstance(event.data, str | bytes)
            if isinstance(event, CloseReceived):
                assert event.code in PEER_CODES | {1005}, event
            if isinstance(event, Terminated):
                assert event.code in TERMINATED_CODES, event
        self.events += new
        terminations = [i for i, e in enumerate(self.events) if isinstance(e, Terminated)]
        assert len(terminations) <= 1, self.events
        if terminations:
            assert terminations[0] == len(self.events) - 1, self.events
        assert (self.conn.state is State.CLOSED) == bool(terminations)
        # The handshake event comes first, once; a close frame ends the connection at once.
        for i, event in enumerate(self.events):
            if isinstance(event, Request | Accepted):
                assert i == 0, self.events
            if isinstance(event, CloseReceived):
                assert i == len(self.events) - 2, self.events
                assert isinstance(self.events[-1], Terminated), self.events

    def feed(self, chunks: list[bytes]) -> None:
        for chunk in chunks:
            self.conn.receive_data(chunk)
            self._collect()

    def finish(self) -> None:
        """After the input: EOF ends the connection with exactly one Terminated."""
        self.conn.receive_eof()
        self._collect()
        assert self.terminated
        # Nothing revives it.
        self.conn.receive_eof()
        self._collect()
        self.conn.receive_data(b"\x81\x00" * 3)
        self._collect()
        self.conn.tick(10**9)
        self._collect()
        self.conn.close()
        self._collect()
        assert sum(isinstance(e, Terminated) for e in self.events) == 1


def run(conn: Connection, data: bytes, chunks: list[bytes], *, eof: bool = True) -> Observer:
    assert b"".join(chunks) == data
    observer = Observer(conn)
    observer.feed(chunks)
    if eof:
        observer.finish()
    return observer


def new_client(config=None) -> ClientConnection:
    return ClientConnection("example.com", "/", config=config, key=KEY)


# ------------------------------------------------------------------ server side


@given(data=st.data(), garbage=st.binary(max_size=300))
def test_server_survives_arbitrary_bytes(data, garbage):
    run(ServerConnection(), garbage, data.draw(chunkings(garbage)))


@given(data=st.data(), config=configs, garbage=st.binary(max_size=300))
def test_server_survives_a_handshake_then_arbitrary_bytes(data, config, garbage):
    sent = client_request(config) + garbage
    observer = run(ServerConnection(config), sent, data.draw(chunkings(sent)), eof=False)
    assert isinstance(observer.events[0], Request)
    observer.finish()


@given(
    data=st.data(),
    config=configs,
    frames=st.lists(raw_frames(masked=True), max_size=12),
)
def test_server_survives_a_handshake_then_corrupted_frames(data, config, frames):
    sent = client_request(config) + b"".join(frames)
    run(ServerConnection(config), sent, data.draw(chunkings(sent)))


@given(
    data=st.data(),
    config=configs,
    frames=st.lists(raw_frames(masked=True, corrupt=False), max_size=12),
)
def test_server_survives_a_handshake_then_well_formed_frames(data, config, frames):
    """Well-formed frames in any order: control frames anywhere, odd close codes."""
    sent = client_request(config) + b"".join(frames)
    run(ServerConnection(config), sent, data.draw(chunkings(sent)))


# ------------------------------------------------------------------ client side


@given(data=st.data(), garbage=st.binary(max_size=300), http=st.booleans())
def test_client_survives_an_arbitrary_response(data, garbage, http):
    sent = (b"HTTP/1.1 " if http else b"") + garbage
    run(new_client(), sent, data.draw(chunkings(sent)))


@given(data=st.data(), config=configs, garbage=st.binary(max_size=300))
def test_client_survives_a_101_then_arbitrary_bytes(data, config, garbage):
    _, response = accepted_server(config)
    sent = response + garbage
    observer = run(new_client(config), sent, data.draw(chunkings(sent)), eof=False)
    assert isinstance(observer.events[0], Accepted)
    observer.finish()


@given(
    data=st.data(),
    config=configs,
    frames=st.lists(raw_frames(masked=False), max_size=12),
)
def test_client_survives_a_101_then_corrupted_frames(data, config, frames):
    _, response = accepted_server(config)
    sent = response + b"".join(frames)
    run(new_client(config), sent, data.draw(chunkings(sent)))


@given(
    data=st.data(),
    config=configs,
    frames=st.lists(raw_frames(masked=False, corrupt=False), max_size=12),
)
def test_client_survives_a_101_then_well_formed_frames(data, config, frames):
    _, response = accepted_server(config)
    sent = response + b"".join(frames)
    run(new_client(config), sent, data.draw(chunkings(sent)))


# ------------------------------------------------------- exact judgments


def _deflate(data: bytes) -> bytes:
    """A permessage-deflate payload as another implementation would send it."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -9)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


@st.composite
def almost_utf8(draw):
    """Bytes that are often valid UTF-8 and often just barely not."""
    encoded = draw(st.text(max_size=20)).encode()
    mutation = draw(st.sampled_from(["none", "none", "byte", "truncate", "random"]))
    if mutation == "byte" and encoded:
        i = draw(st.integers(0, len(encoded) - 1))
        encoded = encoded[:i] + bytes([draw(st.integers(0x80, 0xFF))]) + encoded[i + 1 :]
    elif mutation == "truncate" and encoded:
        encoded = encoded[: draw(st.integers(0, len(encoded) - 1))]
    elif mutation == "random":
        encoded = draw(st.binary(max_size=20))
    return encoded


@given(
    payload=almost_utf8(),
    compressed=st.booleans(),
    cuts=st.lists(st.integers(0, 100), max_size=4),
    data=st.data(),
)
def test_a_text_message_is_delivered_iff_it_is_valid_utf8(payload, compressed, cuts, data):
    """Valid UTF-8 arrives as a str; anything else ends the connection with 1007."""
    try:
        text: str | None = payload.decode()
    except UnicodeDecodeError:
        text = None
    wire_payload = _deflate(payload) if compressed else payload
    pieces = split(wire_payload, [c % (len(wire_payload) + 1) for c in cuts])
    wire = b"".join(
        frame(
            OPCODES["text"] if i == 0 else OPCODES["continuation"],
            piece,
            fin=i == len(pieces) - 1,
            rsv=(compressed and i == 0, False, False),
            mask=MASK,
        )
        for i, piece in enumerate(pieces)
    )
    config = COMPRESSING if compressed else PLAIN
    sent = client_request(config) + wire
    observer = run(ServerConnection(config), sent, data.draw(chunkings(sent)), eof=False)
    events = observer.events[1:]  # after the Request
    if text is not None:
        assert events == [Message(text)]
    else:
        assert [type(e) for e in events] == [Terminated]
        assert events[0].code == 1007


BOUNDARY_CODES = [0, 999, *range(1000, 1017), 1100, 2999, 3000, 3999, 4000, 4999, 5000, 65535]


@given(
    payload=st.one_of(
        st.binary(max_size=125),
        st.tuples(st.integers(0, 65535), almost_utf8()).map(
            lambda t: close_payload(t[0], t[1][:123])
        ),
    ),
    to_server=st.booleans(),
)
def test_a_close_frame_is_judged_exactly(payload, to_server):
    check_close_judgment(payload, to_server)


@pytest.mark.parametrize("code", BOUNDARY_CODES)
@settings(max_examples=6)
@given(reason=almost_utf8(), to_server=st.booleans())
def test_a_close_frame_with_a_boundary_code_is_judged_exactly(code, reason, to_server):
    check_close_judgment(close_payload(code, reason[:123]), to_server)


def check_close_judgment(payload, to_server):
    """Echo a valid code (1005: none), 1002 for a bad code or length, 1007 for a bad reason.

    Valid codes are those RFC 6455 and the IANA registry allow a peer to send:
    1000-1003, 1007-1014 and 3000-4999.
    """
    conn: Connection = open_pair(PLAIN).server if to_server else open_client(PLAIN)
    mask = MASK if to_server else None
    conn.receive_data(frame(OPCODES["close"], payload, mask=mask))
    events = conn.events()
    answer = parse_frames(conn.data_to_send())
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    try:
        reason: str | None = payload[2:].decode()
    except UnicodeDecodeError:
        reason = None

    if not payload:
        assert events == [CloseReceived(1005), Terminated(1005)]
        assert [(f.opcode, f.payload) for f in answer] == [(OPCODES["close"], b"")]
    elif len(payload) == 1 or code not in PEER_CODES:
        assert [(type(e), e.code) for e in events] == [(Terminated, 1002)]
    elif reason is None:
        assert [(type(e), e.code) for e in events] == [(Terminated, 1007)]
    else:
        assert events == [CloseReceived(code, reason), Terminated(code, reason)]
        # The echo carries the same code.
        assert [(f.opcode, f.payload[:2]) for f in answer] == [(OPCODES["close"], payload[:2])]
    if events[-1].code in (1002, 1007):
        assert [(f.opcode, f.payload[:2]) for f in answer] == [
            (OPCODES["close"], events[-1].code.to_bytes(2, "big"))
        ]
    assert conn.state is State.CLOSED
