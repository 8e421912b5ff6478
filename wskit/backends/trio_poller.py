"""Waiting for many sockets at once on Trio: one epoll of our own, led by a waiting task.

Each ``trio.lowlevel.wait_readable()`` costs, every time, a chain of four
coroutines, a closure with its cells, an entry object for the file
descriptor, an ``epoll_ctl`` call to arm it and a pass through Trio's I/O
manager to wake the task. With 1,000 connections each waiting for its next
message, that came to about a quarter of the server's CPU per message, and
the objects it leaves alive while the task sleeps are what the cyclic GC
walks on every young collection.

A :class:`Poller` registers each socket once, edge-triggered, in an epoll
instance of its own. A task that must wait parks itself with
``trio.lowlevel.wait_task_rescheduled`` (a *follower*), except one, the
*leader*, which waits through Trio for the poller's epoll to become
readable, then polls it and reschedules every follower whose socket has
news. There is no task of its own: with one connection its task leads, and a
wait costs one ``epoll_wait`` more than Trio's own; with many, one wake-up of
the leader serves every connection that is ready. When the leader's own
socket is ready, it returns and wakes a follower to lead in its place.

Edge-triggered means the kernel reports new bytes once, not for as long as
they sit unread. So a caller waits only after a read that emptied the
socket's buffer (:attr:`wskit.backends.direct.DirectSocket.drained`), and
news for a socket whose task is not waiting at that moment is remembered
for its next wait. The peer's end (or a reset, an error) is remembered for
good: the read that follows the news may take only the bytes before it, and
the kernel will not report the end again. A wake-up is a hint, as with Trio's own waits: the caller
reads, and waits again if nothing came.

Linux only (epoll): elsewhere :func:`poller_for_trio` gives None and
connections wait through Trio as before.
"""

from __future__ import annotations

import contextlib
import functools
import select
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, final

if TYPE_CHECKING:
    import trio
    import trio.lowlevel

__all__ = ["Poller", "poller_for_trio"]

# Woken with this, a follower leads (the leader left).
_LEAD = object()

_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET if hasattr(select, "epoll") else 0
# News that stays true once reported (the peer's end, a reset, an error):
# unlike bytes, it is never reported again, so it must not be lost to a read
# that took only the bytes before it.
_FINAL = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR if hasattr(select, "epoll") else 0


def poller_for_trio() -> Poller | None:
    """A :class:`Poller` when running under Trio on a system with epoll, else None."""
    if not hasattr(select, "epoll"):
        return None
    trio = sys.modules.get("trio")  # imported by whoever runs Trio
    if trio is None or not trio.lowlevel.in_trio_run():
        return None
    return Poller()


