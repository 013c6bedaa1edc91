"""Regularised linear least squares, matrix-free (the classifier block of a CNN)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import OptimizeResult
from scipy.sparse.linalg import LinearOperator, aslinearoperator, lsqr

from .._validation import as_float_array, check_finite
from ._checks import check_real
from .cg import conjugate_gradient

__all__ = ["regularized_least_squares"]

# scipy.sparse.linalg.lsqr's integer istop, as reasons.
_LSQR_REASONS = {
    0: "converged",
    1: "converged",
    2: "converged",
    3: "condition_limit",
    4: "converged",
    5: "converged",
    6: "condition_limit",
    7: "max_iterations",
}


def regularized_least_squares(
    A,
    b,
    alpha: float = 0.0,
    *,
    method: str = "cg",
    x0=None,
    rtol: float = 1e-10,
    maxiter: int | None = None,
) -> OptimizeResult:
    """Solve ``min_w 1/2 ||A w - b||^2 + alpha/2 ||w||^2`` (Euclidean norms) matrix-free.

    Parameters
    ----------
    A : LinearOperator or matrix, shape (m, n)
        Needs ``matvec`` and ``rmatvec`` (``A^T``).
    b : array_like, shape (m,) or (m, k)
        Right-hand side(s); each of the ``k`` columns is solved independently (e.g. one per class).
    alpha : float
        Tikhonov weight ``>= 0``.
    method : {"cg", "lsqr"}
        ``"cg"``: CG on the normal equations ``(A^T A + alpha I) w = A^T b``, stopped at a
        relative residual ``rtol``; ``"lsqr"``: :func:`scipy.sparse.linalg.lsqr` with
        ``damp = sqrt(alpha)`` and ``atol = btol = rtol`` (better conditioned).
    x0 : array_like, shape (n,) or (n, k), optional
        Warm start (e.g. the previous classifier).
    rtol : float
        Relative tolerance, ``0 < rtol < 1``; for CG the normal-equations residual relative to
        ``|A^T b|`` (also with a warm start, so starting at the solution costs no iterations).
    maxiter : int, optional
        Iteration cap per column (default ``n`` for CG, LSQR's default otherwise).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x`` (shape ``(n,)`` or ``(n, k)``), ``fun`` (objective summed over columns), ``nit``
        (iterations summed over columns), ``status`` (``"converged"``, ``"max_iterations"``,
        ``"negative_curvature"`` for a singular unregularised system, ``"condition_limit"`` for
        LSQR, ...; the worst column's), ``success``, ``message``.
    """
    try:
        A = aslinearoperator(A)
    except TypeError as exc:
        raise TypeError(f"A must be a LinearOperator or a matrix, got {type(A).__name__}") from exc
    m, n = A.shape
    b = check_finite(as_float_array(b, "b", dtype=np.float64), "b")
    if b.ndim not in (1, 2) or b.shape[0] != m:
        raise ValueError(
            f"b must have shape ({m},) or ({m}, k) to match A of shape {A.shape}, got {b.shape}"
        )
    alpha = check_real(alpha, "alpha", 0.0)
    if method not in ("cg", "lsqr"):
        raise ValueError(f"method must be 'cg' or 'lsqr', got {method!r}")
    rtol = check_real(rtol, "rtol", 0.0, 1.0, low_open=True)
    rhs = b.reshape(m, -1)
    if x0 is None:
        start = np.zeros((n, rhs.shape[1]))
    else:
        start = check_finite(as_float_array(x0, "x0", dtype=np.float64), "x0")
        if start.shape != (n,) + b.shape[1:]:
            raise ValueError(f"x0 must have shape {(n,) + b.shape[1:]}, got {start.shape}")
        start = start.reshape(n, -1)
    alpha = float(alpha)
    normal = LinearOperator(
        (n, n), matvec=lambda v: A.rmatvec(A.matvec(v)) + alpha * v, dtype=np.float64
    )
    # LSQR with damp would damp only the correction from x0, so warm starts use the stacked
    # operator [A; sqrt(alpha) I] with right-hand side [b; 0] instead.
    stacked = LinearOperator(
        (m + n, n),
        dtype=np.float64,
        matvec=lambda v: np.r_[A.matvec(v), np.sqrt(alpha) * np.ravel(v)],
        rmatvec=lambda u: A.rmatvec(np.ravel(u)[:m]) + np.sqrt(alpha) * np.ravel(u)[m:],
    )

    solution = np.empty_like(start)
    iterations, reasons = 0, []
    for column in range(rhs.shape[1]):
        if method == "cg":
            # the tolerance is relative to the cold-start right-hand side A^T b, also when warm
            cold = np.linalg.norm(A.rmatvec(rhs[:, column]))
            residual = A.rmatvec(rhs[:, column]) - normal.matvec(start[:, column])
            solution[:, column] = start[:, column]
            if np.linalg.norm(residual) <= rtol * cold:
                reasons.append("converged")
                continue
            relative = rtol * cold / np.linalg.norm(residual) if cold > 0 else rtol
            cg = conjugate_gradient(normal, residual, rtol=relative, maxiter=maxiter)
            solution[:, column] += cg.x
            iterations += cg.iterations
            reasons.append(cg.reason.value)
        else:
            kwargs = {} if maxiter is None else {"iter_lim": maxiter}
            if x0 is None:
                out = lsqr(A, rhs[:, column], damp=np.sqrt(alpha), atol=rtol, btol=rtol, **kwargs)
            else:
                out = lsqr(
                    stacked,
                    np.r_[rhs[:, column], np.zeros(n)],
                    atol=rtol,
                    btol=rtol,
                    x0=start[:, column],
                    **kwargs,
                )
            solution[:, column] = out[0]
            iterations += int(out[2])
            reasons.append(_LSQR_REASONS[int(out[1])])
    misfit = np.column_stack([A.matvec(solution[:, c]) for c in range(rhs.shape[1])]) - rhs
    fun = 0.5 * float(np.sum(misfit**2)) + 0.5 * alpha * float(np.sum(solution**2))
    status = next((r for r in reasons if r != "converged"), "converged")
    return OptimizeResult(
        x=solution.reshape((n,) + b.shape[1:]),
        fun=fun,
        nit=iterations,
        status=status,
        success=status == "converged",
        message=f"{method}: {status} ({rhs.shape[1]} right-hand side(s), {iterations} iterations)",
    )
