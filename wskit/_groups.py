"""Leaving a context that owns a task group without wrapping the caller's own exception.

Trio (and AnyIO on Trio) wraps an exception that leaves the body of a task
group in an ExceptionGroup, even when no background task failed. For
``async with connect()`` / ``async with serve()`` that would turn the user's
own ``ConnectionClosed`` into a group that ``except ConnectionClosed`` misses.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType

__all__ = ["exit_unwrapped"]


async def exit_unwrapped(
    stack: AsyncExitStack,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    traceback: TracebackType | None,
) -> bool | None:
    """Leave ``stack``; if it raises a group holding only ``exc``, raise ``exc`` itself."""
    try:
        return await stack.__aexit__(exc_type, exc, traceback)
    except BaseExceptionGroup as group:
        if exc is not None:
            matched, rest = group.split(lambda candidate: candidate is exc)
            if matched is not None and rest is None:
                raise exc from exc.__cause__
        raise
