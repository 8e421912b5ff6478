"""Client -> server throughput of the wskit core against its peers, in one process.

Three sans-I/O implementations are measured in the same run, interleaved, on the
same messages, and wskit is reported as ratios against the other two:

* ``wskit``: ``wskit.core.ClientConnection`` + ``ServerConnection``;
* ``wsproto``: bare ``wsproto.WSConnection`` pair, messages reassembled from
  its partial ``BytesMessage``/``TextMessage`` events as a bare user must;
* ``websockets``: ``websockets.client.ClientProtocol`` + ``server.ServerProtocol``
  (its sans-I/O layer; text is encoded and decoded by the caller, as its
  connection layer does).

One "round" is: the client frames one message, its bytes are fed to the
server, the server's events are drained into one complete message, and the
server's output is collected (empty for a data message). No sockets, no event
loop: this is the protocol cost alone.

Tables: binary and text messages of each ``--sizes``; permessage-deflate on
16 KiB JSON text; a ping flood (10,000 pings in one read); a server echo
over many connections in turn (wskit and websockets: ``--echo-size`` binary
messages, 256 B by default, on ``--echo-connections`` servers, 1,000), with
the tracked objects each echo leaves alive: the young objects that the cyclic
GC's frequent collections traverse while the connections wait. Ratios > 1.0 mean
wskit is faster. The CPU column (``time.process_time``) is the steadier figure
on a noisy machine.

Usage::

    .venv/bin/python benchmarks/core_pair.py [--quick] [--sizes 32,1024,65536,1048576]
                                             [--repeat N] [--time SECONDS] [--markdown]
                                             [--no-text] [--system-malloc]
                                             [--echo-only] [--echo-connections N]
                                             [--echo-size BYTES]
    .venv/bin/python benchmarks/core_pair.py --profile 1048576   # cProfile, then exit
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import itertools
import json
import os
import platform
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import websockets.version
import wsproto
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    enable_client_permessage_deflate,
    enable_server_permessage_deflate,
)
from websockets.protocol import State as WebsocketsState
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto import ConnectionType, WSConnection
from wsproto import events as wsevents
from wsproto.extensions import Extension, PerMessageDeflate

import wskit
from wskit.core import Accepted, ClientConnection, Config, Ping, Request, ServerConnection

MiB = 1024 * 1024
IMPLS = ("wskit", "wsproto", "websockets")
PEERS = ("wsproto", "websockets")
DEFAULT_SIZES = (32, 1024, 65536, MiB)
DEFLATE_SIZE = 16 * 1024
DEFLATE_POOL = 32  # distinct messages, cycled: no message compresses against a copy of itself
PING_COUNT = 10_000
SEED = 20240607

Payload = bytes | str
# One round trip: message in, (message as the server's user sees it, client's wire bytes) out.
RoundTrip = Callable[[Payload], tuple[Payload, bytes]]


class BenchmarkError(Exception):
    """A correctness guard failed: the numbers would be meaningless."""


def require(condition: bool, what: str) -> None:
    # Not ``assert``: the guards must hold under ``python -O`` too.
    if not condition:
        raise BenchmarkError(what)


# --------------------------------------------------------------------- payloads

_TEXT_SEED = (
    "The quick brown fox jumps over the lazy dog; größer, naïve, café, "
    "Ωμέγα, 東京, ✓ done. Lorem ipsum dolor sit amet, consectetur adipiscing. "
)


def binary_message(size: int) -> bytes:
    return random.Random(SEED + size).randbytes(size)


def text_message(size: int) -> str:
    """A str whose UTF-8 encoding is exactly ``size`` bytes, with multi-byte characters."""
    raw = (_TEXT_SEED * (size // len(_TEXT_SEED.encode()) + 1)).encode()[:size]
    text = raw.decode(errors="ignore")  # drop a character cut in half
    return text + "x" * (size - len(text.encode()))


_FIRST = ["Ana", "Bruno", "Chloé", "Dmitri", "Eve", "Farah", "Günter", "Hiro", "Ines", "Jules"]
_LAST = ["Martin", "Nguyen", "Okafor", "Petrov", "Quinn", "Rossi", "Sato", "Müller", "Silva"]
_TAGS = ["admin", "beta", "billing", "eu-west", "mobile", "premium", "support", "trial"]
_ACTIONS = ["login", "logout", "purchase", "refund", "upload", "comment", "share"]


def json_message(rng: random.Random, size: int) -> str:
    """A realistic, repetitive JSON page of ``size`` bytes exactly (UTF-8)."""
    items: list[dict[str, object]] = []
    doc: dict[str, object] = {"page": rng.randrange(1000), "items": items, "cursor": ""}
    while True:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        items.append(
            {
                "id": rng.randrange(10**6, 10**7),
                "user": {
                    "name": f"{first} {last}",
                    "email": f"{first.lower()}.{last.lower()}@example.com",
                    "tags": rng.sample(_TAGS, rng.randint(1, 3)),
                },
                "event": rng.choice(_ACTIONS),
                "amount": round(rng.uniform(0, 500), 2),
                "active": rng.random() < 0.8,
                "created_at": f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T"
                f"{rng.randint(0, 23):02}:{rng.randint(0, 59):02}:{rng.randint(0, 59):02}Z",
            }
        )
        length = len(json.dumps(doc, ensure_ascii=False).encode())
        if length > size - 250:
            break
    if length > size:
        items.pop()
        length = len(json.dumps(doc, ensure_ascii=False).encode())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    doc["cursor"] = "".join(rng.choice(alphabet) for _ in range(size - length))
    text = json.dumps(doc, ensure_ascii=False)
    require(len(text.encode()) == size, "JSON generator missed its size")
    return text


def size_label(size: int) -> str:
    for unit, name in ((MiB, "MiB"), (1024, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} B"


def payload_bytes(message: Payload) -> int:
    return len(message.encode()) if isinstance(message, str) else len(message)


# ------------------------------------------------------------ connection pairs


def wskit_pair(config: Config) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection("example.com", "/", config=config)
    server = ServerConnection(config)
    server.receive_data(client.data_to_send())
    require(any(isinstance(e, Request) for e in server.events()), "wskit: no Request")
    server.accept()
    client.receive_data(server.data_to_send())
    require(any(isinstance(e, Accepted) for e in client.events()), "wskit: not accepted")
    return client, server


def wsproto_pair(deflate: bool) -> tuple[WSConnection, WSConnection]:
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    offer: list[Extension] = [PerMessageDeflate()] if deflate else []
    server.receive_data(
        client.send(wsevents.Request(host="example.com", target="/", extensions=offer))
    )
    require(any(isinstance(e, wsevents.Request) for e in server.events()), "wsproto: no Request")
    answer: list[Extension] = [PerMessageDeflate()] if deflate else []
    client.receive_data(server.send(wsevents.AcceptConnection(extensions=answer)))
    require(
        any(isinstance(e, wsevents.AcceptConnection) for e in client.events()),
        "wsproto: not accepted",
    )
    return client, server


def websockets_pair(deflate: bool) -> tuple[ClientProtocol, ServerProtocol]:
    client = ClientProtocol(
        parse_uri("ws://example.com/"),
        extensions=enable_client_permessage_deflate(None) if deflate else None,
        max_size=None,
    )
    server = ServerProtocol(
        extensions=enable_server_permessage_deflate(None) if deflate else None,
        max_size=None,
    )
    client.send_request(client.connect())
    server.receive_data(b"".join(client.data_to_send()))
    [request] = server.events_received()
    server.send_response(server.accept(request))  # type: ignore[arg-type]
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    require(
        client.state is WebsocketsState.OPEN and server.state is WebsocketsState.OPEN,
        "websockets: handshake failed",
    )
    return client, server


# ------------------------------------------------------------------ round trips


def wskit_roundtrip(config: Config, text: bool) -> tuple[RoundTrip, object]:
    client, server = wskit_pair(config)
    send = client.send_text if text else client.send_bytes

    def roundtrip(message: Payload) -> tuple[Payload, bytes]:
        send(message)  # type: ignore[arg-type]
        wire = client.data_to_send()
        server.receive_data(wire)
        events = server.events()
        server.data_to_send()
        return events[0].data, wire  # type: ignore[union-attr]

    return roundtrip, server


def wsproto_roundtrip(deflate: bool, text: bool) -> tuple[RoundTrip, object]:
    client, server = wsproto_pair(deflate)
    wrap = wsevents.TextMessage if text else wsevents.BytesMessage
    wsmessage = wsevents.Message

    def roundtrip(message: Payload) -> tuple[Payload, bytes]:
        wire = client.send(wrap(data=message))  # type: ignore[arg-type]
        server.receive_data(wire)
        pieces: list[Payload] = []
        received: Payload = b""
        for event in server.events():
            if isinstance(event, wsmessage):
                pieces.append(event.data)
                if event.message_finished:
                    received = "".join(pieces) if text else b"".join(pieces)  # type: ignore[arg-type]
                    pieces = []
        return received, wire

    return roundtrip, server


def websockets_roundtrip(deflate: bool, text: bool) -> tuple[RoundTrip, object]:
    client, server = websockets_pair(deflate)

    if text:

        def roundtrip(message: Payload) -> tuple[Payload, bytes]:
            client.send_text(message.encode())  # type: ignore[union-attr]
            wire = b"".join(client.data_to_send())
            server.receive_data(wire)
            frames = server.events_received()
            server.data_to_send()
            return bytes(frames[0].data).decode(), wire  # type: ignore[union-attr]

    else:

        def roundtrip(message: Payload) -> tuple[Payload, bytes]:
            client.send_binary(message)  # type: ignore[arg-type]
            wire = b"".join(client.data_to_send())
            server.receive_data(wire)
            frames = server.events_received()
            server.data_to_send()
            return frames[0].data, wire  # type: ignore[union-attr,return-value]

    return roundtrip, server


def make_roundtrip(impl: str, *, text: bool, deflate: bool, max_size: int) -> RoundTrip:
    """A fresh, open pair of ``impl``; checks that compression is on iff asked for."""
    if impl == "wskit":
        config = (
            Config(max_message=max_size)
            if deflate
            else Config(compression=None, max_message=max_size)
        )
        roundtrip, server = wskit_roundtrip(config, text)
        assert isinstance(server, ServerConnection)
        require(
            (server.compression == "permessage-deflate") == deflate,
            f"wskit: compression is {server.compression!r}",
        )
        return roundtrip
    if impl == "wsproto":
        return wsproto_roundtrip(deflate, text)[0]
    roundtrip, server = websockets_roundtrip(deflate, text)
    assert isinstance(server, ServerProtocol)
    negotiated = [ext.name for ext in server.extensions]
    require(
        (negotiated == ["permessage-deflate"]) == deflate,
        f"websockets: extensions are {negotiated}",
    )
    return roundtrip


def verify(impl: str, roundtrip: RoundTrip, messages: Sequence[Payload], compressed: bool) -> int:
    """Deliver each message once, intact; return the client's wire bytes for all of them.

    RSV1 on the first frame byte proves compression was (or was not) applied.
    """
    wire_total = 0
    for message in messages:
        received, wire = roundtrip(message)
        require(
            type(received) is type(message) and received == message,
            f"{impl}: a {payload_bytes(message)}-byte message arrived altered",
        )
        require(
            bool(wire[0] & 0x40) == compressed,
            f"{impl}: RSV1 is {bool(wire[0] & 0x40)}, expected {compressed}",
        )
        wire_total += len(wire)
    return wire_total


# -------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Sample:
    count: int
    wall: float
    cpu: float
    faults: int  # minor page faults: fresh memory the kernel had to map in


def page_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@dataclass(frozen=True)
class Result:
    """Medians over the repeats."""

    msgs_per_s: float
    mb_per_s: float
    cpu_us: float  # CPU microseconds per message
    faults: float  # minor page faults per message


def timed_loop(
    roundtrip: RoundTrip, messages: Sequence[Payload], duration: float, min_count: int
) -> Sample:
    """Run round trips for ``duration`` seconds and at least ``min_count`` times."""
    next_message = itertools.cycle(messages).__next__
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # like timeit: a collection would land on whichever loop happens to run
    try:
        count, batch = 0, 1
        faults0 = page_faults()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        while True:
            for _ in range(batch):
                roundtrip(next_message())
            count += batch
            elapsed = time.perf_counter() - wall0
            if elapsed >= duration and count >= min_count:
                break
            per_round = elapsed / count
            # Half the remaining time per batch: few clock reads, little overshoot.
            batch = max(1, int((duration - elapsed) / per_round / 2), min_count - count)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        faults = page_faults() - faults0
    finally:
        if gc_was_enabled:
            gc.enable()
    return Sample(count, wall, cpu, faults)


def summarize(samples: Sequence[Sample], message_bytes: float) -> Result:
    rate = statistics.median(s.count / s.wall for s in samples)
    cpu = statistics.median(s.cpu / s.count for s in samples)
    faults = statistics.median(s.faults / s.count for s in samples)
    return Result(rate, rate * message_bytes / 1e6, cpu * 1e6, faults)


def compare(
    roundtrips: dict[str, RoundTrip],
    messages: Sequence[Payload],
    duration: float,
    repeat: int,
    min_count: int,
) -> dict[str, Result]:
    """Time every implementation ``repeat`` times, interleaved, rotating who goes first."""
    for roundtrip in roundtrips.values():  # warm up: caches, zlib state, allocator
        timed_loop(roundtrip, messages, duration / 5, 1)
    samples: dict[str, list[Sample]] = {impl: [] for impl in roundtrips}
    order = list(roundtrips)
    for run in range(repeat):
        shift = run % len(order)
        for impl in order[shift:] + order[:shift]:
            samples[impl].append(timed_loop(roundtrips[impl], messages, duration, min_count))
    mean_bytes = statistics.fmean(payload_bytes(m) for m in messages)
    return {impl: summarize(samples[impl], mean_bytes) for impl in roundtrips}


# ------------------------------------------------------------------- formatting


def fmt_num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def render(
    title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool
) -> str:
    numeric = [all(_looks_numeric(row[i]) for row in rows) for i in range(len(headers))]
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines) + "\n"
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out = [title, "-" * len(title), line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out) + "\n"


def _looks_numeric(cell: str) -> bool:
    return cell.replace(",", "").replace(".", "").replace("-", "").replace("x", "").isdigit()


def ratio_cells(results: dict[str, Result]) -> list[str]:
    """wskit/peer for each peer: throughput ratio and CPU ratio (> 1.0 = wskit faster)."""
    mine = results["wskit"]
    cells = []
    for peer in PEERS:
        theirs = results[peer]
        cells += [
            fmt_ratio(mine.msgs_per_s / theirs.msgs_per_s),
            fmt_ratio(theirs.cpu_us / mine.cpu_us),
        ]
    return cells


RATIO_HEADERS = [
    "wskit/wsproto",
    "(CPU)",
    "wskit/websockets",
    "(CPU)",
]


# ----------------------------------------------------------------------- tables


def plain_table(kind: str, sizes: Sequence[int], args: argparse.Namespace) -> str:
    text = kind == "text"
    detail: list[list[str]] = []
    ratios: list[list[str]] = []
    for size in sizes:
        message: Payload = text_message(size) if text else binary_message(size)
        roundtrips = {}
        for impl in IMPLS:
            roundtrip = make_roundtrip(impl, text=text, deflate=False, max_size=max(sizes))
            verify(impl, roundtrip, [message], compressed=False)
            roundtrips[impl] = roundtrip
        results = compare(roundtrips, [message], args.time, args.repeat, args.min_count)
        for impl in IMPLS:
            r = results[impl]
            detail.append(
                [
                    size_label(size),
                    impl,
                    fmt_num(r.msgs_per_s),
                    fmt_num(r.mb_per_s),
                    fmt_num(r.cpu_us),
                    fmt_num(r.faults),
                ]
            )
        ratios.append([size_label(size), *ratio_cells(results)])
        if args.progress:
            print(f"  [{kind} {size_label(size)} done]", file=sys.stderr)
    title = f"{kind.capitalize()} messages, client -> server, no compression"
    headers = ["size", "implementation", "msgs/s", "MB/s", "CPU us/msg", "faults/msg"]
    return (
        render(title, headers, detail, args.markdown)
        + "\n"
        + render(
            f"{title}: ratios (> 1.0 = wskit faster)",
            ["size", *RATIO_HEADERS],
            ratios,
            args.markdown,
        )
    )


def deflate_table(args: argparse.Namespace) -> str:
    rng = random.Random(SEED)
    pool = [json_message(rng, DEFLATE_SIZE) for _ in range(DEFLATE_POOL)]
    settings = {
        "wskit": "window 12, memLevel 5 (wskit default)",
        "wsproto": "window 15, memLevel 8 (PerMessageDeflate())",
        "websockets": "window 12, memLevel 5 (websockets default)",
    }
    roundtrips = {}
    wire: dict[str, float] = {}
    for impl in IMPLS:
        roundtrip = make_roundtrip(impl, text=True, deflate=True, max_size=MiB)
        # Twice round the pool: the second pass compresses with a warm context.
        verify(impl, roundtrip, pool, compressed=True)
        wire[impl] = verify(impl, roundtrip, pool, compressed=True) / len(pool)
        roundtrips[impl] = roundtrip
    results = compare(roundtrips, pool, args.time, args.repeat, args.min_count)
    rows = []
    for impl in IMPLS:
        r = results[impl]
        rows.append(
            [
                impl,
                fmt_num(r.msgs_per_s),
                fmt_num(r.mb_per_s),
                fmt_num(r.cpu_us),
                f"{wire[impl]:,.0f}",
                f"{DEFLATE_SIZE / wire[impl]:.2f}x",
                settings[impl],
            ]
        )
    title = (
        f"permessage-deflate, {size_label(DEFLATE_SIZE)} JSON text messages "
        f"({DEFLATE_POOL} distinct, cycled), client -> server"
    )
    headers = [
        "implementation",
        "msgs/s",
        "MB/s",
        "CPU us/msg",
        "wire B/msg",
        "compression",
        "settings",
    ]
    ratio_row = [[size_label(DEFLATE_SIZE), *ratio_cells(results)]]
    return (
        render(title, headers, rows, args.markdown)
        + "\n"
        + render(
            "permessage-deflate: ratios (> 1.0 = wskit faster)",
            ["size", *RATIO_HEADERS],
            ratio_row,
            args.markdown,
        )
    )


def masked_frame(opcode: int, payload: bytes, rng: random.Random) -> bytes:
    """One client-to-server control frame (payload <= 125 bytes), masked as RFC 6455 requires."""
    mask = rng.randbytes(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def count_frames(data: bytes) -> int:
    """Number of unmasked short frames (server-to-client control frames) in ``data``."""
    count = position = 0
    while position < len(data):
        length = data[position + 1] & 0x7F
        require(length <= 125 and not data[position + 1] & 0x80, "unexpected frame in pongs")
        position += 2 + length
        count += 1
    return count


def ping_flood_once(impl: str, blob: bytes) -> tuple[float, float, int, bytes]:
    """Feed ``blob`` to a fresh server; return wall s, CPU s, Ping events seen, pong bytes."""
    if impl == "wskit":
        _, wskit_server = wskit_pair(Config(compression=None))
        wall0, cpu0 = time.perf_counter(), time.process_time()
        wskit_server.receive_data(blob)
        pings = sum(isinstance(e, Ping) for e in wskit_server.events())
        out = wskit_server.data_to_send()
    elif impl == "wsproto":
        _, wsproto_server = wsproto_pair(deflate=False)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        wsproto_server.receive_data(blob)
        pongs = bytearray()
        pings = 0
        for event in wsproto_server.events():
            if isinstance(event, wsevents.Ping):
                pings += 1
                pongs += wsproto_server.send(event.response())  # the caller's job
        out = bytes(pongs)
    else:
        _, websockets_server = websockets_pair(deflate=False)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        websockets_server.receive_data(blob)
        pings = len(websockets_server.events_received())  # ping frames
        out = b"".join(websockets_server.data_to_send())  # pongs, queued by the protocol
    return time.perf_counter() - wall0, time.process_time() - cpu0, pings, out


def ping_table(args: argparse.Namespace) -> str:
    rng = random.Random(SEED)
    payloads = [b"ping%04d" % i for i in range(PING_COUNT)]
    blob = b"".join(masked_frame(0x9, p, rng) for p in payloads)
    walls: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    cpus: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    pongs: dict[str, bytes] = {}
    for impl in IMPLS:  # warm-up and correctness
        _, _, pings, out = ping_flood_once(impl, blob)
        require(pings == PING_COUNT, f"{impl}: {pings} Ping events for {PING_COUNT} pings")
        require(out.endswith(payloads[-1]), f"{impl}: the last pong does not answer the last ping")
        pongs[impl] = out
    for run in range(args.repeat):
        shift = run % len(IMPLS)
        for impl in IMPLS[shift:] + IMPLS[:shift]:
            gc.collect()
            wall, cpu, _, _ = ping_flood_once(impl, blob)
            walls[impl].append(wall)
            cpus[impl].append(cpu)
    wall_ms = {impl: statistics.median(walls[impl]) * 1e3 for impl in IMPLS}
    cpu_ms = {impl: statistics.median(cpus[impl]) * 1e3 for impl in IMPLS}
    rows = []
    for impl in IMPLS:
        rows.append(
            [
                impl,
                fmt_num(wall_ms[impl]),
                fmt_num(cpu_ms[impl]),
                fmt_ratio(wall_ms[impl] / wall_ms["wskit"]),
                f"{count_frames(pongs[impl]):,}",
                f"{len(pongs[impl]):,}",
            ]
        )
    title = f"Ping flood: {PING_COUNT:,} pings (8-byte payloads) in one receive_data"
    headers = ["implementation", "ms", "CPU ms", "time / wskit", "pong frames", "pong bytes"]
    return render(title, headers, rows, args.markdown)


# ------------------------------------------------------------------ server echo

# One echo: the server is fed one masked binary frame, takes its events, sends
# the message back and takes its output, as an I/O layer does per message.
Echo = Callable[[int], None]


def wskit_echoes(count: int, size: int) -> Echo:
    """Echo on ``count`` wskit servers configured as wskit's I/O layer does."""
    config = Config(compression=None, fragments=True)
    servers: list[ServerConnection] = []
    frames: list[bytes] = []
    for index in range(count):
        client, server = wskit_pair(config)
        client.send_bytes(bytes([index % 256]) * size)
        frames.append(client.data_to_send())
        server.tick(0.0)  # arms the keepalive schedule, as the I/O layer's first tick does
        servers.append(server)

    def echo(index: int) -> None:
        server = servers[index]
        server.receive_data(frames[index], now=1.0)
        for event in server.events():
            server.send_bytes(event.data)  # type: ignore[union-attr]
        for buffer in server.buffers_to_send():
            require(len(buffer) == size + 4, "wskit: not an echo")
        server.next_deadline()

    return echo


