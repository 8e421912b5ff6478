"""A client core and a server core wired back to back, in memory (after h11's ConnectionPair)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from wskit.core import (
    Accepted,
    ClientConnection,
    Config,
    Connection,
    Event,
    Request,
    ServerConnection,
)

KEY = bytes(range(16))


@dataclass
class Pair:
    """Both ends of one connection; ``pump`` moves bytes until neither side has any to send."""

    client: ClientConnection
    server: ServerConnection
    client_events: list[Event] = field(default_factory=list)
    server_events: list[Event] = field(default_factory=list)

    @classmethod
    def open(
        cls,
        config: Config | None = None,
        *,
        client_config: Config | None = None,
        server_config: Config | None = None,
        subprotocols: Iterable[str] = (),
        accept_subprotocol: str | None = None,
    ) -> Pair:
        """Create both ends and complete the opening handshake."""
        client = ClientConnection(
            "example.com",
            "/",
            subprotocols=tuple(subprotocols),
            config=client_config or config,
            key=KEY,
        )
        server = ServerConnection(server_config or config)
        pair = cls(client, server)
        pair.server.receive_data(pair.client.data_to_send())
        request = pair.server.events()
        assert isinstance(request[0], Request), request
        pair.server.accept(accept_subprotocol)
        pair.client.receive_data(pair.server.data_to_send())
        accepted = pair.client.events()
        assert isinstance(accepted[0], Accepted), accepted
        return pair

    def side(self, client: bool) -> Connection:
        """The client (True) or server (False) end."""
        return self.client if client else self.server

    def pump(self, chunk: int | None = None) -> None:
        """Deliver pending bytes both ways until quiet; ``chunk`` splits every delivery."""
        while True:
            moved = False
            for sender, receiver, sink in (
                (self.client, self.server, self.server_events),
                (self.server, self.client, self.client_events),
            ):
                data = sender.data_to_send()
                if data:
                    moved = True
                    if chunk is None:
                        receiver.receive_data(data)
                    else:
                        for start in range(0, len(data), chunk):
                            receiver.receive_data(data[start : start + chunk])
                sink.extend(receiver.events())
            if not moved:
                return

    def take(self, client: bool) -> list[Event]:
        """Events the client (True) or server (False) end received since the last take."""
        sink = self.client_events if client else self.server_events
        events = list(sink)
        sink.clear()
        return events
