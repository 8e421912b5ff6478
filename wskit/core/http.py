"""Bounded reading of HTTP/1.1 heads and rendering of simple responses (sans-I/O).

The opening handshake is the one place where a peer talks HTTP to us, and it is
where parsers have been attacked: oversized or dripped heads, header floods,
bare LFs, obs-folds, control and non-ASCII bytes (threats H3-H6, H12). This
module reads a head under explicit limits that are enforced as bytes arrive,
rejects everything HTTP/1.1 does not allow, and never buffers more than
``max_head`` bytes.

We are deliberately strict: any byte >= 0x80 anywhere in a head is refused
(RFC 9110 allows obs-text in field values, but no WebSocket handshake needs
it, and refusing it means every name and value decodes as ASCII).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from wskit.errors import UsageError

__all__ = [
    "HeadReader",
    "HeaderIndex",
    "Headers",
    "HttpError",
    "HttpLimits",
    "RequestHead",
    "ResponseHead",
    "get_header",
    "header_index",
    "is_token",
    "render_response",
    "split_comma_list",
]

Headers = tuple[tuple[str, str], ...]
"""Header fields in order: names as received (case preserved), values stripped of OWS."""

HeaderIndex = dict[str, list[str]]
"""Every value of each header, in order, by lower-cased name (see :func:`header_index`)."""

_TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VCHAR_SP = bytes(range(0x20, 0x7F))  # visible ASCII and SP; DEL (0x7f) is a control
_VCHAR_SP_HTAB = _VCHAR_SP + b"\t"
_DIGITS = "0123456789"
_OWS = " \t"


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """Size limits of one HTTP head, in bytes and header lines.

    Attributes:
        max_line: bytes in the request or status line and in each header line,
            CRLF excluded. Requests: 414 for the request line, 431 for a header.
        max_headers: header lines (431 when passed).
        max_head: bytes of the whole head: start line, header lines and the
            blank line, CRLFs included (431 when passed).
        max_body: client side: bytes of a rejection response body kept at most.
    """

    max_line: int = 8192
    max_headers: int = 128
    max_head: int = 32 * 1024
    max_body: int = 64 * 1024

    def __post_init__(self) -> None:
        for name in ("max_line", "max_headers", "max_head", "max_body"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"HttpLimits.{name} must be a positive integer, got {value!r}")


class HttpError(Exception):
    """The head broke HTTP/1.1 or a limit.

    Attributes:
        status: for requests, the status to answer with (400, 414, 431, ...);
            0 for responses (the client maps it to InvalidResponse).
        message: what was wrong, naming the limit and its value when one was passed.
        headers: extra response headers to send with the status (e.g. Allow: GET).
    """

    def __init__(self, status: int, message: str, headers: Headers = ()) -> None:
        self.status = status
        self.message = message
        self.headers = headers
        super().__init__(f"{status}: {message}" if status else message)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A request line and its header fields.

    Attributes:
        method: the method token, e.g. "GET".
        target: the origin-form request target (starts with "/").
        version: the version as given, e.g. "HTTP/1.1" (checked by the handshake rules).
        headers: the header fields in order.
    """

    method: str
    target: str
    version: str
    headers: Headers


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A status line and its header fields.

    Attributes:
        version: the version as given, e.g. "HTTP/1.1".
        status: the three-digit status code.
        reason: the reason phrase, possibly empty.
        headers: the header fields in order.
    """

    version: str
    status: int
    reason: str
    headers: Headers


class HeadReader:
    """Reads one HTTP/1.1 request or response head from bytes fed in any pieces.

    Each line is checked as soon as its LF arrives, and an unfinished line or
    head is measured on every feed, so a limit fails the feed that passes it.
    The reader keeps at most ``max_head`` bytes: of a larger feed, only the
    part that can still belong to the head is copied. A valid head that the
    first feed holds whole (the usual case) is read in one pass instead,
    with the same result.
    """

    def __init__(self, limits: HttpLimits, *, response: bool = False) -> None:
        self._limits = limits
        self._response = response
        self._malformed = self._status(400)
        self._buffer = bytearray()
        self._line_start = 0  # where the line being read begins in _buffer
        self._scanned = 0  # _buffer[:_scanned] holds no unprocessed LF
        self._start_line: tuple[str, str, str] | None = None
        self._headers: list[tuple[str, str]] = []
        self._head: RequestHead | ResponseHead | None = None
        self._error: HttpError | None = None
        self._trailing = b""

    @property
    def trailing(self) -> bytes:
        """Bytes that followed the blank line (e.g. early WebSocket frames).

        Valid once :meth:`feed` has returned a head; empty before.
        """
        return self._trailing

    @property
    def buffered(self) -> int:
        """Bytes held while the head is incomplete (never more than ``max_head``)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> RequestHead | ResponseHead | None:
        """Adds bytes and returns the head once its blank line has arrived.

        Args:
            data: the next bytes received, of any length.

        Returns:
            The head, or None when more bytes are needed.

        Raises:
            HttpError: the bytes broke HTTP/1.1 or a limit. The reader stays
                failed: every later feed raises the same error.
            RuntimeError: a head was already returned (programming error).
        """
        if self._head is not None:
            raise RuntimeError("HeadReader.feed() called after the head was returned")
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except HttpError as exc:
            self._error = exc
            self._buffer = bytearray()  # a failed reader holds nothing
            raise

    def _feed(self, data: bytes) -> RequestHead | ResponseHead | None:
        if not self._buffer:
            # Nearly every head arrives whole in the first read: read it in one pass.
            head = self._read_whole(data)
            if head is not None:
                return head
        # Copy only what may still be head; the rest is trailing or an overflow.
        room = self._limits.max_head - len(self._buffer)
        self._buffer += data[:room]
        end = self._scan()
        if end is None:
            self._check_unfinished_line()
            if len(data) > room:
                limit = self._limits.max_head
                raise HttpError(self._status(431), f"head larger than {limit} bytes (max_head)")
            return None
        self._trailing = bytes(self._buffer[end:]) + data[room:]
        self._buffer = bytearray()
        first, second, third = self._start_line or ("", "", "")  # set before any blank line
        headers = tuple(self._headers)
        if self._response:
            self._head = ResponseHead(first, int(second), third, headers)
        else:
            self._head = RequestHead(first, second, third, headers)
        return self._head

    def _read_whole(self, data: bytes) -> RequestHead | ResponseHead | None:
        """Reads a head that ``data`` holds whole and that breaks no rule, in one pass.

        Returns None for anything else (an unfinished head, any broken rule or
        limit): the line-by-line path then reads ``data`` as usual and raises
        its exact error. So this is only a shortcut to the same result, checked
        with whole-head operations (one ``find``, ``translate``, ``split``)
        instead of one round of them per line.
        """
        limits = self._limits
        end = data.find(b"\r\n\r\n", 0, limits.max_head)
        if end < 0:
            return None
        raw = data[:end]
        crlfs = raw.count(b"\r\n")
        # Left after deleting the allowed bytes: the CRLFs that end the lines
        # and nothing else (no bare CR or LF, no control or non-ASCII byte).
        if crlfs > limits.max_headers or raw.translate(None, _VCHAR_SP_HTAB) != b"\r\n" * crlfs:
            return None
        lines = raw.decode("ascii").split("\r\n")
        if max(map(len, lines)) > limits.max_line:
            return None
        start = lines[0]
        if not self._response and "\t" in start:
            return None
        headers = []
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            # A token name also rules out an empty name, an obs-fold and
            # whitespace before the colon.
            if not colon or not name or name.strip(_TCHAR):
                return None
            headers.append((name, value.strip(_OWS)))
        try:
            first, second, third = self._split_start_line(start)
        except HttpError:
            return None
        head: RequestHead | ResponseHead
        if self._response:
            head = ResponseHead(first, int(second), third, tuple(headers))
        else:
            head = RequestHead(first, second, third, tuple(headers))
        self._trailing = data[end + 4 :]
        self._head = head
        return head

    def _scan(self) -> int | None:
        """Processes every complete line; returns the end of the head, if seen."""
        buffer = self._buffer
        while True:
            lf = buffer.find(b"\n", self._scanned)
            if lf < 0:
                # Remember where we stopped so a one-byte drip stays linear.
                self._scanned = len(buffer)
                return None
            line = bytes(buffer[self._line_start : lf])
            self._line_start = self._scanned = lf + 1
            if not line.endswith(b"\r"):
                raise HttpError(self._malformed, "line ends with a bare LF; HTTP needs CRLF")
            if self._process_line(line[:-1]):
                return lf + 1

    def _check_unfinished_line(self) -> None:
        partial = len(self._buffer) - self._line_start
        # A final CR may be the first half of the CRLF, which is not counted.
        if self._buffer.endswith(b"\r"):
            partial -= 1
        if partial > self._limits.max_line:
            raise self._line_too_long()

    def _process_line(self, line: bytes) -> bool:
        """Checks one line (CRLF removed); True when it is the blank line ending the head."""
        if len(line) > self._limits.max_line:
            raise self._line_too_long()
        if self._start_line is None:
            self._start_line = self._parse_start_line(line)
            return False
        if not line:
            return True
        if len(self._headers) >= self._limits.max_headers:
            limit = self._limits.max_headers
            raise HttpError(self._status(431), f"more than {limit} header lines (max_headers)")
        self._headers.append(self._parse_header_line(line))
        return False

    def _parse_start_line(self, line: bytes) -> tuple[str, str, str]:
        what = "status line" if self._response else "request line"
        # The reason phrase may hold HTAB; any stray HTAB elsewhere fails the checks below.
        self._check_bytes(line, _VCHAR_SP_HTAB if self._response else _VCHAR_SP, what)
        return self._split_start_line(line.decode("ascii"))

    def _split_start_line(self, text: str) -> tuple[str, str, str]:
        """Splits a start line whose bytes are allowed ones; raises what is wrong with it."""
        if self._response:
            version, _, rest = text.partition(" ")
            code, _, reason = rest.partition(" ")
            if not _is_version(version) or len(code) != 3 or not all(c in _DIGITS for c in code):
                raise HttpError(0, f"status line must be 'HTTP/x.y NNN reason', got {text[:100]!r}")
            return version, code, reason
        parts = text.split(" ")
        if len(parts) != 3 or not all(parts):
            raise HttpError(400, "request line must be 'METHOD SP target SP HTTP/x.y'")
        method, target, version = parts
        if not is_token(method):
            raise HttpError(400, f"request method {method[:100]!r} is not a token")
        if not target.startswith("/"):
            raise HttpError(400, "request target must be a path starting with '/' (origin-form)")
        if not _is_version(version):
            raise HttpError(400, f"version must be 'HTTP/<digit>.<digit>', got {version[:100]!r}")
        return method, target, version

    def _parse_header_line(self, line: bytes) -> tuple[str, str]:
        if line[:1] in (b" ", b"\t"):
            raise HttpError(self._malformed, "obs-fold (a header line starting with SP or HTAB)")
        self._check_bytes(line, _VCHAR_SP_HTAB, "header line")
        name, colon, value = line.decode("ascii").partition(":")
        if not colon:
            raise HttpError(self._malformed, f"header line without a colon: {name[:100]!r}")
        if not name:
            raise HttpError(self._malformed, "header line with an empty name")
        if name[-1] in _OWS:
            shown = name.rstrip(_OWS)[:100]
            raise HttpError(self._malformed, f"whitespace between header name {shown!r} and colon")
        if not is_token(name):
            raise HttpError(self._malformed, f"header name {name[:100]!r} is not a token")
        return name, value.strip(_OWS)

    def _check_bytes(self, line: bytes, allowed: bytes, what: str) -> None:
        # translate() deletes the allowed bytes in C; whatever is left is forbidden.
        forbidden = line.translate(None, allowed)
        if forbidden:
            byte = forbidden[0]
            kind = "non-ASCII" if byte >= 0x80 else "control"
            raise HttpError(self._malformed, f"{what} contains the {kind} byte 0x{byte:02x}")

    def _line_too_long(self) -> HttpError:
        limit = self._limits.max_line
        if self._start_line is None:
            what, status = ("status line" if self._response else "request line"), 414
        else:
            what, status = "header line", 431
        return HttpError(self._status(status), f"{what} longer than {limit} bytes (max_line)")

    def _status(self, request_status: int) -> int:
        # Responses carry no status to answer with: their errors use status 0.
        return 0 if self._response else request_status


