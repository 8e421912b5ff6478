"""Make the real kernel refuse chosen system calls with a chosen errno (seccomp-bpf).

Some platforms cannot be had on this machine: a kernel built without MPTCP
(``socket(..., IPPROTO_MPTCP)`` fails with EPROTONOSUPPORT), one with MPTCP
disabled (ENOPROTOOPT) or older than 5.6 (EINVAL), one that refuses socket
options on MPTCP sockets, or one that predates ``TCP_IS_MPTCP``. A seccomp
filter gives exactly that answer from the real system call, in the kernel's
system-call path, with nothing in Python patched and every other call
untouched. A filter cannot be removed: install it only in a child process
(``tests/adversarial/_mptcp_child.py``, the subprocesses of ``tests/e2e``).
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys
from dataclasses import dataclass, field

__all__ = [
    "SUPPORTED",
    "Rule",
    "install",
    "refuse_mptcp_sockets",
    "refuse_tcp_is_mptcp",
    "syscall_number",
]

IPPROTO_MPTCP = 262
TCP_IS_MPTCP = 43

# Per architecture: AUDIT_ARCH_* and the numbers of the calls we filter.
_ARCHES = {
    "x86_64": (0xC000003E, {"socket": 41, "getsockopt": 55, "setsockopt": 54}),
    "aarch64": (0xC00000B7, {"socket": 198, "getsockopt": 209, "setsockopt": 208}),
}
# Arguments are read as the low 32 bits of little-endian u64s.
SUPPORTED = platform.machine() in _ARCHES and sys.byteorder == "little"
"""Whether this machine's architecture is known here."""

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000  # SECCOMP_RET_ALLOW
_RET_ERRNO = 0x00050000  # SECCOMP_RET_ERRNO | errno
_OFF_NR, _OFF_ARCH, _OFF_ARGS = 0, 4, 16  # struct seccomp_data
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


@dataclass(frozen=True)
class Rule:
    """Refuse ``call`` with ``errno`` when each listed argument equals its value.

    Attributes:
        call: "socket", "getsockopt" or "setsockopt".
        errno: the errno the call returns.
        args: argument index -> value (compared on the low 32 bits).
    """

    call: str
    errno: int
    args: dict[int, int] = field(default_factory=dict)


def syscall_number(call: str) -> int:
    """The number of a system call on this machine."""
    return _ARCHES[platform.machine()][1][call]


def _program(rules: list[Rule]) -> list[tuple[int, int, int, int]]:
    arch = _ARCHES[platform.machine()][0]
    program = [(_LD_W_ABS, 0, 0, _OFF_ARCH), (_JEQ_K, 1, 0, arch), (_RET_K, 0, 0, _RET_ALLOW)]
    for rule in rules:
        checks = [(_OFF_NR, syscall_number(rule.call))]
        checks += [(_OFF_ARGS + 8 * index, value) for index, value in rule.args.items()]
        length = 2 * len(checks) + 1
        for number, (offset, value) in enumerate(checks):
            jeq_at = 2 * number + 1
            program.append((_LD_W_ABS, 0, 0, offset))
            # On a mismatch, jump past this rule's return.
            program.append((_JEQ_K, 0, length - jeq_at - 1, value))
        program.append((_RET_K, 0, 0, _RET_ERRNO | rule.errno))
    program.append((_RET_K, 0, 0, _RET_ALLOW))
    return program


def install(rules: list[Rule]) -> None:
    """Install the filter for this thread and every thread it starts later.

    Raises:
        OSError: the kernel refused the filter.
    """
    program = _program(rules)
    filters = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    buffer = ctypes.create_string_buffer(filters)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


def refuse_mptcp_sockets() -> None:
    """``socket(..., IPPROTO_MPTCP)`` fails with EPROTONOSUPPORT, as without CONFIG_MPTCP."""
    install([Rule("socket", errno.EPROTONOSUPPORT, {2: IPPROTO_MPTCP})])


def refuse_tcp_is_mptcp() -> None:
    """``getsockopt(IPPROTO_TCP, TCP_IS_MPTCP)`` fails, as on kernels that predate it.

    Such a kernel answers EOPNOTSUPP for an MPTCP socket (the option is
    unknown to MPTCP) and ENOPROTOOPT for a TCP one; EOPNOTSUPP here.
    """
    install([Rule("getsockopt", errno.EOPNOTSUPP, {1: 6, 2: TCP_IS_MPTCP})])
