"""BLAS thread pools beside the Numba kernels of :mod:`pdecontrol.ops`.

Both the kernels (Numba's OpenMP workers) and BLAS (OpenBLAS's pool, through NumPy's ``@``)
want every core. After each call OpenBLAS's idle threads keep spinning for a while; when a kernel
starts in that window its threads share the cores with them. Training interleaves small BLAS
products (a classifier ``W y``) with kernels hundreds of times per second, so on the 2-core
development machine a Gauss-Newton product on 250 MNIST images took 84 ms with two BLAS threads
and 28 ms with one (a forward solve of 1,000 images 83 ms and 37 ms; docs/speed.md).

:func:`blas_threads` limits the BLAS pools for a block of code: long runs that call the kernels
run with one BLAS thread (``with blas_threads(1)``), small dense products between kernels can
take one thread themselves (the CNN's classifier products do, so that a user's own evaluation or
optimiser loop is spared the spinning too: the accuracy of a network on 20,000 MNIST images
took 1.6-1.7 s before, 0.8 s after), and long runs give the pools the kernels' width back
only around large dense products or solves with no kernel in between
(``with blas_threads(kernel_threads())``), where one thread would halve their speed: a kernel
called inside such a block pays for the spinning again (a curvature product right after a
two-thread ``F @ W.T``: 121 against 75 ms, ``benchmarks/feature_products.py``). Results do not
depend on the number of threads beyond the rounding of BLAS's own summation order.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
from threadpoolctl import ThreadpoolController

from ._dispatch import _SERIAL_ONLY

__all__ = ["blas_threads", "kernel_threads"]

_CONTROLLER = []  # one ThreadpoolController, created on first use (it scans the loaded libraries)


def kernel_threads() -> int:
    """Threads the parallel kernels of :mod:`pdecontrol.ops` use in this process (1 under
    :func:`~pdecontrol.ops.use_serial_kernels`)."""
    return 1 if _SERIAL_ONLY[0] else numba.get_num_threads()


@contextmanager
def blas_threads(n: int):
    """Limit the BLAS thread pools to ``n`` threads inside the ``with`` block (restored after).

    ``n`` may exceed the current limit up to the pools' size at start-up (the outer limit is
    lifted inside the block).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"blas_threads takes a positive number of threads, got {n!r}")
    if not _CONTROLLER:
        _CONTROLLER.append(ThreadpoolController())
    with _CONTROLLER[0].limit(limits=n, user_api="blas"):
        yield
