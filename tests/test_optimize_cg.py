"""Conjugate gradients: convergence, preconditioning, Steihaug truncation, errors."""

import numpy as np
import pytest
from scipy.sparse import diags
from scipy.sparse.linalg import LinearOperator

from pdecontrol.optimize import CGStopReason, conjugate_gradient


def spd_matrix(rng, n, condition=100.0):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q @ np.diag(np.geomspace(1.0, condition, n)) @ q.T


def indefinite_matrix(rng, n, n_negative):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.r_[
        -np.geomspace(0.5, 2.0, n_negative), np.geomspace(1.0, 10.0, n - n_negative)
    ]
    return q @ np.diag(eigenvalues) @ q.T


def test_solves_spd_system_to_requested_tolerance(rng):
    A = spd_matrix(rng, 30)
    b = rng.standard_normal(30)
    result = conjugate_gradient(A, b, rtol=1e-10, maxiter=200)
    assert result.reason is CGStopReason.CONVERGED and result.converged
    assert np.linalg.norm(A @ result.x - b) <= 1e-10 * np.linalg.norm(b) * 1.0001
    assert result.relative_residuals.shape == (result.iterations + 1,)
    assert result.relative_residuals[0] == 1.0 and result.relative_residual <= 1e-10
    np.testing.assert_allclose(result.x, np.linalg.solve(A, b), rtol=1e-7)


def test_accepts_linear_operator_sparse_matrix_and_callable(rng):
    A = spd_matrix(rng, 12)
    b = rng.standard_normal(12)
    expected = np.linalg.solve(A, b)
    operator = LinearOperator(A.shape, matvec=lambda v: A @ v)
    for candidate in (operator, A, lambda v: A @ v):
        np.testing.assert_allclose(
            conjugate_gradient(candidate, b, rtol=1e-12, maxiter=100).x, expected, rtol=1e-8
        )
    diagonal = np.arange(1.0, 13.0)
    np.testing.assert_allclose(
        conjugate_gradient(diags(diagonal), b, rtol=1e-12).x, b / diagonal, rtol=1e-10
    )


def test_inverse_weight_preconditioner_measures_the_dual_norm(rng):
    # A = diag(sqrt(m)) S diag(sqrt(m)) with S well conditioned: M = diag(1/m) undoes the badly
    # scaled weights; the reported residual is sqrt(r^T M r) / sqrt(b^T M b).
    n = 20
    weights = np.geomspace(1e-4, 1.0, n)
    A = np.sqrt(weights)[:, None] * spd_matrix(rng, n, condition=10.0) * np.sqrt(weights)
    b = rng.standard_normal(n)
    result = conjugate_gradient(A, b, rtol=1e-8, maxiter=n, preconditioner=lambda r: r / weights)
    assert result.converged
    r = b - A @ result.x
    measured = np.sqrt(r @ (r / weights)) / np.sqrt(b @ (b / weights))
    np.testing.assert_allclose(result.relative_residual, measured, rtol=1e-4)
    assert not conjugate_gradient(A, b, rtol=1e-8, maxiter=result.iterations).converged


def test_max_iterations_reason_and_zero_rhs(rng):
    A = spd_matrix(rng, 40, condition=1e4)
    result = conjugate_gradient(A, rng.standard_normal(40), rtol=1e-12, maxiter=3)
    assert result.reason is CGStopReason.MAX_ITERATIONS and result.iterations == 3
    zero = conjugate_gradient(A, np.zeros(40))
    assert zero.converged and zero.iterations == 0 and not zero.x.any()


def test_negative_curvature_at_first_iteration_returns_steepest_descent(rng):
    A = -spd_matrix(rng, 10)  # negative definite: p^T A p < 0 for p = b
    b = rng.standard_normal(10)
    result = conjugate_gradient(A, b, rtol=1e-8)
    assert result.reason is CGStopReason.NEGATIVE_CURVATURE and result.iterations == 0
    np.testing.assert_array_equal(result.x, b)
    weights = rng.uniform(0.5, 2.0, 10)
    preconditioned = conjugate_gradient(A, b, preconditioner=lambda r: r / weights)
    np.testing.assert_array_equal(preconditioned.x, b / weights)


@pytest.mark.parametrize("n_negative", [1, 3, 10])
def test_truncation_on_indefinite_operator_gives_finite_descent_direction(rng, n_negative):
    n = 25
    A = indefinite_matrix(rng, n, n_negative)
    for _ in range(5):
        gradient = rng.standard_normal(n)
        result = conjugate_gradient(A, -gradient, rtol=1e-10, maxiter=n)
        assert np.all(np.isfinite(result.x))
        assert gradient @ result.x < 0  # a descent direction for <g, p>
        if result.reason is CGStopReason.NEGATIVE_CURVATURE:
            assert result.iterations < n


def test_non_finite_operator_is_reported_not_propagated(rng):
    calls = []
    A = spd_matrix(rng, 8)

    def operator(v):
        calls.append(1)
        return np.full_like(v, np.nan) if len(calls) > 2 else A @ v

    b = rng.standard_normal(8)
    result = conjugate_gradient(operator, b, rtol=1e-14, maxiter=8)
    assert result.reason is CGStopReason.NON_FINITE
    assert np.all(np.isfinite(result.x)) and b @ result.x > 0


def test_reasons_are_strings():
    assert CGStopReason.NEGATIVE_CURVATURE == "negative_curvature"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"rtol": -1.0}, "rtol"), ({"rtol": 1.5}, "rtol"), ({"maxiter": 0}, "maxiter")],
)
def test_bad_options_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        conjugate_gradient(np.eye(3), np.ones(3), **kwargs)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="b contains 1 non-finite"):
        conjugate_gradient(np.eye(3), np.array([1.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="A has shape"):
        conjugate_gradient(np.eye(4), np.ones(3))
    with pytest.raises(ValueError, match="square"):
        conjugate_gradient(np.ones((3, 4)), np.ones(3))
    with pytest.raises(TypeError, match="A must be"):
        conjugate_gradient("matrix", np.ones(3))
    with pytest.raises(ValueError, match="preconditioner is not positive definite"):
        conjugate_gradient(np.eye(3), np.ones(3), preconditioner=-np.eye(3))


def test_residual_norm_can_differ_from_the_preconditioner(rng):
    """With ``norm``, the stopping test and the residual history use that norm."""
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = q @ np.diag(np.linspace(1.0, 50.0, 8)) @ q.T
    b = rng.standard_normal(8)
    M = np.diag(1.0 / np.diag(A))
    result = conjugate_gradient(A, b, rtol=1e-3, preconditioner=M, norm=np.linalg.norm)
    assert result.reason.value == "converged"
    assert np.linalg.norm(b - A @ result.x) / np.linalg.norm(b) == pytest.approx(
        result.relative_residuals[-1], rel=1e-8)
    assert result.relative_residuals[-1] <= 1e-3
