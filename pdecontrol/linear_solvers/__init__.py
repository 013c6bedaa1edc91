"""Sparse linear solvers behind one protocol, for implicit time steps and their adjoints.

A solver (options) sets up once per matrix and returns a factorization that solves
``A x = b`` and ``A^T x = b`` for one or many right-hand sides:

* :class:`SparseLU` - SciPy's ``splu``; any non-singular matrix, exact to rounding;
* :class:`AMGConjugateGradient` - CG preconditioned by one pyamg V-cycle (smoothed aggregation
  or Ruge-Stuben), symmetric positive definite matrices, to a relative tolerance;
* :func:`solver_by_name` - ``"splu"``, ``"amg-sa"``, ``"amg-rs"`` for settings and command lines;
* :class:`FactorizationCache` - reuses the factorization of a matrix seen before (exact
  fingerprint, LRU), so a stepper can ask for it at every step of every sweep.

Every factorization reports ``accuracy``, the relative error to expect from it, which
verification code uses to set its tolerances. See ``docs/linear_solvers.md``.
"""
from .amg import AMGConjugateGradient, AMGFactorization
from .base import ConvergenceError, Factorization, LinearSolver, as_square_matrix
from .cache import FactorizationCache, matrix_fingerprint
from .lu import LUFactorization, SparseLU
from .registry import SOLVER_NAMES, solver_by_name

__all__ = [
    "AMGConjugateGradient",
    "AMGFactorization",
    "ConvergenceError",
    "Factorization",
    "FactorizationCache",
    "LUFactorization",
    "LinearSolver",
    "SOLVER_NAMES",
    "SparseLU",
    "as_square_matrix",
    "matrix_fingerprint",
    "solver_by_name",
]
