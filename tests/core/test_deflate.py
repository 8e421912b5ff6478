"""Tests of wskit.core.deflate: permessage-deflate negotiation and bounded (de)compression."""

from __future__ import annotations

import itertools
import random
import re
import time
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wskit.core.deflate import (
    NAME,
    DeflateOptions,
    DeflateParams,
    Deflater,
    InflateError,
    InflateLimitExceeded,
    Inflater,
    client_accept_response,
    client_offer,
    server_accept_offer,
)
from wskit.errors import NegotiationError, UsageError

MiB = 1024 * 1024
TAIL = b"\x00\x00\xff\xff"
DEFAULT = DeflateOptions()
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def params(snct=False, cnct=False, smwb=15, cmwb=15):
    return DeflateParams(snct, cnct, smwb, cmwb)


# ---------------------------------------------------------------------------
# Options and params


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("window_bits", 8, "window_bits must be an integer in 9..15, got 8"),
        ("window_bits", 16, "window_bits must be an integer in 9..15"),
        ("window_bits", True, "window_bits must be an integer in 9..15"),
        ("peer_window_bits", 8, "peer_window_bits must be an integer in 9..15"),
        ("mem_level", 0, "mem_level must be an integer in 1..9"),
        ("mem_level", 10, "mem_level must be an integer in 1..9"),
        ("level", -1, "level must be an integer in 0..9"),
        ("level", 10, "level must be an integer in 0..9"),
        ("level", 6.0, "level must be an integer in 0..9"),
        ("threshold", -1, "threshold must be an integer in 0.."),
        ("no_context_takeover", 1, "no_context_takeover must be a bool"),
    ],
)
def test_options_validation(field, value, text):
    with pytest.raises(UsageError, match=re.escape(text)):
        DeflateOptions(**{field: value})


def test_options_defaults_are_websockets_choices():
    expected = DeflateOptions(
        window_bits=12, peer_window_bits=12, mem_level=5, level=6, threshold=128
    )
    assert expected == DEFAULT
    assert not DEFAULT.no_context_takeover


def test_params_validation_and_views():
    with pytest.raises(UsageError, match="server_max_window_bits"):
        params(smwb=8)
    with pytest.raises(UsageError, match="client_max_window_bits"):
        params(cmwb=16)
    p = params(snct=True, cnct=False, smwb=10, cmwb=13)
    assert (p.compress_window_bits(client=False), p.decompress_window_bits(client=False)) == (
        10,
        13,
    )
    assert (p.compress_window_bits(client=True), p.decompress_window_bits(client=True)) == (
        13,
        10,
    )
    assert p.compress_reset(client=False)
    assert not p.decompress_reset(client=False)
    assert not p.compress_reset(client=True)
    assert p.decompress_reset(client=True)


# ---------------------------------------------------------------------------
# Server side negotiation

ACCEPTED = [
    # (offer, options, response, (snct, cnct, smwb, cmwb))
    (
        "permessage-deflate; client_max_window_bits",
        DEFAULT,
        "server_max_window_bits=12; client_max_window_bits=12",
        (False, False, 12, 12),
    ),
    ("permessage-deflate", DEFAULT, "server_max_window_bits=12", (False, False, 12, 15)),
    (
        "permessage-deflate; server_max_window_bits=10",
        DEFAULT,
        "server_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
        DEFAULT,
        "server_max_window_bits=10; client_max_window_bits=12",
        (False, False, 10, 12),
    ),
    (
        "permessage-deflate; server_max_window_bits=15",
        DEFAULT,
        "server_max_window_bits=12",
        (False, False, 12, 15),
    ),
    (
        'permessage-deflate; server_max_window_bits="10"',
        DEFAULT,
        "server_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        'permessage-deflate; server_max_window_bits="1\\0"',  # quoted-pair unescapes to 10
        DEFAULT,
        "server_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        "permessage-deflate; client_max_window_bits=10",
        DEFAULT,
        "server_max_window_bits=12; client_max_window_bits=10",
        (False, False, 12, 10),
    ),
    (
        'permessage-deflate; client_max_window_bits="15"',
        DEFAULT,
        "server_max_window_bits=12; client_max_window_bits=12",
        (False, False, 12, 12),
    ),
    (
        " permessage-deflate ;\tclient_max_window_bits ; server_max_window_bits = 11 ",
        DEFAULT,
        "server_max_window_bits=11; client_max_window_bits=12",
        (False, False, 11, 12),
    ),
    (
        "permessage-deflate; server_no_context_takeover",
        DEFAULT,
        "server_no_context_takeover; server_max_window_bits=12",
        (True, False, 12, 15),
    ),
    (
        "permessage-deflate; client_no_context_takeover",
        DEFAULT,
        "client_no_context_takeover; server_max_window_bits=12",
        (False, True, 12, 15),
    ),
    (
        "permessage-deflate; client_max_window_bits; client_no_context_takeover; "
        "server_no_context_takeover; server_max_window_bits=9",
        DEFAULT,
        "server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=9; client_max_window_bits=12",
        (True, True, 9, 12),
    ),
    (
        "permessage-deflate; client_max_window_bits",
        DeflateOptions(window_bits=15, peer_window_bits=9, no_context_takeover=True),
        "server_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9",
        (True, False, 15, 9),
    ),
]


