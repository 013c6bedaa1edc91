"""SumFunctional and TransformedFunctional: values, Taylor tests, Gauss-Newton structure, errors."""
import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

from pdecontrol.control import ControlFunctional, SumFunctional, Tikhonov, TransformedFunctional
from pdecontrol.verify import adjoint_test, gauss_newton_test, taylor_test
from problems.linear_ode import LinearDecayProblem

N, N_STEPS = 3, 4


def _functional(rng, n_steps=N_STEPS, n_examples=6, **options):
    problem = LinearDecayProblem(N)
    return ControlFunctional(problem, problem.layout(n_steps), rng.standard_normal((n_examples, N)),
                             rng.standard_normal((n_examples, N)), final_time=1.0, **options)


def test_sum_value_gradient_and_gauss_newton(rng):
    j1 = _functional(rng)
    j2 = _functional(rng, stepper="rk4", regularizers=[Tikhonov("gain", 0.5)])
    total = SumFunctional([j1, j2], coefficients=[0.3, 2.0])
    x = j1.layout.random(rng, 0.5).flat.copy()
    assert total.value(x) == pytest.approx(0.3 * j1.value(x) + 2.0 * j2.value(x), rel=1e-14)
    np.testing.assert_allclose(total.gradient(x), 0.3 * j1.gradient(x) + 2.0 * j2.gradient(x),
                               rtol=1e-13)
    assert taylor_test(total, x, rng=rng).passed
    assert gauss_newton_test(total, x, rng=rng).passed
    ex = np.array([1, 4])
    assert total.n_examples == 6
    assert total.value(x, ex) == pytest.approx(0.3 * j1.value(x, ex) + 2.0 * j2.value(x, ex),
                                               rel=1e-14)


def test_transformed_is_composition(rng):
    """J(A x + c) with A mapping a 2-step parameter vector to the 4-step one (time refinement)."""
    coarse, fine = _functional(rng, n_steps=2), _functional(rng, n_steps=N_STEPS)
    a = rng.standard_normal((fine.size, coarse.size)) / np.sqrt(coarse.size)
    c = rng.standard_normal(fine.size) * 0.1
    composed = TransformedFunctional(fine, aslinearoperator(a), offset=c, weights=coarse.weights)
    x = coarse.layout.random(rng, 0.2).flat.copy()
    assert composed.size == coarse.size and composed.n_examples == fine.n_examples
    assert composed.value(x) == pytest.approx(fine.value(a @ x + c), rel=1e-14)
    np.testing.assert_allclose(composed.gradient(x), a.T @ fine.gradient(a @ x + c), rtol=1e-12)
    result = taylor_test(composed, x, rng=rng)
    assert result.passed, result
    assert gauss_newton_test(composed, x, rng=rng).passed
    g_inner = fine.gauss_newton_operator(a @ x + c)
    v = rng.standard_normal(x.size)
    np.testing.assert_allclose(composed.gauss_newton_product(x, v), a.T @ g_inner.matvec(a @ v),
                               rtol=1e-12)
    op = composed.gauss_newton_operator(x)
    assert adjoint_test(op.matvec, op.rmatvec, x.shape, x.shape, rng=rng).passed


def test_errors(rng):
    j1, j_other = _functional(rng), _functional(rng, n_steps=2)
    with pytest.raises(ValueError, match="same size"):
        SumFunctional([j1, j_other])
    with pytest.raises(ValueError, match="coefficients"):
        SumFunctional([j1, j1], coefficients=[1.0, -1.0])
    with pytest.raises(ValueError, match="empty"):
        SumFunctional([])
    with pytest.raises(ValueError, match="operator must have shape"):
        TransformedFunctional(j1, np.eye(3))
    with pytest.raises(TypeError, match="ReducedFunctional"):
        TransformedFunctional(object(), np.eye(3))
    mixed = SumFunctional([j1, _functional(rng, n_examples=5)])
    with pytest.raises(ValueError, match="not separable"):
        mixed.value(np.zeros(j1.size), np.array([0]))
