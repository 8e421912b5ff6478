"""MPTCP facts about a live socket, for monitoring.

Asking for MPTCP (``IPPROTO_MPTCP`` at ``socket()`` time) does not mean the
connection uses it: the peer may not speak MPTCP, and the kernel then falls
back to plain TCP. What Linux 6.18 reports in each case (measured):

========================================  ===========  ============  ==============
socket                                    SO_PROTOCOL  TCP_IS_MPTCP  MPTCP_INFO
========================================  ===========  ============  ==============
MPTCP on both ends                        262          1             readable
MPTCP client, plain TCP server            262          0             EOPNOTSUPP
accepted by an MPTCP listener, TCP client 6            0             EOPNOTSUPP
plain TCP                                 6            0             EOPNOTSUPP
========================================  ===========  ============  ==============

So a socket uses MPTCP iff ``SO_PROTOCOL`` is 262 *and* ``MPTCP_INFO`` answers
without the fallback flag; ``TCP_IS_MPTCP`` confirms it where the kernel has
the option (kernels between ``MPTCP_INFO``, Linux 5.16, and ``TCP_IS_MPTCP``
refuse it with EOPNOTSUPP, and ``MPTCP_INFO`` alone decides there). On
kernels older than 5.16 nothing can tell, and we report no MPTCP.
``struct mptcp_info`` (``include/uapi/linux/mptcp.h``) then gives the
subflow count; ``mptcpi_subflows`` counts the *additional* subflows (one path
reads 0), so the total is ``mptcpi_subflows_total`` where the kernel has it
(6.6+), else ``mptcpi_subflows + 1``. Nothing here raises: a socket we cannot
read is reported as not using MPTCP.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import final

__all__ = ["MptcpInfo", "mptcp_status"]

IPPROTO_MPTCP = 262
SOL_MPTCP = 284
MPTCP_INFO = 1
TCP_IS_MPTCP = 43
_MPTCP_INFO_FLAG_FALLBACK = 1  # bit 0 of mptcpi_flags

# Offsets into struct mptcp_info (natural alignment, little or big endian
# alike since we read single bytes and a native u32):
#   0 u8 subflows, 1-5 u8 add_addr/limits, 6-7 hole, 8 u32 flags,
#   12 u32 token, 16..39 u64 seqs, 40-42 u8, 43 hole, 44 u32 retransmits,
#   48..79 u64 byte counters, 80 u8 subflows_total, 81-83 reserved,
#   84..95 u32 last_* timestamps. 96 bytes on 6.18.
_INFO_BUFLEN = 96
_OFF_SUBFLOWS = 0
_OFF_FLAGS = 8
_OFF_SUBFLOWS_TOTAL = 80


@final
@dataclass(frozen=True, slots=True)
class MptcpInfo:
    """What the kernel says about an MPTCP connection.

    Attributes:
        subflows: the number of TCP subflows carrying the connection now
            (1 for a single path; 1 as well after a fallback to TCP).
        fallback: True if the socket asked for MPTCP but the connection runs
            as plain TCP (the peer or a middlebox does not speak MPTCP).
    """

    subflows: int
    fallback: bool


def mptcp_status(sock: socket.socket) -> tuple[bool, MptcpInfo | None]:
    """Tell whether a socket's connection uses MPTCP, with fresh facts.

    Args:
        sock: a connected socket (TCP, MPTCP or anything else).

    Returns:
        ``(True, info)`` when the connection uses MPTCP;
        ``(False, MptcpInfo(subflows=1, fallback=True))`` when the socket
        asked for MPTCP but fell back to TCP; ``(False, None)`` when the socket
        is not an MPTCP socket at all (never asked for it, was handed out as
        plain TCP by an MPTCP listener, or cannot be read, e.g. closed).
    """
    try:
        proto = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
    except (OSError, AttributeError):  # closed socket, or no SO_PROTOCOL (not Linux)
        return False, None
    if proto != IPPROTO_MPTCP:
        return False, None
    fell_back = MptcpInfo(subflows=1, fallback=True)
    try:
        raw = sock.getsockopt(SOL_MPTCP, MPTCP_INFO, _INFO_BUFLEN)
    except OSError:
        # EOPNOTSUPP from MPTCP_INFO is how the kernel says "fell back"; any
        # other error also leaves us unable to claim MPTCP is in use.
        return False, fell_back
    try:
        is_mptcp = sock.getsockopt(socket.IPPROTO_TCP, TCP_IS_MPTCP)
    except OSError:
        is_mptcp = 1  # a kernel without the option: MPTCP_INFO answered, trust it
    if not is_mptcp or len(raw) < _OFF_FLAGS + 4:
        return False, fell_back
    (flags,) = struct.unpack_from("=I", raw, _OFF_FLAGS)
    if flags & _MPTCP_INFO_FLAG_FALLBACK:
        # Fallback can also happen after the handshake (e.g. a middlebox
        # stripping options); the flag covers kernels that still answer.
        return False, fell_back
    if len(raw) > _OFF_SUBFLOWS_TOTAL and raw[_OFF_SUBFLOWS_TOTAL]:
        subflows = raw[_OFF_SUBFLOWS_TOTAL]
    else:
        # Older kernels stop before subflows_total; mptcpi_subflows excludes
        # the initial subflow, which is alive on a connected socket.
        subflows = raw[_OFF_SUBFLOWS] + 1
    return True, MptcpInfo(subflows=subflows, fallback=False)