def websockets_echoes(count: int, size: int) -> Echo:
    """Echo on ``count`` websockets servers (its sans-I/O layer)."""
    servers: list[ServerProtocol] = []
    frames: list[bytes] = []
    for index in range(count):
        client, server = websockets_pair(deflate=False)
        client.send_binary(bytes([index % 256]) * size)
        frames.append(b"".join(client.data_to_send()))
        servers.append(server)

    def echo(index: int) -> None:
        server = servers[index]
        server.receive_data(frames[index])
        for frame in server.events_received():
            server.send_binary(frame.data)
        for buffer in server.data_to_send():
            require(len(buffer) == size + 4, "websockets: not an echo")

    return echo


def young_per_echo(echo: Echo, count: int) -> float:
    """Tracked objects made by one echo on each server and still alive after it.

    What the cyclic GC's frequent young collections traverse while the
    connections wait for their next message.
    """
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects(0))
        for index in range(count):
            echo(index)
        after = len(gc.get_objects(0))
    finally:
        gc.enable()
    return (after - before) / count


def echo_cpu(echo: Echo, count: int, rounds: int) -> float:
    """CPU microseconds per echo over ``rounds`` passes over the servers, GC enabled."""
    gc.collect()
    cpu0 = time.process_time()
    for _ in range(rounds):
        for index in range(count):
            echo(index)
    return (time.process_time() - cpu0) / (rounds * count) * 1e6


