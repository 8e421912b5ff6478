"""Waking a task blocked in a stream's ``receive()`` from synchronous code.

When a connection ends while its reader waits for bytes (a timeout fired, a
write failed), the reader must stop waiting and close. Cancelling a scope
around every reader works anywhere, but a scope per connection costs a
cancel status and its bookkeeping on every connection, most of which never
need it. Where the stream allows it, a direct wake-up does the job instead:

* the lean asyncio stream returns ``b""`` from the waiting receive
  (:meth:`~wskit.backends.lean.LeanStream.wake_receiver`);
* on Trio, a stream over a socket is woken by ``anyio.notify_closing()`` on
  that socket: the waiting receive (and a send waiting for room) raises
  ``ClosedResourceError``, and the socket itself stays usable until closed.

Elsewhere (asyncio's own streams, TLS on asyncio, in-memory streams) there
is no such hook, and the caller keeps the cancel scope.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import anyio
import anyio.abc

from .lean import LeanStream
from .transport import raw_socket

__all__ = ["receive_waker"]


def receive_waker(stream: anyio.abc.ByteStream) -> Callable[[], None] | None:
    """A function that wakes a task blocked in ``stream.receive()``, or None if there is none.

    Call it only while the task waits: on Trio it also wakes a send that
    waits, which then fails, and so it is meant for a connection that is over.
    """
    if isinstance(stream, LeanStream):
        return stream.wake_receiver
    trio = sys.modules.get("trio")
    if trio is None or not trio.lowlevel.in_trio_run():
        return None
    raw = raw_socket(stream)  # not extra(): it builds AnyIO's attribute table each time
    if raw is None:
        return None
    return functools.partial(anyio.notify_closing, raw)
