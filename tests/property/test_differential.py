"""Differential tests: wskit's own frame codec against wsproto, the oracle.

:class:`wskit.core.frames.FrameCodec` (the fast path every connection uses)
must behave exactly like :class:`wskit.core._wsproto.FrameEngine` (wsproto's
frame layer behind wskit's guard). Both are fed the same things, and:

* receiving: for any bytes (mostly frames, valid or broken in every way
  wsproto checks, compressed or not, plus junk), in any chunking, on either
  side, with and without permessage-deflate, limits and fragment delivery,
  every call returns the same events; a failure has the same error class and
  close code (its wording may differ); and so for runs of messages in one
  frame each (the codec's fast path), whole or cut anywhere;
* sending: any sequence of messages (fragmented, compressed or not), pings,
  pongs and a close gives the same frames: byte for byte from a server, and
  from a client the same frames once unmasked (masking keys are random).

Both maskers run: the C routine when installed and the pure-Python fallback.
``WSKIT_DIFFERENTIAL_EXAMPLES`` sets the number of examples of the
differential tests (400 receiving, 200 receiving single-frame messages and
200 sending per masker by default).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.property.strategies import chunkings, frame, parse_frames, raw_frames
from wskit.core import _wsproto, frames, masking
from wskit.core._wsproto import Failure, FrameEngine
from wskit.core.deflate import DeflateParams
from wskit.core.frames import FrameCodec

MASKERS = ["python", "fastest"]
EXAMPLES = int(os.environ.get("WSKIT_DIFFERENTIAL_EXAMPLES", "400"))
# Payload sizes at the edges of the three length forms, and of the limits drawn below.
BOUNDARIES = [124, 125, 126, 127, 400, 401, 65535, 65536]


@contextmanager
def using(masker: str) -> Iterator[None]:
    """Run the codec with the given masking routine."""
    saved = frames.mask
    if masker == "python":
        frames.mask = masking.mask_python
    try:
        yield
    finally:
        frames.mask = saved


@st.composite
def deflate_params(draw: st.DrawFn) -> DeflateParams | None:
    """No compression, or any agreed permessage-deflate parameters."""
    if draw(st.booleans()):
        return None
    return DeflateParams(
        server_no_context_takeover=draw(st.booleans()),
        client_no_context_takeover=draw(st.booleans()),
        server_max_window_bits=draw(st.integers(9, 15)),
        client_max_window_bits=draw(st.integers(9, 15)),
    )


@st.composite
def setups(draw: st.DrawFn) -> dict[str, object]:
    """Keyword arguments that both engines take."""
    return {
        "client": draw(st.booleans()),
        "deflate": draw(deflate_params()),
        "max_message": draw(st.one_of(st.none(), st.integers(0, 400), st.just(2**20))),
        "max_fragments": draw(st.integers(1, 6)),
        "mem_level": draw(st.integers(1, 9)),
        "level": draw(st.integers(0, 9)),
        "fragments": draw(st.booleans()),
    }


def _header(first: int, length: int, wide: int, mask: bytes | None) -> bytes:
    """A frame header; ``wide`` forces the 2- (1) or 8-byte (2) length form."""
    mask_bit = 0x80 if mask is not None else 0
    if length < 126 and not wide:
        head = bytes([first, mask_bit | length])
    elif length < 2**16 and wide != 2:
        head = bytes([first, mask_bit | 126]) + struct.pack("!H", length)
    else:
        head = bytes([first, mask_bit | 127]) + struct.pack("!Q", length)
    return head + (mask or b"")


@st.composite
def compressed_message(draw: st.DrawFn, masked: bool, window_bits: int) -> bytes:
    """A message deflated as a peer would (or with a corrupted stream), in 1-3 frames."""
    text = draw(st.booleans())
    raw = (
        draw(st.text(max_size=60)).encode()
        if text
        else draw(st.binary(max_size=60)) * draw(st.integers(1, 20))
    )
    zobj = zlib.compressobj(draw(st.integers(0, 9)), zlib.DEFLATED, -window_bits)
    body = zobj.compress(raw) + zobj.flush(zlib.Z_SYNC_FLUSH)
    body = body[:-4] if body.endswith(b"\x00\x00\xff\xff") else body
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.binary(max_size=30))  # not deflate data at all
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=2)))
    pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    out = b""
    for index, piece in enumerate(pieces):
        opcode = (1 if text else 2) if index == 0 else 0
        rsv = (index == 0, False, False)
        mask = draw(st.binary(min_size=4, max_size=4)) if masked else None
        out += frame(opcode, piece, fin=index == len(pieces) - 1, rsv=rsv, mask=mask)
    return out


@st.composite
def wide_frame(draw: st.DrawFn, masked: bool) -> bytes:
    """A data or control frame whose length uses a longer form than needed, or a big one."""
    opcode = draw(st.sampled_from([0, 1, 2, 8, 9, 10]))
    size = draw(st.one_of(st.integers(0, 20), st.sampled_from(BOUNDARIES)))
    payload = bytes([draw(st.integers(0, 255))]) * size
    mask = draw(st.binary(min_size=4, max_size=4)) if masked else None
    fin = draw(st.booleans()) if opcode < 8 else True
    first = (0x80 if fin else 0) | opcode
    body = payload
    if mask is not None:
        body = masking.mask_python(payload, mask)
    return _header(first, len(payload), draw(st.integers(0, 2)), mask) + body


@st.composite
def fragmented_message(draw: st.DrawFn, masked: bool) -> bytes:
    """A well-formed message in 1-7 frames, perhaps with pings between them."""
    opcode = draw(st.sampled_from([1, 2]))
    count = draw(st.integers(1, 7))
    out = b""
    for index in range(count):
        mask = draw(st.binary(min_size=4, max_size=4)) if masked else None
        piece = draw(st.text(max_size=8)).encode() if opcode == 1 else draw(st.binary(max_size=8))
        out += frame(opcode if index == 0 else 0, piece, fin=index == count - 1, mask=mask)
        if draw(st.integers(0, 4)) == 0:
            out += frame(9, b"p", mask=mask)
    return out


@st.composite
def inbound(draw: st.DrawFn, client: bool, deflate: DeflateParams | None) -> bytes:
    """Bytes a peer might send after the handshake: frames, good and bad, and junk."""
    masked = not client
    parts = []
    kinds = ["raw", "raw", "raw", "wide", "junk", "fragmented", "fragmented"]
    if deflate is not None:
        kinds += ["deflate", "deflate", "deflate"]
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(kinds))
        if kind == "raw":
            parts.append(draw(raw_frames(masked=masked)))
        elif kind == "fragmented":
            parts.append(draw(fragmented_message(masked)))
        elif kind == "wide":
            parts.append(draw(wide_frame(masked)))
        elif kind == "deflate":
            assert deflate is not None
            bits = deflate.decompress_window_bits(client=client)
            parts.append(draw(compressed_message(masked, bits)))
        else:
            parts.append(draw(st.binary(max_size=12)))
    return b"".join(parts)


def _normal(events: list[object]) -> list[object]:
    """Events as compared: a failure by its error's class and close code."""
    return [(type(e.error), e.error.close_code) if isinstance(e, Failure) else e for e in events]


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=EXAMPLES)
@given(data=st.data(), setup=setups())
def test_receiving_matches_wsproto(masker: str, data: st.DataObject, setup: dict) -> None:
    stream = data.draw(inbound(bool(setup["client"]), setup["deflate"]))  # type: ignore[arg-type]
    chunks = data.draw(chunkings(stream))
    oracle = FrameEngine(**setup)  # type: ignore[arg-type]
    codec = FrameCodec(**setup)  # type: ignore[arg-type]
    with using(masker):
        for chunk in chunks:
            expected = _normal(list(oracle.receive(chunk)))
            assert _normal(list(codec.receive(chunk))) == expected