def echo_table(args: argparse.Namespace) -> str:
    count, size = args.echo_connections, args.echo_size
    echoes = {"wskit": wskit_echoes(count, size), "websockets": websockets_echoes(count, size)}
    rounds = max(1, round(args.time * 20))
    cpus: dict[str, list[float]] = {impl: [] for impl in echoes}
    for echo in echoes.values():
        echo_cpu(echo, count, 1)  # warm-up
    for run in range(args.repeat):
        order = list(echoes) if run % 2 == 0 else list(echoes)[::-1]
        for impl in order:
            cpus[impl].append(echo_cpu(echoes[impl], count, rounds))
    rows = [
        [
            impl,
            fmt_num(statistics.median(cpus[impl])),
            f"{young_per_echo(echoes[impl], count):.1f}",
        ]
        for impl in echoes
    ]
    title = (
        f"Server echo, {size_label(size)} binary messages, {count:,} connections in turn "
        "(receive, events, send, output)"
    )
    return render(title, ["implementation", "CPU us/msg", "young objects/msg"], rows, args.markdown)


# -------------------------------------------------------------------- profiling


def profile(size: int, text: bool, seconds: float, top: int) -> None:
    """cProfile each implementation's round trip at ``size``; print the top by tottime."""
    message: Payload = text_message(size) if text else binary_message(size)
    kind = "text" if text else "binary"
    for impl in IMPLS:
        roundtrip = make_roundtrip(impl, text=text, deflate=False, max_size=max(size, MiB))
        verify(impl, roundtrip, [message], compressed=False)
        timed_loop(roundtrip, [message], seconds / 5, 1)
        profiler = cProfile.Profile()
        profiler.enable()
        sample = timed_loop(roundtrip, [message], seconds, 1)
        profiler.disable()
        stream = io.StringIO()
        stats = pstats.Stats(profiler, stream=stream)
        stats.strip_dirs().sort_stats("tottime").print_stats(top)
        print(f"=== {impl}, {size_label(size)} {kind}, {sample.count:,} round trips (profiled) ===")
        body = stream.getvalue()
        print(body[body.find("   ncalls") :].rstrip(), end="\n\n")


