"""permessage-deflate (RFC 7692): negotiation and bounded (de)compression.

The functions here speak the parameter strings of one ``Sec-WebSocket-Extensions``
element; the connection splits the header into elements and applies the
threshold. The inflater never holds more than ``limit + 1`` output bytes, which
is the decompression-bomb defence (threat F14); the defaults (window 12,
memLevel 5) keep an idle compressing connection near 64 KiB (F15), and both
zlib objects are created only when first used and dropped whenever a context
reset allows it.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from wskit.errors import NegotiationError, UsageError

__all__ = [
    "NAME",
    "DeflateOptions",
    "DeflateParams",
    "Deflater",
    "InflateError",
    "InflateLimitExceeded",
    "Inflater",
    "client_accept_response",
    "client_offer",
    "server_accept_offer",
]

NAME = "permessage-deflate"
"""The extension token."""

_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: stripped by the sender, appended by the receiver
_SNCT = "server_no_context_takeover"
_CNCT = "client_no_context_takeover"
_SMWB = "server_max_window_bits"
_CMWB = "client_max_window_bits"
_KNOWN = frozenset((_SNCT, _CNCT, _SMWB, _CMWB))
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)  # disjoint alternatives: linear
_BITS = re.compile(r"[1-9][0-9]?")  # RFC 7692: decimal, no leading zeros

BytesLike = bytes | bytearray | memoryview


def _check(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name} must be an integer in {low}..{high}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeflateOptions:
    """Our side's compression settings (the same class for server and client).

    Attributes:
        window_bits: the LZ77 window (9..15) we compress with at most. A server
            answers it as ``server_max_window_bits`` (lower if the client asks);
            a client uses it unless the server imposes a smaller window.
        peer_window_bits: server only: the window (9..15) we ask the client to
            compress with (``client_max_window_bits=N``) when its offer allows
            it; it bounds our inflate memory.
        mem_level: zlib memLevel (1..9) of our compressor; zlib's default is 8.
        level: zlib compression level (0..9); 1 roughly halves CPU for ~25% more bytes.
        threshold: messages shorter than this many bytes are sent uncompressed
            (applied by the connection).
        no_context_takeover: reset our compressor after every message (and say so).
    """

    window_bits: int = 12
    peer_window_bits: int = 12
    mem_level: int = 5
    level: int = 6
    threshold: int = 128
    no_context_takeover: bool = False

    def __post_init__(self) -> None:
        _check("window_bits", self.window_bits, 9, 15)
        _check("peer_window_bits", self.peer_window_bits, 9, 15)
        _check("mem_level", self.mem_level, 1, 9)
        _check("level", self.level, 0, 9)
        _check("threshold", self.threshold, 0, 2**63)
        if not isinstance(self.no_context_takeover, bool):
            raise UsageError(
                f"no_context_takeover must be a bool, got {self.no_context_takeover!r}"
            )


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """What was agreed, as effective values (15 where no limit was agreed).

    Attributes:
        server_no_context_takeover: the server resets its compressor after each message.
        client_no_context_takeover: the client resets its compressor after each message.
        server_max_window_bits: the largest window the server compresses with.
        client_max_window_bits: the largest window the client compresses with.
    """

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int
    client_max_window_bits: int

    def __post_init__(self) -> None:
        _check("server_max_window_bits", self.server_max_window_bits, 9, 15)
        _check("client_max_window_bits", self.client_max_window_bits, 9, 15)

    def compress_window_bits(self, *, client: bool) -> int:
        """Return the window our side compresses with (``client``: we are the client)."""
        return self.client_max_window_bits if client else self.server_max_window_bits

    def decompress_window_bits(self, *, client: bool) -> int:
        """Return the window our side inflates with (``client``: we are the client)."""
        return self.server_max_window_bits if client else self.client_max_window_bits

    def compress_reset(self, *, client: bool) -> bool:
        """Return whether our side resets its compressor after each message."""
        return self.client_no_context_takeover if client else self.server_no_context_takeover

    def decompress_reset(self, *, client: bool) -> bool:
        """Return whether our side resets its decompressor after each message."""
        return self.server_no_context_takeover if client else self.client_no_context_takeover


class _Malformed(ValueError):
    """An element we refuse; the message says why."""


def _parse(element: str) -> dict[str, str | None]:
    """Split ``name; param[=value]; ...`` into {param: value or None}, strictly.

    Linear in the input: at most five pieces are ever split off (more means an
    unknown or duplicated parameter), and every regex has disjoint branches.
    """
    parts = element.split(";", 5)
    if parts[0].strip(" \t") != NAME:
        raise _Malformed(f"extension name is not {NAME}")
    if len(parts) > 5:
        raise _Malformed("more than four parameters")
    params: dict[str, str | None] = {}
    for part in parts[1:]:
        key, eq, raw = part.partition("=")
        key = key.strip(" \t")
        if key not in _KNOWN:  # also rejects "", tokens with spaces, "__class__"...
            raise _Malformed(f"unknown parameter {key[:40]!r}")
        if key in params:
            raise _Malformed(f"duplicated parameter {key}")
        value: str | None = None
        if eq:
            value = raw.strip(" \t")
            quoted = _QUOTED.fullmatch(value)
            if quoted:  # RFC 6455 9.1: the unescaped quoted-string must be a token
                value = re.sub(r"\\(.)", r"\1", quoted.group(1), flags=re.DOTALL)
            if not _TOKEN.fullmatch(value):
                raise _Malformed(f"{key} has a malformed value")
        if key in (_SNCT, _CNCT) and value is not None:
            raise _Malformed(f"{key} must not have a value")
        params[key] = value
    return params


def _bits(key: str, value: str | None, low: int) -> int:
    if value is None or not _BITS.fullmatch(value) or not low <= int(value) <= 15:
        raise _Malformed(f"{key} must be an integer in {low}..15, got {value!r}")
    return int(value)


def server_accept_offer(offer: str, options: DeflateOptions) -> tuple[DeflateParams, str] | None:
    """Answer one client offer, or decline it; never raises on peer input.

    Args:
        offer: one extension element, name first, e.g.
            ``"permessage-deflate; client_max_window_bits"``.
        options: our settings.

    Returns:
        The agreed parameters and the response parameters (without the name),
        or None to decline: wrong name, unknown, duplicated or malformed
        parameters, or window bits outside 9..15.
    """
    try:
        params = _parse(offer)
        # RFC 7692 allows server_max_window_bits=8, but zlib cannot compress raw
        # deflate with an 8-bit window (it refuses, or silently uses 9, which
        # would break the client's 8-bit inflater): decline such offers.
        asked = _bits(_SMWB, params[_SMWB], 9) if _SMWB in params else 15
        client_bits: int | None = None
        if _CMWB in params:
            raw = params[_CMWB]
            client_bits = options.peer_window_bits
            if raw is not None:
                client_bits = min(_bits(_CMWB, raw, 9), client_bits)
    except _Malformed:
        return None
    agreed = DeflateParams(
        server_no_context_takeover=_SNCT in params or options.no_context_takeover,
        client_no_context_takeover=_CNCT in params,
        server_max_window_bits=min(options.window_bits, asked),
        # Without the parameter the client may use 15, so we must inflate with 15.
        client_max_window_bits=15 if client_bits is None else client_bits,
    )
    answer = []
    if agreed.server_no_context_takeover:
        answer.append(_SNCT)
    if agreed.client_no_context_takeover:
        answer.append(_CNCT)
    answer.append(f"{_SMWB}={agreed.server_max_window_bits}")
    if client_bits is not None:
        answer.append(f"{_CMWB}={client_bits}")
    return agreed, "; ".join(answer)


def client_offer(options: DeflateOptions) -> str:
    """Return the parameters (without the name) a client offers.

    We send ``client_max_window_bits`` without a value, which lets the server
    pick our window (websockets does the same), and ``client_no_context_takeover``
    when ``options.no_context_takeover``. We never ask for a server window or
    for server_no_context_takeover: the server sizes its own memory.
    """
    if options.no_context_takeover:
        return f"{_CMWB}; {_CNCT}"
    return _CMWB


def client_accept_response(params: str, options: DeflateOptions) -> DeflateParams:
    """Check the server's accepted element against our offer and return what applies.

    Args:
        params: the accepted element, name first, as the server sent it.
        options: the settings our offer was made from.

    Returns:
        The effective parameters; our compressor window is also capped by
        ``options.window_bits``, and ``options.no_context_takeover`` makes us
        reset even when the server did not echo ``client_no_context_takeover``.

    Raises:
        NegotiationError: the element is not a valid answer to our offer.
    """
    try:
        parsed = _parse(params)
        # An 8-bit server window is legal; inflating with 9 is always safe (a
        # larger window only costs memory) and tolerates zlib peers that used 9.
        server_bits = max(_bits(_SMWB, parsed[_SMWB], 8), 9) if _SMWB in parsed else 15
        client_bits = _bits(_CMWB, parsed[_CMWB], 9) if _CMWB in parsed else 15
    except _Malformed as exc:
        raise NegotiationError(f"invalid {NAME} response {params[:200]!r}: {exc}") from None
    return DeflateParams(
        server_no_context_takeover=_SNCT in parsed,
        client_no_context_takeover=_CNCT in parsed or options.no_context_takeover,
        server_max_window_bits=server_bits,
        client_max_window_bits=min(client_bits, options.window_bits),
    )


class InflateError(Exception):
    """The peer's compressed data is corrupt (the connection closes with 1007)."""


