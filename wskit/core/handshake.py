"""RFC 6455 opening-handshake rules: server checks of a request, client checks of a response.

Both sides work on heads already read by :class:`wskit.core.http.HeadReader`,
so every header here is bounded in size and plain ASCII. The checks go beyond
wsproto's: the key must decode to exactly 16 bytes (threat H10), a request
may not carry a body (H13), and every failure names the status to answer
with and what the peer should fix. List-valued headers are split with
``str.split`` so parsing stays linear on hostile values (H7).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from wskit.core.http import (
    HeaderIndex,
    Headers,
    HttpError,
    RequestHead,
    ResponseHead,
    header_index,
    is_token,
    split_comma_list,
)
from wskit.errors import InvalidResponse, NegotiationError

__all__ = [
    "GUID",
    "UpgradeRequest",
    "UpgradeResponse",
    "accept_token",
    "check_upgrade_request",
    "check_upgrade_response",
    "new_key",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The fixed string RFC 6455 §1.3 appends to the key before hashing."""

_KEY_BYTES = 16
_KEY_LENGTH = 24  # base64 of 16 bytes: 22 digits and "=="
_BASE64_DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_VERSION_HINT: Headers = (("Sec-WebSocket-Version", "13"),)


def accept_token(key: str) -> str:
    """Computes the Sec-WebSocket-Accept value for a key (RFC 6455 §4.2.2).

    Args:
        key: the Sec-WebSocket-Key value, as sent.

    Returns:
        base64(SHA-1(key + GUID)).
    """
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()  # SHA-1 is what RFC 6455 mandates
    # What base64.b64encode() calls, without its argument checks.
    return binascii.b2a_base64(digest, newline=False).decode("ascii")


def new_key(random_bytes: bytes) -> str:
    """Builds a Sec-WebSocket-Key from 16 random bytes.

    Args:
        random_bytes: 16 bytes from a strong source; the caller passes ``os.urandom(16)``
            so that this module stays deterministic and testable.

    Returns:
        The base64 of the bytes (24 characters).

    Raises:
        ValueError: not exactly 16 bytes were given.
    """
    if len(random_bytes) != _KEY_BYTES:
        raise ValueError(f"a WebSocket key needs 16 random bytes, got {len(random_bytes)}")
    return base64.b64encode(random_bytes).decode("ascii")


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """A request that passed every RFC 6455 check.

    Attributes:
        target: the request target (path and query).
        headers: all request headers, in order.
        key: the Sec-WebSocket-Key value.
        subprotocols: the offered subprotocols from every Sec-WebSocket-Protocol
            header, in order.
        extensions: every offered extension element, e.g.
            ``"permessage-deflate; client_max_window_bits"``, in order.
    """

    target: str
    headers: Headers
    key: str
    subprotocols: tuple[str, ...]
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpgradeResponse:
    """A 101 response that passed every RFC 6455 check.

    Attributes:
        headers: all response headers, in order.
        subprotocol: the subprotocol the server selected, or None.
        extensions: the accepted extension elements, as sent by the server.
    """

    headers: Headers
    subprotocol: str | None
    extensions: tuple[str, ...]


def _values(index: HeaderIndex, name: str) -> Sequence[str]:
    """Every value of header ``name`` (lower-cased), in order."""
    return index.get(name, ())


def _tokens(index: HeaderIndex, name: str) -> list[str]:
    """Every element of every ``name`` header (lower-cased name), in order."""
    return [item for value in _values(index, name) for item in split_comma_list(value)]


def _has_token(index: HeaderIndex, name: str, token: str) -> bool:
    # Connection and Upgrade tokens are case-insensitive (RFC 9110 §7.6.1, §7.8).
    for value in _values(index, name):
        # The usual header holds the one token: no need to split it (values
        # come stripped, so the split would give [value]).
        if value.lower() == token or any(item.lower() == token for item in split_comma_list(value)):
            return True
    return False


def _extension_name(element: str) -> str:
    return element.partition(";")[0].strip(" \t")


