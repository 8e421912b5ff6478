"""In-memory connections to a real wskit server: no ports, same code path as production."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, final

import anyio
import anyio.abc

from wskit._groups import exit_unwrapped
from wskit.backends.transport import Address
from wskit.client import connect
from wskit.core.http import HeadReader, HttpLimits, ResponseHead, get_header
from wskit.errors import UsageError
from wskit.plugins.base import Plugin
from wskit.server import Handler, Server, serve
from wskit.websocket import WebSocket

from .memory import memory_stream_pair

__all__ = ["HttpResponse", "InMemoryPair", "echo", "handshake", "pair"]


async def echo(ws: WebSocket) -> None:
    """A handler that sends every message back: the default of :func:`pair`."""
    async for message in ws:
        await ws.send(message)


@final
@dataclass(frozen=True, slots=True)
class InMemoryPair:
    """A client connected to a server through memory.

    Attributes:
        client: the client's WebSocket.
        server_ws: the server's side of the same connection (its ``context``
            holds what the server's plugins wrote).
        server: the server (``server.connections``, ``server.close()``).
    """

    client: WebSocket
    server_ws: WebSocket
    server: Server


class _Capture(Plugin):
    """Hands the server-side WebSocket to :func:`pair`; first in the list, so it always runs."""

    def __init__(self) -> None:
        self.opened = anyio.Event()
        self.ws: WebSocket | None = None

    async def on_connect(self, ws: WebSocket) -> None:
        self.ws = ws
        self.opened.set()


@asynccontextmanager
async def pair(
    handler: Handler = echo,
    *,
    plugins: Sequence[Plugin] = (),
    client_plugins: Sequence[Plugin] = (),
    path: str = "/",
    headers: Iterable[tuple[str, str]] = (),
    subprotocols: Sequence[str] = (),
    server_subprotocols: Sequence[str] = (),
    client_address: Address = ("127.0.0.1", 50000),
    **options: Any,
) -> AsyncIterator[InMemoryPair]:
    """Run a server with ``plugins`` and connect a client to it, in memory.

    Example::

        async with wskit.testing.pair(plugins=[MyPlugin()]) as p:
            await p.client.send("hi")
            assert await p.client.recv() == "hi"
            assert p.server_ws.context["seen"] == 1

    Args:
        handler: the server's handler (:func:`echo` by default).
        plugins: the server's plugins.
        client_plugins: the client's plugins.
        path: the request target (path and query).
        headers: extra request headers (``Origin``, ``Authorization``, ...).
        subprotocols: subprotocols the client offers.
        server_subprotocols: subprotocols the server speaks.
        client_address: the client address the server sees.
        **options: options for both ``serve()`` and ``connect()``
            (``ping_interval``, ``max_message``, ``compression``, ...).

    Raises:
        HandshakeRejected: the server (a plugin) refused the handshake; use
            :func:`handshake` to look at refusals.
    """
    capture = _Capture()
    client_end, server_end = memory_stream_pair(client_address=client_address)
    server = serve(
        handler,
        listen=False,
        plugins=[capture, *plugins],
        subprotocols=server_subprotocols,
        **options,
    )
    stack = AsyncExitStack()
    async with stack:
        await stack.enter_async_context(server)
        tasks = await stack.enter_async_context(anyio.create_task_group())
        tasks.start_soon(server.handle, server_end)
        client = await stack.enter_async_context(
            connect(
                f"ws://testserver{path}",
                stream=client_end,
                plugins=client_plugins,
                extra_headers=headers,
                subprotocols=subprotocols,
                **options,
            )
        )
        with anyio.fail_after(5):  # the server side opens right after its 101
            await capture.opened.wait()
        assert capture.ws is not None
        try:
            yield InMemoryPair(client, capture.ws, server)
        except BaseException as exc:
            # Raise the test's own exception, not a task group wrapping it.
            await exit_unwrapped(stack, type(exc), exc, exc.__traceback__)
            raise


@final
@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The server's answer to an upgrade request sent by :func:`handshake`.

    Attributes:
        status: the status code (101 when the upgrade was accepted).
        headers: the response headers, in order.
        body: the body (empty for a 101).
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or None; repeats joined by ", "."""
        values = get_header(self.headers, name)
        return ", ".join(values) if values else None


async def handshake(
    plugins: Sequence[Plugin] = (),
    *,
    headers: Iterable[tuple[str, str]] = (),
    path: str = "/",
    omit: Iterable[str] = (),
    client_address: Address = ("127.0.0.1", 50000),
    **options: Any,
) -> HttpResponse:
    """Send one upgrade request with chosen headers to a server and return its answer.

    The request carries the headers a valid upgrade needs (``Host``,
    ``Upgrade``, ``Connection``, ``Sec-WebSocket-Key``,
    ``Sec-WebSocket-Version``), then ``headers`` as given (repeats and all),
    minus the names in ``omit``. The connection is dropped after the answer.

    Example::

        response = await wskit.testing.handshake(
            [Origin(["https://app.example"])], headers=[("Origin", "https://evil.example")]
        )
        assert response.status == 403

    Args:
        plugins: the server's plugins.
        headers: more request headers.
        path: the request target.
        omit: names of default headers to leave out (case-insensitive).
        client_address: the client address the server sees.
        **options: ``serve()`` options (``subprotocols``, ``open_timeout``, ...).
    """
    skip = {name.lower() for name in omit}
    key = base64.b64encode(os.urandom(16)).decode()
    defaults = [
        ("Host", "testserver"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in defaults if name.lower() not in skip]
    lines += [f"{name}: {value}" for name, value in headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def refuse_handler(ws: WebSocket) -> None:
        await ws.close()

    client_end, server_end = memory_stream_pair(client_address=client_address)
    server = serve(refuse_handler, listen=False, plugins=plugins, **options)
    async with server, anyio.create_task_group() as tasks:
        tasks.start_soon(server.handle, server_end)
        await client_end.send(request)
        with anyio.fail_after(10):
            response = await _read_response(client_end)
        await client_end.aclose()
    return response


async def _read_response(stream: anyio.abc.ByteStream) -> HttpResponse:
    reader = HeadReader(HttpLimits(), response=True)
    head = None
    while head is None:
        try:
            head = reader.feed(await stream.receive())
        except anyio.EndOfStream:
            raise UsageError("the server closed the connection without answering") from None
    assert isinstance(head, ResponseHead)
    if head.status == 101:
        return HttpResponse(101, head.headers, b"")
    body = reader.trailing
    length = get_header(head.headers, "content-length")
    wanted = int(length[0]) if length else 0
    while len(body) < wanted:
        try:
            body += await stream.receive()
        except anyio.EndOfStream:
            break
    return HttpResponse(head.status, head.headers, body)
