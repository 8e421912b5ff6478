"""Raw-socket peers for stress tests: clients that misbehave on purpose.

A :class:`RawClient` is a TCP socket to the server under test with none of
wskit's manners: it may dribble its upgrade request, never read, flood pings
or vanish with a reset. It speaks just enough WebSocket (masked frames from
``tests.frames``, an unmasked-frame parser) to check what the server sent.
"""

from __future__ import annotations

import socket
import struct

import anyio
import anyio.abc

from tests.frames import CLOSE, PING, frame, upgrade_request

__all__ = [
    "RawClient",
    "close_code",
    "kernel_buffer",
    "listening_socket",
    "parse_frames",
    "small_socket",
]


class RawClient:
    """One raw TCP connection; use ``async with await RawClient.open(port)``."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.socket: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        self.leftover = b""  # bytes that came after the 101 response head

    @classmethod
    async def open(cls, port: int, *, rcvbuf: int | None = None) -> RawClient:
        """Connect to 127.0.0.1:port; ``rcvbuf`` shrinks SO_RCVBUF (set before connecting,
        so the TCP window stays small and a non-reading client fills up fast)."""
        sock = small_socket(rcvbuf=rcvbuf)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Loopback: the kernel completes the TCP handshake at once, even
            # before the server accepts, so a blocking connect does not stall.
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            stream = await anyio.abc.SocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise
        return cls(stream)

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self.stream.aclose()

    def reset_on_close(self) -> None:
        """Make the coming close send a TCP RST instead of a FIN (SO_LINGER 0)."""
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    async def handshake(self, target: bytes = b"/") -> bytes:
        """Send an upgrade request and read the response head; return the head."""
        await self.stream.send(upgrade_request(target=target))
        data = b""
        while b"\r\n\r\n" not in data:
            data += await self.stream.receive()
        head, _, self.leftover = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 "):
            raise AssertionError(f"not upgraded: {head!r}")
        return head

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def send_pings(self, count: int, per_write: int = 256) -> None:
        """Send ``count`` pings with 125-byte payloads, ``per_write`` in each write."""
        batch = frame(PING, b"p" * 125) * per_write
        for _ in range(count // per_write):
            await self.stream.send(batch)

    async def read_until_closed(self, timeout: float) -> tuple[bytes, bool]:
        """Read everything until EOF (or RST); return the bytes and whether it did close."""
        data = bytearray(self.leftover)
        self.leftover = b""
        with anyio.move_on_after(timeout):
            while True:
                try:
                    data += await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return bytes(data), True
        return bytes(data), False


def small_socket(*, sndbuf: int | None = None, rcvbuf: int | None = None) -> socket.socket:
    """A TCP socket with fixed, small kernel buffers (the kernel doubles the values).

    Setting them turns off Linux's buffer autotuning, which on loopback grows
    them to megabytes: with small buffers, backpressure shows within a few KiB.
    Sockets accepted by a listener inherit its sizes.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return sock


def listening_socket(*, sndbuf: int | None = None, rcvbuf: int | None = None) -> socket.socket:
    """A socket listening on 127.0.0.1 for ``serve(sock=...)``, with small buffers."""
    sock = small_socket(sndbuf=sndbuf, rcvbuf=rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def kernel_buffer(sock: socket.socket, option: int) -> int:
    """The size the kernel really gave a socket buffer (SO_SNDBUF or SO_RCVBUF)."""
    return int(sock.getsockopt(socket.SOL_SOCKET, option))


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split unmasked server frames into (opcode, payload); a trailing partial frame is
    ignored."""
    frames = []
    offset = 0
    while offset + 2 <= len(data):
        first, second = data[offset], data[offset + 1]
        length = second & 0x7F
        header = 2
        if length == 126:
            if offset + 4 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, offset + 2)
            header = 4
        elif length == 127:
            if offset + 10 > len(data):
                break
            (length,) = struct.unpack_from("!Q", data, offset + 2)
            header = 10
        assert not second & 0x80, "a server frame must not be masked"
        end = offset + header + length
        if end > len(data):
            break
        frames.append((first & 0x0F, data[offset + header : end]))
        offset = end
    return frames


def close_code(data: bytes) -> int | None:
    """The code of the close frame among the server frames in ``data``, if one is there."""
    for opcode, payload in parse_frames(data):
        if opcode == CLOSE:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005
    return None