@st.composite
def single_frame_messages(draw: st.DrawFn, masked: bool, limit: int | None) -> bytes:
    """Messages in one frame each, as most traffic is, some a step off the common case.

    The codec takes a whole such frame in one go; the steps off (a longer
    length form than needed, the wrong mask bit, a size at or over the
    limit, invalid UTF-8, no FIN, an RSV bit) must fail, or be parsed, as
    wsproto does. A ping now and then sits between them.
    """
    out = b""
    for _ in range(draw(st.integers(1, 6))):
        text = draw(st.booleans())
        sizes = st.one_of(st.integers(0, 8), st.sampled_from(BOUNDARIES))
        if limit is not None and limit < 2**16:
            sizes |= st.integers(max(0, limit - 1), limit + 1)
        size = draw(sizes)
        if text:
            payload = (draw(st.sampled_from(["a", "é", "\U0001f600"])) * size).encode()[:size]
        else:
            payload = bytes([draw(st.integers(0, 255))]) * size
        first = 0x81 if text else 0x82
        off = draw(st.sampled_from(["none"] * 4 + ["wide", "mask", "fin", "rsv"]))
        if off == "fin":
            first &= 0x7F
        elif off == "rsv":
            first |= draw(st.sampled_from([0x10, 0x20, 0x40]))
        mask = draw(st.binary(min_size=4, max_size=4)) if masked != (off == "mask") else None
        body = payload if mask is None else masking.mask_python(payload, mask)
        wide = draw(st.integers(1, 2)) if off == "wide" else 0
        out += _header(first, size, wide, mask) + body
        if draw(st.integers(0, 5)) == 0:
            out += frame(9, b"p", mask=draw(st.binary(min_size=4, max_size=4)) if masked else None)
    return out


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=max(1, EXAMPLES // 2))
@given(data=st.data(), setup=setups(), whole=st.booleans())
def test_receiving_single_frame_messages_matches_wsproto(
    masker: str, data: st.DataObject, setup: dict, whole: bool
) -> None:
    stream = data.draw(single_frame_messages(not setup["client"], setup["max_message"]))
    chunks = [stream] if whole else data.draw(chunkings(stream))
    oracle = FrameEngine(**setup)  # type: ignore[arg-type]
    codec = FrameCodec(**setup)  # type: ignore[arg-type]
    with using(masker):
        for chunk in chunks:
            expected = _normal(list(oracle.receive(chunk)))
            assert _normal(list(codec.receive(chunk))) == expected


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, object, bool, bool]]:
    """What an application sends: (kind, payload, fin, compress) steps."""
    steps: list[tuple[str, object, bool, bool]] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "binary", "text", "binary", "ping", "pong"]))
        if kind in ("text", "binary"):
            pieces = draw(st.integers(1, 3))
            compress = draw(st.booleans())
            for index in range(pieces):
                payload: object = (
                    draw(st.text(max_size=40)) * draw(st.sampled_from([1, 1, 200]))
                    if kind == "text"
                    else draw(st.binary(max_size=40)) * draw(st.sampled_from([1, 1, 200, 2000]))
                )
                steps.append((kind, payload, index == pieces - 1, compress))
        else:
            steps.append((kind, draw(st.binary(max_size=125)), True, False))
    if draw(st.booleans()):
        code = draw(st.sampled_from([None, 1000, 1001, 1011, 1014, 1015, 3000, 4999]))
        reason = "" if code is None else draw(st.text(max_size=50))
        steps.append(("close", (code, reason), True, False))
    return steps


