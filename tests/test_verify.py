"""pdecontrol.verify: the checks pass on correct code, FAIL on wrong code, and move nothing."""
import numpy as np
import pytest

from pdecontrol.control import ControlFunctional
from pdecontrol.functional import ReducedFunctional
from pdecontrol.verify import (
    adjoint_test,
    gauss_newton_test,
    taylor_test,
    taylor_test_map,
    verify_problem,
)
from problems.linear_ode import LinearDecayProblem


class Quadratic(ReducedFunctional):
    """J(x) = 1/2 x^T A x + cubic term; ``gradient_error`` corrupts the gradient."""

    def __init__(self, matrix, gradient_error=0.0):
        self.matrix, self.gradient_error = matrix, gradient_error

    @property
    def size(self):
        return self.matrix.shape[0]

    def value_and_gradient(self, x, examples=None):
        value = 0.5 * x @ self.matrix @ x + np.sum(x ** 3)
        return value, self.matrix @ x + 3 * x ** 2 + self.gradient_error

    def gauss_newton_operator(self, x, examples=None):
        from scipy.sparse.linalg import aslinearoperator
        return aslinearoperator(self.matrix)


def _functional(rng, problem=None):
    problem = problem or LinearDecayProblem(2)
    return ControlFunctional(problem, problem.layout(3), rng.standard_normal((4, 2)),
                             rng.standard_normal((4, 2)), final_time=1.0, stepper="midpoint")


def test_taylor_passes_and_fails(rng):
    a = rng.standard_normal((5, 5))
    a = a @ a.T
    x = rng.standard_normal(5)
    good = taylor_test(Quadratic(a), x, rng=rng)
    assert good.passed and np.allclose(good.orders, 2.0, atol=0.1)
    assert "order" in repr(good) and "passed=True" in repr(good)
    bad = taylor_test(Quadratic(a, gradient_error=0.05), x, rng=rng)
    assert not bad.passed
    assert bad.orders[-1] < 1.5


def test_taylor_of_an_exact_linearisation_passes():
    linear = taylor_test_map(lambda v: 3.0 * v, lambda dv: 3.0 * dv, np.ones(4))
    assert linear.passed and np.all(np.isnan(linear.orders))
    wrong = taylor_test_map(lambda v: 3.0 * v, lambda dv: 2.9 * dv, np.ones(4))
    assert not wrong.passed


def test_adjoint_test_detects_a_wrong_transpose(rng):
    a = rng.standard_normal((3, 4))
    assert adjoint_test(lambda u: a @ u, lambda w: a.T @ w, 4, 3, rng=rng).relative_error < 1e-14
    b = a + 1e-6 * rng.standard_normal(a.shape)
    result = adjoint_test(lambda u: a @ u, lambda w: b.T @ w, 4, 3, rng=rng)
    assert not result.passed and "passed=False" in repr(result)
    with pytest.raises(ValueError, match="shape"):
        adjoint_test(lambda u: a @ u, lambda w: a.T @ w, 4, 2, rng=rng)


def test_gauss_newton_test_detects_asymmetry_and_indefiniteness(rng):
    a = rng.standard_normal((4, 4))
    assert not gauss_newton_test(Quadratic(a), np.zeros(4), rng=rng).passed
    assert not gauss_newton_test(Quadratic(-np.eye(4)), np.zeros(4), rng=rng).passed
    assert gauss_newton_test(Quadratic(a @ a.T), np.zeros(4), rng=rng).passed


def test_verify_problem_leaves_everything_where_it_was(rng):
    functional = _functional(rng)
    x = functional.layout.random(rng, 0.5).flat.copy()
    x_before = x.copy()
    data_before, targets_before = functional.data.copy(), functional.targets.copy()
    value_before = functional.value_and_gradient(x)
    report = verify_problem(functional, x, rng=rng)
    assert report.passed, report
    np.testing.assert_array_equal(x, x_before)
    assert x.flags.writeable
    np.testing.assert_array_equal(functional.data, data_before)
    np.testing.assert_array_equal(functional.targets, targets_before)
    value_after = functional.value_and_gradient(x)
    assert value_after[0] == value_before[0]
    np.testing.assert_array_equal(value_after[1], value_before[1])
    assert "rhs adjoint" in repr(report) and report.failed == []


class WrongAdjoint(LinearDecayProblem):
    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        y_bar, c_bar, s_bar = super().rhs_adjoint(y, control, static, t, f_bar, cache)
        return y_bar, {"theta": 1.01 * c_bar["theta"]}, s_bar


class WrongTangent(LinearDecayProblem):
    def output_tangent(self, y_final, static, dy_final, dstatic):
        return static["gain"] * dy_final           # forgets the gain direction


def test_verify_problem_names_the_broken_pair(rng):
    broken = _functional(rng, WrongAdjoint(2))
    report = verify_problem(broken, _functional(rng).layout.random(rng).flat, rng=rng)
    assert not report.passed
    assert "rhs adjoint" in report.failed and "functional taylor" in report.failed
    assert "rhs taylor" not in report.failed
    broken = _functional(rng, WrongTangent(2))
    report = verify_problem(broken, _functional(rng).layout.random(rng).flat, rng=rng)
    assert "output taylor" in report.failed and "output adjoint" in report.failed
    # the gradient uses the adjoint, which is right
    assert "functional taylor" not in report.failed


def test_verify_problem_type_error(rng):
    with pytest.raises(TypeError, match="ControlFunctional"):
        verify_problem(Quadratic(np.eye(2)), np.zeros(2))