@final
class Poller:
    """Sockets registered once; tasks wait for news of theirs (see the module's docstring).

    Use it from one Trio run. Each registered socket has at most one waiting
    task at a time, as with Trio's own ``wait_readable()``.
    """

    __slots__ = (
        "_ended",
        "_epoll",
        "_error",
        "_interrupted",
        "_leader_fd",
        "_leading",
        "_ready",
        "_trio",
        "_value",
        "_waiting",
    )

    def __init__(self) -> None:
        import outcome  # noqa: PLC0415  (Trio's own dependency; Trio is optional)
        import trio  # noqa: PLC0415  (an optional dependency)

        self._trio = trio
        self._value = outcome.Value
        self._error = outcome.Error
        self._epoll = select.epoll()
        # fd -> the follower parked for it.
        self._waiting: dict[int, trio.lowlevel.Task] = {}
        # Sockets with news their task has not waited for yet.
        self._ready: set[int] = set()
        # Sockets at their end (or failed): every wait returns at once.
        self._ended: set[int] = set()
        self._leading = False
        self._leader_fd = -1
        # Sockets whose wait must end with ClosedResourceError (interrupt()).
        self._interrupted: set[int] = set()

    def register(self, sock: socket.socket) -> Callable[[], Coroutine[Any, Any, None]]:
        """Watch ``sock``; return the function that waits for news of it.

        ``await wait()`` returns once the socket may have bytes (or its end,
        or an error) that arrived after the last read that emptied it. It
        raises ``trio.ClosedResourceError`` if :meth:`interrupt` is called
        while it waits, ``trio.Cancelled`` as any wait does.
        """
        fd = sock.fileno()
        self._ready.add(fd)  # bytes may be there already: the first wait lets the caller read
        self._interrupted.discard(fd)
        self._ended.discard(fd)
        self._epoll.register(fd, _EVENTS)
        return functools.partial(self._wait, fd, functools.partial(self._abort, fd))

    def unregister(self, sock: socket.socket) -> None:
        """Stop watching ``sock``, waking its task if one waits (``ClosedResourceError``).

        Call it before the socket is closed or read by other means.
        """
        fd = sock.fileno()
        if fd == -1:
            return
        self.interrupt(fd)
        self._ready.discard(fd)
        self._ended.discard(fd)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(fd)

    def interrupt(self, fd: int) -> None:
        """End the wait for ``fd`` with ``trio.ClosedResourceError``, if a task waits."""
        task = self._waiting.pop(fd, None)
        if task is not None:
            closed = self._trio.ClosedResourceError("the connection is over")
            self._trio.lowlevel.reschedule(task, self._error(closed))
        elif self._leading and self._leader_fd == fd:
            self._interrupted.add(fd)
            self._trio.lowlevel.notify_closing(self._epoll)  # wakes the leader

    def close(self) -> None:
        """Release the epoll instance (no task may wait any more)."""
        if self._epoll.closed:
            return
        with contextlib.suppress(RuntimeError):  # outside the run: nobody waits
            self._trio.lowlevel.notify_closing(self._epoll)
        self._epoll.close()

    def __len__(self) -> int:
        """The followers parked now (the leader not counted)."""
        return len(self._waiting)

    def _abort(self, fd: int, _: object) -> trio.lowlevel.Abort:
        # A parked follower was cancelled: forget it. (Called only while it
        # is parked: once rescheduled, Trio no longer aborts its wait.)
        self._waiting.pop(fd, None)
        return self._trio.lowlevel.Abort.SUCCEEDED

    async def _wait(self, fd: int, abort: Callable[[object], trio.lowlevel.Abort]) -> None:
        ready = self._ready
        lowlevel = self._trio.lowlevel
        while True:
            if fd in ready:
                if fd not in self._ended:
                    ready.discard(fd)
                return
            if not self._leading:
                await self._lead(fd)
                return
            self._waiting[fd] = lowlevel.current_task()
            if await lowlevel.wait_task_rescheduled(abort) is not _LEAD:
                return
            # Woken to lead: unless someone took the lead meanwhile, or
            # news came for us, in which case the loop sees it.

    async def _lead(self, fd: int) -> None:
        """Wait for the epoll as the leader, dispatching news, until some is for ``fd``."""
        self._leading = True
        self._leader_fd = fd
        interrupted = self._interrupted
        try:
            while True:
                if fd in interrupted:
                    interrupted.discard(fd)
                    raise self._trio.ClosedResourceError("the connection is over")
                with contextlib.suppress(self._trio.ClosedResourceError):
                    # Another fd's close is not ours: notify_closing() on the
                    # epoll is only ever for the leader's fd, checked above.
                    await self._trio.lowlevel.wait_readable(self._epoll)
                if self._dispatch(fd):
                    return
        finally:
            self._leading = False
            self._leader_fd = -1
            if self._waiting:
                # A follower leads now (the most recent: any would do).
                _, task = self._waiting.popitem()
                self._trio.lowlevel.reschedule(task, self._value(_LEAD))

    def _dispatch(self, fd: int) -> bool:
        """Wake the followers with news; True if some is for ``fd``, the leader's."""
        mine = False
        waiting = self._waiting
        ready = self._ready
        reschedule = self._trio.lowlevel.reschedule
        for news_fd, flags in self._epoll.poll(0):
            if flags & _FINAL:
                self._ended.add(news_fd)
                ready.add(news_fd)
            if news_fd == fd:
                mine = True
                continue
            task = waiting.pop(news_fd, None)
            if task is None:
                ready.add(news_fd)
            else:
                reschedule(task)
        return mine
