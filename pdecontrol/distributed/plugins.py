"""Worker plugins (imported by the workers, so they live in an installed module)."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from ..memory import retain_freed_memory
from ..ops import use_serial_kernels

__all__ = ["OneComputeThread", "RetainFreedMemory"]


class OneComputeThread(WorkerPlugin):
    """Each worker computes in one thread: the kernels of :mod:`pdecontrol.ops` run serially and
    BLAS / OpenMP pools get one thread (``threadpoolctl``). The processes are the parallelism;
    several workers on a machine would otherwise each start a pool as wide as the machine.

    Set in the worker at run time, not through environment variables before it starts: Dask's
    ``pre-spawn-environ`` writes them into the environment of the process that starts the
    workers as well, and Numba refuses a changed ``NUMBA_NUM_THREADS`` there once its threads run.
    """

    name = "pdecontrol-one-compute-thread"

    def setup(self, worker) -> None:
        from threadpoolctl import threadpool_limits

        use_serial_kernels(True)
        self._limits = threadpool_limits(limits=1)


class RetainFreedMemory(WorkerPlugin):
    """Each worker keeps freed memory (:func:`pdecontrol.memory.retain_freed_memory`), from its
    start or from the plugin's registration on; its task thread allocates from the main arena
    (registered before the first task, as :func:`~pdecontrol.distributed.start_client` does)."""

    name = "pdecontrol-retain-freed-memory"

    def setup(self, worker) -> None:
        retain_freed_memory(single_arena=True)