@pytest.mark.parametrize(("offer", "options", "response", "agreed"), ACCEPTED)
def test_server_accepts(offer, options, response, agreed):
    result = server_accept_offer(offer, options)
    assert result is not None
    assert result == (params(*agreed), response)


DECLINED = [
    "x-webkit-deflate-frame",
    "permessage-deflate2",
    "Permessage-Deflate",  # extension tokens are compared exactly, like websockets
    "",
    "permessage-deflate;",
    "permessage-deflate; ",
    "permessage-deflate;;client_max_window_bits",
    "permessage-deflate, permessage-deflate",
    "permessage-deflate; server_max_window_bits=99",
    "permessage-deflate; server_max_window_bits=8",  # legal in RFC 7692, impossible for zlib
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=0",
    "permessage-deflate; server_max_window_bits=-1",
    "permessage-deflate; server_max_window_bits=010",
    "permessage-deflate; server_max_window_bits=1.0",
    "permessage-deflate; server_max_window_bits=abc",
    "permessage-deflate; server_max_window_bits=\uff11\uff10",  # fullwidth "10"
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=",
    'permessage-deflate; server_max_window_bits="10',
    'permessage-deflate; server_max_window_bits=""',
    'permessage-deflate; server_max_window_bits="1 0"',
    "permessage-deflate; server_max_window_bits=10 10",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=8",
    "permessage-deflate; client_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=",
    "permessage-deflate; client_max_window_bits=x",
    "permessage-deflate; client_max_window_bits; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover=1",
    'permessage-deflate; client_no_context_takeover="x"',
    "permessage-deflate; client_no_context_takeover=",
    "permessage-deflate; unknown",
    "permessage-deflate; unknown=1",
    "permessage-deflate; __class__=1",
    "permessage-deflate; __proto__",
    "permessage-deflate; constructor=1",
    "permessage-deflate; Server_Max_Window_Bits=10",
    "permessage-deflate; client_max_window_bits" + "; x" * 2000,
    "permessage-deflate; " + "; ".join(f"p{i}={i}" for i in range(2000)),
    "permessage-deflate" + ";" * 100_000,
]


@pytest.mark.parametrize("offer", DECLINED, ids=lambda offer: repr(offer[:60]))
def test_server_declines(offer):
    assert server_accept_offer(offer, DEFAULT) is None


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate" + ";" * 1_000_000,
        "permessage-deflate; " + "; ".join(["client_max_window_bits"] * 200_000),
        "permessage-deflate; server_max_window_bits=" + "1" * 1_000_000,
        'permessage-deflate; server_max_window_bits="' + '\\"' * 500_000,
        'permessage-deflate; server_max_window_bits="' + "a\\" * 500_000 + '"',
        "permessage-deflate; client_max_window_bits=" + " " * 1_000_000 + "x",
        " " * 1_000_000 + "permessage-deflate x",
    ],
    ids=range(7),
)
def test_server_is_linear_on_hostile_offers(offer):
    start = time.perf_counter()
    assert server_accept_offer(offer, DEFAULT) is None
    assert time.perf_counter() - start < 0.5  # about 1 MB each: quadratic would take minutes


