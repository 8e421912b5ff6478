"""The server side of the sans-I/O core: a hardened opening handshake, then frames.

The request head is read under the limits of :class:`~wskit.core.http.HttpLimits`
and checked against RFC 6455 before the application sees it; every refusal is
answered like a careful HTTP server would (414, 431, 405, 505, 426, 400) and
ends the connection with a :class:`~wskit.core.events.Terminated` event whose
``error`` is an :class:`~wskit.errors.InvalidRequest`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from wskit.errors import InvalidRequest, InvalidState, UsageError

from .config import Config
from .connection import Connection, _header_pairs
from .deflate import DeflateParams, server_accept_offer
from .events import Request
from .handshake import UpgradeRequest, accept_token, check_upgrade_request
from .http import HeaderIndex, HeadReader, HttpError, RequestHead, header_index, render_response
from .state import State

__all__ = ["ServerConnection"]


def _is_plain_http(head: RequestHead, index: HeaderIndex) -> bool:
    """A request that does not ask for a WebSocket and carries no body."""
    upgrades = [
        token.strip().lower() for value in index.get("upgrade", ()) for token in value.split(",")
    ]
    has_body = any(value.strip() not in ("", "0") for value in index.get("content-length", ())) or (
        "transfer-encoding" in index
    )
    return "websocket" not in upgrades and not has_body and head.version == "HTTP/1.1"


_DEFLATE = "permessage-deflate"
# Browsers send the same few offers over and over, and the answer depends only
# on the offer and the options, both immutable: each pair is worked out once.
# The cache is small and bounded, so varied offers cost no more than before.
_accept_offer = functools.lru_cache(maxsize=64)(server_accept_offer)
# The 101 as render_response() renders it, up to the accept token: only the
# token and any further headers differ from one connection to the next.
_SWITCHING = (
    "HTTP/1.1 101 Switching Protocols\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Accept: "
)


class ServerConnection(Connection):
    """The server side of one WebSocket connection.

    Feed it what the client sends; when a valid upgrade request has arrived,
    :meth:`events` returns a :class:`~wskit.core.events.Request`, to be
    answered with :meth:`accept` or :meth:`reject`.

    Args:
        config: limits, timers and compression; the defaults when omitted.
        http_requests: also report plain HTTP requests (no ``Upgrade:
            websocket``, no body) as a :class:`~wskit.core.events.Request`
            with ``upgrade=False``, to be answered with :meth:`respond`
            (health checks, a static page). Otherwise they get 426.
    """

    def __init__(self, config: Config | None = None, *, http_requests: bool = False) -> None:
        super().__init__(config)
        self._http_requests = http_requests
        self._plain = False
        self._reader = HeadReader(self.config.http)
        self._upgrade: UpgradeRequest | None = None
        self._request: Request | None = None
        # Frames a client sent before our answer (it should not, but may).
        self._early = bytearray()

    @property
    def request(self) -> Request | None:
        """The upgrade request, once it has arrived."""
        return self._request

    def _receive_handshake(self, data: bytes) -> None:
        if self._upgrade is not None:
            self._keep_early(data)
            return
        try:
            head = self._reader.feed(data)
            if head is None:
                return
            assert isinstance(head, RequestHead)
            index = header_index(head.headers)
            if self._http_requests and _is_plain_http(head, index):
                self._plain = True
                self._request = Request(
                    head.target, head.headers, method=head.method, upgrade=False
                )
                self._emit(self._request)
                return
            upgrade = check_upgrade_request(head, index)
        except HttpError as exc:
            self._refuse(exc.status, exc.message, exc.headers)
            return
        self._upgrade = upgrade
        self._request = Request(
            upgrade.target, upgrade.headers, upgrade.subprotocols, upgrade.extensions
        )
        self._emit(self._request)
        self._keep_early(self._reader.trailing)

    def _keep_early(self, data: bytes) -> None:
        # Bounded like the head itself: a client cannot park megabytes here
        # while the application decides.
        if len(self._early) + len(data) > self.config.http.max_head:
            self._refuse(400, "data sent before the handshake completed exceeds the head limit")
            return
        self._early += data

    def _refuse(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        self._write(render_response(status, tuple(headers), message.encode() + b"\n"))
        self._terminate(1006, message, InvalidRequest(status, message))

    def _handshake_eof(self) -> None:
        self._terminate(1006, "the client closed the connection during the handshake")

    def _pending_upgrade(self, what: str) -> UpgradeRequest:
        if self._plain:
            raise InvalidState(f"cannot {what}: this is a plain HTTP request; use respond()")
        if self._state is not State.CONNECTING or self._upgrade is None:
            raise InvalidState(
                f"cannot {what}: no upgrade request is waiting (the connection is "
                f"{self._state.value})"
            )
        return self._upgrade

    def accept(
        self, subprotocol: str | None = None, extra_headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Accept the upgrade request: queue the 101 response; the connection is OPEN.

        permessage-deflate is negotiated here from the client's offers and the
        compression options: the first acceptable offer wins; hostile or
        malformed offers are declined, never an error.

        Args:
            subprotocol: one of :attr:`Request.subprotocols`, or None.
            extra_headers: more response headers, e.g. ``Set-Cookie``.
        """
        upgrade = self._pending_upgrade("accept")
        if subprotocol is not None and subprotocol not in upgrade.subprotocols:
            raise UsageError(
                f"subprotocol {subprotocol!r} was not offered by the client "
                f"(offered: {', '.join(upgrade.subprotocols) or 'none'})"
            )
        headers: list[tuple[str, str]] = []
        if subprotocol is not None:
            headers.append(("Sec-WebSocket-Protocol", subprotocol))
        deflate = self._negotiate_deflate(upgrade, headers)
        headers.extend(_header_pairs(extra_headers))
        # Every name is a token and every value visible ASCII (the subprotocol
        # was offered as a token, _header_pairs checked the rest): the checks
        # of render_response() could not fail, so the 101 is filled in directly.
        lines = [_SWITCHING, accept_token(upgrade.key)]
        for name, value in headers:
            lines += ("\r\n", name, ": ", value)
        lines.append("\r\n\r\n")
        self._write("".join(lines).encode("ascii"))
        self.subprotocol = subprotocol
        early = bytes(self._early)
        self._early.clear()
        self._open(deflate, early)

    def _negotiate_deflate(
        self, upgrade: UpgradeRequest, headers: list[tuple[str, str]]
    ) -> DeflateParams | None:
        options = self.config.compression
        if options is None:
            return None
        for offer in upgrade.extensions:
            if offer.partition(";")[0].strip() != _DEFLATE:
                continue
            agreed = _accept_offer(offer, options)
            if agreed is not None:
                params, answer = agreed
                headers.append(
                    ("Sec-WebSocket-Extensions", f"{_DEFLATE}; {answer}" if answer else _DEFLATE)
                )
                return params
        return None

    def reject(
        self,
        status: int = 403,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        """Refuse the upgrade request with an HTTP response; the connection ends.

        Args:
            status: an HTTP status from 300 to 599.
            headers: response headers (Content-Length is added).
            body: the response body.
        """
        if not 300 <= status <= 599:
            raise UsageError(f"reject() takes an HTTP status from 300 to 599, got {status}")
        if not self._plain:
            self._pending_upgrade("reject")
        self.respond(status, headers, body)

    def respond(
        self,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        """Answer the request with any HTTP response (200 for a health check); the connection ends.

        Args:
            status: an HTTP status from 200 to 599.
            headers: response headers (Content-Length is added).
            body: the response body.
        """
        if self._state is not State.CONNECTING or self._request is None:
            raise InvalidState(
                f"cannot respond: no request is waiting (the connection is {self._state.value})"
            )
        if not 200 <= status <= 599:
            raise UsageError(f"respond() takes an HTTP status from 200 to 599, got {status}")
        try:
            response = render_response(status, _header_pairs(headers), bytes(body))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self._write(response)
        self._terminate(1006, f"answered the handshake with HTTP {status}")
