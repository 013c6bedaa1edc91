"""Variable projection: eliminate a linear block of parameters exactly at every evaluation."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .._validation import check_int
from ..functional import ReducedFunctional
from ._checks import check_functional, check_real
from .cg import conjugate_gradient
from .restricted import RestrictedFunctional, apply_block_solve, as_index_set

__all__ = ["VariableProjection"]


class VariableProjection(ReducedFunctional):
    """``J_VP(theta) = J(theta, w*(theta))`` with ``w*(theta) = argmin_w J(theta, w)``.

    The parameters of this functional are the entries of the full vector outside
    ``linear_indices`` (``theta``, in increasing index order); the ``linear_indices`` entries
    (``w``) are recomputed by ``solve_block`` at every new ``theta``.

    * gradient (envelope theorem): ``dJ_VP/dtheta = dJ/dtheta (theta, w*(theta))``, because
      ``dJ/dw = 0`` at ``w*``;
    * Gauss-Newton operator, ``gauss_newton="kaufman"`` (default): Kaufman's simplification,
      i.e. the Gauss-Newton approximation of the exact reduced Hessian
      ``H_tt - H_tw H_ww^-1 H_wt``: the Schur complement ``G_tt - G_tw G_ww^-1 G_wt`` of the
      joint Gauss-Newton operator ``G`` at ``(theta, w*(theta))``. With ``G = J^T J`` this is
      ``J_t^T (I - P_w) J_t``, ``P_w`` the projector onto the range of ``J_w``: Kaufman's
      projected Jacobian. Each product solves ``G_ww z = G_wt v`` by CG (preconditioned by the
      inverse weights) to ``block_cg_rtol``, so it costs one block CG solve.
    * ``gauss_newton="block"``: the block ``G_tt`` alone (the restricted functional's operator
      at ``(theta, w*)``). Cheaper, but it ignores the coupling through ``dw*/dtheta`` and
      overestimates the curvature; measured on a two-term exponential fit it converges only
      linearly where ``"kaufman"`` and joint Gauss-Newton converge quadratically.

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
    gauss_newton : {"kaufman", "block"}
        Which Gauss-Newton operator to provide (see above).
    block_cg_rtol : float
        Relative residual of the inner block solves of the Kaufman operator; the operator is
        symmetric only to about this accuracy.
    block_cg_maxiter : int, optional
        Iteration cap of those solves (default: the size of the linear block).
    """

    def __init__(
        self,
        functional: ReducedFunctional,
        linear_indices,
        solve_block,
        x_initial,
        *,
        gauss_newton: str = "kaufman",
        block_cg_rtol: float = 1e-10,
        block_cg_maxiter: int | None = None,
    ):
        check_functional(functional)
        if not callable(solve_block):
            raise TypeError(
                f"solve_block must be callable x -> x_new, got {type(solve_block).__name__}"
            )
        self.functional = functional
        self.linear_indices = as_index_set(linear_indices, functional.size, "linear_indices")
        mask = np.ones(functional.size, dtype=bool)
        mask[self.linear_indices] = False
        if not mask.any():
            raise ValueError(
                "linear_indices selects every parameter; leave at least one nonlinear parameter"
            )
        self.nonlinear_indices = np.flatnonzero(mask)
        if gauss_newton not in ("kaufman", "block"):
            raise ValueError(f"gauss_newton must be 'kaufman' or 'block', got {gauss_newton!r}")
        self.solve_block = solve_block
        self.gauss_newton = gauss_newton
        self.block_cg_rtol = check_real(block_cg_rtol, "block_cg_rtol", 0.0, 1.0, low_open=True)
        self.block_cg_maxiter = (
            int(self.linear_indices.size)
            if block_cg_maxiter is None
            else check_int(block_cg_maxiter, "block_cg_maxiter", 1)
        )
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
        """The full vector ``(theta, w*(theta))``, shape ``(functional.size,)``.

        The block solve runs only for a new ``theta`` (the last one is cached).
        """
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
        if self.gauss_newton == "block":
            return self._restricted(theta).gauss_newton_operator(theta, examples)
        joint = self.functional.gauss_newton_operator(self.eliminate(theta), examples)
        linear, nonlinear, size = self.linear_indices, self.nonlinear_indices, self.functional.size
        inverse_weights = 1.0 / self.functional.weights[linear]

        def joint_product(block, values):
            direction = np.zeros(size)
            direction[block] = values
            return np.asarray(joint.matvec(direction)).reshape(-1)

        block_operator = LinearOperator(
            (linear.size, linear.size),
            dtype=np.float64,
            matvec=lambda u: joint_product(linear, np.ravel(u))[linear],
        )

        def matvec(v):
            product = joint_product(nonlinear, np.ravel(v))
            solve = conjugate_gradient(
                block_operator,
                product[linear],
                rtol=self.block_cg_rtol,
                maxiter=self.block_cg_maxiter,
                preconditioner=lambda r: r * inverse_weights,
            )
            return product[nonlinear] - joint_product(linear, solve.x)[nonlinear]

        return LinearOperator(
            (self.size, self.size), matvec=matvec, rmatvec=matvec, dtype=np.float64
        )