NAMES = st.sampled_from(
    [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "__class__",
        "x",
        "",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.integers(0, 20).map(str),
    st.integers(0, 20).map(lambda n: f'"{n}"'),
    st.sampled_from(["", "010", "abc", '"', '"1', "1 2", "\\"]),
)


def valid_param(name, value):
    if name in ("server_no_context_takeover", "client_no_context_takeover"):
        return value is None
    if name == "server_max_window_bits":
        return expect_bits(value, 9) is not None
    if name == "client_max_window_bits":
        return value is None or expect_bits(value, 9) is not None
    return False


def expect_bits(value, low):
    if value is None:
        return None
    text = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if not text.isdigit() or text.startswith("0") or not low <= int(text) <= 15:
        return None
    return int(text)


@PROPERTY
@given(
    pairs=st.lists(st.tuples(NAMES, VALUES), max_size=6),
    window=st.integers(9, 15),
    peer=st.integers(9, 15),
    nct=st.booleans(),
    spaces=st.sampled_from(["", " ", "\t ", "  "]),
)
def test_server_matches_a_model_of_the_rules(pairs, window, peer, nct, spaces):
    options = DeflateOptions(window_bits=window, peer_window_bits=peer, no_context_takeover=nct)
    pieces = [name if value is None else f"{name}{spaces}={spaces}{value}" for name, value in pairs]
    offer = f"{spaces};{spaces}".join(["permessage-deflate", *pieces])
    found = dict(pairs)
    valid = len(found) == len(pairs) and all(valid_param(n, v) for n, v in pairs)
    result = server_accept_offer(offer, options)
    if not valid:
        assert result is None
        return
    assert result is not None
    agreed, response = result
    asked = expect_bits(found.get("server_max_window_bits"), 9) or 15
    assert agreed.server_max_window_bits == min(window, asked)
    if "client_max_window_bits" in found:
        limit = expect_bits(found["client_max_window_bits"], 9) or 15
        assert agreed.client_max_window_bits == min(peer, limit)
        assert f"client_max_window_bits={agreed.client_max_window_bits}" in response
    else:
        assert agreed.client_max_window_bits == 15
        assert "client_max_window_bits" not in response
    assert agreed.server_no_context_takeover == (nct or "server_no_context_takeover" in found)
    assert agreed.client_no_context_takeover == ("client_no_context_takeover" in found)
    # The response is one our own client accepts, with the same server-side facts.
    seen = client_accept_response(f"{NAME}; {response}", DeflateOptions(window_bits=15))
    assert seen == agreed


@PROPERTY
@given(st.text(max_size=300))
def test_server_never_raises_on_text(text):
    for offer in (text, f"permessage-deflate; {text}", f"permessage-deflate;{text}"):
        result = server_accept_offer(offer, DEFAULT)
        if result is not None:
            assert 9 <= result[0].server_max_window_bits <= 15
            assert 9 <= result[0].client_max_window_bits <= 15


# ---------------------------------------------------------------------------
# Client side negotiation


def test_client_offer():
    assert client_offer(DEFAULT) == "client_max_window_bits"
    assert (
        client_offer(DeflateOptions(no_context_takeover=True))
        == "client_max_window_bits; client_no_context_takeover"
    )


@pytest.mark.parametrize(
    ("response", "options", "agreed"),
    [
        ("permessage-deflate", DEFAULT, (False, False, 15, 12)),
        ("permessage-deflate", DeflateOptions(window_bits=15), (False, False, 15, 15)),
        (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            DEFAULT,
            (False, False, 12, 12),
        ),
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
            DEFAULT,
            (False, False, 10, 9),
        ),
        ("permessage-deflate; client_max_window_bits=15", DEFAULT, (False, False, 15, 12)),
        ('permessage-deflate; server_max_window_bits="11"', DEFAULT, (False, False, 11, 12)),
        ("permessage-deflate; server_max_window_bits=8", DEFAULT, (False, False, 9, 12)),
        ("permessage-deflate; server_no_context_takeover", DEFAULT, (True, False, 15, 12)),
        ("permessage-deflate; client_no_context_takeover", DEFAULT, (False, True, 15, 12)),
        (
            "permessage-deflate",
            DeflateOptions(no_context_takeover=True),
            (False, True, 15, 12),
        ),
        (
            " permessage-deflate ; server_no_context_takeover ;client_no_context_takeover ",
            DEFAULT,
            (True, True, 15, 12),
        ),
    ],
)
def test_client_accepts(response, options, agreed):
    assert client_accept_response(response, options) == params(*agreed)


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("x-webkit-deflate-frame", "extension name is not permessage-deflate"),
        ("permessage-deflate; foo", "unknown parameter 'foo'"),
        ("permessage-deflate; __class__=1", "unknown parameter '__class__'"),
        ("permessage-deflate;", "unknown parameter ''"),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "duplicated parameter server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            "duplicated parameter client_max_window_bits",
        ),
        (
            "permessage-deflate; server_no_context_takeover=1",
            "server_no_context_takeover must not have a value",
        ),
        (
            "permessage-deflate; client_no_context_takeover=x",
            "client_no_context_takeover must not have a value",
        ),
        ("permessage-deflate; server_max_window_bits", "server_max_window_bits must be"),
        ("permessage-deflate; server_max_window_bits=7", "server_max_window_bits must be"),
        ("permessage-deflate; server_max_window_bits=16", "server_max_window_bits must be"),
        ("permessage-deflate; server_max_window_bits=x", "server_max_window_bits must be"),
        ("permessage-deflate; server_max_window_bits=", "server_max_window_bits has a malformed"),
        ("permessage-deflate; client_max_window_bits", "client_max_window_bits must be"),
        ("permessage-deflate; client_max_window_bits=8", "client_max_window_bits must be"),
        ("permessage-deflate; client_max_window_bits=16", "client_max_window_bits must be"),
        ("permessage-deflate; client_max_window_bits=09", "client_max_window_bits must be"),
        ("permessage-deflate" + "; x" * 2000, "more than four parameters"),
    ],
)
def test_client_rejects(response, reason):
    with pytest.raises(NegotiationError, match=re.escape(reason)):
        client_accept_response(response, DEFAULT)


