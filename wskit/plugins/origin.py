"""Origin: refuse upgrade requests from web pages that are not yours (the CSWSH defence).

A browser attaches its cookies and HTTP credentials for your site to a
WebSocket upgrade that *any* page opens, and the same-origin policy does not
apply to WebSockets: only the ``Origin`` header, which pages cannot forge,
tells your page from an attacker's (Cross-Site WebSocket Hijacking). A
server that authenticates by anything the browser sends by itself (cookies,
Basic auth, client certificates, an IP allow-list) needs this plugin.
Non-browser clients send no Origin, or any Origin they like; they are not
what it defends against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import final

from wskit.core.http import get_header
from wskit.plugins.base import Handshake, Plugin
from wskit.responses import Response

__all__ = ["Origin"]


def _normalize(origin: str) -> str:
    # Scheme and host are case-insensitive (RFC 6454 §4); browsers send them
    # lowercased, other clients may not.
    return origin.strip().lower()


@final
class Origin(Plugin):
    r"""Allow upgrades only from listed origins.

    Args:
        allowed: exact origins (``"https://app.example"``, compared
            case-insensitively; no trailing slash or path) and compiled
            patterns (``re.compile(r"https://[a-z0-9-]+\.app\.example")``),
            which must match the whole origin.
        allow_missing: accept requests without an Origin header. True by
            default: browsers always send one, so only non-browser clients
            (which this plugin does not defend against) omit it. Set False
            when only browsers should connect.

    Outcomes: an allowed origin passes; another one, or the literal ``null``
    of sandboxed and ``file:`` pages unless listed, gets 403; a missing one
    gets 403 when ``allow_missing`` is False; more than one Origin header
    gets 400.
    """

    def __init__(
        self, allowed: Iterable[str | re.Pattern[str]], *, allow_missing: bool = True
    ) -> None:
        self._exact: frozenset[str] = frozenset(
            _normalize(item) for item in allowed if isinstance(item, str)
        )
        self._patterns = tuple(item for item in allowed if isinstance(item, re.Pattern))
        self._allow_missing = allow_missing

    def allows(self, origin: str) -> bool:
        """Tell whether ``origin`` (an Origin header's value) is on the allow-list."""
        normalized = _normalize(origin)
        if normalized in self._exact:
            return True
        return any(pattern.fullmatch(normalized) for pattern in self._patterns)

    async def on_handshake(self, handshake: Handshake) -> Response | None:
        """Check the request's Origin header against the allow-list."""
        values = get_header(handshake.request.headers, "origin")
        if not values:
            if self._allow_missing:
                return None
            return Response.text(403, "Forbidden: this endpoint requires an Origin header.\n")
        if len(values) > 1:
            return Response.text(400, "Bad Request: more than one Origin header.\n")
        if self.allows(values[0]):
            return None
        return Response.text(403, "Forbidden: this origin may not open a WebSocket here.\n")
