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
news. There is no task of its own: with many connections, one wake-up of the
leader serves every connection that is ready. When the leader's own socket
is ready, it returns and wakes a follower to lead in its place. A socket
registered alone waits through Trio for itself (*solo*): leading would cost
its every wait one ``epoll_wait`` more than Trio's own (~4% of the CPU of a
32 B round trip), for nobody else. A task that comes to wait meanwhile
leads the epoll as usual. The solo socket is in the epoll all along, so its
news reaches the epoll too: at its next wait the solo task finds it, reads
(nothing, most likely), and parks as a follower. It is not woken to lead
at once: Trio's only way to wake it, ``notify_closing()``, would fail a
task waiting to write to the same socket as well.

Edge-triggered means the kernel reports new bytes once, not for as long as
they sit unread. So a caller waits only after a read that emptied the
socket's buffer (:attr:`wskit.backends.direct.DirectSocket.drained`), and
news for a socket whose task is not waiting at that moment is remembered
for its next wait. The peer's end (or a reset, an error) is remembered for
good: the read that follows the news may take only the bytes before it, and
the kernel will not report the end again. A wake-up is a hint, as with
Trio's own waits: the caller reads, and waits again if nothing came.

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
class _Watch:
    """One registration of a socket: its waiting task and what the poller knows of it.

    An object per registration, not per file descriptor number: a number is
    reused as soon as its socket closes, and a task still on its way out of
    an old registration must not see, or take, the news of a new one.
    """

    __slots__ = ("abort", "ended", "fd", "interrupted", "ready", "task")

    def __init__(self, fd: int, abort: Callable[[_Watch, object], trio.lowlevel.Abort]) -> None:
        self.fd = fd
        self.ready = True  # bytes may be there already: the first wait lets the caller read
        self.ended = False  # the end (or an error) was reported: every wait returns at once
        # The connection is over, or the socket unregistered: every wait raises.
        self.interrupted = False
        self.task: trio.lowlevel.Task | None = None  # parked, waiting for news
        self.abort = functools.partial(abort, self)  # made once, not per wait


