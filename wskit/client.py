"""connect(): URL, socket (TCP, MPTCP, Unix or pre-made), TLS, the bounded handshake.

``async with wskit.connect(url) as ws`` opens the connection, runs its I/O
tasks for the duration of the block, and closes it (1000) on the way out.
Every failure to connect is a :class:`~wskit.errors.HandshakeError`:
:class:`~wskit.errors.InvalidURI`, :class:`~wskit.errors.ConnectionFailed`,
:class:`~wskit.errors.HandshakeTimeout`, :class:`~wskit.errors.HandshakeRejected`
(with the status, headers and body), :class:`~wskit.errors.InvalidResponse`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import socket
import ssl as _ssl
import urllib.parse
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import final

import anyio
import anyio.abc

from ._groups import exit_unwrapped
from ._timers import Timers
from .backends.errors import TRANSPORT_ENDED, TRANSPORT_ERRORS, aclose_quietly
from .backends.options import configure_accepted, validate_keepalive
from .backends.premade import stream_from_socket
from .backends.sockets import open_tcp_stream
from .backends.transport import describe, wrap_client_tls
from .backends.unix import open_unix_stream
from .core import Accepted, ClientConnection, Event, Terminated
from .errors import (
    ConnectionFailed,
    HandshakeError,
    HandshakeRejected,
    HandshakeTimeout,
    InvalidResponse,
    InvalidURI,
    UsageError,
)
from .options import Compression, Options
from .plugins.base import ClientRequest, Plugin
from .plugins.chain import PluginChain
from .uri import WebSocketURI, parse_uri
from .websocket import READ_SIZE, STEP_BUDGET, WebSocket

__all__ = ["Connect", "connect"]

# OSError (so ssl.SSLError too) is among TRANSPORT_ERRORS.

MAX_REDIRECTS = 10
"""How many redirects connect() follows by default (python websockets and Node ws: 10)."""

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers that carry credentials: never sent on to another origin (ws CVE class).
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


@final
class Connect:
    """An outgoing connection not opened yet: use ``async with connect(url) as ws``."""

    def __init__(
        self,
        uri: WebSocketURI,
        *,
        options: Options,
        subprotocols: Sequence[str],
        extra_headers: Iterable[tuple[str, str]],
        origin: str | None,
        ssl: _ssl.SSLContext | None,
        server_hostname: str | None,
        sock: socket.socket | None,
        unix_path: str | None,
        mptcp: bool,
        tcp_keepalive: tuple[float, float, int] | None,
        max_redirects: int = MAX_REDIRECTS,
        plugins: Sequence[Plugin] = (),
        stream: anyio.abc.ByteStream | None = None,
    ) -> None:
        self._uri = uri
        self._max_redirects = max_redirects
        self._plugins = PluginChain(plugins)
        self._given_stream = stream
        self._options = options
        self._subprotocols = tuple(subprotocols)
        # The caller's own offer: what plugins add (a token carried as a
        # subprotocol) does not follow a redirect to another origin.
        self._offered_subprotocols = self._subprotocols
        headers = list(extra_headers)
        if origin is not None:
            headers.append(("Origin", origin))
        if uri.user is not None:
            token = base64.b64encode(f"{uri.user}:{uri.password or ''}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
        self._headers = tuple(headers)
        if ssl is None and uri.secure:
            ssl = _ssl.create_default_context()
        self._ssl = ssl
        self._server_hostname = server_hostname or uri.host
        self._sock = sock
        self._unix_path = unix_path
        self._mptcp = mptcp
        self._tcp_keepalive = tcp_keepalive
        self._stack: AsyncExitStack | None = None
        self._ws: WebSocket | None = None

    async def __aenter__(self) -> WebSocket:
        timeout = self._options.open_timeout
        stack = AsyncExitStack()
        try:
            with anyio.fail_after(math.inf if timeout is None else timeout):
                request = await self._prepare_request()
                stream, conn, early = await self._open_following_redirects()
                stack.push_async_callback(aclose_quietly, stream)
            ws = WebSocket(
                conn,
                stream,
                transport=await describe(stream),
                request=None,
                early_events=early,
                max_queue=self._options.max_queue,
                write_limit=self._options.write_limit,
                close_timeout=self._options.close_timeout,
                context=request.context,
                message_check=self._plugins.message_check(),
            )
            tasks = await stack.enter_async_context(anyio.create_task_group())
            tasks.start_soon(_run_shielded, ws, self._plugins)
            refusal = await self._plugins.connect(ws)
            if refusal is not None:
                ws._start_closing(refusal.code, refusal.reason)
        except TimeoutError:
            await stack.aclose()
            raise HandshakeTimeout(
                f"the opening handshake with {self._uri.host_header} took more than "
                f"open_timeout={timeout} s"
            ) from None
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._ws = ws
        return ws

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._ws is not None
        assert self._stack is not None
        with anyio.CancelScope(shield=True):
            if exc is None:
                code, reason = 1000, ""
            elif isinstance(exc, anyio.get_cancelled_exc_class()):
                code, reason = 1001, "going away"  # cancellation is not an error
            else:
                code, reason = 1011, "client error"
            self._ws._start_closing(code, reason)
            await self._ws.wait_closed()
        return await exit_unwrapped(self._stack, exc_type, exc, traceback)

    async def _prepare_request(self) -> ClientRequest:
        """Let the plugins adjust the upgrade request; what they add follows redirects.

        Added headers go where ``extra_headers`` go, so a redirect to another
        origin drops a plugin's ``Authorization`` or ``Cookie`` like the
        caller's own.
        """
        request = ClientRequest(
            self._uri.host_header,
            self._uri.resource,
            list(self._headers),
            list(self._subprotocols),
        )
        await self._plugins.client_request(request)
        self._headers = tuple(request.headers)
        self._subprotocols = tuple(request.subprotocols)
        self._uri = dataclasses.replace(self._uri, resource=request.resource)
        return request

    async def _open_following_redirects(
        self,
    ) -> tuple[anyio.abc.ByteStream, ClientConnection, list[Event]]:
        """Open the transport and upgrade, following at most max_redirects redirects."""
        redirects = 0
        while True:
            stream = await self._open_transport()
            try:
                conn, early = await self._handshake(stream)
            except HandshakeRejected as exc:
                await aclose_quietly(stream)
                # A pre-made socket or stream, or a Unix path, cannot be pointed elsewhere.
                fixed = (
                    self._sock is not None
                    or self._unix_path is not None
                    or self._given_stream is not None
                )
                if exc.status_code not in _REDIRECT_STATUSES or fixed or not self._max_redirects:
                    raise
                redirects += 1
                if redirects > self._max_redirects:
                    raise InvalidResponse(
                        f"more than max_redirects={self._max_redirects} redirects"
                    ) from exc
                self._follow(exc)
                continue
            except BaseException:
                await aclose_quietly(stream)
                raise
            return stream, conn, early

    def _follow(self, rejected: HandshakeRejected) -> None:
        """Point this connection at a redirect's Location; drop credentials across origins.

        Raises:
            InvalidResponse: no Location, one that is not a ws/wss/http/https
                URL, or one that goes from wss:// down to ws://.
        """
        locations = [value for name, value in rejected.headers if name.lower() == "location"]
        if len(locations) != 1:
            raise InvalidResponse(
                f"HTTP {rejected.status_code} redirect with {len(locations)} Location headers"
            ) from rejected
        here = self._uri
        current = f"{'wss' if here.secure else 'ws'}://{here.host_header}{here.resource}"
        target = urllib.parse.urljoin(current, locations[0])
        scheme, _, rest = target.partition(":")
        try:
            if scheme.lower() not in _WS_SCHEMES:
                raise InvalidURI(f"scheme {scheme[:20]!r}")
            uri = parse_uri(_WS_SCHEMES[scheme.lower()] + ":" + rest)
        except InvalidURI as exc:
            raise InvalidResponse(f"redirect to an invalid Location: {exc}") from rejected
        if here.secure and not uri.secure:
            raise InvalidResponse("refusing a redirect from wss:// to ws://") from rejected
        if (uri.secure, uri.host, uri.port) != (here.secure, here.host, here.port):
            # Another origin: its server gets neither our credentials nor our TLS name.
            self._headers = tuple(
                (name, value)
                for name, value in self._headers
                if name.lower() not in _CREDENTIAL_HEADERS
            )
            self._server_hostname = uri.host
            self._subprotocols = self._offered_subprotocols
        if uri.secure and self._ssl is None:
            self._ssl = _ssl.create_default_context()
        # Credentials in the Location itself are not used: the target chose them, not us.
        self._uri = WebSocketURI(uri.secure, uri.host, uri.port, uri.resource)

    async def _open_transport(self) -> anyio.abc.ByteStream:
        try:
            stream: anyio.abc.ByteStream
            if self._given_stream is not None:
                stream = self._given_stream
            elif self._sock is not None:
                if self._tcp_keepalive is not None:
                    configure_accepted(self._sock, validate_keepalive(self._tcp_keepalive))
                stream = await stream_from_socket(self._sock)
            elif self._unix_path is not None:
                stream = await open_unix_stream(self._unix_path)
            else:
                stream, _ = await open_tcp_stream(
                    self._uri.host,
                    self._uri.port,
                    mptcp=self._mptcp,
                    tcp_keepalive=self._tcp_keepalive,
                )
            if self._ssl is not None:
                # Closes the TCP stream itself if the handshake fails or times out.
                stream = await wrap_client_tls(stream, self._ssl, self._server_hostname)
        except TRANSPORT_ENDED as exc:
            raise ConnectionFailed(
                f"could not connect to {self._uri.host_header}: {str(exc) or type(exc).__name__}"
            ) from exc
        return stream

    async def _handshake(
        self, stream: anyio.abc.ByteStream
    ) -> tuple[ClientConnection, list[Event]]:
        conn = ClientConnection(
            self._uri.host_header,
            self._uri.resource,
            subprotocols=self._subprotocols,
            extra_headers=self._headers,
            config=self._options.core_config(),
        )
        if conn.config.compression is not None:
            conn.step_budget = STEP_BUDGET  # frames sent with the 101: in steps too
        try:
            await stream.send(conn.data_to_send())
            while True:
                try:
                    data = await stream.receive(READ_SIZE)
                except anyio.EndOfStream:
                    conn.receive_eof()
                else:
                    conn.receive_data(data)
                events = conn.events()
                for index, event in enumerate(events):
                    if isinstance(event, Accepted):
                        # Frames that came with the 101 become the WebSocket's first events.
                        return conn, events[index + 1 :]
                    if isinstance(event, Terminated):
                        error = event.error
                        if not isinstance(error, HandshakeError):
                            error = InvalidResponse(event.reason or "the handshake failed")
                        raise error
        except TRANSPORT_ERRORS as exc:
            raise ConnectionFailed(f"the connection broke during the handshake: {exc}") from exc


async def _run_shielded(ws: WebSocket, plugins: PluginChain) -> None:
    # Cancelling the task inside ``async with connect()`` must not abort the
    # connection before __aexit__ closes it properly; ws.run() ends on its own
    # once closed, within close_timeout (an unshielded run was cut at once,
    # so the server saw 1006 and the client was left CLOSING).
    with anyio.CancelScope(shield=True):
        async with anyio.create_task_group() as tasks:
            timers = Timers()
            tasks.start_soon(timers.run)
            await ws.run(tasks, timers)
            tasks.cancel_scope.cancel()  # the timers, and a writer if one is left
        await plugins.close(ws, ws.close_code or 1006, ws.close_reason or "")


def connect(
    uri: str,
    *,
    subprotocols: Sequence[str] = (),
    extra_headers: Iterable[tuple[str, str]] = (),
    origin: str | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    sock: socket.socket | None = None,
    unix_path: str | None = None,
    stream: anyio.abc.ByteStream | None = None,
    plugins: Sequence[Plugin] = (),
    mptcp: bool = False,
    tcp_keepalive: tuple[float, float, int] | None = None,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    open_timeout: float | None = 10.0,
    close_timeout: float | None = 10.0,
    max_message: int | None = 1024 * 1024,
    max_fragments: int = 4096,
    max_queue: int | None = 16,
    write_limit: int = 32 * 1024,
    compression: Compression = "deflate",
    max_redirects: int = MAX_REDIRECTS,
) -> Connect:
    """Open a WebSocket connection to a URL; enter the result with ``async with``.

    Args:
        uri: a ``ws://`` or ``wss://`` URL; ``user:password@`` sends HTTP Basic auth.
        subprotocols: subprotocols to offer, in preference order.
        extra_headers: more request headers (``Authorization``, cookies, ...).
        origin: the Origin header to send, if any.
        ssl: the TLS context for ``wss://`` (the system's default when None),
            or to force TLS on a ``ws://`` URL.
        server_hostname: the name to check the certificate against (the URL's host).
        sock: a connected socket to use instead of opening one.
        unix_path: a Unix socket to connect to (the URL still gives Host and path).
        stream: a connected AnyIO byte stream to speak over instead of opening
            one (an in-memory pair in tests, a tunnel); ``ssl`` still applies.
        plugins: :class:`~wskit.plugins.Plugin` instances: their
            ``on_client_request`` hooks adjust the upgrade request, and the
            connection hooks run as on a server.
        mptcp: use MPTCP (falls back to TCP where the kernel or the server lacks it).
        tcp_keepalive: ``(idle, interval, count)`` TCP keepalive.
        ping_interval: see :class:`~wskit.options.Options` for this and the rest.
        ping_timeout: seconds for a pong before closing with 1011.
        open_timeout: seconds for connecting, TLS and the upgrade together.
        close_timeout: seconds for the closing handshake.
        max_message: largest incoming message (bytes, after inflation).
        max_fragments: most frames per incoming message.
        max_queue: messages buffered for recv() before reading pauses.
        write_limit: buffered bytes above which send() waits.
        compression: "deflate", a DeflateOptions, or None.
        max_redirects: redirects (301, 302, 303, 307, 308) followed at most,
            all within ``open_timeout``; one more raises InvalidResponse. 0
            follows none: a redirect raises HandshakeRejected. Credentials
            (``Authorization``, ``Cookie``, ``Proxy-Authorization``) are not
            sent on to another origin, and wss:// never redirects to ws://.

    Raises:
        InvalidURI: the URL is not a WebSocket URL (raised at once).
        UsageError: an option is out of range (raised at once).
    """
    if tcp_keepalive is not None:
        validate_keepalive(tcp_keepalive)
    if max_redirects < 0:
        raise UsageError(f"max_redirects must be an integer >= 0, got {max_redirects!r}")
    options = Options(
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        open_timeout=open_timeout,
        close_timeout=close_timeout,
        max_message=max_message,
        max_fragments=max_fragments,
        max_queue=max_queue,
        write_limit=write_limit,
        compression=compression,
    )
    return Connect(
        parse_uri(uri),
        options=options,
        subprotocols=subprotocols,
        extra_headers=extra_headers,
        origin=origin,
        ssl=ssl,
        server_hostname=server_hostname,
        sock=sock,
        unix_path=unix_path,
        mptcp=mptcp,
        tcp_keepalive=tcp_keepalive,
        max_redirects=max_redirects,
        plugins=plugins,
        stream=stream,
    )
