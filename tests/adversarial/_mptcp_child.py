"""Run by the MPTCP scenarios in a child process: install a seccomp filter, then
serve and connect over MPTCP and print what happened as one JSON line.

Usage: ``python -m tests.adversarial._mptcp_child BACKEND RULES_JSON``, where
RULES_JSON is a list of ``[call, errno, {arg_index: value}]``. With CHILD_DEBUG=1
in the environment the report also carries every wskit log line (``all``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys

import anyio

from tests.seccomp import Rule, install


async def echo(ws) -> None:  # type: ignore[no-untyped-def]
    async for message in ws:
        await ws.send(message)


async def main(report: dict[str, object]) -> None:
    import wskit

    fds = len(os.listdir("/proc/self/fd"))
    with anyio.fail_after(5):
        try:
            async with wskit.serve(
                echo, "127.0.0.1", 0, mptcp=True, tcp_keepalive=(1, 1, 1), close_timeout=1
            ) as server:
                listener = server.sockets[0]
                report["listener_proto"] = listener.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PROTOCOL
                )
                url = f"ws://127.0.0.1:{server.port}/"
                async with wskit.connect(url, mptcp=True, tcp_keepalive=(1, 1, 1)) as ws:
                    await ws.send("over mptcp?")
                    report["echo"] = await ws.recv()
                    report["client_mptcp"] = ws.transport.mptcp
                    sock = ws.transport._sock
                    assert sock is not None
                    report["client_proto"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        except OSError as exc:
            report["error"] = [type(exc).__name__, exc.errno]
        except Exception as exc:  # what the test asserts on, whatever it is
            report["error"] = [type(exc).__name__, str(exc)]
    report["fds_leaked"] = len(os.listdir("/proc/self/fd")) - fds


if __name__ == "__main__":
    backend, rules = sys.argv[1], json.loads(sys.argv[2])
    install([Rule(call, code, {int(k): v for k, v in args.items()}) for call, code, args in rules])
    logs: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logs.append(record.getMessage())

    logging.getLogger("wskit").addHandler(Keep())
    logging.getLogger("wskit").setLevel(logging.DEBUG)
    report: dict[str, object] = {}
    anyio.run(main, report, backend=backend)
    report["all"] = logs if os.environ.get("CHILD_DEBUG") else []
    report["logs"] = [line for line in logs if "MPTCP" in line or "refused" in line]
    print(json.dumps(report))
