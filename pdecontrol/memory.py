"""Memory: what the machine has left, refusing work that would not fit, and allocator tuning.

* :func:`available_memory` - bytes the process can still allocate without swapping: the
  smaller of ``MemAvailable`` (``/proc/meminfo``; elsewhere ``os.sysconf`` free pages) and
  what a cgroup v2 limit (``memory.max``) leaves;
* :func:`check_memory` - refuse an estimate (bytes by named part) that exceeds it, with a
  one-line :class:`InsufficientMemoryError` naming the largest parts, before anything is
  allocated (problems estimate their own parts: ``problems.cnn.memory``);
* :func:`retain_freed_memory` - keep freed memory in the process (glibc only), see below;
* :func:`aligned_empty` - an uninitialised array that starts on a cache-line boundary.

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
import os
from pathlib import Path

import numpy as np

__all__ = ["retain_freed_memory", "aligned_empty", "available_memory", "check_memory",
           "InsufficientMemoryError", "format_bytes"]

logger = logging.getLogger("pdecontrol.memory")

# mallopt parameters of glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
#: Trim threshold that disables trimming (mallopt(3)). The largest positive one, 2**31 - 1, still
#: trimmed after every gradient on 10,000 MNIST images once the heap's peak passed 2 GiB: each
#: evaluation then page-faulted its states in again (8,400 huge-page faults, up to 8 s of system
#: time per gradient; benchmarks/distributed_overhead.py).
_NO_TRIM = -1


class InsufficientMemoryError(ValueError):
    """An estimated need above the available memory (a bad input: the sizes asked for)."""


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"1.5 GiB"`` (binary units, 3 significant digits)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


#: Files of a cgroup's memory limit and use: v2 (unified), v1 (memory controller).
_CGROUP_FILES = {"": ("", "memory.max", "memory.current"),
                 "memory": ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes")}


def _cgroup_available() -> int | None:
    """What the cgroup limit of this process leaves (``None`` without a limit)."""
    try:
        entries = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for entry in entries:
        _, controllers, group = entry.split(":", 2)
        if controllers not in _CGROUP_FILES:
            continue
        mount, limit_file, usage_file = _CGROUP_FILES[controllers]
        folder = Path("/sys/fs/cgroup", mount, group.lstrip("/"))
        try:
            limit = (folder / limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**62:  # no limit
                continue
            return int(limit) - int((folder / usage_file).read_text())
        except (OSError, ValueError):
            continue
    return None


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping (``None`` if unknown): the
    smaller of the system's available memory and what a cgroup v2 limit leaves."""
    figures = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    return max(0, min(figures)) if figures else None


def check_memory(parts: dict, *, what: str, available: int | None = None) -> int:
    """Refuse ``parts`` (name -> estimated bytes; a name says which options set it) when their
    sum exceeds ``available`` (default :func:`available_memory`; unknown: never refused).

    Raises :class:`InsufficientMemoryError` with one line: the total, what is available and the
    largest parts. Returns the total.
    """
    total = int(sum(parts.values()))
    available = available_memory() if available is None else available
    if available is not None and total > available:
        largest = sorted(parts.items(), key=lambda item: -item[1])[:3]
        listed = "; ".join(f"{name}: {format_bytes(size)}" for name, size in largest if size)
        raise InsufficientMemoryError(
            f"{what} needs about {format_bytes(total)} of memory, {format_bytes(available)} are "
            f"available; the largest parts: {listed}: make those smaller")
    return total


def retain_freed_memory(*, single_arena: bool = False) -> bool:
    """Keep freed memory in the process: no ``mmap`` for large blocks, no trimming of the heap.

    The process keeps its peak heap, which the next evaluation of the same size reuses without
    page faults.

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
    accepted = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _NO_TRIM) == 1
    if single_arena:
        accepted = mallopt(_M_ARENA_MAX, 1) == 1 and accepted
    logger.debug("retain_freed_memory: glibc mallopt %s", "accepted" if accepted else "refused")
    return accepted


#: Bytes of a cache line, the alignment of :func:`aligned_empty`.
CACHE_LINE = 64


def aligned_empty(shape, dtype) -> np.ndarray:
    """Uninitialised C-contiguous array of ``shape`` and ``dtype`` whose data starts on a 64-byte
    (cache-line) boundary, a view into a slightly larger buffer.

    NumPy guarantees 16 bytes only. A large array read many times by 512-bit vector loads, such
    as a classifier's stored features, is then split across two cache lines on every load
    unless its rows start on a line: the softmax curvature product on 20,000 x 6,272 float32
    features took 81 ms from a base 16 or 48 bytes off a line against 58 ms from one on a line
    (docs/speed.md). Rows stay aligned when a row's bytes are a multiple of 64. The kernels'
    own scratch rows are aligned the same way inside Numba (``pdecontrol.ops._kernels.
    aligned_rows``).
    """
    dtype = np.dtype(dtype)
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    size = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(size * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE
    return raw[start:start + size * dtype.itemsize].view(dtype).reshape(shape)