OPTIONS = st.builds(
    DeflateOptions,
    window_bits=st.integers(9, 15),
    peer_window_bits=st.integers(9, 15),
    mem_level=st.integers(1, 9),
    level=st.integers(0, 9),
    no_context_takeover=st.booleans(),
)


@PROPERTY
@given(server=OPTIONS, client=OPTIONS)
def test_negotiation_agrees_on_both_sides(server, client):
    result = server_accept_offer(f"{NAME}; {client_offer(client)}", server)
    assert result is not None
    on_server, response = result
    on_client = client_accept_response(f"{NAME}; {response}", client)
    # Each compressor stays within the window its peer inflates with.
    assert on_client.compress_window_bits(client=True) <= on_server.decompress_window_bits(
        client=False
    )
    assert on_server.compress_window_bits(client=False) <= on_client.decompress_window_bits(
        client=True
    )
    # A decompressor resets only if its peer's compressor does.
    if on_server.decompress_reset(client=False):
        assert on_client.compress_reset(client=True)
    if on_client.decompress_reset(client=True):
        assert on_server.compress_reset(client=False)
    # Each side's own limits hold.
    assert on_server.server_max_window_bits <= server.window_bits
    assert on_server.client_max_window_bits == server.peer_window_bits
    assert on_client.client_max_window_bits <= client.window_bits
    assert on_server.compress_reset(client=False) >= server.no_context_takeover
    assert on_client.compress_reset(client=True) >= client.no_context_takeover


# ---------------------------------------------------------------------------
# Compression


