"""Runge-Kutta steppers: tableau checks, convergence orders, checkpointing, stored linearisations,
input errors."""
import numpy as np
import pytest

from pdecontrol.control import (
    EXPLICIT_MIDPOINT,
    FORWARD_EULER,
    RK4,
    RungeKutta,
    get_stepper,
    integrate,
)
from problems.linear_ode import LinearDecayProblem

STEPPERS = [FORWARD_EULER, EXPLICIT_MIDPOINT, RK4]


class CountingDecay(LinearDecayProblem):
    """dy/dt = -theta y with a cache (theta itself) and counters of rhs / linearize calls."""

    def __init__(self, n):
        super().__init__(n)
        self.calls = {"rhs": 0, "linearize": 0}

    def rhs(self, y, control, static, t):
        self.calls["rhs"] += 1
        return super().rhs(y, control, static, t)

    def linearize(self, y, control, static, t):
        self.calls["linearize"] += 1
        return super().rhs(y, control, static, t), np.array(control["theta"])

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        assert cache is not None and not cache.flags.writeable
        return -dcontrol["theta"] * y - cache * dy


def _solve(stepper, n_steps, checkpoint_every=None, theta=None, store_linearization=False,
           problem=None):
    """dy/dt = -theta(t) y with theta(t) piecewise constant (the controls of each step)."""
    problem = LinearDecayProblem(2) if problem is None else problem
    theta = np.ones((n_steps, 2)) * [0.7, 1.9] if theta is None else theta
    y0 = np.array([[1.0, -2.0], [0.5, 3.0]])
    return integrate(problem, stepper, y0, {"theta": theta}, {}, final_time=1.5, n_steps=n_steps,
                     checkpoint_every=checkpoint_every, store_linearization=store_linearization)


@pytest.mark.parametrize("stepper, order", [(FORWARD_EULER, 1), (EXPLICIT_MIDPOINT, 2), (RK4, 4)],
                         ids=lambda v: getattr(v, "name", v))
def test_convergence_order(stepper, order):
    exact = np.array([[1.0, -2.0], [0.5, 3.0]]) * np.exp(-1.5 * np.array([0.7, 1.9]))
    errors = [np.abs(_solve(stepper, n).final_state - exact).max() for n in (20, 40, 80)]
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(observed, order, atol=0.1)


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
@pytest.mark.parametrize("interval", [None, 1, 3, 7, 50])
@pytest.mark.parametrize("store_linearization", [False, True])
def test_checkpointing_and_stored_linearizations_give_identical_derivatives(
        stepper, interval, store_linearization, rng):
    theta = rng.uniform(0.2, 2.0, (7, 2))
    stored = _solve(stepper, 7, theta=theta)
    checkpointed = _solve(stepper, 7, checkpoint_every=interval, theta=theta,
                          store_linearization=store_linearization)
    y_bar = rng.standard_normal((2, 2))
    a, b = stored.adjoint(y_bar), checkpointed.adjoint(y_bar)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1]["theta"], b[1]["theta"])
    dtheta = {"theta": rng.standard_normal((7, 2))}
    dy0 = rng.standard_normal((2, 2))
    np.testing.assert_array_equal(stored.tangent(dy0, dtheta, {}),
                                  checkpointed.tangent(dy0, dtheta, {}))
    assert stored.stored_states == 8
    assert checkpointed.stored_states == len(set(range(0, 8, interval or 1)) | {7})


def test_checkpoint_memory_accounting():
    trajectory = _solve(FORWARD_EULER, 12, checkpoint_every=4)
    assert trajectory.stored_states == 4            # y0, y4, y8, y12
    trajectory.adjoint(np.ones((2, 2)))
    assert trajectory.peak_states == 4 + 3           # plus one recomputed segment
    assert trajectory.recomputed_steps == 9          # 3 per segment
    full = _solve(FORWARD_EULER, 12)
    full.adjoint(np.ones((2, 2)))
    assert full.stored_states == full.peak_states == 13 and full.recomputed_steps == 0


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
def test_stored_linearizations_are_reused_by_every_sweep(stepper, rng):
    """All states stored: the forward solve linearises each stage once, the sweeps never again."""
    n_steps, stages = 6, stepper.n_stages
    problem = CountingDecay(2)
    trajectory = _solve(stepper, n_steps, store_linearization=True, problem=problem)
    assert problem.calls == {"rhs": 0, "linearize": n_steps * stages}
    for _ in range(3):
        trajectory.tangent(rng.standard_normal((2, 2)),
                           {"theta": rng.standard_normal((n_steps, 2))}, {})
        trajectory.adjoint(rng.standard_normal((2, 2)))
    assert problem.calls == {"rhs": 0, "linearize": n_steps * stages}
    assert trajectory.stored_linearizations == trajectory.peak_linearizations == n_steps
    assert trajectory.peak_states == trajectory.stored_states == n_steps + 1
    # without storing, each sweep linearises every stage again
    problem = CountingDecay(2)
    trajectory = _solve(stepper, n_steps, problem=problem)
    trajectory.tangent(rng.standard_normal((2, 2)), {"theta": rng.standard_normal((n_steps, 2))},
                       {})
    trajectory.adjoint(rng.standard_normal((2, 2)))
    assert problem.calls == {"rhs": n_steps * stages, "linearize": 2 * n_steps * stages}
    assert trajectory.stored_linearizations == 0 and trajectory.peak_linearizations == 1


def test_checkpointed_adjoint_keeps_one_segment_of_linearizations():
    """Checkpointing: the adjoint sweep recomputes each segment with linearize instead of rhs."""
    n_steps, interval, stages = 12, 4, RK4.n_stages
    problem = CountingDecay(2)
    trajectory = _solve(RK4, n_steps, checkpoint_every=interval, store_linearization=True,
                        problem=problem)
    assert problem.calls == {"rhs": n_steps * stages, "linearize": 0}
    assert trajectory.stored_linearizations == 0
    trajectory.adjoint(np.ones((2, 2)))
    assert problem.calls == {"rhs": n_steps * stages, "linearize": n_steps * stages}
    assert trajectory.peak_linearizations == interval and trajectory.recomputed_steps == 9
    assert trajectory.peak_states == 4 + 3
    problem = CountingDecay(2)
    trajectory = _solve(RK4, n_steps, checkpoint_every=interval, problem=problem)
    trajectory.adjoint(np.ones((2, 2)))                  # recompute with rhs, then linearise
    assert problem.calls == {"rhs": (n_steps + 9) * stages, "linearize": n_steps * stages}
    assert trajectory.peak_linearizations == 1 and trajectory.peak_states == 4 + 3


def test_stored_caches_are_read_only(rng):
    class WritesCache(CountingDecay):
        def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
            cache[0] = 0.0
            return super().rhs_adjoint(y, control, static, t, f_bar, cache)

    trajectory = _solve(FORWARD_EULER, 3, store_linearization=True, problem=WritesCache(2))
    with pytest.raises(ValueError, match="read-only"):
        trajectory.adjoint(np.ones((2, 2)))


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
    with pytest.raises(TypeError, match="store_linearization must be True or False"):
        integrate(problem, "euler", y0, controls, {}, final_time=1.0, n_steps=3,
                  store_linearization="yes")
