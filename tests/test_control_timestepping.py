"""Runge-Kutta steppers: tableau checks, convergence orders, checkpointing, input errors."""
import numpy as np
import pytest

from pdecontrol.control import EXPLICIT_MIDPOINT, FORWARD_EULER, RK4, RungeKutta, get_stepper, integrate
from problems.linear_ode import LinearDecayProblem

STEPPERS = [FORWARD_EULER, EXPLICIT_MIDPOINT, RK4]


def _solve(stepper, n_steps, checkpoint_every=None, theta=None):
    """dy/dt = -theta(t) y with theta(t) piecewise constant (the controls of each step)."""
    problem = LinearDecayProblem(2)
    theta = np.ones((n_steps, 2)) * [0.7, 1.9] if theta is None else theta
    y0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    return integrate(problem, stepper, y0, {"theta": theta}, {}, final_time=1.5, n_steps=n_steps,
                     checkpoint_every=checkpoint_every)


@pytest.mark.parametrize("stepper, order", [(FORWARD_EULER, 1), (EXPLICIT_MIDPOINT, 2), (RK4, 4)],
                         ids=lambda v: getattr(v, "name", v))
def test_convergence_order(stepper, order):
    exact = np.array([[1.0, -2.0], [0.5, 3.0]]) * np.exp(-1.5 * np.array([0.7, 1.9]))
    errors = [np.abs(_solve(stepper, n).final_state - exact).max() for n in (20, 40, 80)]
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(observed, order, atol=0.1)


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
@pytest.mark.parametrize("interval", [1, 3, 7, 50])
def test_checkpointing_gives_identical_adjoints(stepper, interval, rng):
    theta = rng.uniform(0.2, 2.0, (7, 2))
    stored = _solve(stepper, 7, theta=theta)
    checkpointed = _solve(stepper, 7, checkpoint_every=interval, theta=theta)
    y_bar = rng.standard_normal((2, 2))
    a, b = stored.adjoint(y_bar), checkpointed.adjoint(y_bar)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["theta"], b[1]["theta"])
    dtheta = {"theta": rng.standard_normal((7, 2))}
    dy0 = rng.standard_normal((2, 2))
    np.testing.assert_array_equal(stored.tangent(dy0, dtheta, {}), checkpointed.tangent(dy0, dtheta, {}))
    assert stored.stored_states == 8
    assert checkpointed.stored_states == len(set(range(0, 8, interval)) | {7})


def test_checkpoint_memory_accounting():
    trajectory = _solve(FORWARD_EULER, 12, checkpoint_every=4)
    assert trajectory.stored_states == 4            # y0, y4, y8, y12
    trajectory.adjoint(np.ones((2, 2)))
    assert trajectory.peak_states == 4 + 3           # plus one recomputed segment
    assert trajectory.recomputed_steps == 9          # 3 per segment
    full = _solve(FORWARD_EULER, 12)
    full.adjoint(np.ones((2, 2)))
    assert full.stored_states == full.peak_states == 13 and full.recomputed_steps == 0


def test_tableau_validation_and_names():
    with pytest.raises(ValueError, match="strictly lower"):
        RungeKutta([[0.5]], [1.0])
    with pytest.raises(ValueError, match="must be"):
        RungeKutta([[0.0, 0.0], [1.0, 0.0]], [1.0])
    assert get_stepper("rk4") is RK4 and get_stepper("Euler") is FORWARD_EULER
    with pytest.raises(ValueError, match="stepper"):
        get_stepper("leapfrog")
    np.testing.assert_allclose(RK4.c, [0, 0.5, 0.5, 1])


def test_time_and_step_errors():
    problem = LinearDecayProblem(1)
    y0, controls = np.ones((1, 1)), {"theta": np.ones((3, 1))}
    with pytest.raises(ValueError, match="final_time"):
        integrate(problem, "euler", y0, controls, {}, final_time=0.0, n_steps=3)
    with pytest.raises(ValueError, match="final_time"):
        integrate(problem, "euler", y0, controls, {}, final_time=-1.0, n_steps=3)
    with pytest.raises(ValueError, match="n_steps"):
        integrate(problem, "euler", y0, controls, {}, final_time=1.0, n_steps=0)
    with pytest.raises(ValueError, match="leading axis"):
        integrate(problem, "euler", y0, controls, {}, final_time=1.0, n_steps=4)
    with pytest.raises(ValueError, match="checkpoint_every"):
        integrate(problem, "euler", y0, controls, {}, final_time=1.0, n_steps=3, checkpoint_every=0)
    with pytest.raises(ValueError, match="dt must be > 0"):
        FORWARD_EULER.step(problem, y0, {"theta": np.ones(1)}, {}, 0.0, -0.1)
    with pytest.raises(TypeError, match="ControlProblem"):
        integrate(object(), "euler", y0, controls, {}, final_time=1.0, n_steps=3)
