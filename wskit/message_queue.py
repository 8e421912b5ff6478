"""A bounded queue of incoming message pieces whose fullness pauses the reader.

Items are ``(data, fin)`` pieces of messages as they arrived (a small message
is one piece with ``fin=True``). Unlike a memory object stream, closing it
keeps what is queued: ``get()`` returns what arrived before the close, then
raises. Queueing and taking allocate nothing unless a task has to wait: an
event exists only while one sleeps.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, cast, final

import anyio

__all__ = ["MessageQueue", "Piece"]

Piece = tuple[str | bytes, bool]
"""A piece of a message and whether it is the last one."""


class Waitable(Protocol):
    """What the queue waits on: ``anyio.Event``, or a lighter event of one loop."""

    def set(self) -> None:
        """Wake every waiter."""
        ...  # pragma: no cover

    def wait(self) -> Awaitable[None]:
        """Wait until set (``await event.wait()``)."""
        ...  # pragma: no cover


# Stands for the queue until its first piece: an empty deque is ~600 bytes,
# and most connections sit idle most of the time. Only ever read, never changed.
_NO_ITEMS = cast("deque[Piece]", ())


@final
class MessageQueue:
    """At most ``capacity`` pieces (None: unbounded); one reader puts, any task gets."""

    __slots__ = ("_capacity", "_changed", "_closed", "_items", "_new_event")

    def __init__(
        self, capacity: int | None, *, new_event: Callable[[], Waitable] = anyio.Event
    ) -> None:
        self._capacity = math.inf if capacity is None else capacity
        self._items: deque[Piece] = _NO_ITEMS
        self._closed = False
        # Made each time a task has to wait (per message, for a reader that
        # keeps up): the lean asyncio stream offers a cheaper one.
        self._new_event = new_event
        self._changed: Waitable | None = None  # exists only while a task waits

    def __len__(self) -> int:
        return len(self._items)

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def _wait(self) -> None:
        if self._changed is None:
            self._changed = self._new_event()
        await self._changed.wait()

    def offer(self, item: Piece) -> bool:
        """Queue ``item`` if there is room, without waiting.

        Returns:
            False when the queue is full and nothing was done; True when the
            item was queued, or dropped because the queue is closed.
        """
        if self._closed:
            return True
        items = self._items
        if len(items) >= self._capacity:
            return False
        if items is _NO_ITEMS:
            items = self._items = deque()
        items.append(item)
        changed = self._changed  # _notify(), inline: once per message
        if changed is not None:
            self._changed = None
            changed.set()
        return True

    async def put(self, item: Piece) -> bool:
        """Queue ``item``, waiting while the queue is full; False if it was closed meanwhile."""
        while len(self._items) >= self._capacity and not self._closed:
            await self._wait()
        if self._closed:
            return False
        if self._items is _NO_ITEMS:
            self._items = deque()
        self._items.append(item)
        self._notify()
        return True

    def push(self, item: Piece) -> None:
        """Queue ``item`` even past capacity: for a reader that will read no more."""
        if self._closed:
            return
        if self._items is _NO_ITEMS:
            self._items = deque()
        self._items.append(item)
        self._notify()

    def get_nowait(self) -> Piece | None:
        """Take the oldest piece if there is one, else None."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        changed = self._changed  # _notify(), inline: once per message
        if changed is not None:
            self._changed = None
            changed.set()
        return item

    async def get(self) -> Piece:
        """Take the oldest piece, waiting for one.

        Raises:
            anyio.EndOfStream: the queue is closed and empty.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            # _wait(), inline: a reader waiting for its next message holds
            # one coroutine less (what the cyclic GC walks, per connection).
            changed = self._changed
            if changed is None:
                changed = self._changed = self._new_event()
            await changed.wait()
        item = self._items.popleft()
        self._notify()
        return item

    def has_room(self) -> bool:
        """Whether ``put()`` would queue at once."""
        return len(self._items) < self._capacity

    def close(self, *, keep_incomplete: bool = True) -> None:
        """No more pieces will come; waiting ``put()`` calls return False.

        Args:
            keep_incomplete: False drops the pieces of a message whose last
                piece is not queued, so that what remains ends on whole messages.
        """
        if not keep_incomplete:
            while self._items and not self._items[-1][1]:
                self._items.pop()
        self._closed = True
        self._notify()
