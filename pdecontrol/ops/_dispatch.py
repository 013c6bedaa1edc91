"""Serial or parallel: every ``parallel=True`` kernel of :mod:`pdecontrol.ops` is compiled twice.

Waking Numba's thread pool costs far more than a small array takes: ``add_scaled`` on an
8 x 32 state took 683 us in parallel against 6 us serially on a busy 2-core machine (issue 11),
and the Runge-Kutta steppers call it once per stage and sweep. :func:`twin_kernel` compiles one
Python function twice, ``parallel=True`` and ``parallel=False`` (``prange`` is then a plain
``range``: same loop body, same order of operations within an iteration), and
:meth:`TwinKernel.choose` runs the serial twin when the call's work is below the kernel's
threshold, when Numba runs on one thread or when :func:`use_serial_kernels` says so. Both twins
give bitwise identical results for every kernel of the package (tested). The thresholds were
measured on the 2-core development machine (``benchmarks/serial_threshold.py``; "Serial path for
small problems" in docs/operators.md).
"""

from __future__ import annotations

import types

import numba
from numba import njit

__all__ = ["SERIAL_BELOW_ELEMENTS", "SERIAL_BELOW_MULTIPLY_ADDS", "TwinKernel", "twin_kernel",
           "use_serial_kernels"]

#: Elementwise kernels (``add_scaled``, activations) with fewer elements than this run serially.
#: Idle, the parallel ``add_scaled`` wins from 2**14 elements on (float64 0.78x, float32 0.91x
#: of the serial time; 1.1-1.2x at 2**13); float32 tanh and ReLU win only from 2**15-2**16
#: and float64 tanh (scalar libm) already from 2**10, so it runs up to 2x slower below 2**14.
SERIAL_BELOW_ELEMENTS = 2**14

#: Convolution drivers with fewer multiply-adds than this (``N * C_out * C_in * 3**d * P``,
#: both kernels of a fused call counted) run serially. Idle, the parallel conv and kernel
#: gradient win in every measured case from 2.9e5 on (0.71-0.92x), not yet at 1.5e5.
SERIAL_BELOW_MULTIPLY_ADDS = 2**18


_SERIAL_ONLY = [False]


def use_serial_kernels(enabled: bool = True) -> bool:
    """Run every kernel of :mod:`pdecontrol.ops` serially in this process (``enabled``), or let
    each call choose by its size again; returns the previous setting.

    For a process whose parallelism lies elsewhere, e.g. a Dask worker, one of several on a
    machine: unlike ``NUMBA_NUM_THREADS`` this can be set after Numba started its threads, and
    holds for every thread of the process. Results do not change (both twins are bitwise equal).
    """
    previous = _SERIAL_ONLY[0]
    _SERIAL_ONLY[0] = bool(enabled)
    return previous


class TwinKernel:
    """A Numba kernel as a serial and a parallel dispatcher; :meth:`choose` picks one per call.

    Attributes
    ----------
    serial, parallel : numba dispatcher
        ``njit(parallel=False | True, **options)`` of the same Python function.
    serial_below : int
        Work (in the kernel's unit, see the module constants) below which :meth:`choose`
        returns ``serial``.
    """

    def __init__(self, function, serial_below: int, **options):
        # the cache file is named after the qualified name and its index ignores ``parallel``,
        # so the serial twin needs a name of its own or the two would load each other's code
        clone = types.FunctionType(
            function.__code__,
            function.__globals__,
            function.__name__,
            function.__defaults__,
            function.__closure__,
        )
        clone.__qualname__ = f"{function.__qualname__}__serial"
        clone.__doc__ = function.__doc__
        self.serial = njit(parallel=False, **options)(clone)
        self.parallel = njit(parallel=True, **options)(function)
        self.serial_below = serial_below
        self.__doc__ = function.__doc__

    def choose(self, work: int, tasks: int | None = None):
        """The dispatcher for a call doing ``work`` in ``tasks`` iterations of its ``prange``.

        Serial below :attr:`serial_below`, for fewer than 2 tasks (``None``: plenty), when
        Numba runs one thread or after :func:`use_serial_kernels`; parallel otherwise.
        """
        if _SERIAL_ONLY[0] or work < self.serial_below or (tasks is not None and tasks < 2):
            return self.serial
        return self.serial if numba.get_num_threads() == 1 else self.parallel


def twin_kernel(serial_below: int, **options):
    """Decorator: ``TwinKernel(function, serial_below, **options)`` (options as for ``njit``)."""
    return lambda function: TwinKernel(function, serial_below, **options)
