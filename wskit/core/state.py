"""The connection state machine: every state change of a core connection happens here.

Theory of operation (RFC 6455 §4, §7)::

    CONNECTING ──accept / 101 received──▶ OPEN ───────close()───────▶ CLOSING
        │                                  │                          │
        │ reject, bad handshake, EOF       │ peer's close (echoed),   │ peer's close, EOF,
        ▼                                  ▼ EOF, fail               ▼ close_timeout
      CLOSED ◀─────────────────────────────┴──────────────────────────┘

Rules:

* Data and pings may be sent only while OPEN.
* CLOSING means we sent a close frame and wait for the peer's; the peer may
  still send data, which is delivered.
* "Fail the connection" (a protocol error by the peer, a keepalive timeout)
  sends a close frame with the error's code and goes straight to CLOSED: the
  transport is closed without waiting for the peer's answer (RFC 6455 §7.1.7).
* CLOSED is final, and entering it emits exactly one ``Terminated`` event.
"""

from __future__ import annotations

import enum

from wskit.errors import InvalidState

__all__ = ["State", "check_transition"]


class State(enum.Enum):
    """Where a connection is in its life."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED: dict[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.OPEN, State.CLOSED}),
    State.OPEN: frozenset({State.CLOSING, State.CLOSED}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def check_transition(old: State, new: State) -> State:
    """Return ``new`` if the table allows ``old`` → ``new``; raise otherwise.

    Raises:
        InvalidState: the transition breaks the rules above (a bug in the
            caller of this function, never the peer's doing).
    """
    if new not in _ALLOWED[old]:
        raise InvalidState(f"a connection cannot go from {old.value} to {new.value}")
    return new
