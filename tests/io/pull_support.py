"""Helpers shared by the pull-mode tests: the server connections as they arrive."""

from __future__ import annotations

import anyio

from wskit import WebSocket


class Handlers:
    """Server-side WebSockets as they arrive, for the test to look at."""

    def __init__(self) -> None:
        self.connections: list[WebSocket] = []
        self._arrived = anyio.Event()

    def add(self, ws: WebSocket) -> None:
        self.connections.append(ws)
        self._arrived.set()

    async def first(self) -> WebSocket:
        await self._arrived.wait()
        return self.connections[0]

    async def echo(self, ws: WebSocket) -> None:
        """A server handler that records its connection, then echoes every message."""
        self.add(ws)
        async for message in ws:
            await ws.send(message)
