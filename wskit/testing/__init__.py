"""The test kit for applications and plugin authors.

* :func:`pair`: a server (with your plugins) and a client connected through
  memory: no ports, the production code path, both asyncio and Trio;
* :func:`handshake`: send one upgrade request with chosen headers and get the
  HTTP answer (for testing refusals: 401, 403, 429, 503, ...);
* :class:`FakeClock`: a clock you move by hand, for time-based plugins;
* :func:`memory_stream_pair`: the in-memory transport itself;
* :mod:`wskit.testing.strategies`: hypothesis strategies for messages, frames
  and chunkings (imported on its own: it needs hypothesis);
* :mod:`wskit.testing.frames`: raw frame encoding, for hostile-peer tests.
"""

from __future__ import annotations

from .clock import FakeClock
from .memory import MemoryByteStream, memory_stream_pair
from .pair import HttpResponse, InMemoryPair, echo, handshake, pair

__all__ = [
    "FakeClock",
    "HttpResponse",
    "InMemoryPair",
    "MemoryByteStream",
    "echo",
    "handshake",
    "memory_stream_pair",
    "pair",
]