@st.composite
def messages(draw):
    kind = draw(st.sampled_from(["small", "zeros", "random", "words"]))
    if kind == "small":
        return draw(st.binary(max_size=300))
    size = draw(st.integers(0, 64 * 1024))
    rnd = random.Random(draw(st.integers(0, 2**32 - 1)))
    if kind == "zeros":
        return bytes(size)
    if kind == "random":
        return rnd.randbytes(size)
    words = [rnd.randbytes(rnd.randint(1, 12)) for _ in range(40)]
    out = bytearray()
    while len(out) < size:
        out += rnd.choice(words)
    return bytes(out[:size])


def split(draw, data, max_cuts=6):
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_cuts)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


AGREED = st.builds(
    DeflateParams,
    st.booleans(),
    st.booleans(),
    st.integers(9, 15),
    st.integers(9, 15),
)


def send(deflater, fragments):
    last = len(fragments) - 1
    return [deflater.compress(f, fin=i == last) for i, f in enumerate(fragments)]


def receive(draw, inflater, payload, limit):
    """Inflate one message in arbitrary chunks with a running budget."""
    out = bytearray()
    for chunk in split(draw, payload):
        got = inflater.inflate(chunk, limit - len(out))
        assert len(got) <= limit - len(out)
        out += got
    got = inflater.finish_message(limit - len(out))
    assert len(got) <= limit - len(out)
    return bytes(out + got)


@PROPERTY
@given(
    agreed=AGREED,
    client=st.booleans(),
    msgs=st.lists(messages(), max_size=5),
    extra_reset=st.booleans(),
    mem_level=st.integers(1, 9),
    level=st.integers(0, 9),
    data=st.data(),
)
def test_round_trip(agreed, client, msgs, extra_reset, mem_level, level, data):
    draw = data.draw
    # A compressor may always use a smaller window or reset more often than agreed.
    bits = draw(st.integers(9, agreed.compress_window_bits(client=client)))
    deflater = Deflater(
        bits,
        mem_level=mem_level,
        level=level,
        reset_each_message=agreed.compress_reset(client=client) or extra_reset,
    )
    inflater = Inflater(
        agreed.decompress_window_bits(client=not client),
        reset_each_message=agreed.decompress_reset(client=not client),
    )
    plain = zlib.decompressobj(-agreed.decompress_window_bits(client=not client))
    for msg in msgs:
        wire = send(deflater, split(draw, msg))
        assert wire[-1]  # a final fragment is never empty
        payload = b"".join(wire)
        assert receive(draw, inflater, payload, len(msg)) == msg
        # Peers inflate it with plain zlib after appending the tail.
        assert plain.decompress(payload + TAIL) == msg
        if agreed.decompress_reset(client=not client):
            plain = zlib.decompressobj(-agreed.decompress_window_bits(client=not client))


@PROPERTY
@given(
    before=messages(),
    msg=messages(),
    bits=st.integers(9, 15),
    slack=st.one_of(st.integers(-3, 3), st.integers(-70_000, 70_000)),
    data=st.data(),
)
def test_limit_is_exact(before, msg, bits, slack, data):
    deflater = Deflater(bits, mem_level=5, level=6, reset_each_message=False)
    inflater = Inflater(bits, reset_each_message=False)
    # A message that fits first, so the inflater has a warm window.
    assert receive(data.draw, inflater, b"".join(send(deflater, [before])), len(before)) == before
    limit = max(0, len(msg) + slack)
    payload = b"".join(send(deflater, split(data.draw, msg)))
    try:
        got = receive(data.draw, inflater, payload, limit)
    except InflateLimitExceeded:
        assert len(msg) > limit
    else:
        assert len(msg) <= limit
        assert got == msg


