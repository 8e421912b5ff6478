"""Origin: allow-list, patterns, missing and duplicated headers, over memory and TCP."""

from __future__ import annotations

import re

import pytest

from wskit.plugins import Origin

from .support import TRANSPORTS, attempt

pytestmark = pytest.mark.anyio

ALLOWED = Origin(["https://app.example", re.compile(r"https://[a-z0-9-]+\.tenant\.example")])


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("https://app.example", 101),
        ("HTTPS://APP.EXAMPLE", 101),  # scheme and host are case-insensitive
        ("https://blue.tenant.example", 101),
        ("https://evil.example", 403),
        ("http://app.example", 403),  # another scheme is another origin
        ("https://app.example.evil.example", 403),  # patterns match whole origins
        ("https://x.tenant.example.evil", 403),
        ("null", 403),  # sandboxed iframes and file: pages
    ],
)
async def test_allow_list(transport: str, origin: str, status: int) -> None:
    outcome = await attempt(transport, [ALLOWED], headers=[("Origin", origin)])
    assert outcome.status == status


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_missing_origin_is_allowed_by_default_and_refusable(transport: str) -> None:
    assert (await attempt(transport, [ALLOWED])).status == 101
    strict = Origin(["https://app.example"], allow_missing=False)
    assert (await attempt(transport, [strict])).status == 403


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_duplicated_origin_is_400(transport: str) -> None:
    outcome = await attempt(
        transport, [ALLOWED], headers=[("Origin", "https://app.example"), ("Origin", "https://x")]
    )
    assert outcome.status == 400


def test_allows_is_a_full_match() -> None:
    assert ALLOWED.allows("https://a-1.tenant.example")
    assert not ALLOWED.allows("https://a.tenant.example/")
    assert not ALLOWED.allows("https://.tenant.example")
