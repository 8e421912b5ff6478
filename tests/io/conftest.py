"""Fixtures of the I/O tests."""

from __future__ import annotations

import pytest

from wskit import WebSocket


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> list[WebSocket]:
    """The server connections that started a reader task, one entry per start."""
    started: list[WebSocket] = []
    drive = WebSocket._drive

    async def counted(self: WebSocket) -> None:
        if self.request is not None:  # a client connection always has its reader
            started.append(self)
        await drive(self)

    monkeypatch.setattr(WebSocket, "_drive", counted)
    return started
