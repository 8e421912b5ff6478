"""The options of serve() and connect(), with python websockets' defaults, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .core import Config, DeflateOptions
from .errors import UsageError

__all__ = ["Compression", "Options"]

Compression = Literal["deflate"] | DeflateOptions | None
"""``"deflate"`` (default settings), tuned :class:`~wskit.core.DeflateOptions`, or None (off)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Connection options shared by :func:`wskit.serve` and :func:`wskit.connect`.

    Attributes:
        ping_interval: seconds between keepalive pings; None turns keepalive off.
        ping_timeout: seconds to wait for a pong before closing with 1011;
            None never times out.
        open_timeout: seconds the whole opening handshake may take (TLS
            included); a client that dribbles or says nothing is dropped.
        close_timeout: seconds to wait for the closing handshake, and for
            the last bytes to leave, before the transport is closed anyway.
        max_message: largest incoming message in bytes (after inflation);
            1009 when passed. None: no limit (and no decompression-bomb guard).
        max_fragments: most frames in one incoming message (1009 when passed).
        max_queue: incoming messages kept for ``recv()`` before wskit stops
            reading the socket (TCP backpressure). None: no limit.
        write_limit: bytes buffered for sending above which ``send()`` waits.
        compression: permessage-deflate settings, or None.
    """

    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    open_timeout: float | None = 10.0
    close_timeout: float | None = 10.0
    max_message: int | None = 1024 * 1024
    max_fragments: int = 4096
    max_queue: int | None = 16
    write_limit: int = 32 * 1024
    compression: Compression = "deflate"

    def __post_init__(self) -> None:
        if self.open_timeout is not None and not self.open_timeout > 0:
            raise UsageError(
                "open_timeout must be a positive number of seconds or None, "
                f"got {self.open_timeout!r}"
            )
        if self.max_queue is not None and self.max_queue < 1:
            raise UsageError(f"max_queue must be at least 1 or None, got {self.max_queue}")
        if self.write_limit < 0:
            raise UsageError(f"write_limit must be a byte count >= 0, got {self.write_limit}")
        if self.compression not in ("deflate", None) and not isinstance(
            self.compression, DeflateOptions
        ):
            raise UsageError('compression must be "deflate", a DeflateOptions or None')
        self.core_config()  # validates the rest once, with the core's messages

    def core_config(self) -> Config:
        """The sans-I/O core's settings for these options."""
        compression = self.compression
        return Config(
            max_message=self.max_message,
            max_fragments=self.max_fragments,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            compression=DeflateOptions() if compression == "deflate" else compression,
            # Pieces, so that recv_stream() can hand them over as they arrive;
            # recv() joins them.
            fragments=True,
        )
