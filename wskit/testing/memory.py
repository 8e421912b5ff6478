"""An in-memory, bounded, full-duplex byte stream pair: a connection without a socket."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from wskit.backends.transport import Address

__all__ = ["MemoryByteStream", "memory_stream_pair"]


@final
class MemoryByteStream(anyio.abc.ByteStream):
    """One end of an in-memory connection; behaves like a TCP stream.

    ``send()`` waits while ``buffer`` chunks are in flight (backpressure, as
    a full socket buffer would apply); after the peer closed, it raises
    ``anyio.BrokenResourceError``, and ``receive()`` ends with
    ``anyio.EndOfStream`` once the peer closed or sent EOF. The addresses
    answer AnyIO's ``SocketAttribute.remote_address`` and ``local_address``,
    so plugins keyed on the client's IP see one.
    """

    def __init__(
        self,
        outgoing: MemoryObjectSendStream[bytes],
        incoming: MemoryObjectReceiveStream[bytes],
        *,
        local: Address,
        remote: Address,
    ) -> None:
        self._outgoing = outgoing
        self._incoming = incoming
        self._pending = b""
        self._local = local
        self._remote = remote

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Receive at most ``max_bytes`` (at least one byte)."""
        if not self._pending:
            self._pending = await self._incoming.receive()
        data, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
        return data

    async def send(self, item: bytes) -> None:
        """Send bytes; waits while the peer's buffer is full."""
        if item:
            await self._outgoing.send(bytes(item))

    async def send_eof(self) -> None:
        """Close the sending direction: the peer's ``receive()`` ends."""
        await self._outgoing.aclose()

    async def aclose(self) -> None:
        """Close both directions."""
        await self._outgoing.aclose()
        await self._incoming.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """AnyIO typed attributes: the two ends' addresses."""
        return {
            anyio.abc.SocketAttribute.local_address: lambda: self._local,
            anyio.abc.SocketAttribute.remote_address: lambda: self._remote,
        }


def memory_stream_pair(
    *,
    client_address: Address = ("127.0.0.1", 50000),
    server_address: Address = ("127.0.0.1", 8765),
    buffer: int = 16,
) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected in-memory byte streams: ``(client_end, server_end)``.

    Args:
        client_address: what the server end reports as its peer's address
            (``("203.0.113.7", 40000)`` to test per-IP policy).
        server_address: what the client end reports as its peer's address.
        buffer: chunks in flight per direction before ``send()`` waits.
    """
    to_server_send, to_server_receive = anyio.create_memory_object_stream[bytes](buffer)
    to_client_send, to_client_receive = anyio.create_memory_object_stream[bytes](buffer)
    client = MemoryByteStream(
        to_server_send, to_client_receive, local=client_address, remote=server_address
    )
    server = MemoryByteStream(
        to_client_send, to_server_receive, local=server_address, remote=client_address
    )
    return client, server
