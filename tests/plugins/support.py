"""Helpers for plugin tests: one upgrade attempt, in memory or over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import wskit
from wskit.options import Compression
from wskit.plugins import Plugin
from wskit.testing import handshake, pair

TRANSPORTS = ["memory", "tcp"]
CONNECTIONS = [*TRANSPORTS, "tcp-uncompressed"]  # for client_of()


@dataclass
class Outcome:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


async def attempt(
    transport: str,
    plugins: Sequence[Plugin],
    *,
    headers: Sequence[tuple[str, str]] = (),
    path: str = "/",
    subprotocols: Sequence[str] = (),
    server_subprotocols: Sequence[str] = (),
) -> Outcome:
    """Try to open a connection with ``headers``; the status the server answered (101 on success).

    ``memory`` goes through wskit.testing.handshake(); ``tcp`` runs a real
    server on 127.0.0.1 and a real wskit client.
    """
    if transport == "memory":
        offer = [("Sec-WebSocket-Protocol", ", ".join(subprotocols))] if subprotocols else []
        response = await handshake(
            plugins,
            headers=[*headers, *offer],
            path=path,
            subprotocols=server_subprotocols,
        )
        return Outcome(response.status, response.headers, response.body)

    async def handler(ws: wskit.WebSocket) -> None:
        await ws.send(repr((ws.request.target if ws.request else None, ws.subprotocol)))

    async with wskit.serve(
        handler, "127.0.0.1", 0, plugins=plugins, subprotocols=server_subprotocols
    ) as server:
        try:
            async with wskit.connect(
                f"ws://127.0.0.1:{server.port}{path}",
                extra_headers=headers,
                subprotocols=subprotocols,
                open_timeout=5,
            ) as ws:
                await ws.recv()
                return Outcome(101, (), b"")
        except wskit.HandshakeRejected as exc:
            return Outcome(exc.status_code, exc.headers, exc.body)


@asynccontextmanager
async def client_of(
    transport: str,
    handler: Callable[[wskit.WebSocket], Awaitable[None]],
    plugins: Sequence[Plugin],
) -> AsyncIterator[wskit.WebSocket]:
    """A client connected to a server running ``handler`` with ``plugins``.

    ``memory`` uses wskit.testing.pair(); ``tcp`` a real server on 127.0.0.1
    (with compression, the default), where on asyncio the server parses in
    the lean stream's callback; ``tcp-uncompressed`` the same without it.
    """
    if transport == "memory":
        async with pair(handler, plugins=plugins) as p:
            yield p.client
        return
    compression: Compression = None if transport == "tcp-uncompressed" else "deflate"
    async with wskit.serve(
        handler, "127.0.0.1", 0, plugins=plugins, compression=compression
    ) as server:
        async with wskit.connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
            yield ws
