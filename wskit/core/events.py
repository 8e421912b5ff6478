"""Events the sans-I/O core hands to its caller.

Every event is a frozen, slotted dataclass: a value, safe to keep, compare and
put in a queue. Dispatch on them with ``match``::

    for event in conn.events():
        match event:
            case Message(data=str() as text): ...
            case Message(data=bytes() as blob): ...
            case Ping() | Pong(): ...
            case CloseReceived(code, reason): ...
            case Terminated(): ...   # close the transport

Which side sees which event:

==================  ======  ======  ==================================================
event               server  client  meaning
==================  ======  ======  ==================================================
Request             yes             a valid upgrade request: call accept() or reject()
Accepted                    yes     the server accepted; the connection is OPEN
Message             yes     yes     a complete data message (str for text, bytes)
Fragment            yes     yes     a piece of a message, with Config(fragments=True)
Ping                yes     yes     the peer pinged; data_to_send() carries the pong
Pong                yes     yes     the peer answered a ping (rtt when it was ours)
CloseReceived       yes     yes     the peer's close frame; the core echoes it
Terminated          yes     yes     the connection is over: close the transport
==================  ======  ======  ==================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wskit.errors import HandshakeError, ProtocolError

__all__ = [
    "Accepted",
    "CloseReceived",
    "Event",
    "Fragment",
    "Headers",
    "Message",
    "Ping",
    "Pong",
    "Request",
    "Terminated",
]

Headers = tuple[tuple[str, str], ...]
"""HTTP headers as ``(name, value)`` pairs, names as received, in order."""


def _values(headers: Headers, name: str) -> list[str]:
    wanted = name.lower()
    return [value for key, value in headers if key.lower() == wanted]


@dataclass(frozen=True, slots=True)
class Request:
    """Server side: a valid WebSocket upgrade request arrived.

    The core has checked it against RFC 6455 and its limits; answer with
    :meth:`~wskit.core.ServerConnection.accept` or
    :meth:`~wskit.core.ServerConnection.reject`.

    Attributes:
        target: the request target, path plus query string (``/chat?room=1``).
        headers: every request header, in order.
        subprotocols: the subprotocols the client offered, in its order of preference.
        extensions: the extension offers, one element per offer, as sent.
        method: the request method ("GET" for every upgrade request).
        upgrade: False for a plain HTTP request (a health check, a page),
            which the core reports only when asked to (``http_requests=True``)
            and which can only be answered with ``respond()``.
    """

    target: str
    headers: Headers
    subprotocols: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    method: str = "GET"
    upgrade: bool = True

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The query string without the ``?`` ("" when there is none)."""
        return self.target.partition("?")[2]

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None; repeated values are joined."""
        values = _values(self.headers, name)
        return ", ".join(values) if values else None


@dataclass(frozen=True, slots=True)
class Accepted:
    """Client side: the server accepted the handshake; the connection is OPEN.

    Attributes:
        headers: the 101 response's headers.
        subprotocol: the subprotocol the server chose, or None.
        extensions: the extensions in use (``("permessage-deflate",)`` or ``()``).
    """

    headers: Headers
    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``str`` for a text message, ``bytes`` for binary."""

    data: str | bytes

    @property
    def is_text(self) -> bool:
        """True for a text message."""
        return isinstance(self.data, str)


@dataclass(frozen=True, slots=True)
class Fragment:
    """A piece of a data message as it arrived, delivered with ``Config(fragments=True)``.

    The pieces of one message come in order and share its type (``str`` for
    text, decoded and UTF-8-checked as they arrive; ``bytes`` for binary);
    the last one has ``fin=True``. Limits apply to the whole message as usual.
    """

    data: str | bytes
    fin: bool


@dataclass(frozen=True, slots=True)
class Ping:
    """The peer sent a ping.

    The core answers it: the next :meth:`~wskit.core.Connection.data_to_send`
    carries the pong, unless a data frame we send comes first (it then
    follows the pong). At most 16 pongs are owed at a time, for the latest
    pings (RFC 6455 §5.5.3), so a ping flood cannot grow the output.
    """

    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    """The peer sent a pong.

    Attributes:
        payload: the pong's payload.
        rtt: seconds between our ping and this pong when it answers a ping
            the core sent and both times were known, else None.
        acknowledged: the payloads of every ping of ours this pong answers:
            its own and each earlier one still waiting (a peer may answer
            only the latest of several pings, RFC 6455 §5.5.3).
    """

    payload: bytes = b""
    rtt: float | None = None
    acknowledged: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's close frame arrived (1005 when it carried no code).

    If we had not sent a close frame yet, the core has queued the echo.
    """

    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Terminated:
    """The connection is over: flush ``data_to_send()`` and close the transport.

    Emitted exactly once per connection.

    Attributes:
        code: the close code that ended the connection: the peer's code when
            its close frame arrived, the code we failed the connection with
            (1002, 1007, 1009, 1011) when it misbehaved or timed out, 1006
            when the transport ended without a close handshake.
        reason: the matching close reason.
        error: why the connection failed, where wskit can name it: a
            :class:`~wskit.errors.ProtocolError` (the peer misbehaved, or the
            keepalive timed out) or a :class:`~wskit.errors.HandshakeError`
            (the server refused a bad request; the client could not connect,
            including an end of stream during its handshake). None after a
            clean close, after ``reject()``, and when the transport simply
            ended or the close timeout passed (code 1006).
    """

    code: int
    reason: str = ""
    error: ProtocolError | HandshakeError | None = field(default=None, compare=False)


# Built once per incoming message by the frame codec: a frozen dataclass's
# __init__ sets each field through object.__setattr__ (~300 ns for a
# Fragment on CPython 3.11); these store through the slots directly (~160 ns)
# and give the same value (tests/property/test_events.py checks it).
_new = object.__new__
_set_fragment_data: Callable[[Fragment, str | bytes], None] = Fragment.__dict__["data"].__set__
_set_fragment_fin: Callable[[Fragment, bool], None] = Fragment.__dict__["fin"].__set__
_set_message_data: Callable[[Message, str | bytes], None] = Message.__dict__["data"].__set__


def new_fragment(data: str | bytes, fin: bool) -> Fragment:
    """``Fragment(data, fin)``, built without the frozen dataclass's ``__setattr__`` round trips."""
    fragment: Fragment = _new(Fragment)
    _set_fragment_data(fragment, data)
    _set_fragment_fin(fragment, fin)
    return fragment


def new_message(data: str | bytes) -> Message:
    """``Message(data)``, built without the frozen dataclass's ``__setattr__`` round trip."""
    message: Message = _new(Message)
    _set_message_data(message, data)
    return message


Event = Request | Accepted | Message | Fragment | Ping | Pong | CloseReceived | Terminated
"""Any event the core emits."""
