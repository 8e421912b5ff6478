"""Make the kernel refuse one kind of system call in this process, as an older kernel would.

Some platforms cannot be had on this machine: a kernel built without MPTCP
(``socket(..., IPPROTO_MPTCP)`` fails with EPROTONOSUPPORT), or one older
than the ``TCP_IS_MPTCP`` socket option (``getsockopt`` fails). A seccomp
filter gives exactly that answer from the real system call, for this
process and the threads and children it starts afterwards, with every
other call untouched. Only for test subprocesses: a filter cannot be removed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

__all__ = ["refuse", "refuse_mptcp_sockets", "refuse_tcp_is_mptcp", "supported"]

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
# struct seccomp_data: int nr at 0, u32 arch at 4, u64 args[6] from 16; we
# compare an argument's low word, which comes first on little-endian machines.
_OFF_NR, _OFF_ARCH = 0, 4
_OFF_ARGS = 16
# Audit architecture and syscall numbers, per little-endian machine.
_ARCHES = {
    "x86_64": (0xC000003E, {"socket": 41, "getsockopt": 55}),
    "aarch64": (0xC00000B7, {"socket": 198, "getsockopt": 209}),
}
IPPROTO_MPTCP = 262
TCP_IS_MPTCP = 43


def supported() -> bool:
    """True on the machines whose syscall numbers this module knows."""
    return platform.machine() in _ARCHES


def _op(code: int, k: int, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, 0, jf, k)


def _program(arch: int, nr: int, args: dict[int, int], code: int) -> list[bytes]:
    # Each check jumps to the final "allow" when it does not match; all
    # matching falls through to the errno.
    checks = [(_OFF_ARCH, arch), (_OFF_NR, nr)]
    checks += [(_OFF_ARGS + 8 * index, value) for index, value in sorted(args.items())]
    length = 2 * len(checks) + 2
    program = []
    for offset, value in checks:
        program.append(_op(_LD_W_ABS, offset))
        program.append(_op(_JEQ_K, value, jf=length - 1 - (len(program) + 1)))
    program.append(_op(_RET_K, _RET_ERRNO | code))
    program.append(_op(_RET_K, _RET_ALLOW))
    return program


def refuse(syscall: str, args: dict[int, int], code: int) -> None:
    """From now on, ``syscall`` with these argument values fails with ``code``.

    Args:
        syscall: "socket" or "getsockopt".
        args: argument index -> value (compared on its low 32 bits).
        code: the errno to fail with.

    Raises:
        OSError: the kernel refused the filter.
        RuntimeError: this machine is not one :func:`supported` knows.
    """
    if not supported():
        raise RuntimeError(f"no seccomp syscall table for {platform.machine()}")
    arch, numbers = _ARCHES[platform.machine()]
    program = b"".join(_program(arch, numbers[syscall], args, code))
    filters = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    for call in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0),
    ):
        if libc.prctl(*[ctypes.c_ulong(a) for a in call]) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl{call[:2]}: {errno.errorcode.get(err, err)}")


def refuse_mptcp_sockets() -> None:
    """``socket(..., IPPROTO_MPTCP)`` fails with EPROTONOSUPPORT, as without CONFIG_MPTCP."""
    refuse("socket", {2: IPPROTO_MPTCP}, errno.EPROTONOSUPPORT)


def refuse_tcp_is_mptcp() -> None:
    """``getsockopt(IPPROTO_TCP, TCP_IS_MPTCP)`` fails, as on kernels that predate it.

    Such a kernel answers EOPNOTSUPP for an MPTCP socket (the option is
    unknown to MPTCP) and ENOPROTOOPT for a TCP one; EOPNOTSUPP here.
    """
    refuse("getsockopt", {1: 6, 2: TCP_IS_MPTCP}, errno.EOPNOTSUPP)
