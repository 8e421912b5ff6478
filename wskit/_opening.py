"""The bound on one server handshake (``open_timeout``), kept without a cancel scope.

A cancel scope with a deadline around every handshake costs ~10 µs on Trio
and ~5 µs on asyncio (entering, leaving, registering the deadline). Most of
a handshake waits only in the stream's ``receive()`` and ``send()``, which
can be ended from outside without one: on Trio ``anyio.notify_closing()``
on the socket wakes them with ``ClosedResourceError``; a lean asyncio
stream is closed at once (``close_now()``), which ends them too. So the
server's timer service (:class:`~wskit._timers.Timers`, already running)
keeps the deadline, and when it passes (or the server shuts down) an
:class:`Opening` interrupts the stream. The handshake checks
:attr:`Opening.interrupted` after every wait, since an interrupt that came
while it was not waiting woke nothing.

Where the handshake awaits code that is not the stream's (a plugin's
``on_handshake``, ``process_request``) the server still uses a scope, with
the same deadline; streams with no such interrupt (TLS, in-memory ones)
keep a scope for the whole handshake.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from typing import final

import anyio
import anyio.abc

from ._timers import Timers
from .backends.lean import LeanStream
from .backends.transport import raw_socket

__all__ = ["Opening", "stream_interrupter"]


def stream_interrupter(stream: anyio.abc.AnyByteStream) -> Callable[[], None] | None:
    """A function that ends every wait in ``stream.receive()`` and ``send()``, or None.

    The stream is of no use after it: call it only to drop the connection.

    Args:
        stream: an accepted stream, before any I/O but the handshake's.

    Returns:
        ``close_now`` for a lean asyncio stream, ``notify_closing`` on the
        socket for an AnyIO socket stream on Trio, None for any other
        stream (TLS, in memory, AnyIO's asyncio streams).
    """
    if isinstance(stream, LeanStream):
        return stream.close_now
    if not isinstance(stream, anyio.abc.SocketStream):
        return None  # a TLS stream may wait inside its record layer, not on the socket
    trio = sys.modules.get("trio")
    if trio is None or not trio.lowlevel.in_trio_run():
        return None
    sock = raw_socket(stream)
    return None if sock is None else functools.partial(anyio.notify_closing, sock)


@final
class Opening:
    """One handshake's deadline, kept by a :class:`~wskit._timers.Timers`.

    Args:
        interrupt: ends the handshake's waits on its stream (from
            :func:`stream_interrupter`).
    """

    __slots__ = ("__weakref__", "_deadline", "_interrupt", "_timers", "expired", "stopped")

    def __init__(self, interrupt: Callable[[], None]) -> None:
        self._interrupt = interrupt
        self._deadline = math.inf
        self._timers: Timers | None = None
        self.expired = False
        """The deadline passed before :meth:`finish`."""
        self.stopped = False
        """:meth:`stop` was called (the server is shutting down)."""

    @property
    def interrupted(self) -> bool:
        """Whether the handshake must be dropped: its deadline passed, or the server stopped."""
        return self.expired or self.stopped

    def start(self, timers: Timers, deadline: float) -> None:
        """Interrupt the handshake at ``deadline`` (on ``anyio.current_time()``'s clock)."""
        self._timers = timers
        self._deadline = deadline
        timers.schedule(deadline, self, replacing=False)

    def finish(self) -> None:
        """The handshake is over (done or dropped): the deadline no longer applies."""
        if self._deadline != math.inf and self._timers is not None:
            self._deadline = math.inf
            self._timers.forget()  # its entry is stale now; the heap drops it in time

    def stop(self) -> None:
        """Interrupt the handshake now (the server is closing)."""
        if not self.interrupted:
            self.stopped = True
            self._interrupt()

    def timer_deadline(self) -> float:
        """The deadline scheduled with the timer service (``inf`` once finished or fired)."""
        return self._deadline

    def on_timer(self, now: float) -> None:  # noqa: ARG002 (the Timed protocol's signature)
        """The deadline passed: interrupt the handshake."""
        self._deadline = math.inf
        if not self.interrupted:
            self.expired = True
            self._interrupt()
