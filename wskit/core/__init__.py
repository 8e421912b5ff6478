"""The sans-I/O WebSocket core: bytes in, events out, time passed in.

It never opens a socket, awaits, sleeps or reads a clock, and imports only the
standard library and wsproto. Drive it like this::

    conn = ServerConnection()
    conn.receive_data(bytes_from_the_network)
    for event in conn.events():
        ...                                   # Request, Message, Ping, ...
    write(conn.data_to_send())                # after EVERY call into conn
    when = conn.next_deadline()               # call conn.tick(now) at that time
"""

from __future__ import annotations

from .client import ClientConnection as ClientConnection
from .config import Config as Config
from .connection import Connection as Connection
from .deflate import DeflateOptions as DeflateOptions
from .events import Accepted as Accepted
from .events import CloseReceived as CloseReceived
from .events import Event as Event
from .events import Fragment as Fragment
from .events import Headers as Headers
from .events import Message as Message
from .events import Ping as Ping
from .events import Pong as Pong
from .events import Request as Request
from .events import Terminated as Terminated
from .http import HttpLimits as HttpLimits
from .server import ServerConnection as ServerConnection
from .state import State as State

__all__ = [
    "Accepted",
    "ClientConnection",
    "CloseReceived",
    "Config",
    "Connection",
    "DeflateOptions",
    "Event",
    "Fragment",
    "Headers",
    "HttpLimits",
    "Message",
    "Ping",
    "Pong",
    "Request",
    "ServerConnection",
    "State",
    "Terminated",
]