# ------------------------------------------------------------------------- main


# glibc's malloc moves its mmap and trim thresholds as the process runs, so a
# 1 MiB buffer is sometimes recycled and sometimes handed back to the kernel and
# faulted in again: the 1 MiB rows then flip between two modes from run to run
# (0 or ~2,000 page faults a message). Fixed thresholds keep large buffers on the
# heap for all three implementations alike; --system-malloc measures without.
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(16 * MiB), "MALLOC_TRIM_THRESHOLD_": str(64 * MiB)}


def pin_malloc(argv: Sequence[str]) -> None:
    """Re-run this script with fixed glibc malloc thresholds, unless the user set any."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    if any(name in os.environ for name in PINNED_MALLOC):
        return
    sys.stdout.flush()
    env = {**os.environ, **PINNED_MALLOC}
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *argv], env)


def malloc_note() -> str:
    pinned = [f"{name}={os.environ[name]}" for name in PINNED_MALLOC if name in os.environ]
    if pinned:
        return "glibc malloc: " + " ".join(pinned)
    return "malloc: the system's defaults (thresholds move; 1 MiB rows vary run to run)"


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes must be comma-separated byte counts: {text!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter loops and 3 repeats (~20 s)")
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        default=list(DEFAULT_SIZES),
        help="comma-separated message sizes in bytes (default 32,1024,65536,1048576)",
    )
    parser.add_argument(
        "--repeat", type=int, help="timed runs per case; the median is kept (default 5, quick 3)"
    )
    parser.add_argument(
        "--time", type=float, help="seconds per timed run (default 0.5, quick 0.15)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown")
    parser.add_argument("--no-text", action="store_true", help="skip the text-message tables")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's moving malloc thresholds (default: re-run with fixed ones)",
    )
    parser.add_argument("--progress", action="store_true", help="report progress on stderr")
    parser.add_argument(
        "--echo-connections", type=int, default=1000, help="servers in the echo table (1000)"
    )
    parser.add_argument("--echo-size", type=int, default=256, help="echo message size (256)")
    parser.add_argument("--echo-only", action="store_true", help="print the echo table only")
    parser.add_argument(
        "--profile", type=int, metavar="SIZE", help="cProfile the round trips at SIZE, then exit"
    )
    parser.add_argument("--profile-text", action="store_true", help="profile text, not binary")
    parser.add_argument("--top", type=int, default=12, help="functions listed by --profile")
    args = parser.parse_args(argv)
    if not args.system_malloc:
        pin_malloc(sys.argv[1:] if argv is None else argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.time is None:
        args.time = 0.15 if args.quick else 0.5
    if args.repeat < 1 or args.time <= 0:
        parser.error("--repeat and --time must be positive")
    if args.echo_connections < 1 or not 126 <= args.echo_size < 65536:
        parser.error("--echo-connections must be positive, --echo-size within 126-65535")
    args.min_count = 5

    if args.profile is not None:
        profile(args.profile, args.profile_text, max(args.time * 4, 1.0), top=args.top)
        return 0

    started = time.perf_counter()
    try:
        speedups = "C speedups" if _websockets_speedups() else "pure Python"
        print(
            f"wskit {wskit.__version__} | wsproto {wsproto.__version__} | websockets "
            f"{websockets.version.version} ({speedups}) | Python {platform.python_version()} "
            f"({platform.python_implementation()}) | {platform.machine()}, {os.cpu_count()} CPUs"
        )
        print(malloc_note())
        print(
            f"load average at start: {os.getloadavg()[0]:.2f} (busy machine: trust the CPU columns)"
        )
        print(
            f"median of {args.repeat} run(s) of {args.time:g} s each (at least {args.min_count} "
            "round trips), the three implementations interleaved"
        )
        print("MB = 10^6 bytes of message payload; CPU us/msg = time.process_time per round trip")
        print(
            "ratios: wskit msgs/s / peer msgs/s, then (CPU) peer CPU / wskit CPU; "
            "> 1.0 = wskit faster\n"
        )
        if not args.echo_only:
            kinds = ["binary"] if args.no_text else ["binary", "text"]
            for kind in kinds:
                print(plain_table(kind, args.sizes, args), flush=True)
            print(deflate_table(args), flush=True)
            print(ping_table(args), flush=True)
        print(echo_table(args), flush=True)
    except BenchmarkError as exc:
        print(f"correctness guard failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"total {time.perf_counter() - started:.1f} s, "
        f"load average at end: {os.getloadavg()[0]:.2f}"
    )
    return 0


def _websockets_speedups() -> bool:
    try:
        from websockets import speedups  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
