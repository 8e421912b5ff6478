"""The ``wskit`` command.

``wskit selfcheck`` drives a client core and a server core against each other
in memory (no sockets) and prints what crossed the wire: a quick way to see
the sans-I/O core work on a new machine. ``wskit echo`` arrives with the
network backends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .core import ClientConnection, Config, Connection, Message, Request, ServerConnection

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
    args = parser.parse_args(argv)
    if args.command == "selfcheck":
        return selfcheck(args.messages, args.size)
    return 2  # pragma: no cover  (argparse rejects unknown commands)
