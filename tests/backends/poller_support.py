"""What the poller tests share: reading a nonblocking socket as a connection does."""

from __future__ import annotations

import socket


def read_all(sock: socket.socket) -> bytes | None:
    """Everything the kernel holds for ``sock`` now; None at its end (once nothing precedes it).

    Bytes and the end (or a reset) may come in one wait: the bytes are
    returned first, and the next wait must return at once for the end (the
    poller keeps it).
    """
    received = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return bytes(received)
        except ConnectionResetError:
            return None if not received else bytes(received)
        if not chunk:
            return None if not received else bytes(received)
        received += chunk
