"""The analytic linear decay problem: framework gradient = closed-form discrete gradient."""
import numpy as np
import pytest

from pdecontrol.control import (
    EXPLICIT_MIDPOINT,
    FORWARD_EULER,
    RK4,
    ControlFunctional,
    refine_in_time,
)
from pdecontrol.verify import verify_problem
from problems.linear_ode import LinearDecayProblem, euler_objective_and_gradient

N, N_STEPS, T = 3, 6, 1.7


def _setup(rng, **options):
    problem = LinearDecayProblem(N)
    layout = problem.layout(N_STEPS)
    data, targets = rng.standard_normal((8, N)), rng.standard_normal((8, N))
    functional = ControlFunctional(problem, layout, data, targets, final_time=T, **options)
    return functional, layout.random(rng, 0.7)


@pytest.mark.parametrize("checkpoint_every", [None, 4])
def test_euler_gradient_equals_closed_form(rng, checkpoint_every):
    functional, p = _setup(rng, checkpoint_every=checkpoint_every, chunk_size=3)
    value, gradient = functional.value_and_gradient(p.flat)
    exact_value, exact = euler_objective_and_gradient(p["theta"], p["shift"], p["gain"],
                                                      functional.data, functional.targets, T)
    assert value == pytest.approx(exact_value, rel=1e-14)
    np.testing.assert_allclose(gradient, functional.layout.flatten(exact), rtol=1e-12, atol=1e-15)


def test_closed_form_handles_a_zero_factor(rng):
    """The closed form must not divide by 1 - dt theta_j (zero here)."""
    functional, p = _setup(rng)
    p["theta"][2, 1] = N_STEPS / T
    _, gradient = functional.value_and_gradient(p.flat)
    _, exact = euler_objective_and_gradient(p["theta"], p["shift"], p["gain"], functional.data,
                                            functional.targets, T)
    assert np.all(np.isfinite(exact["theta"]))
    np.testing.assert_allclose(gradient, functional.layout.flatten(exact), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("stepper", [FORWARD_EULER, EXPLICIT_MIDPOINT, RK4], ids=lambda s: s.name)
def test_verify_problem_passes_for_every_stepper(rng, stepper):
    functional, p = _setup(rng, stepper=stepper)
    report = verify_problem(functional, p.flat, rng=rng)
    assert report.passed, report
    orders = report.results["functional taylor"].orders
    np.testing.assert_allclose(orders, 2.0, atol=0.1)
    assert report.results["rhs adjoint"].relative_error < 1e-10


def test_converges_to_the_continuous_solution(rng):
    """With constant theta, y(T) = exp(-theta T) y0; RK4 on 40 steps: relative error 1.6e-6
    measured."""
    problem = LinearDecayProblem(N)
    layout = problem.layout(40)
    p = layout.zeros()
    p["theta"][...] = [0.3, 1.0, 2.0]
    p["gain"][...] = 1.0
    data = rng.standard_normal((4, N))
    functional = ControlFunctional(problem, layout, data, np.zeros((4, N)), final_time=T,
                                   stepper=RK4)
    np.testing.assert_allclose(functional.forward(p.flat).outputs,
                               data * np.exp(-T * p["theta"][0]), rtol=3e-6)
    # refining constant controls in time leaves them unchanged
    refined = refine_in_time(p, 80)["theta"]
    np.testing.assert_allclose(refined, np.broadcast_to([0.3, 1.0, 2.0], refined.shape), rtol=1e-14)


def test_bad_n():
    with pytest.raises(ValueError, match="integer >= 1"):
        LinearDecayProblem(0)
