"""Spare buffers for large frames read straight into memory of their own.

A frame read into a buffer of its own (see :mod:`wskit.core.frames`) is
unmasked, or copied, into its message's ``bytes`` once complete: the buffer is
scratch from then on. Allocating a fresh ``bytearray`` for every such frame
zeroes it first and lands the kernel's copy in memory that is not in the
CPU's cache; a spare reused frame after frame costs neither (1 MiB: ~18 us
of a ~530 us echo, here). At most :data:`KEEP` spares of up to
:data:`KEEP_UP_TO` bytes each are kept per process, whatever the number of
connections: a connection still holds a buffer only while its frame is
under way, as before.

Taking and giving back are single list operations, atomic under the GIL:
event loops in several threads share the spares safely.
"""

from __future__ import annotations

__all__ = ["KEEP", "KEEP_UP_TO", "give_back", "take"]

KEEP = 2
"""Spare buffers kept for the next frames (one per frame under way at once)."""

KEEP_UP_TO = 4 * 1024 * 1024
"""Larger buffers are not kept: rare, and too much memory to hold on to."""

_spares: list[bytearray] = []


def take(size: int) -> memoryview:
    """Return a writable view of ``size`` bytes whose contents are undefined.

    It is a spare's when one is at hand and large enough; a spare too small
    is dropped (the next ones kept are the larger), and a new buffer made.
    """
    try:
        spare = _spares.pop()
    except IndexError:
        spare = None
    if spare is None or len(spare) < size:
        spare = bytearray(size)
    return memoryview(spare)[:size]


def give_back(view: memoryview) -> None:
    """Keep the buffer under ``view`` (from :func:`take`) for a later frame.

    The caller must not use ``view``, nor any view of the same buffer, after
    this: the next :func:`take` may hand its memory to another frame.
    """
    spare = view.obj
    view.release()
    if isinstance(spare, bytearray) and len(spare) <= KEEP_UP_TO:
        _spares.append(spare)
        del _spares[KEEP:]  # one step each: threads giving back at once keep KEEP
