"""The documentation's relative links lead somewhere, and its example plugin is the tested one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted(
    [*ROOT.joinpath("docs").rglob("*.md"), ROOT / "README.md", *ROOT.glob("*/README.md")]
)
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = [
        target
        for target in LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert broken == []


def test_the_plugin_how_to_quotes_the_code_it_links() -> None:
    # The how-to builds examples/slow_mode.py and its tests in excerpts: each
    # excerpt's lines must be the real ones, or the page has drifted.
    howto = (ROOT / "docs/howto/plugins.md").read_text()
    plugin = (ROOT / "examples/slow_mode.py").read_text()
    tests = (ROOT / "tests/examples/test_slow_mode.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", howto, flags=re.DOTALL)
    plugin_blocks = [
        b for b in blocks if "class SlowMode" in b or "    def on_" in b or "    async def on_" in b
    ]
    test_blocks = [b for b in blocks if "async def test_" in b]
    assert len(plugin_blocks) >= 3
    assert test_blocks
    for block in plugin_blocks:
        for line in filter(None, (raw.strip() for raw in block.splitlines())):
            assert line in plugin, line
    for block in test_blocks:
        for line in block.splitlines():
            code = line.split("  #")[0].strip()  # comments may differ, code may not
            if code.startswith("assert"):
                assert code in tests, line
