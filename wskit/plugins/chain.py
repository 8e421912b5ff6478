"""Runs a list of plugins' hooks in order, with the error policy of the hook API.

The chain looks up once which plugins override which hook, so a hook nobody
overrides costs one empty loop, and an empty chain costs nothing on the
message path (the WebSocket gets no message check at all).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, final

from wskit.errors import PluginError, UsageError
from wskit.responses import Response

from .base import PASS, ClientRequest, Close, Handshake, Plugin, Reply, Verdict, _Keep

if TYPE_CHECKING:
    from wskit.server import Server
    from wskit.websocket import WebSocket

__all__ = ["MessageCheck", "PluginChain"]

logger = logging.getLogger("wskit.plugins")

MessageCheck = Callable[["WebSocket", "str | bytes"], Verdict]
"""The combined ``on_message`` of a chain, as the WebSocket calls it."""

_INTERNAL_ERROR = Response.text(500, "internal server error\n")
_PLUGIN_FAILED = Close(1011, "internal error")


def _overrides(plugin: Plugin, hook: str) -> bool:
    return getattr(type(plugin), hook) is not getattr(Plugin, hook)


@final
class PluginChain:
    """The plugins of one server or client, in list order.

    Args:
        plugins: :class:`~wskit.plugins.Plugin` instances.

    Raises:
        UsageError: an element is not a Plugin.
    """

    __slots__ = (
        "_client_request",
        "_close",
        "_connect",
        "_handshake",
        "_lifespan",
        "_message",
        "_refused",
        "plugins",
    )

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        for plugin in plugins:
            if not isinstance(plugin, Plugin):
                raise UsageError(
                    f"plugins must be wskit.plugins.Plugin instances, got {plugin!r}: "
                    "subclass Plugin and override the hooks you need"
                )
        self.plugins = tuple(plugins)

        def having(hook: str) -> tuple[Plugin, ...]:
            return tuple(p for p in self.plugins if _overrides(p, hook))

        self._handshake = having("on_handshake")
        self._refused = having("on_refused")
        self._connect = having("on_connect")
        self._message = having("on_message")
        self._close = having("on_close")
        self._client_request = having("on_client_request")
        self._lifespan = having("lifespan")

    # ---------------------------------------------------------------- server

    async def handshake(self, handshake: Handshake) -> tuple[Response | None, list[Plugin]]:
        """Run ``on_handshake`` in order until one refuses.

        Returns:
            The refusal (None to accept) and the plugins that passed the
            request, which are owed ``on_refused`` if it does not open.
        """
        passed: list[Plugin] = []
        for plugin in self._handshake:
            try:
                # Typed as object: plugins are user code, checked at run time.
                response: object = await plugin.on_handshake(handshake)
            except Exception:
                logger.exception("plugin %s failed in on_handshake: answering 500", plugin.name)
                return _INTERNAL_ERROR, passed
            if response is not None:
                if not isinstance(response, Response):
                    logger.error(
                        "plugin %s returned %r from on_handshake, not a Response or None: "
                        "answering 500",
                        plugin.name,
                        response,
                    )
                    return _INTERNAL_ERROR, passed
                return response, passed
            passed.append(plugin)
        return None, passed

    def refused(self, handshake: Handshake, passed: Sequence[Plugin]) -> None:
        """Tell the plugins that passed a handshake that it did not open."""
        for plugin in passed:
            if plugin in self._refused:
                try:
                    plugin.on_refused(handshake)
                except Exception:
                    logger.exception("plugin %s failed in on_refused", plugin.name)

    async def lifespan(self, server: Server, stack: AsyncExitStack) -> None:
        """Enter every plugin's lifespan on ``stack`` (left in reverse order)."""
        for plugin in self._lifespan:
            try:
                await stack.enter_async_context(plugin.lifespan(server))
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin.name} failed to start (its lifespan raised {exc!r})"
                ) from exc

    # ------------------------------------------------------------ both sides

    async def connect(self, ws: WebSocket) -> Close | None:
        """Run ``on_connect`` in order; a Close if one raised."""
        for plugin in self._connect:
            try:
                await plugin.on_connect(ws)
            except Exception:
                logger.exception("plugin %s failed in on_connect: closing with 1011", plugin.name)
                return _PLUGIN_FAILED
        return None

    def message_check(self) -> MessageCheck | None:
        """The combined ``on_message``, or None when no plugin has one (nothing to call)."""
        plugins = self._message
        if not plugins:
            return None

        def check(ws: WebSocket, message: str | bytes) -> Verdict:
            for plugin in plugins:
                try:
                    verdict: object = plugin.on_message(ws, message)
                except Exception:
                    logger.exception(
                        "plugin %s failed in on_message: closing with 1011", plugin.name
                    )
                    return _PLUGIN_FAILED
                if verdict is not PASS:
                    if not isinstance(verdict, _Keep | Close | Reply):
                        logger.error(
                            "plugin %s returned %r from on_message, not a verdict "
                            "(PASS, DROP, Reply, Close): closing with 1011",
                            plugin.name,
                            verdict,
                        )
                        return _PLUGIN_FAILED
                    return verdict
            return PASS

        return check

    async def close(self, ws: WebSocket, code: int, reason: str) -> None:
        """Run every ``on_close`` in order; one that raises does not stop the others."""
        for plugin in self._close:
            try:
                await plugin.on_close(ws, code, reason)
            except Exception:
                logger.exception("plugin %s failed in on_close", plugin.name)

    # ---------------------------------------------------------------- client

    async def client_request(self, request: ClientRequest) -> None:
        """Run ``on_client_request`` in order.

        Raises:
            PluginError: a plugin raised (the connection is not attempted).
        """
        for plugin in self._client_request:
            try:
                await plugin.on_client_request(request)
            except Exception as exc:
                raise PluginError(
                    f"plugin {plugin.name} failed to prepare the upgrade request: {exc!r}"
                ) from exc
