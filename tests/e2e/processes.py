"""Run ``stream_peer.py`` inside a namespace and read what it reports.

The peer writes JSON lines to a file; we poll it every few milliseconds
rather than hold a pipe, so the same code runs under asyncio and Trio, and
the namespace fixture can kill the process from plain synchronous code
whatever state the event loop is in. The peers timestamp everything
themselves, so the polling delay never enters a measurement.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from tests.e2e.netns import TwoPaths

__all__ = ["PEER_SCRIPT", "Peer", "start_peer"]

PEER_SCRIPT = Path(__file__).with_name("stream_peer.py")
_POLL = 0.01


class Peer:
    """One ``stream_peer.py`` process and the events it has printed."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], out: Path, err: Path) -> None:
        self.name = name
        self.process = process
        self._out = out
        self._err = err
        self._seen = 0  # lines already parsed

    @property
    def stderr(self) -> str:
        """Everything the process logged so far."""
        return self._err.read_text(errors="replace")

    def _lines(self) -> list[dict[str, Any]]:
        text = self._out.read_text(errors="replace")
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines()]

    async def event(self, name: str) -> dict[str, Any]:
        """Wait for the next event called ``name`` (bound the wait from outside).

        Raises:
            AssertionError: the process exited without printing it.
        """
        while True:
            lines = self._lines()
            for index in range(self._seen, len(lines)):
                if lines[index]["event"] == name:
                    self._seen = index + 1
                    return lines[index]
            if self.process.poll() is not None and len(self._lines()) == len(lines):
                raise AssertionError(
                    f"{self.name} exited ({self.process.returncode}) without {name!r};"
                    f" stderr:\n{self.stderr}"
                )
            await anyio.sleep(_POLL)

    async def result(self) -> dict[str, Any]:
        """Wait for the final ``result`` event and for the process to exit 0."""
        result = await self.event("result")
        while self.process.poll() is None:
            await anyio.sleep(_POLL)
        assert self.process.returncode == 0, f"{self.name} failed:\n{self.stderr}"
        return result


def start_peer(
    network: TwoPaths,
    netns: str,
    role: str,
    *args: str,
    workdir: Path,
    prelude: str | None = None,
) -> Peer:
    """Start ``stream_peer.py role args...`` inside ``netns``.

    Args:
        network: the namespaces (which kill the process on teardown).
        netns: the namespace to run in.
        role: "server" or "client".
        args: more command-line arguments for the peer.
        workdir: where its stdout and stderr files go.
        prelude: Python run before the peer is loaded (to change the
            platform it sees, e.g. remove ``socket.IPPROTO_MPTCP``).
    """
    out = workdir / f"{role}.out"
    err = workdir / f"{role}.err"
    if prelude is None:
        argv = [sys.executable, str(PEER_SCRIPT), role, *args]
    else:
        code = f"{prelude}\nimport runpy; runpy.run_path({str(PEER_SCRIPT)!r}, run_name='__main__')"
        argv = [sys.executable, "-c", code, role, *args]
    process = network.spawn(netns, argv, stdout=out, stderr=err)
    return Peer(role, process, out, err)
