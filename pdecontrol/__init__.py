"""pdecontrol: PDE-constrained optimal control, with multiscale CNN learning as one problem.

Layout (each a small module with one job):

* :mod:`pdecontrol.mesh`, :mod:`pdecontrol.transfer`, :mod:`pdecontrol.stencils` - meshes and
  hierarchies, grid transfers and the stencil calculus (Galerkin restriction / prolongation of
  kernels).
* :mod:`pdecontrol.assembly` - sparse CSR matrices of constant and variable stencils on grids.
* :mod:`pdecontrol.diffusion` - the operator ``-div(exp(m) grad u)`` with zero Dirichlet values,
  its matrix and its derivatives in ``m``.
* :mod:`pdecontrol.functional` - :class:`ReducedFunctional`, the interface between control
  problems and optimisers.
* :mod:`pdecontrol.control` - control problems by subclassing, time-steppers with exact
  discrete tangent and adjoint sweeps, control functionals, losses, regularisers.
* :mod:`pdecontrol.verify` - Taylor, adjoint and Gauss-Newton operator tests.
* :mod:`pdecontrol.ops` - Numba-jitted batched convolutions, activations, fused residual steps.
* :mod:`pdecontrol.linear_solvers` - sparse LU and AMG-preconditioned CG behind one protocol
  (set up once, solve and transpose-solve many right-hand sides), a reuse cache by exact
  matrix fingerprint; for implicit time steps.
* :mod:`pdecontrol.optimize` - CG, inexact Gauss-Newton-CG, first-order baselines,
  block-coordinate descent, variable projection; every solver resumable.
* :mod:`pdecontrol.continuation` - space (mesh level) and time (step count) continuation: stages
  of any optimiser, one labelled history, work in fine-level units, a resume state per row.
* :mod:`pdecontrol.io` - atomic file writes and verified archives.
* :mod:`pdecontrol.memory` - allocator tuning for long runs (keep freed memory in the process).
"""
from . import (
    assembly,
    continuation,
    control,
    diffusion,
    io,
    linear_solvers,
    memory,
    mesh,
    ops,
    optimize,
    stencils,
    transfer,
    verify,
)
from .functional import ReducedFunctional
from .mesh import Mesh, MeshHierarchy

__version__ = "0.1.0.dev0"
__all__ = [
    "ReducedFunctional", "Mesh", "MeshHierarchy",
    "assembly", "continuation", "control", "diffusion", "io", "linear_solvers", "memory", "mesh",
    "ops", "optimize",
    "stencils", "transfer", "verify",
    "__version__",
]
