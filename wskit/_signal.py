"""A wake-up flag for one waiting task that costs nothing while nobody waits."""

from __future__ import annotations

from typing import final

import anyio

__all__ = ["Signal"]


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
