"""The ``wskit`` command.

``wskit echo`` runs an echo server (the conformance suites test against it)
and logs connections; Ctrl-C or SIGTERM shuts it down cleanly, closing every
connection with 1001. ``wskit selfcheck`` drives a client core and a server
core against each other in memory (no sockets) and prints what crossed the
wire.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from functools import partial

import anyio

from . import __version__
from .core import ClientConnection, Config, Connection, Message, Request, ServerConnection
from .server import serve
from .websocket import WebSocket

__all__ = ["main"]


def _move(sender: Connection, receiver: Connection, label: str) -> None:
    data = sender.data_to_send()
    if data:
        print(f"  {label}: {len(data)} bytes")
        receiver.receive_data(data)


def selfcheck(messages: int = 3, size: int = 4096) -> int:
    """Run a handshake, ``messages`` echoes with compression, and a close; return an exit code."""
    config = Config()
    client = ClientConnection("localhost", "/selfcheck", config=config)
    server = ServerConnection(config)
    _move(client, server, "client -> server (upgrade request)")
    request = server.events()[0]
    assert isinstance(request, Request)
    server.accept()
    _move(server, client, "server -> client (101 Switching Protocols)")
    client.events()
    print(f"handshake done, compression: {server.compression}")
    for number in range(messages):
        text = f"message {number} " + "x" * size
        client.send_text(text)
        _move(client, server, f"client -> server (text, {len(text)} characters)")
        for event in server.events():
            if isinstance(event, Message):
                server.send_text(str(event.data))
        _move(server, client, "server -> client (echo)")
        echoed = [event.data for event in client.events() if isinstance(event, Message)]
        if echoed != [text]:
            print("echo mismatch", file=sys.stderr)
            return 1
    client.close(1000, "done")
    _move(client, server, "client -> server (close)")
    _move(server, client, "server -> client (close echo)")
    print(f"closed: client {client.state.value}, server {server.state.value}")
    return 0


async def echo_handler(ws: WebSocket) -> None:
    """Send every message back as it came; log the connection's life."""
    transport = ws.transport
    log = logging.getLogger("wskit.echo")
    log.info(
        "open   %s path=%s compression=%s mptcp=%s tls=%s",
        transport.peer,
        ws.request.target if ws.request else "?",
        ws.compression,
        transport.mptcp,
        transport.tls,
    )
    try:
        async for message in ws:
            await ws.send(message)
    finally:
        log.info("closed %s code=%s reason=%r", transport.peer, ws.close_code, ws.close_reason)


async def run_echo(args: argparse.Namespace) -> None:
    """Serve the echo handler until SIGINT or SIGTERM, then shut down gracefully."""
    server = serve(
        echo_handler,
        args.host,
        args.port,
        mptcp=args.mptcp,
        max_message=args.max_message,
        max_fragments=args.max_fragments,
        compression=None if args.no_compression else "deflate",
    )
    async with server:
        log = logging.getLogger("wskit.echo")
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            # Announce only once the signals are ours: a supervisor that sends
            # SIGTERM right after this line must get a clean shutdown.
            log.info("echo server listening on %s port %d", args.host, server.port)
            host = f"[{args.host}]" if ":" in args.host else args.host
            print(f"listening on ws://{host}:{server.port}/", flush=True)
            async for signum in signals:
                log.info("%s: closing every connection with 1001", signal.Signals(signum).name)
                server.close()
                break
        await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wskit`` console script."""
    parser = argparse.ArgumentParser(
        prog="wskit", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action="version", version=f"wskit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "selfcheck", help="run a client and a server core against each other in memory"
    )
    check.add_argument("--messages", type=int, default=3)
    check.add_argument("--size", type=int, default=4096)
    echo = commands.add_parser("echo", help="run an echo server")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=8765)
    echo.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    echo.add_argument("--mptcp", action="store_true", help="listen with MPTCP (TCP fallback)")
    echo.add_argument("--max-message", type=int, default=1024 * 1024)
    echo.add_argument("--max-fragments", type=int, default=4096)
    echo.add_argument("--no-compression", action="store_true")
    echo.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    if args.command == "selfcheck":
        return selfcheck(args.messages, args.size)
    if args.command == "echo":
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="%(asctime)s %(name)s %(levelname)s %(message)s",
        )
        anyio.run(partial(run_echo, args), backend=args.backend)
        return 0
    return 2  # pragma: no cover  (argparse rejects unknown commands)
