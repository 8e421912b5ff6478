"""Wake-ups and flags that cost nothing while nobody waits for them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, final

import anyio

__all__ = ["Flag", "Signal"]


@final
class Signal:
    """Set by anyone, waited on by one task; ``wait()`` consumes the wake-up.

    Unlike an ``anyio.Event`` replaced after every use, setting it allocates
    nothing unless its task is asleep: the data path sets it once per message.
    """

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: anyio.Event | None = None  # exists only while the task sleeps

    def set(self) -> None:
        """Wake the waiting task, or make its next ``wait()`` return at once."""
        self._set = True
        event = self._event
        if event is not None:
            self._event = None
            event.set()

    def is_set(self) -> bool:
        """Whether a wake-up is pending."""
        return self._set

    async def wait(self) -> None:
        """Wait until set, then clear; returns at once if already set."""
        while not self._set:
            if self._event is None:
                self._event = anyio.Event()
            await self._event.wait()
        self._set = False


class _Event(Protocol):
    def set(self) -> None: ...  # pragma: no cover

    def wait(self) -> Awaitable[None]: ...  # pragma: no cover


@final
class Flag:
    """A one-way flag that tasks can wait for: an event made on demand.

    A connection has several of these; most are never waited for, so most
    never allocate an event. ``new_event`` makes it (``anyio.Event``, or
    the lean asyncio stream's cheaper one).
    """

    __slots__ = ("_event", "_new_event", "_set")

    def __init__(self, new_event: Callable[[], _Event] = anyio.Event) -> None:
        self._set = False
        self._new_event = new_event
        self._event: _Event | None = None

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        self._set = True
        if self._event is not None:
            self._event.set()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._set

    async def wait(self) -> None:
        """Wait until the flag is set (at once if it is)."""
        if self._set:
            return
        if self._event is None:
            self._event = self._new_event()
        await self._event.wait()