def is_token(text: str) -> bool:
    """Tells whether text is an RFC 9110 token (a header name, method, subprotocol...).

    Args:
        text: the text to check.

    Returns:
        True when it is non-empty and made of token characters only.
    """
    # strip() with the token alphabet is linear and leaves nothing for a valid token.
    return bool(text) and not text.strip(_TCHAR)


def _is_version(text: str) -> bool:
    return (
        len(text) == 8
        and text.startswith("HTTP/")
        and text[5] in _DIGITS
        and text[6] == "."
        and text[7] in _DIGITS
    )


def get_header(headers: Headers, name: str) -> list[str]:
    """Returns every value of a header, compared case-insensitively, in order.

    Args:
        headers: the header fields to search.
        name: the header name, in any case.

    Returns:
        The values (an empty list when the header is absent).
    """
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


def header_index(headers: Headers) -> HeaderIndex:
    """Indexes headers by lower-cased name in one pass, for many lookups.

    ``header_index(headers).get(name.lower(), [])`` equals
    ``get_header(headers, name)``; a handshake looks up a dozen names, and
    one pass beats a dozen scans.

    Args:
        headers: the header fields to index.

    Returns:
        A new dict: lower-cased name to the list of its values, in order.
    """
    index: HeaderIndex = {}
    for name, value in headers:
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return index


