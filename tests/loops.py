"""Event loops beyond the suite's default pair (asyncio and Trio), for tests that need uvloop too.

The lean stream's timing differs on uvloop (libuv reads again at once after a
full read), and some of its bugs showed there first.
"""

from __future__ import annotations

import importlib.util

import pytest

UVLOOP_INSTALLED = importlib.util.find_spec("uvloop") is not None

UVLOOP = pytest.param(
    ("asyncio", {"use_uvloop": True}),
    id="uvloop",
    marks=pytest.mark.skipif(not UVLOOP_INSTALLED, reason="uvloop is not installed"),
)
"""An ``anyio_backend`` parameter: asyncio on uvloop, skipped where uvloop is missing."""
