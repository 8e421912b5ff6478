"""wskit: a WebSocket framework for asyncio and Trio programs.

``serve()``, ``connect()`` and ``WebSocket`` run on AnyIO; the sans-I/O protocol
core lives in :mod:`wskit.core`, errors in :mod:`wskit.errors`.

The I/O layer is imported on first use, so that ``import wskit.core`` (which
imports this package first) loads no event-loop library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .core import Request as Request
from .errors import ConnectionClosed as ConnectionClosed
from .errors import ConnectionClosedError as ConnectionClosedError
from .errors import ConnectionClosedOK as ConnectionClosedOK
from .errors import ConnectionFailed as ConnectionFailed
from .errors import HandshakeError as HandshakeError
from .errors import HandshakeRejected as HandshakeRejected
from .errors import HandshakeTimeout as HandshakeTimeout
from .errors import InvalidRequest as InvalidRequest
from .errors import InvalidResponse as InvalidResponse
from .errors import InvalidState as InvalidState
from .errors import InvalidURI as InvalidURI
from .errors import NegotiationError as NegotiationError
from .errors import PayloadTooBig as PayloadTooBig
from .errors import PluginError as PluginError
from .errors import ProtocolError as ProtocolError
from .errors import UsageError as UsageError
from .errors import WskitError as WskitError

if TYPE_CHECKING:
    from .client import Connect as Connect
    from .client import connect as connect
    from .options import Options as Options
    from .plugins.base import Plugin as Plugin
    from .responses import Response as Response
    from .server import Server as Server
    from .server import serve as serve
    from .websocket import WebSocket as WebSocket

__version__ = "0.1.0.dev0"

_LAZY = {
    "Connect": "client",
    "connect": "client",
    "Options": "options",
    "Plugin": "plugins.base",
    "Response": "responses",
    "Server": "server",
    "serve": "server",
    "WebSocket": "websocket",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wskit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "Connect",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ConnectionFailed",
    "HandshakeError",
    "HandshakeRejected",
    "HandshakeTimeout",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidURI",
    "NegotiationError",
    "Options",
    "PayloadTooBig",
    "Plugin",
    "PluginError",
    "ProtocolError",
    "Request",
    "Response",
    "Server",
    "UsageError",
    "WebSocket",
    "WskitError",
    "connect",
    "serve",
]