def check_upgrade_request(head: RequestHead, index: HeaderIndex | None = None) -> UpgradeRequest:
    """Checks a request head against RFC 6455 §4.2.1; the first failure wins.

    Args:
        head: the request head read by HeadReader.
        index: ``header_index(head.headers)``, when the caller has it already.

    Returns:
        The parts a server needs to answer it.

    Raises:
        HttpError: the request is not a valid upgrade; ``status`` and
            ``headers`` are what to answer with (505, 405, 400 or 426).
    """
    headers = head.headers
    if index is None:
        index = header_index(headers)
    if head.version != "HTTP/1.1":
        raise HttpError(505, f"WebSocket upgrades need HTTP/1.1, got {head.version}")
    if head.method != "GET":
        raise HttpError(405, f"WebSocket upgrades use GET, got {head.method}", (("Allow", "GET"),))
    # A body would be read as WebSocket frames after the 101 (smuggling, H13).
    if index.get("content-length", ["0"]) != ["0"] or "transfer-encoding" in index:
        raise HttpError(400, "upgrade requests must not carry a body")
    hosts = _values(index, "host")
    if len(hosts) != 1 or not hosts[0]:
        raise HttpError(400, f"send exactly one non-empty Host header (got {len(hosts)})")
    if not _has_token(index, "upgrade", "websocket"):
        raise HttpError(
            426,
            "send 'Upgrade: websocket' to open a WebSocket",
            (("Upgrade", "websocket"), ("Connection", "Upgrade")),
        )
    if not _has_token(index, "connection", "upgrade"):
        raise HttpError(400, "send 'Connection: Upgrade' to open a WebSocket")
    versions = _values(index, "sec-websocket-version")
    if not versions:
        raise HttpError(400, "send 'Sec-WebSocket-Version: 13'", _VERSION_HINT)
    if versions != ["13"]:
        shown = ", ".join(versions)[:100]
        message = f"only Sec-WebSocket-Version 13 is supported (got {shown!r})"
        raise HttpError(426, message, _VERSION_HINT)
    key = _check_key(_values(index, "sec-websocket-key"))
    subprotocols = _tokens(index, "sec-websocket-protocol")
    for subprotocol in subprotocols:
        if not is_token(subprotocol):
            raise HttpError(400, f"subprotocol {subprotocol[:100]!r} is not a token")
    # Splitting on commas does not honour quoted-string parameter values that
    # contain commas; no extension we support uses them, and it keeps parsing linear.
    extensions = _tokens(index, "sec-websocket-extensions")
    return UpgradeRequest(head.target, headers, key, tuple(subprotocols), tuple(extensions))


def _check_key(keys: Sequence[str]) -> str:
    if not keys:
        raise HttpError(400, "send a Sec-WebSocket-Key header")
    if len(keys) > 1:
        raise HttpError(400, f"send one Sec-WebSocket-Key header (got {len(keys)})")
    key = keys[0]
    # The one form a valid key takes: 22 base64 digits and "==" always decode
    # to 16 bytes, and anything else goes through the full check below.
    if len(key) == _KEY_LENGTH and key.endswith("==") and not key[:-2].strip(_BASE64_DIGITS):
        return key
    rule = "Sec-WebSocket-Key must be the base64 of 16 bytes"
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, f"{rule} (it is not strict base64)") from None
    if len(raw) != _KEY_BYTES:
        raise HttpError(400, f"{rule} (got {len(raw)} bytes)")
    return key


def check_upgrade_response(
    head: ResponseHead,
    *,
    key: str,
    offered_subprotocols: Sequence[str],
    offered_extensions: Sequence[str],
) -> UpgradeResponse:
    """Checks a 101 response against RFC 6455 §4.1 and what the client offered.

    Parameters of accepted extensions are not checked here: the extension
    (e.g. the deflate module) does that.

    Args:
        head: the response head read by HeadReader (status 101).
        key: the Sec-WebSocket-Key the client sent.
        offered_subprotocols: the subprotocols the client offered.
        offered_extensions: the extension elements the client offered.

    Returns:
        The negotiated subprotocol and extensions.

    Raises:
        InvalidResponse: the response breaks RFC 6455.
        NegotiationError: the server selected something the client did not offer.
    """
    headers = head.headers
    index = header_index(headers)
    if head.status != 101:
        raise InvalidResponse(f"expected status 101 Switching Protocols, got {head.status}")
    if head.version != "HTTP/1.1":
        raise InvalidResponse(f"the server answered with {head.version}, not HTTP/1.1")
    if not _has_token(index, "upgrade", "websocket"):
        raise InvalidResponse("the Upgrade header of the response lacks 'websocket'")
    if not _has_token(index, "connection", "upgrade"):
        raise InvalidResponse("the Connection header of the response lacks 'upgrade'")
    accepts = _values(index, "sec-websocket-accept")
    if len(accepts) != 1:
        raise InvalidResponse(f"expected one Sec-WebSocket-Accept header, got {len(accepts)}")
    if accepts[0] != accept_token(key):
        raise InvalidResponse("Sec-WebSocket-Accept does not match the key we sent")
    return UpgradeResponse(
        headers,
        _selected_subprotocol(index, offered_subprotocols),
        _accepted_extensions(index, offered_extensions),
    )


def _selected_subprotocol(index: HeaderIndex, offered: Sequence[str]) -> str | None:
    if "sec-websocket-protocol" not in index:
        return None
    selected = _tokens(index, "sec-websocket-protocol")
    if not offered:
        raise NegotiationError("the server selected a subprotocol but we offered none")
    if len(selected) != 1:
        raise NegotiationError(f"the server must select one subprotocol, got {len(selected)}")
    if selected[0] not in offered:
        shown = selected[0][:100]
        raise NegotiationError(f"the server selected subprotocol {shown!r}, which we did not offer")
    return selected[0]


def _accepted_extensions(index: HeaderIndex, offered: Sequence[str]) -> tuple[str, ...]:
    offered_names = {_extension_name(element) for element in offered}
    seen: set[str] = set()
    accepted = _tokens(index, "sec-websocket-extensions")
    for element in accepted:
        # Extension names are tokens, compared case-sensitively as wsproto does.
        name = _extension_name(element)
        if name not in offered_names:
            shown = name[:100]
            raise NegotiationError(f"the server accepted extension {shown!r}, not one we offered")
        if name in seen:
            raise NegotiationError(f"the server accepted extension {name[:100]!r} twice")
        seen.add(name)
    return tuple(accepted)
