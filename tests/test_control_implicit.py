"""Implicit theta-method steppers: convergence orders, exact discrete tangents and adjoints
(transposed solves), the factorization reuse, inexact AMG solves accounted for by verification."""

import numpy as np
import pytest
import scipy.sparse as sp

from pdecontrol.control import (
    ControlFunctional,
    ControlProblem,
    ParameterLayout,
    get_stepper,
    integrate,
)
from pdecontrol.control.implicit import ThetaMethod, backward_euler, crank_nicolson
from pdecontrol.linear_solvers import AMGConjugateGradient
from pdecontrol.verify import adjoint_test, gauss_newton_test, taylor_test, verify_problem


def laplacian(n: int, h: float) -> sp.csr_matrix:
    """1D ``-d2/dx2`` with zero Dirichlet values outside ``n`` nodes (SPD)."""
    return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1],
                    format="csr") / h**2


class ScaledDiffusion(ControlProblem):
    """``dy/dt = -kappa(t) D y + s`` in 1D: a control ``kappa`` per step, a static source ``s``."""

    def __init__(self, n=12):
        super().__init__()
        self.matrix = laplacian(n, 1.0 / n)

    def rhs(self, y, control, static, t):
        return -control["kappa"] * (self.matrix @ y.T).T + static["s"]

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return (-control["kappa"] * (self.matrix @ dy.T).T - dcontrol["kappa"]
                * (self.matrix @ y.T).T + dstatic["s"])

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        y_bar = -control["kappa"] * (self.matrix @ f_bar.T).T
        kappa_bar = -np.sum(f_bar * (self.matrix @ y.T).T)
        return y_bar, {"kappa": np.array([kappa_bar])}, {"s": f_bar.sum(axis=0)}

    def rhs_jacobian(self, control, static, t):
        return -float(control["kappa"][0]) * self.matrix


def _functional(stepper, n_steps=6, n=12):
    rng = np.random.default_rng(3)
    layout = ParameterLayout(n_steps, controls={"kappa": (1,)}, static={"s": (n,)})
    data = rng.standard_normal((3, n))
    return ControlFunctional(ScaledDiffusion(n), layout, data, rng.standard_normal((3, n)),
                             final_time=0.05, stepper=stepper,
                             observation_times=(0.025, 0.05)[-1:]), layout


def _point(layout):
    params = layout.zeros()
    params["kappa"][...] = np.linspace(0.5, 1.5, layout.n_steps)[:, None]
    params["s"][...] = np.sin(np.linspace(0, 3, params["s"].size))
    return params.flat.copy()


class Decay(ControlProblem):
    """``dy/dt = -lam y`` (scalar), exact ``y(T) = exp(-lam T) y0``."""

    lam = 3.0

    def rhs(self, y, control, static, t):
        return -self.lam * y

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return -self.lam * dy

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        return -self.lam * f_bar, {}, {}

    def rhs_jacobian(self, control, static, t):
        return sp.csr_matrix([[-self.lam]])


@pytest.mark.parametrize("stepper, order", [(backward_euler(), 1.0), (crank_nicolson(), 2.0)])
def test_convergence_order_in_time(stepper, order):
    errors = []
    for n in (16, 32, 64):
        trajectory = integrate(Decay(), stepper, np.ones((1, 1)), {}, {}, final_time=1.0,
                               n_steps=n)
        errors.append(abs(trajectory.final_state[0, 0] - np.exp(-3.0)))
    measured = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(measured, order, atol=0.08)


@pytest.mark.parametrize("name", ["backward_euler", "crank_nicolson"])
def test_discrete_derivatives_are_exact_with_sparse_lu(name):
    functional, layout = _functional(get_stepper(name))
    x = _point(layout)
    report = verify_problem(functional, x)
    assert report.passed, report
    assert report.results["rhs jacobian"].relative_error < 1e-12


def test_step_tangent_and_adjoint_are_transposes():
    stepper = crank_nicolson()
    problem = ScaledDiffusion()
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 12))
    control, static = {"kappa": np.array([0.7])}, {"s": rng.standard_normal(12)}
    step = stepper.linearize(problem, y, control, static, 0.1, 0.01)

    def tangent(v):
        dy, dk, ds = v[:24].reshape(2, 12), v[24:25], v[25:]
        return stepper.step_tangent(problem, step, control, static, 0.1, 0.01, dy,
                                    {"kappa": dk}, {"s": ds}).reshape(-1)

    def adjoint(w):
        c_bar, s_bar = {"kappa": np.zeros(1)}, {"s": np.zeros(12)}
        y_bar = stepper.step_adjoint(problem, step, control, static, 0.1, 0.01,
                                     w.reshape(2, 12), c_bar, s_bar)
        return np.concatenate([np.ravel(y_bar), c_bar["kappa"], s_bar["s"]])

    result = adjoint_test(tangent, adjoint, (37,), (24,), rng=rng)
    assert result.passed and result.relative_error < 1e-12, result


def test_one_factorization_serves_every_step_and_sweep():
    stepper = backward_euler()
    functional, layout = _functional(stepper)
    params = layout.unflatten(_point(layout))
    params["kappa"][...] = 1.0  # the same step matrix at every step
    x = params.flat
    functional.value_and_gradient(x)
    operator = functional.gauss_newton_operator(x)
    for _ in range(3):
        operator.matvec(np.ones(x.size))
    assert len(stepper.cache) == 1 and stepper.cache.setups == 1


def test_amg_solves_are_exact_to_their_tolerance():
    solver = AMGConjugateGradient("sa", rtol=1e-9)
    functional, layout = _functional(ThetaMethod(1.0, solver), n=32)
    exact, _ = _functional(backward_euler(), n=32)
    x = _point(layout)
    stepper = functional.stepper
    value, gradient = functional.value_and_gradient(x)
    value_lu, gradient_lu = exact.value_and_gradient(x)
    assert stepper.accuracy > 0
    assert abs(value - value_lu) <= 100 * stepper.accuracy * abs(value_lu)
    assert np.linalg.norm(gradient - gradient_lu) <= 1e3 * stepper.accuracy * np.linalg.norm(
        gradient_lu)
    report = verify_problem(functional, x, solve_accuracy=stepper.accuracy)
    assert report.passed, report
    # this functional is nearly quadratic: longer steps lift the remainders above the noise floor
    result = taylor_test(functional, x, eps=0.2 * 0.5 ** np.arange(6), noise=10 * stepper.accuracy)
    assert result.passed and np.sum(np.isfinite(result.orders)) >= 3, result
    assert gauss_newton_test(functional, x, tolerance=100 * stepper.accuracy).passed


def test_implicit_stepper_errors():
    with pytest.raises(ValueError, match=r"theta must lie in \[0, 1\]"):
        ThetaMethod(1.5)
    problem = ScaledDiffusion()
    problem.rhs_jacobian = lambda control, static, t: np.eye(12)
    with pytest.raises(TypeError, match="must return a scipy.sparse matrix"):
        integrate(problem, backward_euler(), np.zeros((1, 12)), {"kappa": np.ones((2, 1))},
                  {"s": np.zeros(12)}, final_time=1.0, n_steps=2)

    class Explicit(Decay):
        rhs_jacobian = ControlProblem.rhs_jacobian

    with pytest.raises(NotImplementedError, match="implicit steppers need one"):
        integrate(Explicit(), backward_euler(), np.ones((1, 1)), {}, {}, final_time=1.0,
                  n_steps=2)
