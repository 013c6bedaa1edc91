"""Memory a heat inversion needs, estimated from its settings before anything is allocated.

For ``N`` nodes of the finest mesh, ``E`` experiments and ``n`` time steps, in bytes:

* temperatures: forward, tangent and adjoint trajectories with their stored steps, the data and
  the observations, about five float64 fields per experiment and time step on every level
  (coarse levels: ``1/(2^d - 1)`` more): ``40 E (n + 1) N 2^d / (2^d - 1)``;
* the linear solver of the finest level: sparse LU fill measured as ``400 N log2 N`` bytes in
  2D and ``1200 N^(4/3)`` in 3D (minimum-degree ordering); AMG ``500 N``.

The estimate is an upper bound of the measured peaks (resident memory above that of a 16^2
run, 3 experiments, splu): 2D 128^2 / 16 steps 114 MiB (estimate 130 MiB), 128^2 / 64 steps
202 MiB (250), 256^2 / 16 steps 453 MiB (570), 3D 32^3 / 16 steps 1042 MiB (1273).
"""

from __future__ import annotations

import math

__all__ = ["inversion_memory"]


def inversion_memory(settings) -> dict:
    """Estimated bytes of :class:`~problems.heat.inversion.HeatInversion` by part (see the
    module docstring); the names say which options set each part."""
    dim, nodes = settings.dim, float(settings.resolution) ** settings.dim
    levels = 2**dim / (2**dim - 1)
    temperatures = 40.0 * settings.n_experiments * (settings.n_steps + 1) * nodes * levels
    if settings.solver != "splu":
        solver = 500.0 * nodes
    elif dim == 2:
        solver = 400.0 * nodes * math.log2(nodes)
    else:
        solver = 1200.0 * nodes ** (4 / 3)
    return {
        "temperatures of every time step (--resolution, --steps, --experiments)": temperatures,
        f"{settings.solver} factorization (--resolution, --dim, --solver)": solver,
    }
