"""Hypothesis strategies and small helpers shared by the property tests of the sans-I/O core.

* payloads: text (any code point but surrogates, astral planes included) and
  binary, mostly small with an occasional large one (up to 64 KiB);
* messages with a fragmentation plan and a per-message ``compress=`` choice;
* configurations with compression off, on, or on with any DeflateOptions;
* a raw frame builder (any opcode, FIN/RSV bits, mask, and optionally a lying
  length) for feeding hand-made and corrupted frames to a connection;
* the exact bytes of a valid opening handshake in both directions;
* the set of close codes a ``Terminated`` event may carry.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.pairs import KEY, Pair
from wskit.core import (
    ClientConnection,
    Config,
    Connection,
    DeflateOptions,
    Request,
    ServerConnection,
)

# ------------------------------------------------------------------ close codes

#: Codes a peer may legitimately put in a close frame; the core echoes them.
PEER_CODES = frozenset({1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)})
#: Codes the core itself produces: failures, "no code" and "no close frame".
CORE_CODES = frozenset({1002, 1005, 1006, 1007, 1009, 1011})
#: Every code a Terminated event may carry.
TERMINATED_CODES = PEER_CODES | CORE_CODES

#: Codes this test suite passes to ``close()``.
close_codes = st.one_of(
    st.sampled_from(sorted(PEER_CODES - set(range(3000, 5000)))),
    st.integers(3000, 4999),
)
close_reasons = st.text(max_size=40).filter(lambda r: len(r.encode()) <= 123)

# --------------------------------------------------------------------- payloads

LARGE = 64 * 1024


def _repeat_text(args: tuple[str, int]) -> str:
    seed, size = args
    return (seed * (size // len(seed) + 1))[:size]


def _random_bytes(args: tuple[int, int]) -> bytes:
    seed, size = args
    return random.Random(seed).randbytes(size)


@st.composite
def _mostly(draw: st.DrawFn, small: st.SearchStrategy, large: st.SearchStrategy):  # type: ignore[type-arg]
    # st.one_of(small, large) picks each branch about as often (and hypothesis
    # avoids repeating small values), so the 1-in-8 odds are drawn explicitly.
    return draw(large) if draw(st.sampled_from([False] * 7 + [True])) else draw(small)


#: Text with any code point hypothesis draws (no surrogates: they cannot be encoded).
small_text = st.text(max_size=64)
#: A large text: a drawn seed repeated (compressible), non-ASCII and astral included.
large_text = st.tuples(st.text(min_size=1, max_size=16), st.integers(1024, LARGE // 4)).map(
    _repeat_text
)
texts = _mostly(small_text, large_text)

small_binary = st.binary(max_size=64)
#: A large binary: either incompressible (seeded random) or very compressible.
large_binary = st.one_of(
    st.tuples(st.integers(0, 2**32), st.integers(1024, LARGE)).map(_random_bytes),
    st.tuples(st.binary(min_size=1, max_size=16), st.integers(1024, LARGE)).map(
        lambda t: (t[0] * (t[1] // len(t[0]) + 1))[: t[1]]
    ),
)
binaries = _mostly(small_binary, large_binary)

payloads = st.one_of(texts, binaries)
#: Payloads of at most 2 KiB: for properties that feed every byte separately.
modest_payloads = _mostly(
    st.one_of(small_text, small_binary),
    st.one_of(large_text, large_binary).map(lambda p: p[:2048]),
)
compress_flags = st.sampled_from([None, True, False])


@dataclass(frozen=True)
class Outgoing:
    """One message to send: its payload, its ``compress=`` flag and its fragments."""

    data: str | bytes
    compress: bool | None
    pieces: tuple[str | bytes, ...]

    def send(self, conn: Connection) -> None:
        """Send the message on ``conn`` as ``len(pieces)`` fragments."""
        for i in range(len(self.pieces)):
            self.send_piece(conn, i)

    def send_piece(self, conn: Connection, i: int) -> None:
        """Send fragment ``i`` (FIN on the last one; ``compress=`` on every one)."""
        piece = self.pieces[i]
        fin = i == len(self.pieces) - 1
        if isinstance(piece, str):
            conn.send_text(piece, compress=self.compress, fin=fin)
        else:
            conn.send_bytes(piece, compress=self.compress, fin=fin)

    @property
    def size(self) -> int:
        """The message's size in bytes (UTF-8 for text), as the receiver counts it."""
        return len(self.data.encode()) if isinstance(self.data, str) else len(self.data)


