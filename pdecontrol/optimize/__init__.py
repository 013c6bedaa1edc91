"""Optimisers for any :class:`~pdecontrol.functional.ReducedFunctional`.

* :func:`conjugate_gradient` - preconditioned CG with a negative-curvature guard;
* :func:`gauss_newton_cg` - inexact, optionally sub-sampled Gauss-Newton-CG (the paper's solver);
* :func:`steepest_descent`, :func:`adam` - first-order baselines on the same interface;
* :func:`block_coordinate_descent`, :class:`RestrictedFunctional`,
  :class:`VariableProjection` - exploiting a block of parameters that enters linearly;
* :func:`regularized_least_squares` - matrix-free ridge regression (the classifier solve).

Every solver returns a :class:`scipy.optimize.OptimizeResult` whose ``status`` is a
:class:`StopReason` value and whose ``history`` is an :class:`xarray.Dataset` over ``iteration``.
See ``docs/optimizers.md``.
"""

from .block_coordinate import block_coordinate_descent
from .cg import CGResult, CGStopReason, conjugate_gradient
from .first_order import adam, steepest_descent
from .gauss_newton import EISENSTAT_WALKER, gauss_newton_cg
from .least_squares import regularized_least_squares
from .linesearch import Armijo, LineSearchResult, armijo_backtracking
from .restricted import RestrictedFunctional
from .stopping import Stopping, StopReason
from .variable_projection import VariableProjection

__all__ = [
    "Armijo",
    "CGResult",
    "CGStopReason",
    "EISENSTAT_WALKER",
    "LineSearchResult",
    "RestrictedFunctional",
    "StopReason",
    "Stopping",
    "VariableProjection",
    "adam",
    "armijo_backtracking",
    "block_coordinate_descent",
    "conjugate_gradient",
    "gauss_newton_cg",
    "regularized_least_squares",
    "steepest_descent",
]