@PROPERTY
@given(
    prefix=st.sampled_from([b"", b"J", b"\x00\x00\x00\xff\xff", b"\x02\x00"]),
    chunks=st.lists(st.binary(max_size=200), max_size=8),
    limit=st.integers(0, 5000),
    bits=st.integers(9, 15),
    reset=st.booleans(),
    messages_count=st.integers(1, 3),
)
def test_arbitrary_bytes_only_inflate_or_raise(prefix, chunks, limit, bits, reset, messages_count):
    inflater = Inflater(bits, reset_each_message=reset)
    try:
        for _ in range(messages_count):
            produced = 0
            for chunk in [prefix, *chunks]:
                got = inflater.inflate(chunk, limit - produced)
                assert isinstance(got, bytes)
                assert len(got) <= limit - produced
                produced += len(got)
            got = inflater.finish_message(limit - produced)
            assert isinstance(got, bytes)
            assert len(got) <= limit - produced
    except (InflateError, InflateLimitExceeded):
        pass


def zeros_bomb(size=100 * MiB, bits=15):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -bits, 9)
    block = bytes(MiB)
    parts = [compressor.compress(block) for _ in range(size // MiB)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH)[:-4])
    return b"".join(parts)


def traced_peak(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bomb_in_one_chunk():
    bomb = zeros_bomb()
    assert len(bomb) < 200_000
    inflater = Inflater(15, reset_each_message=False)

    def attack():
        with pytest.raises(InflateLimitExceeded):
            inflater.inflate(bomb, MiB)

    assert traced_peak(attack) < 4 * MiB


def test_bomb_in_small_chunks():
    bomb = zeros_bomb()
    inflater = Inflater(15, reset_each_message=False)

    def attack():
        produced = 0
        with pytest.raises(InflateLimitExceeded):  # noqa: PT012
            for start in range(0, len(bomb), 4096):
                produced += len(inflater.inflate(bomb[start : start + 4096], MiB - produced))
        assert produced <= MiB

    assert traced_peak(attack) < 4 * MiB


def test_bomb_within_limit_is_not_a_bomb():
    bomb = zeros_bomb(size=2 * MiB, bits=12)
    inflater = Inflater(12, reset_each_message=True)
    out = inflater.inflate(bomb, 2 * MiB)
    assert out + inflater.finish_message(2 * MiB - len(out)) == bytes(2 * MiB)


def test_empty_final_fragment():
    deflater = Deflater(12, mem_level=5, level=6, reset_each_message=False)
    assert deflater.compress(b"", fin=True) == b"\x00"  # an empty message
    assert deflater.compress(b"", fin=True) == b"\x00"  # again, with context kept
    first = deflater.compress(b"hello " * 50, fin=False)
    last = deflater.compress(b"", fin=True)
    assert last
    inflater = Inflater(12, reset_each_message=False)
    plain = zlib.decompressobj(-12)
    for payload, expected in [(b"\x00", b""), (b"\x00", b""), (first + last, b"hello " * 50)]:
        assert inflater.inflate(payload, 1000) + inflater.finish_message(1000) == expected
        assert plain.decompress(payload + TAIL) == expected


def test_peer_style_compressors_inflate():
    # websockets: compressobj(wbits=-bits, memLevel=5), sync flush, tail stripped.
    peer = zlib.compressobj(wbits=-10, memLevel=5)
    inflater = Inflater(10, reset_each_message=False)
    for msg in [b"abc" * 1000, b"", b"abc" * 1000, bytes(range(256)) * 4]:
        payload = (peer.compress(msg) + peer.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert inflater.inflate(payload, len(msg)) + inflater.finish_message(len(msg)) == msg


def test_final_block_ends_the_stream():
    # RFC 7692 7.2.3.3: a sender may end each message with a BFINAL=1 block.
    inflater = Inflater(15, reset_each_message=False)
    for msg in [b"first " * 10, b"second " * 10, b""]:
        peer = zlib.compressobj(wbits=-15)
        payload = peer.compress(msg) + peer.flush(zlib.Z_FINISH)
        assert inflater.inflate(payload, 100) + inflater.finish_message(100) == msg


def test_data_after_final_block_is_corrupt():
    peer = zlib.compressobj(wbits=-15)
    payload = peer.compress(b"abc") + peer.flush(zlib.Z_FINISH)
    inflater = Inflater(15, reset_each_message=False)
    with pytest.raises(InflateError, match="after the final deflate block"):
        inflater.inflate(payload + b"junk", 100)


def test_corrupt_data_raises_with_zlib_message():
    inflater = Inflater(15, reset_each_message=False)
    with pytest.raises(InflateError, match="invalid"):
        inflater.inflate(b"\xff\xff\xff\xff", 100)


def test_distance_beyond_window_is_corrupt():
    # A peer that compresses with a larger window than agreed: the second message
    # refers 2000 bytes back into the first, past our 512-byte window.
    peer = zlib.compressobj(wbits=-15)
    msg = random.Random(1).randbytes(2000)
    inflater = Inflater(9, reset_each_message=False)
    payload = (peer.compress(msg) + peer.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert inflater.inflate(payload, 2000) + inflater.finish_message(2000) == msg
    payload = (peer.compress(msg) + peer.flush(zlib.Z_SYNC_FLUSH))[:-4]
    with pytest.raises(InflateError, match="distance too far back"):
        inflater.inflate(payload, 2000)


def test_limit_zero_and_negative():
    deflater = Deflater(9, mem_level=1, level=1, reset_each_message=True)
    inflater = Inflater(9, reset_each_message=True)
    assert inflater.inflate(deflater.compress(b"", fin=True), 0) == b""
    assert inflater.finish_message(0) == b""
    with pytest.raises(InflateLimitExceeded):
        inflater.inflate(deflater.compress(b"x", fin=True), 0)
    with pytest.raises(UsageError, match="limit must be >= 0"):
        Inflater(9, reset_each_message=True).inflate(b"", -1)


def test_accepts_bytes_like():
    deflater = Deflater(15, mem_level=8, level=6, reset_each_message=False)
    inflater = Inflater(15, reset_each_message=False)
    msg = b"bytes-like " * 20
    payload = deflater.compress(bytearray(msg[:50]), fin=False) + deflater.compress(
        memoryview(msg)[50:], fin=True
    )
    view = memoryview(bytearray(payload))
    out = inflater.inflate(view[:7], 1000) + inflater.inflate(bytearray(view[7:]), 1000)
    assert out + inflater.finish_message(1000) == msg


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window_bits": 8}, "window_bits"),
        ({"mem_level": 0}, "mem_level"),
        ({"level": 10}, "level"),
    ],
)
def test_deflater_inflater_validation(kwargs, field):
    args = {"window_bits": 12, "mem_level": 5, "level": 6} | kwargs
    with pytest.raises(UsageError, match=field):
        Deflater(args.pop("window_bits"), reset_each_message=False, **args)
    if field == "window_bits":
        with pytest.raises(UsageError, match=field):
            Inflater(8, reset_each_message=False)


def test_zlib_state_is_lazy_and_released():
    def make():
        keep.extend(
            Deflater(15, mem_level=9, level=9, reset_each_message=False) for _ in range(500)
        )
        keep.extend(Inflater(15, reset_each_message=False) for _ in range(500))

    keep: list[object] = []
    assert traced_peak(make) < 500 * 1024  # eager zlib objects would need over 200 MiB

    def use_and_reset():
        for _ in range(50):
            deflater = Deflater(15, mem_level=9, level=9, reset_each_message=True)
            inflater = Inflater(15, reset_each_message=True)
            inflater.inflate(deflater.compress(b"abc" * 100, fin=True), 300)
            inflater.finish_message(300)
            keep.extend((deflater, inflater))
        assert tracemalloc.get_traced_memory()[0] < 500 * 1024

    traced_peak(use_and_reset)


def test_default_context_memory_per_connection():
    # F15: window 12 and memLevel 5 keep a compressing connection near 64 KiB.
    keep = []

    def connections():
        for _ in range(20):
            deflater = Deflater(12, mem_level=5, level=6, reset_each_message=False)
            inflater = Inflater(12, reset_each_message=False)
            inflater.inflate(deflater.compress(b"abc" * 100, fin=True), 300)
            inflater.finish_message(300)
            keep.append((deflater, inflater))
        assert tracemalloc.get_traced_memory()[0] < 20 * 80 * 1024

    traced_peak(connections)
