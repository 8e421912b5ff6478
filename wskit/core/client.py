"""The client side of the sans-I/O core: the upgrade request, a checked response, then frames.

The response is read under the limits of :class:`~wskit.core.http.HttpLimits`
and checked against RFC 6455 and what we offered. A broken response ends the
connection with an :class:`~wskit.errors.InvalidResponse` (or
:class:`~wskit.errors.NegotiationError`); a refusal (any status but 101) with a
:class:`~wskit.errors.HandshakeRejected` carrying the status, the headers and at
most ``max_body`` bytes of the body.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from wskit.errors import HandshakeError, HandshakeRejected, InvalidResponse, UsageError

from .config import Config
from .connection import Connection, _header_pairs
from .deflate import DeflateParams, client_accept_response, client_offer
from .events import Accepted
from .handshake import check_upgrade_response, new_key
from .http import HeadReader, HttpError, ResponseHead, get_header, is_token

__all__ = ["ClientConnection"]

_DEFLATE = "permessage-deflate"
# Characters that would break the request line or the Host header.
_NOT_IN_TARGET = frozenset(" \r\n\0")
_NOT_IN_HOST = frozenset(" \r\n\0/")


class ClientConnection(Connection):
    """The client side of one WebSocket connection.

    The upgrade request is queued at once: write :meth:`data_to_send`, then
    feed the server's answer to :meth:`receive_data`. Success is an
    :class:`~wskit.core.events.Accepted` event; failure a
    :class:`~wskit.core.events.Terminated` event whose ``error`` says why.

    Args:
        host: the Host header value (``example.com`` or ``example.com:8080``).
        target: the request target, path and query (``/chat?room=1``).
        subprotocols: subprotocols to offer, in order of preference.
        extra_headers: more request headers (``Origin``, ``Authorization``, ...).
        config: limits, timers and compression; the defaults when omitted.
        key: 16 random bytes for Sec-WebSocket-Key; drawn from ``os.urandom``
            when omitted (pass them only to make tests repeatable).
    """

    _client = True

    def __init__(
        self,
        host: str,
        target: str = "/",
        *,
        subprotocols: Sequence[str] = (),
        extra_headers: Iterable[tuple[str, str]] = (),
        config: Config | None = None,
        key: bytes | None = None,
    ) -> None:
        super().__init__(config)
        if (
            not target.startswith("/")
            or not _NOT_IN_TARGET.isdisjoint(target)
            or not target.isascii()
        ):
            raise UsageError(
                f"the request target must be an ASCII path starting with '/', got {target!r}"
            )
        if not host or not host.isascii() or not _NOT_IN_HOST.isdisjoint(host):
            raise UsageError(f"host must be an ASCII host name or address, got {host!r}")
        for protocol in subprotocols:
            if not is_token(protocol):
                raise UsageError(f"subprotocol {protocol!r} is not an HTTP token")
        if key is not None and len(key) != 16:
            raise UsageError(f"key must be 16 random bytes, got {len(key)}")
        self._key = new_key(key if key is not None else os.urandom(16))
        self._subprotocols = tuple(subprotocols)
        self._offers: tuple[str, ...] = ()
        if self.config.compression is not None:
            self._offers = (f"{_DEFLATE}; {client_offer(self.config.compression)}",)
        headers = [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", self._key),
            ("Sec-WebSocket-Version", "13"),
        ]
        if self._subprotocols:
            headers.append(("Sec-WebSocket-Protocol", ", ".join(self._subprotocols)))
        if self._offers:
            headers.append(("Sec-WebSocket-Extensions", ", ".join(self._offers)))
        headers.extend(_header_pairs(extra_headers))
        lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in headers)]
        self._write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        self._reader = HeadReader(self.config.http, response=True)
        self._rejection: ResponseHead | None = None
        self._body = bytearray()
        self._body_limit = 0

    def _receive_handshake(self, data: bytes) -> None:
        if self._rejection is not None:
            self._collect_body(data)
            return
        try:
            head = self._reader.feed(data)
        except HttpError as exc:
            self._give_up(InvalidResponse(f"invalid handshake response: {exc.message}"))
            return
        if head is None:
            return
        assert isinstance(head, ResponseHead)
        if head.status != 101:
            self._start_rejection(head)
            return
        try:
            response = check_upgrade_response(
                head,
                key=self._key,
                offered_subprotocols=self._subprotocols,
                offered_extensions=self._offers,
            )
            deflate = self._negotiated_deflate(response.extensions)
        except HandshakeError as exc:
            self._give_up(exc)
            return
        self.subprotocol = response.subprotocol
        extensions = (_DEFLATE,) if deflate is not None else ()
        self._emit(Accepted(response.headers, response.subprotocol, extensions))
        self._open(deflate, self._reader.trailing)

    def _negotiated_deflate(self, accepted: tuple[str, ...]) -> DeflateParams | None:
        if not accepted:
            return None
        assert self.config.compression is not None  # nothing else was offered
        return client_accept_response(accepted[0], self.config.compression)

    def _give_up(self, error: HandshakeError) -> None:
        self._terminate(1006, str(error), error)

    def _start_rejection(self, head: ResponseHead) -> None:
        self._rejection = head
        limit = self.config.http.max_body
        lengths = get_header(head.headers, "Content-Length")
        if len(lengths) == 1 and lengths[0].isdigit():
            limit = min(limit, int(lengths[0]))
        self._body_limit = limit
        self._collect_body(self._reader.trailing)

    def _collect_body(self, data: bytes) -> None:
        room = self._body_limit - len(self._body)
        self._body += data[:room]
        if len(self._body) >= self._body_limit:
            self._finish_rejection()

    def _finish_rejection(self) -> None:
        head = self._rejection
        assert head is not None
        self._give_up(HandshakeRejected(head.status, head.headers, bytes(self._body)))

    def _handshake_eof(self) -> None:
        if self._rejection is not None:
            self._finish_rejection()
        else:
            self._give_up(InvalidResponse("the server closed the connection during the handshake"))
