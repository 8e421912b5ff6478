"""Two network namespaces joined by two veth links: two real network paths.

::

    client namespace                         server namespace
    ca 10.201.1.1/24  <--- path 0 --->  sa 10.201.1.2/24   (the one connected to)
    cb 10.201.2.1/24  <--- path 1 --->  sb 10.201.2.2/24   (announced: signal endpoint)

Both sides get ``ip mptcp limits set subflows 2 add_addr_accepted 2``; the
server announces its second address with a ``signal`` endpoint, so an MPTCP
client that connected over path 0 opens a second subflow over path 1.

Everything is done with ``ip`` (iproute2) and ``sh``; it needs root, since
``ip netns add`` bind-mounts under /run/netns. Building takes about 0.1 s.
:meth:`TwoPaths.close` kills every process still inside a namespace (one
left behind keeps it alive) and deletes both; it never raises, so it can
run after any failure.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BLACKHOLE_MAC", "NetnsUnavailable", "PathLink", "TwoPaths"]

BLACKHOLE_MAC = "02:00:00:00:de:ad"  # a locally administered address nobody has
_names = itertools.count()


class NetnsUnavailable(Exception):
    """This machine cannot build the namespaces (not root, no iproute2, ...)."""


@dataclass(frozen=True)
class PathLink:
    """One veth link between the namespaces, and the addresses on its ends."""

    client_if: str
    server_if: str
    client_addr: str
    server_addr: str


PATHS = (
    PathLink("ca", "sa", "10.201.1.1", "10.201.1.2"),
    PathLink("cb", "sb", "10.201.2.1", "10.201.2.2"),
)


def run_ip(*args: str, netns: str | None = None) -> str:
    """Run ``ip`` (inside ``netns`` if given); raise with its stderr on failure."""
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result.stdout


class TwoPaths:
    """Build the two namespaces and two links; see the module docstring.

    Args:
        tag: a short word put in the namespace names (for ``ip netns list``).

    Raises:
        NetnsUnavailable: the first ``ip netns add`` failed (the reason is
            in the message); nothing is left behind.
    """

    def __init__(self, tag: str = "wskit") -> None:
        unique = f"{tag}-{os.getpid()}-{next(_names)}"
        self.client = f"{unique}-c"
        self.server = f"{unique}-s"
        self.paths = PATHS
        self._created: list[str] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        try:
            self._add_netns(self.client)
        except RuntimeError as exc:
            raise NetnsUnavailable(str(exc)) from None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _add_netns(self, name: str) -> None:
        run_ip("netns", "add", name)
        self._created.append(name)

    def _build(self) -> None:
        self._add_netns(self.server)
        for ns in (self.client, self.server):
            run_ip("link", "set", "lo", "up", netns=ns)
            self.set_sysctl(ns, "net.mptcp.enabled", "1")
        for path in self.paths:
            # Created straight inside the namespaces: no name clash with the
            # host or with another test's links.
            run_ip(
                "link", "add", path.client_if, "netns", self.client, "type", "veth",
                "peer", "name", path.server_if, "netns", self.server,
            )  # fmt: skip
            for ns, name, addr in (
                (self.client, path.client_if, path.client_addr),
                (self.server, path.server_if, path.server_addr),
            ):
                run_ip("addr", "add", f"{addr}/24", "dev", name, netns=ns)
                run_ip("link", "set", name, "up", netns=ns)
        for ns in (self.client, self.server):
            # Up to 2 subflows per connection, and accept the peer's announcements.
            run_ip("mptcp", "limits", "set", "subflows", "2", "add_addr_accepted", "2", netns=ns)
        second = self.paths[1]
        run_ip(
            "mptcp", "endpoint", "add", second.server_addr, "dev", second.server_if, "signal",
            netns=self.server,
        )  # fmt: skip

    def set_sysctl(self, netns: str, key: str, value: str) -> None:
        """Set a per-namespace sysctl (``net.mptcp.*`` are per namespace)."""
        path = Path("/proc/sys", *key.split("."))
        # sh rather than sysctl(8): procps may be missing, sh never is.
        command = ["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"setting {key}={value} in {netns}: {result.stderr.strip()}")

    def take_down(self, index: int) -> None:
        """Take path ``index`` down on the client side (the server's end loses carrier)."""
        run_ip("link", "set", self.paths[index].client_if, "down", netns=self.client)

    def blackhole(self, index: int) -> None:
        """Make path ``index`` silently drop everything, both ways, with links still up.

        Each end's neighbour entry for the other end points at a MAC address
        nobody has: frames leave and are dropped by the receiving interface.
        No error reaches either kernel, as when a radio link fades.
        """
        path = self.paths[index]
        for ns, peer_addr, name in (
            (self.client, path.server_addr, path.client_if),
            (self.server, path.client_addr, path.server_if),
        ):
            run_ip(
                "neigh", "replace", peer_addr, "lladdr", BLACKHOLE_MAC, "dev", name,
                "nud", "permanent", netns=ns,
            )  # fmt: skip

    def spawn(
        self, netns: str, argv: list[str], *, stdout: Path, stderr: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``netns``; :meth:`close` kills it if still running."""
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                ["ip", "netns", "exec", netns, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        self._processes.append(process)
        return process

    def close(self) -> None:
        """Kill what runs inside, delete the namespaces (and so the links); never raises."""
        for process in self._processes:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        for ns in self._created:
            # Anything else started in there (a grandchild) would keep the
            # namespace alive after "ip netns del".
            with contextlib.suppress(RuntimeError):
                for pid in run_ip("netns", "pids", ns).split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(RuntimeError):
                run_ip("netns", "del", ns)
        self._created.clear()