def split(data: str | bytes, cuts: Sequence[int]) -> tuple[str | bytes, ...]:
    """Split ``data`` at the given offsets (clamped and sorted; empty pieces allowed)."""
    points = sorted(min(max(c, 0), len(data)) for c in cuts)
    bounds = [0, *points, len(data)]
    return tuple(data[a:b] for a, b in itertools.pairwise(bounds))


@st.composite
def outgoing(draw: st.DrawFn, data: st.SearchStrategy[str | bytes] = payloads) -> Outgoing:
    """A message with a drawn fragmentation (1..9 fragments) and compress flag."""
    payload = draw(data)
    cuts = draw(
        st.one_of(
            st.just([]),
            st.lists(st.integers(0, len(payload)), max_size=8),
        )
    )
    return Outgoing(payload, draw(compress_flags), split(payload, cuts))


def chunk_splits(data: bytes, cuts: Sequence[int]) -> Iterator[bytes]:
    """Yield ``data`` cut at the given offsets (empty chunks skipped)."""
    for piece in split(data, cuts):
        if piece:
            yield piece  # type: ignore[misc]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` split into arbitrary consecutive chunks (hypothesis-drawn split points)."""
    if not data:
        return []
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=min(len(data), 40)))
    return list(chunk_splits(data, cuts))  # type: ignore[arg-type]


# ---------------------------------------------------------------- configuration

COMPRESSING = Config()
PLAIN = Config(compression=None)
configs = st.sampled_from([COMPRESSING, PLAIN])

deflate_options = st.builds(
    DeflateOptions,
    window_bits=st.integers(9, 15),
    peer_window_bits=st.integers(9, 15),
    mem_level=st.integers(1, 9),
    level=st.integers(0, 9),
    threshold=st.sampled_from([0, 1, 128, 4096]),
    no_context_takeover=st.booleans(),
)


@st.composite
def config_pairs(draw: st.DrawFn) -> tuple[Config, Config]:
    """(client config, server config): compression off, default, or any options, per side."""
    choices = st.one_of(st.sampled_from([None, DeflateOptions()]), deflate_options)
    return Config(compression=draw(choices)), Config(compression=draw(choices))


# ---------------------------------------------------------------- raw frames

OPCODES = {
    "continuation": 0x0,
    "text": 0x1,
    "binary": 0x2,
    "close": 0x8,
    "ping": 0x9,
    "pong": 0xA,
}


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: tuple[bool, bool, bool] = (False, False, False),
    mask: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """Serialize one WebSocket frame by hand, valid or not.

    Args:
        opcode: 0..15, reserved values included.
        payload: the unmasked payload.
        fin: the FIN bit.
        rsv: the RSV1..3 bits.
        mask: 4 bytes to mask with (client frames must be masked), or None.
        length: the length to declare, if it should lie about ``payload``.
    """
    first = (0x80 if fin else 0) | (rsv[0] << 6) | (rsv[1] << 5) | (rsv[2] << 4) | (opcode & 0xF)
    declared = len(payload) if length is None else length
    mask_bit = 0x80 if mask is not None else 0
    if declared < 126:
        header = bytes([first, mask_bit | declared])
    elif declared < 2**16:
        header = bytes([first, mask_bit | 126]) + struct.pack("!H", declared)
    else:
        header = bytes([first, mask_bit | 127]) + struct.pack("!Q", declared)
    if mask is not None:
        header += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + payload


@dataclass(frozen=True)
class Frame:
    """One parsed frame (payload unmasked)."""

    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes


