"""Process-wide allocator tuning for long runs on large batches (glibc only).

Training streams batches of states through memory: a 2,000 x 8 x 28 x 28 float32 batch is 50 MB,
allocated and freed several times per time step. glibc serves blocks that large with ``mmap`` and
returns them to the system on ``free``, so every new batch page-faults its memory in again. On
the 2-core development VM this cost 40% of a Gauss-Newton outer iteration (``sys`` time 67 s of
157 s; docs/training.md). :func:`retain_freed_memory` asks glibc to keep freed memory in the
process instead (the ``mallopt`` equivalent of ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=<large>``). The peak memory is unchanged; memory freed after the peak is
not returned to the system until the process ends. The ``pdecontrol`` command calls it at
start-up; library users may call it themselves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["retain_freed_memory"]

logger = logging.getLogger("pdecontrol.memory")

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
#: Largest trim threshold mallopt accepts (an ``int``): 2 GiB of free memory at the heap's top.
_MAX_TRIM_THRESHOLD = 2**31 - 1


def retain_freed_memory(*, single_arena: bool = False) -> bool:
    """Keep freed memory in the process: no ``mmap`` for large blocks, trimming only above 2 GiB.

    That holds for allocations in the main thread's arena. glibc gives other threads arenas of
    their own, which still ``mmap`` (and unmap on ``free``) blocks over 64 MB; with
    ``single_arena`` threads that have not allocated yet share the main arena instead (for a
    process that computes in one thread other than its main one, e.g. a Dask worker).

    Returns True if glibc accepted the settings, False where there is no glibc ``mallopt``
    (macOS, musl, Windows): nothing is changed there. Affects the whole process, from the next
    allocation on.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("no mallopt in the C library %r: allocator left as it is", name)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    accepted = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _MAX_TRIM_THRESHOLD) == 1
    if single_arena:
        accepted = mallopt(_M_ARENA_MAX, 1) == 1 and accepted
    logger.debug("retain_freed_memory: glibc mallopt %s", "accepted" if accepted else "refused")
    return accepted
