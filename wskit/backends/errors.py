"""The one edge where transport exceptions are translated.

AnyIO and the OS report a dead transport in many ways: ``EndOfStream`` (the
peer closed), ``BrokenResourceError`` (anyio wraps a socket or TLS failure),
``ClosedResourceError`` (we closed it ourselves), ``ConnectionResetError``,
``BrokenPipeError`` and friends. For a WebSocket they all mean the same thing:
the connection ended without a closing handshake. :func:`map_transport_errors`
turns every one of them into :class:`TransportClosed`, and the WebSocket layer
turns that into ``ConnectionClosedError`` with code 1006, so none of these
types reaches users.
"""

from __future__ import annotations

import contextlib
import errno
import ssl
from collections.abc import Iterator
from typing import final

import anyio
import anyio.abc

__all__ = [
    "TRANSPORT_ENDED",
    "TRANSPORT_ERRORS",
    "TransportClosed",
    "aclose_quietly",
    "map_transport_errors",
]

TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)
"""What a failing operation on an AnyIO stream or listener raises, for
``except`` clauses that treat any such failure as the end of the connection
(or, around ``accept()``, as a transient error such as EMFILE). Wider than
:func:`map_transport_errors`: it includes every ``OSError`` (so also
``ssl.SSLError`` and an errno-less ``TimeoutError``). ``anyio.EndOfStream``,
a clean end of input, is not in it."""

# OSErrors that mean the connection is gone, beyond the ConnectionError
# subclasses (reset, aborted, refused, broken pipe): ETIMEDOUT is how a
# failed TCP keepalive or user timeout surfaces on the next read.
_DEAD_CONNECTION_ERRNOS = frozenset(
    {errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.ENOTCONN}
)


@final
class TransportClosed(Exception):
    """The byte stream under a WebSocket connection ended or broke.

    Internal to wskit: it never reaches users. The WebSocket layer catches it
    and reports ``ConnectionClosedError`` with code 1006 (closed without a
    close frame). The original exception is kept as ``__cause__``.
    """


@contextlib.contextmanager
def map_transport_errors() -> Iterator[None]:
    """Translate transport failures raised inside the block to :class:`TransportClosed`.

    Usable around sync code and around ``await`` expressions alike (a plain
    ``with``); cancellation and unrelated exceptions pass through untouched.
    Wrap reads and writes on an established stream, not the TLS handshake:
    there a certificate error must reach the caller as itself.

    Raises:
        TransportClosed: if the block raised an exception that means the
            transport is closed or broken.
    """
    try:
        yield
    except anyio.EndOfStream as exc:
        raise TransportClosed("the peer closed the connection") from exc
    except anyio.ClosedResourceError as exc:
        raise TransportClosed("the connection was closed locally") from exc
    except anyio.BrokenResourceError as exc:
        raise TransportClosed(f"the connection broke: {_describe(exc)}") from exc
    except (ConnectionError, ssl.SSLError) as exc:
        # ConnectionResetError, BrokenPipeError, ConnectionAbortedError, ...;
        # SSLError after the handshake means the TLS record stream is corrupt.
        raise TransportClosed(f"the connection broke: {exc}") from exc
    except OSError as exc:
        if exc.errno not in _DEAD_CONNECTION_ERRNOS:
            raise
        raise TransportClosed(f"the connection broke: {exc}") from exc


def _describe(exc: BaseException) -> str:
    """Say what broke a resource: anyio's errors carry the reason as their cause."""
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
    return str(exc) or type(exc).__name__


TRANSPORT_ENDED: tuple[type[Exception], ...] = (
    anyio.EndOfStream,
    TransportClosed,
    *TRANSPORT_ERRORS,
)
"""Everything that means "this stream is over", a clean end of input included."""


async def aclose_quietly(resource: anyio.abc.AsyncResource) -> None:
    """Close ``resource``, shielded from cancellation, ignoring a transport already gone."""
    with anyio.CancelScope(shield=True), contextlib.suppress(*TRANSPORT_ENDED):
        await resource.aclose()
