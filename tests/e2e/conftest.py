"""Fixtures for the end-to-end tests: two real network paths between two namespaces.

These tests need root (``ip netns add``), iproute2 and a kernel with MPTCP;
where one is missing they skip and say which. Every run's figures (stall
times, detection times) are printed at the end of the pytest run.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.netns import NetnsUnavailable, TwoPaths

_figures: list[str] = []


def why_no_netns() -> str | None:
    """Why the namespaces cannot be built here, or None if they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "needs root: 'ip netns add' bind-mounts under /run/netns"
    if shutil.which("ip") is None:
        return "needs iproute2's 'ip' command (apt-get install iproute2)"
    if not Path("/proc/sys/net/mptcp").is_dir():
        return "this kernel has no MPTCP (CONFIG_MPTCP)"
    return None


@pytest.fixture
def two_paths() -> Iterator[TwoPaths]:
    """A client and a server namespace joined by two links; always torn down."""
    reason = why_no_netns()
    if reason is not None:
        pytest.skip(reason)
    try:
        network = TwoPaths()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def record_figure():
    """Record a measured figure; all are printed in the run's summary."""
    return _figures.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the end-to-end tests measured."""
    if _figures:
        terminalreporter.section("measured over two network paths")
        for line in _figures:
            terminalreporter.write_line(line)
