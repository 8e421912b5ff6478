"""Unix domain sockets: thin wrappers over AnyIO's.

They exist so the server and client open every kind of transport through
:mod:`wskit.backends`, and describe it with the same ``describe()``.
"""

from __future__ import annotations

import anyio
import anyio.abc

__all__ = ["create_unix_listener", "open_unix_stream"]

_MAX_BACKLOG = 65536  # what anyio allows too


async def open_unix_stream(path: str) -> anyio.abc.SocketStream:
    """Connect to the Unix domain socket at ``path``.

    Args:
        path: the socket's filesystem path.

    Returns:
        The connected stream (:func:`describe` says what it runs over).

    Raises:
        OSError: nothing listens there (``FileNotFoundError``,
            ``ConnectionRefusedError``).
    """
    return await anyio.connect_unix(path)


async def create_unix_listener(
    path: str, *, mode: int | None = None, backlog: int = _MAX_BACKLOG
) -> anyio.abc.SocketListener:
    """Listen on a Unix domain socket at ``path``.

    Args:
        path: the filesystem path to create.
        mode: permission bits for the socket file (None: the umask decides).
        backlog: the listen queue length (at most 65536).

    Returns:
        The listener.

    Raises:
        OSError: the path exists or cannot be created.
    """
    return await anyio.create_unix_listener(path, mode=mode, backlog=min(backlog, _MAX_BACKLOG))
