"""Validate: incoming text messages must be JSON that matches a JSON Schema.

Uses ``jsonschema`` (``pip install wskit[validate]``), which implements every
draft up to 2020-12 and picks the one the schema's ``$schema`` names. The
error it reports says where the message is wrong and which rule it broke, in
at most 123 bytes (a close reason's limit), and never quotes the message
itself: an attacker's megabyte string stays out of logs and replies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, final

from wskit.errors import UsageError
from wskit.plugins.base import DROP, PASS, Close, Plugin, Reply, Verdict

if TYPE_CHECKING:
    from wskit.websocket import WebSocket

__all__ = ["Validate"]

_MAX_REASON = 123  # bytes in a close reason
_MAX_PATH = 48  # characters of a JSON path kept in an error (keys come from the peer)


def _fit(text: str, limit: int = _MAX_REASON) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


@final
class Validate(Plugin):
    """Check every incoming text message against a JSON Schema.

    Args:
        schema: the JSON Schema (a dict as ``json.load`` gives it).
        on_invalid: ``"close"`` (the default): invalid JSON closes with
            1007, a schema violation with 1008; ``"reply"``: the message is
            dropped and the peer gets ``{"error": "invalid message",
            "detail": ...}`` as text; ``"drop"``: dropped silently.
        binary: ``"reject"`` (the default) closes with 1003 on a binary
            message, which a JSON protocol does not use; ``"pass"`` lets
            binary messages through unchecked.

    Raises:
        UsageError: the schema is not a valid JSON Schema, or jsonschema is
            not installed.
    """

    def __init__(
        self,
        schema: Mapping[str, Any],
        *,
        on_invalid: Literal["close", "reply", "drop"] = "close",
        binary: Literal["reject", "pass"] = "reject",
    ) -> None:
        try:
            import jsonschema  # noqa: PLC0415  (an optional dependency)
        except ImportError:
            raise UsageError("Validate needs jsonschema: pip install 'wskit[validate]'") from None
        schema = dict(schema)
        validator_class = jsonschema.validators.validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise UsageError(f"not a valid JSON Schema: {exc.message}") from None
        if on_invalid not in ("close", "reply", "drop"):
            raise UsageError(f'on_invalid must be "close", "reply" or "drop", got {on_invalid!r}')
        if binary not in ("reject", "pass"):
            raise UsageError(f'binary must be "reject" or "pass", got {binary!r}')
        self._validator = validator_class(schema)
        self._on_invalid = on_invalid
        self._binary = binary

    def problem(self, message: str) -> tuple[int, str] | None:
        """What is wrong with a text message, if anything.

        Returns:
            None for a valid message; else the close code that fits (1007 for
            text that is not JSON, 1008 for a schema violation) and a
            description of at most 123 bytes.
        """
        try:
            document = json.loads(message)
        except json.JSONDecodeError as exc:
            # The decoder's message names the position, never the content.
            return 1007, _fit(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except RecursionError:
            return 1007, "invalid JSON: nested too deeply"
        try:
            error = next(self._validator.iter_errors(document), None)
        except RecursionError:
            return 1008, "schema violation: nested too deeply"
        if error is None:
            return None
        path = error.json_path
        if len(path) > _MAX_PATH:
            path = path[: _MAX_PATH - 3] + "..."
        # The rule and the schema's value for it come from our schema, not
        # from the peer; the instance is never quoted.
        rule = f"{error.validator} {json.dumps(error.validator_value, default=str)}"
        return 1008, _fit(f"schema violation at {path}: {rule}")

    def on_message(self, ws: WebSocket, message: str | bytes) -> Verdict:
        """Pass valid JSON; act on the rest as configured."""
        if isinstance(message, bytes):
            if self._binary == "pass":
                return PASS
            return Close(1003, "binary messages are not accepted here")
        found = self.problem(message)
        if found is None:
            return PASS
        code, detail = found
        if self._on_invalid == "close":
            return Close(code, detail)
        if self._on_invalid == "reply":
            return Reply(json.dumps({"error": "invalid message", "detail": detail}))
        return DROP