def split_comma_list(value: str) -> list[str]:
    """Splits an RFC 9110 ``#element`` list: on commas, OWS stripped, empty elements dropped.

    Linear in the length of ``value``: ``str.split`` and ``str.strip`` never backtrack.

    Args:
        value: one header value.

    Returns:
        The non-empty elements in order.
    """
    return [item for item in (part.strip(_OWS) for part in value.split(",")) if item]


def render_response(status: int, headers: Headers = (), body: bytes = b"") -> bytes:
    """Renders an HTTP/1.1 response head and body.

    Adds ``Content-Length`` (except on 1xx and 204, where RFC 9110 §8.6 forbids
    it), and for statuses >= 400 also ``Connection: close`` and, when there is
    a body and no ``Content-Type``, ``Content-Type: text/plain; charset=utf-8``.

    Args:
        status: the status code (100-599); the reason phrase is the standard one.
        headers: extra header fields, in order.
        body: the response body (must be empty for 1xx and 204).

    Returns:
        The bytes to send.

    Raises:
        ValueError: the status is out of range, a 1xx or 204 has a body, a
            name is not a token, a value holds a control or non-ASCII character
            (CR/LF injection), or the caller set Content-Length.
    """
    if not 100 <= status <= 599:
        raise ValueError(f"status must be in 100-599, got {status}")
    bodiless = status < 200 or status == 204
    if bodiless and body:
        raise ValueError(f"a {status} response carries no body")
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""  # an unregistered code: RFC 9112 allows an empty reason phrase
    fields = list(headers)
    for name, value in fields:
        if not is_token(name):
            raise ValueError(f"header name {name!r} is not a token")
        if not value.isascii() or value.encode("ascii").translate(None, _VCHAR_SP_HTAB):
            raise ValueError(f"header {name} value {value!r} holds a control or non-ASCII byte")
    if get_header(headers, "Content-Length"):
        raise ValueError("render_response() sets Content-Length itself")
    if not bodiless:
        fields.append(("Content-Length", str(len(body))))
    if status >= 400:
        connection = ",".join(get_header(headers, "Connection")).lower()
        if "close" not in split_comma_list(connection):
            fields.append(("Connection", "close"))
        if body and not get_header(headers, "Content-Type"):
            fields.append(("Content-Type", "text/plain; charset=utf-8"))
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
