"""pdecontrol: PDE-constrained optimal control, with multiscale CNN learning as one problem.

Layout (each a small module with one job):

* :mod:`pdecontrol.mesh`, :mod:`pdecontrol.transfer`, :mod:`pdecontrol.stencils` - meshes,
  grid transfers and the stencil calculus (Galerkin restriction / prolongation of kernels).
* :mod:`pdecontrol.control` - control problems by subclassing, time-steppers with exact
  discrete tangent and adjoint sweeps, reduced functionals, regularisers.
* :mod:`pdecontrol.verify` - Taylor, adjoint and Gauss-Newton operator tests.
* :mod:`pdecontrol.ops` - Numba-jitted batched convolutions and activations.
* :mod:`pdecontrol.optimize` - CG, inexact Gauss-Newton-CG, first-order baselines,
  block-coordinate descent.
"""
from .functional import ReducedFunctional

__version__ = "0.1.0.dev0"
__all__ = ["ReducedFunctional", "__version__"]
