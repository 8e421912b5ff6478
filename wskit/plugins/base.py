"""The plugin hook API: :class:`Plugin`, the verdicts of ``on_message``, and the handshake views.

A plugin is a subclass of :class:`Plugin` that overrides the hooks it needs;
the others cost nothing (the chain skips hooks a plugin did not override).
Server side, for each connection, in list order:

1. ``on_handshake(handshake)`` (async) for each upgrade request: return a
   :class:`~wskit.Response` to refuse it (the first refusal wins), or None to
   go on. It may write into ``handshake.context``, which becomes
   ``ws.context``.
2. ``on_refused(handshake)`` (sync) if the connection does not open after
   this plugin passed it (a later plugin refused, the client left, the
   handshake timed out): undo what ``on_handshake`` reserved.
3. ``on_connect(ws)`` (async) once the connection is open, before the handler.
4. ``on_message(ws, message)`` (sync, cheap) for each incoming message,
   before the application sees it: :data:`PASS`, :data:`DROP`,
   :class:`Reply` or :class:`Close` (the first verdict other than PASS wins).
5. ``on_close(ws, code, reason)`` (async) once the connection is closed.

``lifespan(server)`` is entered when the server starts and left when it has
closed every connection: the place to open a Redis client or start a
background task. Client side, ``on_client_request(request)`` may add headers,
subprotocols or query parameters before the upgrade request is sent; the
connection hooks (3 to 5) run on the client too.

A hook that raises refuses the handshake with 500, or closes the connection
with 1011; the error is logged with the plugin's name.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, final

from wskit.backends.transport import TransportInfo
from wskit.core import Request
from wskit.core.connection import _check_close_code
from wskit.responses import Response

if TYPE_CHECKING:
    from wskit.server import Server
    from wskit.websocket import WebSocket

__all__ = [
    "DROP",
    "PASS",
    "ClientRequest",
    "Close",
    "Handshake",
    "Plugin",
    "Reply",
    "Verdict",
]


class _Keep(enum.Enum):
    PASS = "pass"
    DROP = "drop"

    def __repr__(self) -> str:
        return self.name


PASS: Final = _Keep.PASS
"""Verdict: deliver the message (and ask the next plugin)."""

DROP: Final = _Keep.DROP
"""Verdict: discard the message silently; the application never sees it."""


@final
@dataclass(frozen=True, slots=True)
class Close:
    """Verdict: discard the message and close the connection with this code.

    Attributes:
        code: the close code (1008 "policy violation" suits most refusals).
        reason: the close reason; at most 123 bytes of UTF-8.
    """

    code: int = 1008
    reason: str = ""

    def __post_init__(self) -> None:
        # Fail where the verdict is made (often a plugin's constructor), not
        # later in the reader task that acts on it.
        _check_close_code(self.code, self.reason)


@final
@dataclass(frozen=True, slots=True)
class Reply:
    """Verdict: discard the message and send ``message`` back to the peer instead.

    The reply waits for room in the write buffer, so a peer that floods and
    never reads slows its own reads instead of growing our memory.

    Attributes:
        message: the reply (``str`` as text, ``bytes`` as binary).
    """

    message: str | bytes


Verdict = _Keep | Close | Reply
"""What ``on_message`` returns: :data:`PASS`, :data:`DROP`, a :class:`Reply` or a :class:`Close`."""


@final
@dataclass(slots=True, eq=False)
class Handshake:
    """An upgrade request on its way through the plugins' ``on_handshake`` hooks.

    Attributes:
        request: the validated upgrade request. A plugin may replace it
            (``dataclasses.replace``) to hide what later plugins and the
            application must not see, such as a token carried as a
            subprotocol; the server selects the subprotocol from it.
        transport: the connection's transport (peer address, TLS, MPTCP).
        context: per-connection data; becomes ``ws.context`` if the
            connection opens.
        response_headers: headers to add to the 101 response.
    """

    request: Request
    transport: TransportInfo
    context: dict[str, Any] = field(default_factory=dict)
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def client_ip(self) -> str | None:
        """The client's IP address as text; None on a Unix socket or an in-memory stream."""
        peer = self.transport.peer
        return peer[0] if isinstance(peer, tuple) else None


@final
@dataclass(slots=True, eq=False)
class ClientRequest:
    """An upgrade request a client is about to send, for ``on_client_request`` hooks.

    Attributes:
        host: the Host header (with the port when it is not the default).
        resource: the path and query string; append query parameters here.
        headers: request headers to send beside the handshake's own.
        subprotocols: the subprotocols to offer, in order of preference.
        context: per-connection data; becomes ``ws.context``.
    """

    host: str
    resource: str
    headers: list[tuple[str, str]]
    subprotocols: list[str]
    context: dict[str, Any] = field(default_factory=dict)


class Plugin:
    """Base class of plugins: override the hooks you need, in a subclass.

    Each hook's docstring says when it runs. ``name`` (the class name by
    default) labels the plugin's log lines.
    """

    @property
    def name(self) -> str:
        """The plugin's name in log messages."""
        return type(self).__name__

    async def on_handshake(self, handshake: Handshake) -> Response | None:
        """Server: inspect an upgrade request; return a Response to refuse it.

        Refuse before the upgrade, not after: a browser cannot read the close
        code of a refused handshake, but it can tell a refusal from success,
        and nothing of the application runs for a refused client.
        """
        return None

    def on_refused(self, handshake: Handshake) -> None:
        """Server: the connection did not open after this plugin's ``on_handshake`` passed.

        Undo what ``on_handshake`` reserved (a connection slot, a counter).
        Runs at most once per passed handshake, and never for a connection
        that opened (that one gets ``on_close``).
        """

    async def on_connect(self, ws: WebSocket) -> None:
        """Both sides: the connection is open; runs before the handler (server side)."""

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        """Both sides: a message arrived; decide its fate before the application sees it.

        Synchronous and called for every message: keep it cheap. It may
        run in the transport's callback rather than in a task (asyncio
        servers): do not rely on the current task. Returns :data:`PASS`
        unless overridden.
        """
        return PASS

    async def on_close(self, ws: WebSocket, code: int, reason: str) -> None:
        """Both sides: the connection closed with ``code`` and ``reason``."""

    async def on_client_request(self, request: ClientRequest) -> None:
        """Client: adjust the upgrade request (headers, subprotocols, query) before it is sent."""

    def lifespan(self, server: Server) -> AbstractAsyncContextManager[None]:
        """Server: a context entered when the server starts, left after every connection closed."""
        return _nothing()


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