@pytest.mark.parametrize("masker", MASKERS)
@settings(max_examples=max(1, EXAMPLES // 2))
@given(setup=setups(), steps=operations())
def test_sending_matches_wsproto(masker: str, setup: dict, steps: list) -> None:
    oracle = FrameEngine(**setup)
    codec = FrameCodec(**setup)
    with using(masker):
        sent_oracle, sent_codec = _send_both(oracle, codec, steps)
    if setup["client"]:
        assert parse_frames(sent_codec) == parse_frames(sent_oracle)
        # The same length: every frame is masked, as the oracle's are.
        assert len(sent_codec) == len(sent_oracle)
    else:
        assert sent_codec == sent_oracle


def _send_both(oracle: FrameEngine, codec: FrameCodec, steps: list) -> tuple[bytes, bytes]:
    sent_oracle = b""
    sent_codec = b""
    for kind, payload, fin, compress in steps:
        if kind in ("text", "binary"):
            sent_oracle += oracle.send_data(payload, fin=fin, compress=compress)
            sent_codec += b"".join(codec.send_data(payload, fin=fin, compress=compress))
            assert codec.sending_fragments == oracle.sending_fragments
        elif kind == "ping":
            sent_oracle += oracle.send_ping(payload)
            sent_codec += codec.send_ping(payload)
        elif kind == "pong":
            sent_oracle += oracle.send_pong(payload)
            sent_codec += codec.send_pong(payload)
        else:
            sent_oracle += oracle.send_close(*payload)
            sent_codec += codec.send_close(*payload)
    return sent_oracle, sent_codec


@given(data=st.binary(max_size=3000), key=st.binary(min_size=4, max_size=4))
def test_the_python_masker_matches_wsproto(data: bytes, key: bytes) -> None:
    assert masking.mask_python(memoryview(data), key) == masking.mask(memoryview(data), key)
    expected = bytes(_wsproto_mask(data, key))
    assert masking.mask_python(data, key) == expected
    assert masking.mask(data, key) == expected
    assert masking.mask_python(masking.mask_python(data, key), key) == data


def _wsproto_mask(data: bytes, key: bytes) -> bytes:
    from wsproto.frame_protocol import XorMaskerSimple

    return bytes(XorMaskerSimple(key).process(bytearray(data)))


def test_masking_keys_are_fresh_across_blocks() -> None:
    keys = masking.MaskKeys()
    drawn = [keys.take() for _ in range(3 * masking.MaskKeys._BLOCK // 4)]
    assert all(len(key) == 4 for key in drawn)
    # 3,072 random 32-bit keys: a repeat is a ~0.1% event, a stuck block is not.
    assert len(set(drawn)) > len(drawn) - 5


def test_the_core_uses_the_codec() -> None:
    # The differential proof is about the engine every connection runs.
    from tests.pairs import Pair

    pair = Pair.open()
    assert isinstance(pair.server._engine, FrameCodec)
    assert _wsproto.FrameEngine is FrameEngine
