"""512-bit vectors for the Numba kernels on AVX-512 hosts (imported first by :mod:`pdecontrol.ops`).

LLVM tunes several AVX-512 CPUs (Rocket Lake, Ice Lake, Sapphire Rapids, ...) to *prefer*
256-bit vectors, so by default Numba emits ymm code there, half the FMA width the hardware has
(and PyTorch's oneDNN uses). Turning the preference off (CPU features = host features plus
``-prefer-256-bit``) lets LLVM vectorise the convolution loops with zmm registers
(docs/operators.md, "512-bit code generation").

Numba reads its CPU features once, when its CPU code generator is created, i.e. at the first
``njit`` decoration of the process, and for the whole process (every Numba function compiled
afterwards, ours or not, gets the same target; cached code is keyed by it, so 256- and 512-bit
builds do not load each other's cache). So :func:`prefer_512_bit_vectors` runs when
:mod:`pdecontrol.ops` is imported, before any of its kernels is decorated, and changes nothing

* if the user set ``NUMBA_CPU_FEATURES`` or ``NUMBA_CPU_NAME`` (the opt-out: e.g.
  ``NUMBA_CPU_FEATURES`` = the host features, ``llvmlite.binding.get_host_cpu_features()
  .flatten()``, keeps LLVM's 256-bit preference),
* if the host lacks ``avx512f``,
* if Numba's CPU code generator already exists (Numba code was compiled or decorated before
  :mod:`pdecontrol.ops` was imported; logged at debug level).

Results stay correct either way; reductions vectorised at another width may differ in the last
bits (all within-process guarantees, e.g. serial/parallel twins bitwise equal, still hold).
"""

from __future__ import annotations

import logging

import llvmlite.binding as llvm
from numba.core import config, registry

__all__ = ["NO_256_BIT_PREFERENCE", "CODEGEN_STATUS", "prefer_512_bit_vectors"]

logger = logging.getLogger("pdecontrol.ops")

#: The LLVM feature string appended to the host's features.
NO_256_BIT_PREFERENCE = "-prefer-256-bit"


def prefer_512_bit_vectors() -> str:
    """Set ``numba.core.config.CPU_FEATURES`` to the host features plus ``-prefer-256-bit``
    unless one of the conditions of the module docstring holds.

    Returns ``"applied"`` or the reason it was not (also logged at debug level).
    """
    host = llvm.get_host_cpu_features()
    if config.CPU_FEATURES is not None or config.CPU_NAME is not None:
        status = "NUMBA_CPU_FEATURES or NUMBA_CPU_NAME set by the user: left as set"
    elif not host.get("avx512f", False):
        status = "host has no avx512f: LLVM's default vector width kept"
    elif "_toplevel_target_context" in vars(registry.cpu_target):
        status = (
            "Numba's CPU code generator was created before pdecontrol.ops was imported: "
            "its CPU features are kept"
        )
    else:
        config.CPU_FEATURES = f"{host.flatten()},{NO_256_BIT_PREFERENCE}"
        status = "applied"
    logger.debug("512-bit vectors for Numba (pdecontrol.ops): %s", status)
    return status


#: What :func:`prefer_512_bit_vectors` did when :mod:`pdecontrol.ops` was imported.
CODEGEN_STATUS = prefer_512_bit_vectors()