@final
class Poller:
    """Sockets registered once; tasks wait for news of theirs (see the module's docstring).

    Use it from one Trio run. Each registered socket has at most one waiting
    task at a time, as with Trio's own ``wait_readable()``.
    """

    __slots__ = ("_epoll", "_leader", "_parked", "_solo", "_trio", "_value", "_watches")

    def __init__(self) -> None:
        import outcome  # noqa: PLC0415  (Trio's own dependency; Trio is optional)
        import trio  # noqa: PLC0415  (an optional dependency)

        self._trio = trio
        self._value = outcome.Value
        self._epoll = select.epoll()
        self._watches: dict[int, _Watch] = {}  # by fd: the current registration
        self._parked: set[_Watch] = set()  # followers, waiting for news or the lead
        self._leader: _Watch | None = None
        self._solo: _Watch | None = None  # waiting through Trio for its own socket

    def register(self, sock: socket.socket) -> Callable[[], Coroutine[Any, Any, None]]:
        """Watch ``sock``; return the function that waits for news of it.

        ``await wait()`` returns once the socket may have bytes (or its end,
        or an error) that arrived after the last read that emptied it. It
        raises ``trio.ClosedResourceError`` once :meth:`interrupt` was called
        for the socket or it was unregistered, ``trio.Cancelled`` as any wait
        does.
        """
        fd = sock.fileno()
        old = self._watches.get(fd)
        if old is not None:  # a closed socket's, never unregistered: its number is reused
            self._forget(old)
        watch = _Watch(fd, self._abort)
        try:
            self._epoll.register(fd, _EVENTS)
        except FileExistsError:  # the old one's file is still open elsewhere (a dup)
            self._epoll.modify(fd, _EVENTS)
        self._watches[fd] = watch
        return functools.partial(self._wait, watch)

    def unregister(self, sock: socket.socket) -> None:
        """Stop watching ``sock``; its waiting task, if any, fails (``ClosedResourceError``).

        Call it before the socket is closed or read by other means.
        """
        watch = self._watches.get(sock.fileno())
        if watch is None:
            return
        self._forget(watch)
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(watch.fd)

    def interrupt(self, fd: int) -> None:
        """End the waits for the socket registered as ``fd``: now, and every one after.

        The waiting task, if any, is woken and raises ``trio.ClosedResourceError``.
        """
        watch = self._watches.get(fd)
        if watch is not None:
            self._interrupt(watch)

    def close(self) -> None:
        """Release the epoll instance; tasks still waiting fail (``ClosedResourceError``)."""
        if self._epoll.closed:
            return
        for watch in list(self._watches.values()):
            self._forget(watch)
        self._epoll.close()

    def __len__(self) -> int:
        """The followers parked now (the leader not counted)."""
        return len(self._parked)

    def _forget(self, watch: _Watch) -> None:
        self._interrupt(watch)
        if self._watches.get(watch.fd) is watch:
            del self._watches[watch.fd]

    def _interrupt(self, watch: _Watch) -> None:
        watch.interrupted = True
        if watch.task is not None:
            self._wake(watch)
        elif self._leader is watch:
            # The leader waits in Trio for the epoll: Trio's own way to wake it.
            self._trio.lowlevel.notify_closing(self._epoll)
        elif self._solo is watch:
            self._trio.lowlevel.notify_closing(watch.fd)  # it waits in Trio for its socket
        # Else it runs, or is about to (woken already): its next look sees it.

    def _wake(self, watch: _Watch) -> None:
        task = watch.task
        assert task is not None
        watch.task = None
        self._parked.discard(watch)
        self._trio.lowlevel.reschedule(task, self._value(None))

    def _abort(self, watch: _Watch, _: object) -> trio.lowlevel.Abort:
        # A parked follower was cancelled: forget it. (Called only while it
        # is parked: once rescheduled, Trio no longer aborts its wait.)
        watch.task = None
        self._parked.discard(watch)
        return self._trio.lowlevel.Abort.SUCCEEDED

    async def _wait(self, watch: _Watch) -> None:
        lowlevel = self._trio.lowlevel
        while True:
            # Every wake-up comes back here: for news, to lead, or to fail.
            if watch.interrupted:
                raise self._trio.ClosedResourceError("the connection is over")
            if watch.ready:
                if not watch.ended:
                    watch.ready = False
                return
            if self._leader is None:
                if self._solo is None and len(self._watches) == 1:
                    # Solo: through Trio, for its own socket (see the module's
                    # docstring); here rather than in a coroutine of its own,
                    # as a lone connection waits so once per message.
                    self._solo = watch
                    try:
                        await lowlevel.wait_readable(watch.fd)
                    except self._trio.ClosedResourceError:
                        if watch.interrupted:
                            raise self._trio.ClosedResourceError("the connection is over") from None
                        raise  # the socket itself is being closed
                    finally:
                        self._solo = None
                    if watch.interrupted:  # woken by its news, interrupted since: as a follower
                        raise self._trio.ClosedResourceError("the connection is over")
                    return
                await self._lead(watch)
                continue
            watch.task = lowlevel.current_task()
            self._parked.add(watch)
            await lowlevel.wait_task_rescheduled(watch.abort)

    async def _lead(self, watch: _Watch) -> None:
        """Wait for the epoll as the leader, dispatching news, until some is for ``watch``."""
        self._leader = watch
        try:
            while not (watch.ready or watch.interrupted):
                # A close of the epoll is for the leader: _interrupt() or
                # close(), both seen through the watch above.
                with contextlib.suppress(self._trio.ClosedResourceError):
                    await self._trio.lowlevel.wait_readable(self._epoll)
                if not self._epoll.closed:
                    self._dispatch()
        finally:
            self._leader = None
            if self._parked:
                self._wake(next(iter(self._parked)))  # a follower leads now

    def _dispatch(self) -> None:
        """Mark every watch with news ready, and wake its task if it is parked."""
        watches = self._watches
        for fd, flags in self._epoll.poll(0):
            watch = watches.get(fd)
            if watch is None:
                continue  # unregistered since
            watch.ready = True
            if flags & _FINAL:
                watch.ended = True
            if watch.task is not None:
                self._wake(watch)