class InflateLimitExceeded(Exception):
    """The message inflates past its size limit (the connection closes with 1009)."""


class Inflater:
    """Decompressor for the messages of one direction, with a bounded output.

    After either exception the inflater is unusable; the connection closes.
    """

    __slots__ = ("_reset", "_window_bits", "_zobj")

    def __init__(self, window_bits: int, *, reset_each_message: bool) -> None:
        _check("window_bits", window_bits, 9, 15)
        self._window_bits = window_bits
        self._reset = reset_each_message
        self._zobj: zlib._Decompress | None = None  # created on first use

    def inflate(self, data: BytesLike, limit: int) -> bytes:
        """Decompress one chunk of a compressed message.

        Args:
            data: compressed bytes, any length (may be empty).
            limit: how many more bytes the current message may inflate to.

        Returns:
            At most ``limit`` decompressed bytes.

        Raises:
            InflateError: the data is not valid deflate data.
            InflateLimitExceeded: the output would pass ``limit``.
            UsageError: ``limit`` is negative.
        """
        if limit < 0:  # max_length=0 would mean "unbounded" to zlib
            raise UsageError(f"limit must be >= 0, got {limit}")
        if self._zobj is None:
            self._zobj = zlib.decompressobj(-self._window_bits)
        zobj = self._zobj
        try:
            out = zobj.decompress(data, limit + 1)
        except zlib.error as exc:
            raise InflateError(str(exc)) from None
        if len(out) > limit or zobj.unconsumed_tail:
            raise InflateLimitExceeded(f"message inflates past its limit of {limit} more bytes")
        if zobj.unused_data:
            raise InflateError("data after the final deflate block")
        return out

    def finish_message(self, limit: int) -> bytes:
        """End the current message: inflate the RFC 7692 tail like :meth:`inflate`, maybe reset.

        Returns any last bytes (at most ``limit``) and raises as :meth:`inflate` does.
        """
        out = b""
        if self._zobj is None or not self._zobj.eof:
            out = self.inflate(_TAIL, limit)
        # A block with BFINAL=1 (RFC 7692 7.2.3.3) ends the stream: start afresh.
        if self._reset or (self._zobj is not None and self._zobj.eof):
            self._zobj = None
        return out


