"""serve(): listeners, the accept loop, the bounded opening handshake, graceful shutdown.

A :class:`Server` owns one task group. Each accepted connection gets a task
that performs the whole opening handshake (TLS included) under
``open_timeout``, then runs the application's handler; the connection's
reader (and writer, when needed) run in the same group, and one timer
service keeps every connection's deadlines. Leaving ``async with serve(...)`` (or calling
:meth:`Server.close`) stops accepting, closes every connection with 1001 and
returns within ``close_timeout``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl as _ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import final

import anyio
import anyio.abc

from ._groups import exit_unwrapped
from ._opening import Opening, stream_interrupter
from ._spawn import Spawn, task_spawner
from ._timers import Timers
from .backends.direct import DirectSocket
from .backends.errors import TRANSPORT_ENDED, TRANSPORT_ERRORS, aclose_quietly
from .backends.lean import LeanStream, lean_open, lean_socket_accept, lean_stream
from .backends.options import configure_accepted, validate_keepalive
from .backends.premade import listener_from_socket
from .backends.sockets import create_tcp_listeners, fast_accept
from .backends.transport import describe, raw_socket, wrap_server_tls
from .backends.trio_poller import Poller, poller_for_trio
from .backends.unix import create_unix_listener
from .core import Request, ServerConnection, State, Terminated
from .errors import ConnectionClosed, UsageError
from .options import Compression, Options
from .plugins.base import Handshake, Plugin
from .plugins.chain import PluginChain
from .responses import Response
from .websocket import READ_SIZE, STEP_BUDGET, WebSocket

__all__ = ["Handler", "ProcessRequest", "Server", "serve"]

logger = logging.getLogger("wskit.server")

# ssl.SSLError is an OSError, so TRANSPORT_ERRORS covers failed TLS handshakes.


Handler = Callable[[WebSocket], Awaitable[None]]
"""The application: called with each open connection; returning closes it with 1000."""

ProcessRequest = Callable[[Request], Awaitable[Response | None]]
"""A hook that sees every request first: return a Response to answer it instead
of upgrading (health checks, refusals), or None to go on. Plain HTTP requests
(``request.upgrade`` is False) that get None are answered 426."""

# Stands for a cancel scope where none is needed (reusable: it keeps no state).
_NO_SCOPE = contextlib.nullcontext()

_UPGRADE_REQUIRED = Response.text(
    426,
    "This endpoint speaks WebSocket: send an upgrade request.\n",
    (("Upgrade", "websocket"),),
)


@final
class Server:
    """A running WebSocket server; create it with :func:`serve`.

    Use it as an async context manager (``async with serve(...) as server``),
    or from Trio-style code with ``server = await nursery.start(serve(...).run)``.
    """

    def __init__(
        self,
        handler: Handler,
        host: str | None,
        port: int,
        *,
        options: Options,
        subprotocols: Sequence[str],
        process_request: ProcessRequest | None,
        ssl: _ssl.SSLContext | None,
        sock: socket.socket | None,
        unix_path: str | None,
        mptcp: bool,
        reuse_port: bool,
        tcp_keepalive: tuple[float, float, int] | None,
        extra_headers: Iterable[tuple[str, str]],
        plugins: Sequence[Plugin] = (),
        listen: bool = True,
    ) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._options = options
        self._config = options.core_config()
        self._subprotocols = tuple(subprotocols)
        self._process_request = process_request
        self._ssl = ssl
        self._sock = sock
        self._unix_path = unix_path
        self._mptcp = mptcp
        self._reuse_port = reuse_port
        self._tcp_keepalive = tcp_keepalive
        self._extra_headers = tuple(extra_headers)
        self._plugins = PluginChain(plugins)
        self._message_check = self._plugins.message_check()
        self._listen = listen
        self._listeners: list[anyio.abc.SocketListener] = []
        self._connections: set[WebSocket] = set()
        self._stack: AsyncExitStack | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        self._spawn: Spawn | None = None  # starts connection tasks in _tasks (see _spawn.py)
        # Connection tasks live in their own scope, run by a background task:
        # cancelling it on shutdown must not cancel the body of ``async with serve()``.
        # Shielded: when the task running ``async with serve()`` is cancelled,
        # __aexit__ still closes every connection with 1001, which needs these
        # tasks alive. That close is bounded, and wait_closed() cancels this
        # scope at its end. (Unshielded, outer cancellation aborted every
        # connection at once: clients saw 1006, not 1001.)
        self._connection_scope = anyio.CancelScope(shield=True)
        self._timers = Timers()
        # Trio on Linux: where connections in pull mode wait for bytes (made
        # in the run, as it needs one).
        self._poller: Poller | None = None
        self._stopped = anyio.Event()
        self._close_called_at = math.inf
        self._accepting = anyio.CancelScope()
        self._closing = anyio.Event()
        # Set (and dropped) as each connection ends; exists only while a
        # wait_closed() waits, which any number of tasks may do.
        self._handlers_done: anyio.Event | None = None
        self._active = 0
        # What bounds each handshake in progress, to drop them all on close().
        self._handshakes: set[Opening | anyio.CancelScope] = set()
        # Whether a handshake may await code of the user's (a plugin's
        # on_handshake, process_request): that part needs a cancel scope.
        self._hooks_wait = process_request is not None or any(
            type(plugin).on_handshake is not Plugin.on_handshake for plugin in plugins
        )
        self._shields: set[anyio.CancelScope] = set()

    # ------------------------------------------------------------ properties

    @property
    def sockets(self) -> list[socket.socket]:
        """The listening sockets."""
        return [
            listener.extra(anyio.abc.SocketAttribute.raw_socket) for listener in self._listeners
        ]

    @property
    def port(self) -> int:
        """The port of the first TCP listener (the one picked when ``port=0``)."""
        for sock in self.sockets:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                return int(sock.getsockname()[1])
        raise UsageError("this server has no port: it listens on a Unix socket, or not at all")

    @property
    def connections(self) -> frozenset[WebSocket]:
        """The connections whose handshake is done and whose handler is still running."""
        return frozenset(self._connections)

    # ------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Server:
        stack = AsyncExitStack()
        try:
            # Plugins' resources first, so they are up before the first
            # connection and torn down after the last one.
            await self._plugins.lifespan(self, stack)
            self._listeners = await self._open_listeners() if self._listen else []
            for listener in self._listeners:
                stack.push_async_callback(listener.aclose)
            self._tasks = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        await self._tasks.start(self._supervise)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        self.close()
        with anyio.CancelScope(shield=True):
            await self.wait_closed()
        assert self._stack is not None
        return await exit_unwrapped(self._stack, exc_type, exc, traceback)

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        try:
            with self._connection_scope:
                async with (
                    anyio.create_task_group() as connections,
                    task_spawner() as spawn,
                ):
                    self._tasks = connections
                    self._spawn = spawn
                    self._poller = poller_for_trio()
                    connections.start_soon(self._timers.run)
                    connections.start_soon(self._accept_all)
                    task_status.started()
        finally:
            self._abort_connections()  # those served from callbacks have no task to cancel
            if self._poller is not None:
                self._poller.close()  # every connection is over: nobody waits in it
            self._stopped.set()

    def _abort_connections(self) -> None:
        """Close every connection's transport now, reporting 1006 (shutdown's deadline passed).

        A connection served from the lean stream's callbacks has no task that
        cancelling the connections' scope would end, and its handler may be
        waiting for it to close (shielded, even).
        """
        for ws in list(self._connections):
            ws._abort()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Server] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until closed or cancelled: ``server = await nursery.start(serve(...).run)``."""
        async with self:
            task_status.started(self)
            await self.serve_forever()

    async def serve_forever(self) -> None:
        """Wait until :meth:`close` is called (or the task is cancelled), then until closed."""
        await self._closing.wait()
        await self.wait_closed()

    def close(self) -> None:
        """Start a graceful shutdown: stop accepting and close every connection with 1001.

        Synchronous: call :meth:`wait_closed` (or leave the ``async with``) to wait.
        """
        if self._closing.is_set():
            return
        try:
            self._close_called_at = anyio.current_time()
        except RuntimeError:  # outside the event loop (a signal handler): count from now on
            self._close_called_at = math.inf
        self._closing.set()
        self._accepting.cancel()
        if self._tasks is None:  # never started: nothing to wait for
            self._stopped.set()
        # A connection still in its opening handshake would be refused anyway:
        # drop it now rather than let it hold shutdown until open_timeout.
        for bound in list(self._handshakes):
            self._stop_handshake(bound)
        for ws in list(self._connections):
            ws._start_closing(1001, "server shutting down")

    async def wait_closed(self) -> None:
        """Wait until :meth:`close` is called and every connection has closed.

        Connections still open ``close_timeout`` after ``close()`` are aborted.
        """
        await self._closing.wait()
        if self._close_called_at == math.inf:  # close() ran outside the loop
            self._close_called_at = anyio.current_time()
        timeout = self._options.close_timeout
        deadline = math.inf if timeout is None else self._close_called_at + timeout
        with anyio.CancelScope(deadline=deadline):
            while self._active:
                if self._handlers_done is None:
                    self._handlers_done = anyio.Event()
                await self._handlers_done.wait()
        self._abort_connections()
        for shield in self._shields:
            shield.cancel()
        self._connection_scope.cancel()
        if self._tasks is not None:
            await self._stopped.wait()

    # ------------------------------------------------------------- listeners

    async def _open_listeners(self) -> list[anyio.abc.SocketListener]:
        if self._sock is not None:
            return [await listener_from_socket(self._sock)]
        if self._unix_path is not None:
            return [await create_unix_listener(self._unix_path)]
        listeners = await create_tcp_listeners(
            self._host,
            self._port,
            mptcp=self._mptcp,
            reuse_port=self._reuse_port,
            tcp_keepalive=self._tcp_keepalive,
        )
        return list(listeners)

    async def _accept_all(self) -> None:
        with self._accepting:
            async with anyio.create_task_group() as loops:
                for listener in self._listeners:
                    loops.start_soon(self._accept_loop, listener)

    async def _accept_loop(self, listener: anyio.abc.SocketListener) -> None:
        assert self._spawn is not None
        # TLS stays on AnyIO's streams. A plain server on asyncio accepts
        # sockets, and each connection's task makes its lean stream (accepting
        # does not wait for it); elsewhere it accepts streams, directly where
        # it can (Trio, MPTCP on asyncio), else moves them over below.
        sockets = None if self._ssl is not None else lean_socket_accept(listener)
        accept = listener.accept if self._ssl is not None else fast_accept(listener)
        while True:
            try:
                if sockets is not None:
                    sock = await sockets()
                else:
                    stream = await accept()
            except TRANSPORT_ERRORS as exc:
                # EMFILE and friends: back off instead of spinning.
                logger.warning("accept failed: %s", exc)
                await anyio.sleep(0.1)
                continue
            if sockets is not None:
                if self._tcp_keepalive is not None:
                    configure_accepted(sock, self._tcp_keepalive)
                self._active += 1
                self._spawn(self._connection_on_socket, sock)
                continue
            if self._ssl is None and not isinstance(stream, LeanStream):
                stream = lean_stream(stream)
            # Every accept() here set TCP_NODELAY already (AnyIO's, and
            # lean_accept()'s); only keepalive, when asked for, is left to set.
            if self._tcp_keepalive is not None:
                raw = raw_socket(stream)
                if raw is not None:
                    configure_accepted(raw, self._tcp_keepalive)
            self._active += 1
            self._spawn(self._connection, stream)

    # ------------------------------------------------------------ connection

    async def handle(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one connection over a stream you accepted yourself, until it closes.

        For transports wskit does not open: an in-memory stream in tests
        (see :mod:`wskit.testing`), a stream from another server. The stream
        gets the same handshake, limits, plugins and shutdown as the
        server's own connections, and is closed on return. Use
        ``serve(..., listen=False)`` for a server that accepts nothing itself.

        Raises:
            UsageError: the server is not running (enter ``async with`` first)
                or is shutting down.
        """
        if self._tasks is None or self._closing.is_set():
            await aclose_quietly(stream)
            raise UsageError(
                "the server is not running: call handle() inside `async with serve(...)`"
            )
        self._active += 1
        # Shielded like the server's own connections (see _connection_scope):
        # cancelling the caller's task must not abort the connection.
        with anyio.CancelScope(shield=True) as shield:
            self._shields.add(shield)
            try:
                await self._connection(stream)
            finally:
                self._shields.discard(shield)

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        try:
            ws = await self._handshake(stream)
            if ws is not None:
                await self._run(ws)
        finally:
            self._connection_ended()

    async def _connection_on_socket(self, sock: socket.socket) -> None:
        """:meth:`_connection` for a socket from ``lean_socket_accept()``: make its stream first."""
        try:
            stream = await lean_open(sock)
        except BaseException as exc:
            self._connection_ended()
            if isinstance(exc, TRANSPORT_ERRORS):  # the peer left already, say
                logger.debug("handshake failed: %r", exc)
                return
            raise
        await self._connection(stream)

    def _connection_ended(self) -> None:
        self._active -= 1
        done, self._handlers_done = self._handlers_done, None
        if done is not None:
            done.set()

    async def _handshake(self, stream: anyio.abc.ByteStream) -> WebSocket | None:
        """Read the request and answer it, all within open_timeout; None when refused.

        The bound is kept by the server's timer service where the stream can
        be interrupted from outside (see :mod:`wskit._opening`): no cancel
        scope then, but around the hooks that may await anything. Elsewhere
        (TLS, in-memory streams) one scope bounds the whole handshake.
        """
        conn = ServerConnection(self._config, http_requests=True)
        if self._config.compression is not None:
            conn.step_budget = STEP_BUDGET  # frames sent with the request: in steps too
        ws: WebSocket | None = None
        handshake: Handshake | None = None
        passed: list[Plugin] = []
        timeout = self._options.open_timeout
        deadline = math.inf if timeout is None else anyio.current_time() + timeout
        interrupt = None if self._ssl is not None else stream_interrupter(stream)
        opening: Opening | None = None
        scope: anyio.CancelScope | None = None  # the whole handshake's, or the hooks'
        if interrupt is not None:
            opening = Opening(interrupt)
            if deadline != math.inf:
                opening.start(self._timers, deadline)
            bound: Opening | anyio.CancelScope = opening
        else:
            bound = scope = anyio.CancelScope(deadline=deadline)
        self._handshakes.add(bound)
        if self._closing.is_set():
            self._stop_handshake(bound)
        try:
            with _NO_SCOPE if scope is None else scope:
                if self._ssl is not None:
                    stream = await wrap_server_tls(stream, self._ssl)
                # On Trio's socket streams, bytes already there are read, and
                # answers the kernel takes at once written, without the
                # scheduler pass Trio adds to every call of the stream's.
                direct = None if opening is None else DirectSocket.of(stream)
                request = await self._read_request(stream, conn, opening, direct)
                if request is None or self._closing.is_set():
                    return None
                handshake = Handshake(request, await describe(stream))
                response = None
                hooks: contextlib.AbstractContextManager[object] = _NO_SCOPE
                if self._hooks_wait and opening is not None:
                    # Hooks may await anything, which no stream interrupt ends.
                    hooks = scope = anyio.CancelScope(deadline=deadline)
                    self._handshakes.add(scope)
                with hooks:
                    if request.upgrade:
                        # Policy first: a refused client costs no application code.
                        response, passed = await self._plugins.handshake(handshake)
                        request = handshake.request  # a plugin may have hidden parts of it
                    if response is None and self._process_request is not None:
                        response = await self._process_request(request)
                if scope is not None and scope.cancel_called:
                    return None
                if not request.upgrade:
                    response = response or _UPGRADE_REQUIRED
                if response is not None:
                    conn.respond(response.status, response.headers, response.body)
                    await _send(stream, direct, conn.data_to_send())
                    return None
                conn.accept(
                    self._select_subprotocol(request),
                    (*self._extra_headers, *handshake.response_headers),
                )
                if opening is not None and opening.interrupted:
                    return None
                await _send(stream, direct, conn.data_to_send())
                if opening is not None and opening.interrupted:
                    return None
                ws = WebSocket(
                    conn,
                    stream,
                    transport=handshake.transport,
                    request=request,
                    max_queue=self._options.max_queue,
                    write_limit=self._options.write_limit,
                    close_timeout=self._options.close_timeout,
                    context=handshake.context,
                    message_check=self._message_check,
                )
        except TRANSPORT_ENDED as exc:
            if opening is None or not opening.interrupted:
                logger.debug("handshake failed: %r", exc)
        except Exception:
            logger.exception("the opening handshake failed unexpectedly: answering 500")
            if conn.request is not None and conn.events() == [] and ws is None:
                conn.respond(500, (), b"internal server error\n")
                # Shield first, then the bound: a deadline inside a shield applies.
                with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                    await stream.send(conn.data_to_send())
        finally:
            self._handshakes.discard(bound)
            if opening is not None:
                opening.finish()
                if scope is not None:
                    self._handshakes.discard(scope)
            timed_out = (opening is not None and opening.expired) or (
                scope is not None and scope.cancelled_caught
            )
            if ws is None:
                if timed_out and not self._closing.is_set():
                    logger.info(
                        "handshake not completed within open_timeout (%s s): dropped", timeout
                    )
                if handshake is not None:
                    self._plugins.refused(handshake, passed)
                with anyio.CancelScope(shield=True):
                    await aclose_quietly(stream)
        return ws

    def _stop_handshake(self, bound: Opening | anyio.CancelScope) -> None:
        """Drop a handshake in progress (the server is closing)."""
        if isinstance(bound, Opening):
            bound.stop()
        else:
            bound.cancel()

    async def _read_request(
        self,
        stream: anyio.abc.ByteStream,
        conn: ServerConnection,
        opening: Opening | None,
        direct: DirectSocket | None,
    ) -> Request | None:
        while True:
            try:
                if direct is None:
                    data = await stream.receive(READ_SIZE)
                else:
                    data = await _receive_direct(direct)
            except anyio.EndOfStream:
                conn.receive_eof()
            else:
                conn.receive_data(data)
            if opening is not None and opening.interrupted:
                # Interrupted while not waiting: the next receive would not be.
                return None
            answer = conn.data_to_send()
            if answer:  # a refusal (414, 431, 400, ...)
                await _send(stream, direct, answer)
            events = conn.events()
            for event in events:
                if isinstance(event, Terminated):
                    # Also after a Request in the same read: the bytes that came
                    # after it passed max_head, and the core refused with 400.
                    if event.error is not None:
                        logger.info("refused a request: %s", event.error)
                    return None
            for event in events:
                if isinstance(event, Request):
                    return event

    def _select_subprotocol(self, request: Request) -> str | None:
        for protocol in self._subprotocols:
            if protocol in request.subprotocols:
                return protocol
        return None

    async def _run(self, ws: WebSocket) -> None:
        assert self._tasks is not None
        self._connections.add(ws)
        # The connection's I/O runs beside this task in the server's group (no
        # task group per connection), or from the lean stream's callbacks
        # with no task at all: it ends by itself once the connection is
        # closed, and with the group's scope at shutdown.
        ws.start(self._tasks, self._timers, self._poller)
        try:
            if self._closing.is_set():
                ws._start_closing(1001, "server shutting down")
            refusal = await self._plugins.connect(ws)
            if refusal is not None:
                ws._start_closing(refusal.code, refusal.reason)
            try:
                if ws.state is State.OPEN:  # an on_connect hook may have closed it
                    await self._handler(ws)
            except ConnectionClosed as exc:
                # The peer went away while the handler was talking to it:
                # routine for a network server, not an application error.
                logger.debug("handler ended by a closed connection: %s", exc)
            except Exception:
                logger.exception("connection handler raised: closing with 1011")
                ws._start_closing(1011, "internal error")
            else:
                ws._start_closing(1000, "")
            await ws.wait_closed()
            await self._plugins.close(ws, ws.close_code or 1006, ws.close_reason or "")
        except BaseException as exc:
            # Not reached in normal operation (the handler's errors are caught
            # above, and shutdown cancels the connection's task too), but the
            # connection's task runs apart from this one: never leave it open.
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                ws._start_closing(1001, "going away")
                ws._abort()  # no task of its own to cancel: close its transport now
            else:
                ws._start_closing(1011, "internal error")
            raise
        finally:
            self._connections.discard(ws)


async def _receive_direct(direct: DirectSocket) -> bytes:
    """Read what the kernel holds, waiting only when it holds nothing."""
    while True:
        data = direct.try_receive(READ_SIZE)
        if data is not None:
            return data
        await direct.wait_readable()


async def _send(stream: anyio.abc.ByteStream, direct: DirectSocket | None, data: bytes) -> None:
    """Send ``data``, writing directly what the kernel takes at once (all of it, as a rule)."""
    if direct is not None:
        taken = direct.try_send((data,))
        if taken == len(data):
            return
        data = data[taken:]  # a failure took 0: the stream meets it again and reports it
    await stream.send(data)


def serve(
    handler: Handler,
    host: str | None = None,
    port: int = 0,
    *,
    subprotocols: Sequence[str] = (),
    process_request: ProcessRequest | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
    plugins: Sequence[Plugin] = (),
    ssl: _ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    unix_path: str | None = None,
    listen: bool = True,
    mptcp: bool = False,
    reuse_port: bool = False,
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
) -> Server:
    """Create a WebSocket server; start it with ``async with`` (or ``nursery.start(server.run)``).

    Args:
        handler: ``async def handler(ws)``, run for each connection; when it
            returns the connection closes with 1000, when it raises with 1011.
        host: the interface to listen on (a name may give several, e.g. IPv4
            and IPv6 for "localhost"); None for all. ``port=0`` picks a
            free port (read it from ``server.port``).
        port: the TCP port.
        subprotocols: the subprotocols this server speaks, in preference order.
        process_request: a hook that may answer any request itself (see
            :data:`ProcessRequest`).
        extra_headers: headers added to every 101 response.
        plugins: :class:`~wskit.plugins.Plugin` instances, run in list order
            (see :mod:`wskit.plugins`).
        ssl: an ``ssl.SSLContext`` to serve ``wss://``.
        sock: a pre-made listening socket to serve on instead of host/port.
        unix_path: a Unix socket path to listen on instead of host/port.
        listen: False to open no listener at all: connections come only from
            :meth:`Server.handle` (in-memory tests, streams accepted elsewhere).
        mptcp: create MPTCP listeners (falls back to TCP where unavailable).
        reuse_port: set SO_REUSEPORT (several processes on one port).
        tcp_keepalive: ``(idle, interval, count)`` TCP keepalive for accepted sockets.
        ping_interval: see :class:`~wskit.options.Options` for this and the rest.
        ping_timeout: seconds for a pong before closing with 1011.
        open_timeout: seconds for the whole opening handshake.
        close_timeout: seconds for the closing handshake and shutdown.
        max_message: largest incoming message (bytes, after inflation).
        max_fragments: most frames per incoming message.
        max_queue: messages buffered for recv() before reading pauses.
        write_limit: buffered bytes above which send() waits.
        compression: "deflate", a DeflateOptions, or None.
    """
    if tcp_keepalive is not None:
        validate_keepalive(tcp_keepalive)  # fail here, not at the first accept
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
    return Server(
        handler,
        host,
        port,
        options=options,
        subprotocols=subprotocols,
        process_request=process_request,
        ssl=ssl,
        sock=sock,
        unix_path=unix_path,
        mptcp=mptcp,
        reuse_port=reuse_port,
        tcp_keepalive=tcp_keepalive,
        extra_headers=extra_headers,
        plugins=plugins,
        listen=listen,
    )
