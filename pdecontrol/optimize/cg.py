"""Preconditioned conjugate gradients with a Steihaug-style negative-curvature guard."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from .._validation import as_float_array, check_finite, check_int
from ._checks import check_real

__all__ = ["CGStopReason", "CGResult", "conjugate_gradient", "as_operator"]


class CGStopReason(str, Enum):
    """Why :func:`conjugate_gradient` stopped (a ``str`` enum)."""

    CONVERGED = "converged"
    """The relative residual reached ``rtol`` (or the right-hand side is zero)."""
    MAX_ITERATIONS = "max_iterations"
    """``maxiter`` iterations were taken."""
    NEGATIVE_CURVATURE = "negative_curvature"
    """``p^T A p <= 0`` for a search direction ``p``: the last iterate (or, at the first
    iteration, the preconditioned steepest-descent direction) is returned."""
    NON_FINITE = "non_finite"
    """A product ``A p`` or the preconditioner gave NaN/inf; the last finite iterate is returned."""


@dataclass(frozen=True)
class CGResult:
    """Outcome of :func:`conjugate_gradient`.

    Attributes
    ----------
    x : ndarray, shape (n,)
        The approximate solution (primal vector).
    reason : CGStopReason
        Why the iteration stopped.
    iterations : int
        Number of completed CG iterations (= operator products used for updates).
    relative_residuals : ndarray, shape (iterations + 1,)
        ``|r_k| / |b|`` after each iteration, in the preconditioner norm (see
        :func:`conjugate_gradient`); entry 0 is 1.
    """

    x: np.ndarray
    reason: CGStopReason
    iterations: int
    relative_residuals: np.ndarray

    @property
    def relative_residual(self) -> float:
        """Final relative residual."""
        return float(self.relative_residuals[-1])

    @property
    def converged(self) -> bool:
        """Whether ``reason`` is :attr:`CGStopReason.CONVERGED`."""
        return self.reason is CGStopReason.CONVERGED


def as_operator(operator, n: int | None = None, name: str = "A") -> LinearOperator:
    """Return ``operator`` as a square :class:`~scipy.sparse.linalg.LinearOperator`.

    Accepts a LinearOperator, a dense or sparse matrix, or a callable ``v -> A v`` (then ``n``,
    the vector length, is required).
    """
    if callable(operator) and not hasattr(operator, "shape"):
        if n is None:
            raise TypeError(
                f"{name} is a callable; pass its size so it can be wrapped as a LinearOperator"
            )
        return LinearOperator((n, n), matvec=operator, dtype=np.float64)
    try:
        op = aslinearoperator(operator)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a LinearOperator, a matrix or a callable v -> A v, "
            f"got {type(operator).__name__}"
        ) from exc
    if op.shape[0] != op.shape[1]:
        raise ValueError(f"{name} must be square, got shape {op.shape}")
    if n is not None and op.shape[0] != n:
        raise ValueError(f"{name} has shape {op.shape} but the vector has length {n}")
    return op


def _apply(operator, v: np.ndarray) -> np.ndarray:
    return np.asarray(operator.matvec(v), dtype=np.float64).reshape(-1)


def conjugate_gradient(
    A, b, *, rtol: float = 1e-6, maxiter: int | None = None, preconditioner=None, norm=None
) -> CGResult:
    """Solve ``A x = b`` approximately by preconditioned CG started at ``x = 0``.

    ``A`` should be symmetric; where it is not positive definite on the Krylov space (a search
    direction with ``p^T A p <= 0``), the iteration stops Steihaug-style: it returns the last
    iterate, or at the first iteration the preconditioned steepest-descent direction ``M b``.
    Every iterate ``x_k`` returned then satisfies ``b^T x_k > 0`` whenever ``b != 0`` (for
    ``b = -g`` this makes ``x`` a descent direction).

    Parameters
    ----------
    A : LinearOperator, matrix or callable
        Symmetric operator, shape ``(n, n)``; maps primal vectors to dual ones.
    b : array_like, shape (n,)
        Right-hand side (a dual vector, e.g. minus a gradient).
    rtol : float
        Forcing term: stop when ``|r_k| <= rtol |b|``; ``0 < rtol < 1``.
    maxiter : int, optional
        Iteration cap (default ``n``).
    preconditioner : LinearOperator, matrix or callable, optional
        Symmetric positive-definite ``M`` approximating ``A^-1`` (maps dual to primal). With
        ``M = diag(1/m)`` (``functional.riesz``), CG runs in the weighted inner product of the
        functional and residuals are measured in its dual norm.
    norm : callable, optional
        ``r -> |r|`` for the stopping test and ``relative_residuals`` (default
        ``sqrt(r^T M r)``), e.g. a functional's dual norm when ``M`` is another preconditioner,
        so that the forcing term measures what the outer iteration measures.

    Returns
    -------
    CGResult
        Norms are ``norm(r)``, by default ``sqrt(r^T M r)`` (Euclidean without a
        preconditioner).
    """
    b = check_finite(as_float_array(b, "b", dtype=np.float64), "b")
    if b.ndim != 1:
        raise ValueError(f"b must be a 1-D vector, got shape {b.shape}")
    n = b.shape[0]
    A = as_operator(A, n, "A")
    M = None if preconditioner is None else as_operator(preconditioner, n, "preconditioner")
    rtol = check_real(rtol, "rtol", 0.0, 1.0, low_open=True)
    maxiter = n if maxiter is None else check_int(maxiter, "maxiter", 1)

    x = np.zeros(n)
    r = b.copy()
    z = r if M is None else _apply(M, r)
    rz = float(np.dot(r, z))
    if not np.isfinite(rz):
        return CGResult(x, CGStopReason.NON_FINITE, 0, np.array([1.0]))
    if rz < 0:
        raise ValueError(
            "preconditioner is not positive definite (r^T M r < 0); pass an SPD preconditioner"
        )
    if rz == 0.0:
        return CGResult(x, CGStopReason.CONVERGED, 0, np.array([0.0]))
    norm0 = np.sqrt(rz) if norm is None else float(norm(r))
    residuals = [1.0]
    p = z.copy()
    for k in range(int(maxiter)):
        Ap = _apply(A, p)
        curvature = float(np.dot(p, Ap))
        if not np.isfinite(curvature):
            return CGResult(x, CGStopReason.NON_FINITE, k, np.array(residuals))
        if curvature <= 0.0:
            if k == 0:
                x = z.copy()
            return CGResult(x, CGStopReason.NEGATIVE_CURVATURE, k, np.array(residuals))
        alpha = rz / curvature
        x = x + alpha * p
        r = r - alpha * Ap
        z = r if M is None else _apply(M, r)
        rz_new = float(np.dot(r, z))
        if not np.isfinite(rz_new):
            return CGResult(x - alpha * p, CGStopReason.NON_FINITE, k, np.array(residuals))
        residuals.append((np.sqrt(max(rz_new, 0.0)) if norm is None else float(norm(r))) / norm0)
        if residuals[-1] <= rtol:
            return CGResult(x, CGStopReason.CONVERGED, k + 1, np.array(residuals))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return CGResult(x, CGStopReason.MAX_ITERATIONS, int(maxiter), np.array(residuals))
