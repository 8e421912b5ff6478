"""Make this process's kernel refuse MPTCP sockets, as one built without MPTCP does.

A kernel without ``CONFIG_MPTCP`` answers ``socket(AF_INET, SOCK_STREAM,
IPPROTO_MPTCP)`` with EPROTONOSUPPORT. A seccomp filter gives exactly that
answer from the real ``socket()`` system call, for this process and the
threads and children it starts afterwards, with every other call untouched.
Only for test subprocesses: a filter cannot be removed.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

__all__ = ["refuse_mptcp_sockets", "supported"]

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
# struct seccomp_data: int nr at 0, u32 arch at 4, u64 args[6] from 16;
# args[2] (the protocol) is at 32, its low word first on little-endian machines.
_OFF_NR, _OFF_ARCH, _OFF_PROTOCOL = 0, 4, 32
# (audit architecture, socket() syscall number) per little-endian machine.
_ARCHES = {"x86_64": (0xC000003E, 41), "aarch64": (0xC00000B7, 198)}
IPPROTO_MPTCP = 262


def supported() -> bool:
    """True on the machines whose syscall numbers this module knows."""
    return platform.machine() in _ARCHES


def _program(arch: int, socket_nr: int, code: int) -> bytes:
    def op(code_: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
        return struct.pack("=HBBI", code_, jt, jf, k)

    return b"".join(
        [
            op(_LD_W_ABS, _OFF_ARCH),
            op(_JEQ_K, arch, jf=5),  # another ABI: allow
            op(_LD_W_ABS, _OFF_NR),
            op(_JEQ_K, socket_nr, jf=3),  # not socket(): allow
            op(_LD_W_ABS, _OFF_PROTOCOL),
            op(_JEQ_K, IPPROTO_MPTCP, jf=1),  # not MPTCP: allow
            op(_RET_K, _RET_ERRNO | code),
            op(_RET_K, _RET_ALLOW),
        ]
    )


def refuse_mptcp_sockets(code: int = errno.EPROTONOSUPPORT) -> None:
    """From now on, ``socket(..., IPPROTO_MPTCP)`` fails with ``code`` in this process.

    Raises:
        OSError: the kernel refused the filter.
        RuntimeError: this machine is not one :func:`supported` knows.
    """
    if not supported():
        raise RuntimeError(f"no seccomp syscall table for {platform.machine()}")
    arch, socket_nr = _ARCHES[platform.machine()]
    program = _program(arch, socket_nr, code)
    filters = ctypes.create_string_buffer(program, len(program))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(program) // 8, ctypes.addressof(filters))
    libc = ctypes.CDLL(None, use_errno=True)
    for args in (
        (_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
        (_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0),
    ):
        if libc.prctl(*[ctypes.c_ulong(a) for a in args]) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl{args[:2]}: {errno.errorcode.get(err, err)}")
