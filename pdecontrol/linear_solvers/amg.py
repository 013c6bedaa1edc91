"""Conjugate gradients preconditioned by one AMG V-cycle (pyamg), for SPD matrices."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from ..optimize import CGStopReason, conjugate_gradient
from ..optimize._checks import check_real
from .base import ConvergenceError, Factorization

__all__ = ["AMGConjugateGradient", "AMGFactorization", "SYMMETRY_RTOL"]

SYMMETRY_RTOL = 1e-12
"""A matrix counts as symmetric when ``max |A - A^T| <= SYMMETRY_RTOL * max |A|``."""

_BUILDERS = {"sa": "smoothed_aggregation_solver", "rs": "ruge_stuben_solver"}


@dataclass(frozen=True)
class AMGConjugateGradient:
    """CG preconditioned by one V-cycle of a pyamg hierarchy (immutable options).

    For symmetric positive definite matrices only: ``A^T = A``, so ``solve_transpose`` is
    ``solve``. Set-up checks symmetry (``max |A - A^T| <= 1e-12 max |A|``) and a positive
    diagonal, and refuses other matrices (use ``SparseLU``).

    Parameters
    ----------
    method : {"sa", "rs"}
        ``pyamg.smoothed_aggregation_solver`` or ``pyamg.ruge_stuben_solver``, with pyamg's
        defaults (symmetric Gauss-Seidel smoothing: the V-cycle is an SPD preconditioner).
    rtol : float
        Per column, stop when ``|b - A x|_M <= rtol |b|_M``, in the preconditioner norm
        ``|r|_M = sqrt(r^T M r)`` (``M`` one V-cycle), the convention of
        :func:`pdecontrol.optimize.conjugate_gradient`. Since ``M ~ A^-1`` this is the
        relative error in the energy norm, ``|x - A^-1 b|_A / |A^-1 b|_A``, to within the
        quality of the V-cycle; ``0 < rtol < 1``.
    maxiter : int
        CG iterations per column; reaching it without convergence raises
        :class:`~pdecontrol.linear_solvers.ConvergenceError` (so an inexact solve never passes
        silently into a derivative).
    warm_start : bool
        Start each column from this factorization's last solution for a right-hand side of the
        same shape (forward or transposed), e.g. the previous time step, whenever that guess has
        a smaller residual than zero. The stopping test is the same, so the answer agrees with a
        cold start to ``rtol``.
    """

    method: str = "sa"
    rtol: float = 1e-10
    maxiter: int = 100
    warm_start: bool = False

    def __post_init__(self):
        if self.method not in _BUILDERS:
            raise ValueError(f"method must be 'sa' or 'rs', got {self.method!r}")
        object.__setattr__(self, "rtol", check_real(self.rtol, "rtol", 0.0, 1.0, low_open=True))
        object.__setattr__(self, "maxiter", check_int(self.maxiter, "maxiter", 1))
        if not isinstance(self.warm_start, bool):
            raise TypeError(f"warm_start must be True or False, got {self.warm_start!r}")

    @property
    def name(self) -> str:
        """``"amg-sa"`` or ``"amg-rs"``."""
        return f"amg-{self.method}"

    def factorize(self, matrix) -> AMGFactorization:
        """Check that ``matrix`` is symmetric and build its AMG hierarchy."""
        return AMGFactorization(matrix, self)


class AMGFactorization(Factorization):
    """One pyamg hierarchy and the CG solves that use it.

    Attributes (besides those of :class:`~pdecontrol.linear_solvers.Factorization`)
    ----------------------------------------------------------------------------------
    iterations : list of int
        CG iterations of every column solved so far, in order (0 for a zero right-hand side or
        a warm start that already met ``rtol``).
    relative_residuals : list of float
        Final ``|b - A x|_M / |b|_M`` of every column solved so far.
    vcycles : int
        V-cycles applied so far (set-up excluded): a cold column costs ``iterations + 1``, a
        warm-started one ``iterations + 2`` (one more for ``|b|_M``).
    operator_complexity, cycle_complexity : float
        pyamg's measures: nonzeros on all levels / on the finest, and the work of one V-cycle in
        units of one fine-level smoothing sweep.
    levels : int
        Levels of the hierarchy.
    accuracy : float
        ``rtol``: the relative energy-norm error of a solve; a dot-product test errs by at most
        about ``2 rtol |x|_A |y|_A`` (``docs/linear_solvers.md``, "Accuracy").
    """

    def _setup(self, matrix) -> None:
        _check_symmetric_positive_diagonal(matrix)
        matrix = matrix.copy()  # private: a caller may reassemble into the same arrays
        # Deferred: importing pyamg takes ~0.4 s, paid only by runs that use AMG.
        import pyamg

        # pyamg draws from NumPy's global generator (spectral-radius estimates for smoothed
        # aggregation): seed it for a reproducible hierarchy, and give the caller's state back.
        state = np.random.get_state()
        np.random.seed(0)
        try:
            hierarchy = getattr(pyamg, _BUILDERS[self.solver.method])(matrix)
        finally:
            np.random.set_state(state)
        self._matrix = matrix
        self._vcycle = _VCycle(hierarchy)
        self.operator_complexity = float(hierarchy.operator_complexity())
        self.cycle_complexity = float(hierarchy.cycle_complexity())
        self.levels = len(hierarchy.levels)
        self.iterations: list[int] = []
        self.relative_residuals: list[float] = []
        self._last_solution = None

    @property
    def accuracy(self) -> float:
        return self.solver.rtol

    @property
    def vcycles(self) -> int:
        return self._vcycle.count

    def _solve_columns(self, b, transpose):
        # transpose is ignored: the matrix is symmetric (checked at set-up).
        guess = self._last_solution
        if guess is not None and guess.shape != b.shape:
            guess = None
        x = np.empty_like(b)
        for j in range(b.shape[1]):
            x[:, j] = self._solve_column(b[:, j], None if guess is None else guess[:, j])
        if self.solver.warm_start:
            self._last_solution = x.copy()
        return x

    def _solve_column(self, b, guess):
        """CG for one column; from ``guess`` it solves for the correction ``A d = b - A guess``
        with the tolerance rescaled so the test stays ``|r|_M <= rtol |b|_M``."""
        rhs, start, scale = b, np.zeros_like(b), 1.0
        if guess is not None:
            b_norm = self._vcycle.norm(b)
            residual = b - self._matrix @ guess
            residual_norm = self._vcycle.norm(residual)
            if residual_norm < b_norm:
                rhs, start, scale = residual, guess, residual_norm / b_norm
        if scale <= self.solver.rtol:  # the guess already meets the tolerance
            self.iterations.append(0)
            self.relative_residuals.append(scale)
            return start
        try:
            result = conjugate_gradient(self._matrix, rhs, rtol=self.solver.rtol / scale,
                                        maxiter=self.solver.maxiter, preconditioner=self._vcycle)
        except ValueError as exc:  # r^T M r < 0: the V-cycle of an indefinite matrix
            raise ConvergenceError(
                "the AMG V-cycle is not positive definite (r^T M r < 0): the matrix is not "
                "positive definite; use the 'splu' solver"
            ) from exc
        if not result.converged:
            raise ConvergenceError(_failure_message(result, self.solver, scale))
        self.iterations.append(result.iterations)
        self.relative_residuals.append(result.relative_residual * scale)
        return start + result.x


class _VCycle:
    """One V-cycle ``z = M r`` of a pyamg hierarchy, counted; the same ``r`` twice in a row
    costs one cycle (a warm start's ``M r0`` is reused by CG's first step)."""

    def __init__(self, hierarchy):
        self._apply = hierarchy.aspreconditioner(cycle="V").matvec
        self.count = 0
        self._last = None

    def __call__(self, r: np.ndarray) -> np.ndarray:
        if self._last is None or not np.array_equal(r, self._last[0]):
            self._last = (r.copy(), np.asarray(self._apply(r), dtype=np.float64).reshape(-1))
            self.count += 1
        return self._last[1].copy()

    def norm(self, r: np.ndarray) -> float:
        """``|r|_M = sqrt(r^T M r)``."""
        return float(np.sqrt(max(float(r @ self(r)), 0.0)))


def _check_symmetric_positive_diagonal(matrix) -> None:
    asymmetry = float(abs(matrix - matrix.T).max())
    scale = float(abs(matrix).max())
    if asymmetry > SYMMETRY_RTOL * scale:
        raise ValueError(
            f"matrix must be symmetric for AMG-CG, got max |A - A^T| = {asymmetry:.2e} "
            f"(> {SYMMETRY_RTOL:g} max |A|); use the 'splu' solver for a non-symmetric matrix"
        )
    bad = int(np.count_nonzero(matrix.diagonal() <= 0))
    if bad:
        raise ValueError(
            f"matrix must be positive definite for AMG-CG, but {bad} diagonal entries are <= 0; "
            "use the 'splu' solver for an indefinite matrix"
        )


def _failure_message(result, solver, scale) -> str:
    residual = result.relative_residual * scale
    if result.reason is CGStopReason.MAX_ITERATIONS:
        return (f"AMG-CG did not reach rtol={solver.rtol:g} in maxiter={solver.maxiter} "
                f"iterations (relative residual {residual:.2e}); raise maxiter or rtol")
    if result.reason is CGStopReason.NEGATIVE_CURVATURE:
        return (f"AMG-CG met p^T A p <= 0 after {result.iterations} iterations: the matrix is "
                "not positive definite; use the 'splu' solver")
    return (f"AMG-CG produced a non-finite value after {result.iterations} iterations; "
            "check the matrix scaling")
