"""SlowMode: a plugin that lets each client send one message every few seconds.

The example of docs/howto/plugins.md. It shows each kind of hook:

* ``on_handshake`` refuses a request without a nickname (400) and stores the
  nickname in the connection's context;
* ``on_message`` answers a client that speaks too soon, without the
  application ever seeing the message;
* ``on_close`` forgets the connection;
* time comes from a ``clock`` argument, so tests move it by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import wskit
from wskit.plugins import PASS, Handshake, Plugin, Reply, Verdict


class SlowMode(Plugin):
    """One message per ``interval`` seconds per connection; earlier ones get a reply.

    Args:
        interval: seconds between two messages of one client.
        clock: monotonic seconds (a wskit.testing.FakeClock in tests).
    """

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last_message: dict[wskit.WebSocket, float] = {}

    async def on_handshake(self, handshake: Handshake) -> wskit.Response | None:
        """Refuse a request without a nickname; remember the nickname."""
        nickname = handshake.request.header("x-nickname")
        if not nickname:
            return wskit.Response.text(400, "Send your nickname in X-Nickname.\n")
        handshake.context["nickname"] = nickname
        return None

    def on_message(self, ws: wskit.WebSocket, message: str | bytes) -> Verdict:
        """Let the message through, or reply if it came too soon after the last one."""
        now = self.clock()
        last = self.last_message.get(ws)
        if last is not None and now - last < self.interval:
            wait = math.ceil(self.interval - (now - last))
            return Reply(f"slow mode: wait {wait} s, {ws.context['nickname']}")
        self.last_message[ws] = now
        return PASS

    async def on_close(self, ws: wskit.WebSocket, code: int, reason: str) -> None:
        """Forget the connection."""
        self.last_message.pop(ws, None)
