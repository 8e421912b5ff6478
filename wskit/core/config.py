"""Settings of a core connection: limits, timers and compression, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field

from wskit.errors import UsageError

from .deflate import DeflateOptions
from .http import HttpLimits

__all__ = ["Config"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Limits, timers and compression of one connection (the same class for both sides).

    The defaults are python websockets' (the best peer's) where it has one.

    Attributes:
        max_message: largest message accepted from the peer, in bytes after
            decompression; the running total is checked as data arrives, and a
            frame that declares a larger length is refused before any of its
            payload is buffered. Close 1009 when passed. None: no limit.
        max_fragments: most frames one message may be split into; a flood of
            tiny or empty continuation frames closes with 1009 when passed.
        ping_interval: seconds between keepalive pings; None turns keepalive
            (and latency measurement) off.
        ping_timeout: seconds a keepalive ping may wait for its pong before
            the connection fails with 1011 "keepalive ping timeout"; None keeps
            pinging but never fails.
        close_timeout: seconds to wait for the peer's close frame after ours
            before giving up (the connection then ends with 1006). None: wait forever.
        compression: permessage-deflate settings, or None to neither offer
            nor accept compression.
        http: limits of the opening handshake (line length, header count,
            head size, client-side rejection body size).
        fragments: deliver messages as the pieces that arrive
            (:class:`~wskit.core.events.Fragment` events) instead of whole
            (:class:`~wskit.core.events.Message`), for streaming receivers.
    """

    max_message: int | None = 1 * MiB
    max_fragments: int = 4096
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float | None = 10.0
    compression: DeflateOptions | None = field(default_factory=DeflateOptions)
    http: HttpLimits = field(default_factory=HttpLimits)
    fragments: bool = False

    def __post_init__(self) -> None:
        if self.max_message is not None and self.max_message < 1:
            raise UsageError(
                f"max_message must be a positive byte count or None, got {self.max_message}"
            )
        if self.max_fragments < 1:
            raise UsageError(f"max_fragments must be at least 1, got {self.max_fragments}")
        for name in ("ping_interval", "ping_timeout", "close_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(
                    f"{name} must be a positive number of seconds or None, got {value!r}"
                )
