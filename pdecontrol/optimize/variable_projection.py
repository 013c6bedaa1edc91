"""Variable projection: eliminate a linear block of parameters exactly at every evaluation."""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ..functional import ReducedFunctional
from .restricted import RestrictedFunctional, apply_block_solve, as_index_set

__all__ = ["VariableProjection"]


class VariableProjection(ReducedFunctional):
    """``J_VP(theta) = J(theta, w*(theta))`` with ``w*(theta) = argmin_w J(theta, w)``.

    The parameters of this functional are the entries of the full vector outside
    ``linear_indices`` (``theta``, in increasing index order); the ``linear_indices`` entries
    (``w``) are recomputed by ``solve_block`` at every new ``theta``.

    * gradient (envelope theorem): ``dJ_VP/dtheta = dJ/dtheta (theta, w*(theta))``, because
      ``dJ/dw = 0`` at ``w*``;
    * Gauss-Newton operator (Kaufman's simplification): the Gauss-Newton operator of ``J``
      restricted to ``theta`` at ``(theta, w*(theta))``; it drops the coupling through
      ``dw*/dtheta``, which vanishes for zero residual.

    Assumptions: for every ``theta`` the block problem has a unique minimiser (``J`` strictly
    convex in ``w``, e.g. a linear least-squares classifier with Tikhonov regularisation) and
    ``solve_block`` returns it to high accuracy; the gradient is only as accurate as that
    solve. ``solve_block`` sees the full vector and decides its own data: when this functional is
    evaluated on a subset of ``examples``, ``w*`` is still the block solution of
    ``solve_block`` (typically over all examples) and the gradient is the batch gradient there.

    Parameters
    ----------
    functional : ReducedFunctional
        The joint functional of ``(theta, w)``.
    linear_indices : array_like of int or bool
        Indices or boolean mask of the eliminated block ``w``.
    solve_block : callable
        ``solve_block(x) -> x_new``: full vector in, full vector out with the ``w`` entries
        minimising ``J`` for the other entries of ``x`` (its other entries are ignored). The
        ``w`` entries of the input are the previous solution, usable as a warm start.
    x_initial : array_like, shape (functional.size,)
        Full vector whose ``w`` entries start the first block solve.
    """

    def __init__(self, functional: ReducedFunctional, linear_indices, solve_block, x_initial):
        if not isinstance(functional, ReducedFunctional):
            raise TypeError(
                f"functional must be a pdecontrol.functional.ReducedFunctional, got {type(functional).__name__}"
            )
        if not callable(solve_block):
            raise TypeError(f"solve_block must be callable x -> x_new, got {type(solve_block).__name__}")
        self.functional = functional
        self.linear_indices = as_index_set(linear_indices, functional.size, "linear_indices")
        mask = np.ones(functional.size, dtype=bool)
        mask[self.linear_indices] = False
        if not mask.any():
            raise ValueError("linear_indices selects every parameter; leave at least one nonlinear parameter")
        self.nonlinear_indices = np.flatnonzero(mask)
        self.solve_block = solve_block
        self._x = functional.check_parameters(x_initial, "x_initial").copy()
        self._theta = None
        self.n_block_solves = 0

    @property
    def size(self) -> int:
        return int(self.nonlinear_indices.size)

    @property
    def n_examples(self):
        return self.functional.n_examples

    @property
    def weights(self) -> np.ndarray:
        return self.functional.weights[self.nonlinear_indices]

    def check_examples(self, examples):
        return self.functional.check_examples(examples)

    def initial_parameters(self) -> np.ndarray:
        """The ``theta`` entries of ``x_initial`` (a natural starting point)."""
        return self._x[self.nonlinear_indices].copy()

    def eliminate(self, theta) -> np.ndarray:
        """The full vector ``(theta, w*(theta))``, shape ``(functional.size,)`` (cached for the last ``theta``)."""
        theta = self.check_parameters(theta, "theta")
        if self._theta is None or not np.array_equal(theta, self._theta):
            x = self._x.copy()
            x[self.nonlinear_indices] = theta
            self._x = apply_block_solve(self.solve_block, x, self.linear_indices, self.functional)
            self._theta = theta.copy()
            self.n_block_solves += 1
        return self._x.copy()

    def _restricted(self, theta) -> RestrictedFunctional:
        return RestrictedFunctional(self.functional, self.nonlinear_indices, self.eliminate(theta))

    def value(self, theta, examples=None) -> float:
        return self.functional.value(self.eliminate(theta), examples)

    def value_and_gradient(self, theta, examples=None):
        return self._restricted(theta).value_and_gradient(theta, examples)

    def gauss_newton_operator(self, theta, examples=None) -> LinearOperator:
        return self._restricted(theta).gauss_newton_operator(theta, examples)