def parse_frames(data: bytes, *, until_close: bool = False) -> list[Frame]:
    """Parse well-formed frames (masked or not); an incomplete last frame is an error.

    With ``until_close``, stop after a close frame (what follows may be junk).
    """
    frames = []
    i = 0
    while i < len(data):
        first, second = data[i], data[i + 1]
        length = second & 0x7F
        i += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[i : i + 2])
            i += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[i : i + 8])
            i += 8
        mask = b"\0\0\0\0"
        if second & 0x80:
            mask = data[i : i + 4]
            i += 4
        payload = bytes(b ^ mask[j % 4] for j, b in enumerate(data[i : i + length]))
        assert len(payload) == length, "truncated frame"
        i += length
        frames.append(Frame(bool(first & 0x80), bool(first & 0x40), first & 0xF, payload))
        if until_close and frames[-1].opcode == 0x8:
            break
    return frames


def split_http(data: bytes) -> tuple[bytes, bytes]:
    """Split bytes into an HTTP head (through the blank line) and what follows."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, "no complete HTTP head"
    return head + sep, rest


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    """The payload of a close frame (empty when ``code`` is None)."""
    return b"" if code is None else struct.pack("!H", code) + reason


@st.composite
def raw_frames(draw: st.DrawFn, *, masked: bool, corrupt: bool = True) -> bytes:
    """A mostly valid frame, sometimes (when ``corrupt``) with a random corruption.

    ``masked`` says whether a well-behaved sender masks (client to server).
    Even well-formed frames may break the protocol in sequence (a data frame
    while a fragmented message is under way, a stray continuation), and their
    payloads may be invalid UTF-8 or an invalid close code. Corruptions:
    reserved opcodes, RSV bits, wrong masking, fragmented control frames,
    oversized control frames, a lying length.
    """
    kind = draw(st.sampled_from(sorted(OPCODES)))
    opcode = OPCODES[kind]
    if kind == "close":
        code = draw(
            st.one_of(st.none(), st.sampled_from(sorted(PEER_CODES)), st.integers(0, 65535))
        )
        payload = close_payload(code, draw(st.sampled_from([b"", b"bye", b"\xff\xfe"])))
    elif kind == "text":
        payload = draw(st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=20)))
    else:
        payload = draw(st.binary(max_size=40))
    fin = draw(st.sampled_from([True, True, True, False])) if opcode < 8 else True
    rsv = (False, False, False)
    mask = draw(st.binary(min_size=4, max_size=4)) if masked else None
    length = None
    corruption = "none"
    if corrupt:
        corruption = draw(
            st.sampled_from(["none"] * 12 + ["opcode", "rsv", "mask", "fin", "big", "length"])
        )
    if corruption == "opcode":
        opcode = draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]))
    elif corruption == "rsv":
        rsv = draw(st.tuples(st.booleans(), st.booleans(), st.booleans()))
    elif corruption == "mask":
        mask = None if masked else b"\x01\x02\x03\x04"
    elif corruption == "fin":
        fin = not fin
    elif corruption == "big":
        payload = draw(st.binary(min_size=126, max_size=300))
    elif corruption == "length":
        length = draw(st.one_of(st.integers(0, 300), st.integers(0, 2**63 - 1)))
    return frame(opcode, payload, fin=fin, rsv=rsv, mask=mask, length=length)


# ---------------------------------------------------------------- handshakes


def client_request(config: Config | None = None) -> bytes:
    """The exact upgrade request of ``ClientConnection(..., key=KEY)``."""
    return ClientConnection("example.com", "/", config=config, key=KEY).data_to_send()


def accepted_server(
    config: Config | None = None, client_config: Config | None = None
) -> tuple[ServerConnection, bytes]:
    """A server that accepted the request of :func:`client_request`, and its 101 response."""
    server = ServerConnection(config)
    server.receive_data(client_request(client_config if client_config is not None else config))
    events = server.events()
    assert isinstance(events[0], Request), events
    server.accept()
    return server, server.data_to_send()


def open_client(config: Config | None = None) -> ClientConnection:
    """A client (key=KEY) that has received a valid 101 response; its events are drained."""
    _, response = accepted_server(config)
    client = ClientConnection("example.com", "/", config=config, key=KEY)
    client.data_to_send()
    client.receive_data(response)
    client.events()
    return client


def open_pair(config: Config | None = None) -> Pair:
    """A :class:`Pair` after its opening handshake."""
    return Pair.open(config)
