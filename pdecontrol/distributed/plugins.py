"""Worker plugins (imported by the workers, so they live in an installed module)."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from ..memory import retain_freed_memory

__all__ = ["RetainFreedMemory"]


class RetainFreedMemory(WorkerPlugin):
    """Each worker keeps freed memory (:func:`pdecontrol.memory.retain_freed_memory`), from its
    start or from the plugin's registration on."""

    name = "pdecontrol-retain-freed-memory"

    def setup(self, worker) -> None:
        retain_freed_memory()