class Deflater:
    """Compressor for the messages of one direction."""

    __slots__ = ("_level", "_mem_level", "_reset", "_window_bits", "_zobj")

    def __init__(
        self, window_bits: int, *, mem_level: int, level: int, reset_each_message: bool
    ) -> None:
        _check("window_bits", window_bits, 9, 15)
        _check("mem_level", mem_level, 1, 9)
        _check("level", level, 0, 9)
        self._window_bits = window_bits
        self._mem_level = mem_level
        self._level = level
        self._reset = reset_each_message
        self._zobj: zlib._Compress | None = None  # created on first use

    def compress(self, data: BytesLike, *, fin: bool) -> bytes:
        """Compress one fragment of a message.

        Args:
            data: the fragment's payload (may be empty).
            fin: this is the last fragment; flush, strip the tail, maybe reset.

        Returns:
            The compressed payload; for a final fragment never empty (RFC
            7692 7.2.3.6: an empty result becomes a single 0x00 byte).
        """
        if self._zobj is None:
            self._zobj = zlib.compressobj(
                self._level, zlib.DEFLATED, -self._window_bits, self._mem_level
            )
        out = self._zobj.compress(data)
        if not fin:
            return out
        out += self._zobj.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(_TAIL), "zlib sync flush did not end with 00 00 ff ff"
        if self._reset:
            self._zobj = None
        return out[:-4] or b"\x00"
