"""wskit: a WebSocket framework for asyncio and Trio programs.

The sans-I/O protocol core lives in :mod:`wskit.core`; errors in :mod:`wskit.errors`.
"""

from __future__ import annotations

from .errors import ConnectionClosed as ConnectionClosed
from .errors import ConnectionClosedError as ConnectionClosedError
from .errors import ConnectionClosedOK as ConnectionClosedOK
from .errors import HandshakeError as HandshakeError
from .errors import HandshakeRejected as HandshakeRejected
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

__version__ = "0.1.0.dev0"

__all__ = [
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeError",
    "HandshakeRejected",
    "InvalidRequest",
    "InvalidResponse",
    "InvalidState",
    "InvalidURI",
    "NegotiationError",
    "PayloadTooBig",
    "PluginError",
    "ProtocolError",
    "UsageError",
    "WskitError",
]
