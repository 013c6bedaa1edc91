"""First-order baselines: steepest descent and Adam on the ReducedFunctional interface."""

import numpy as np
import pytest

from optimize_problems import ExampleRecorder, LinearLeastSquares, exponential_problem
from pdecontrol.optimize import Armijo, Stopping, adam, steepest_descent


@pytest.fixture
def least_squares(rng):
    return LinearLeastSquares(
        rng.standard_normal((48, 6)),
        rng.standard_normal(48),
        alpha=1e-2,
        weights=rng.uniform(0.5, 2.0, 6),
    )


def test_steepest_descent_decreases_objective_with_armijo_steps(least_squares):
    armijo = Armijo(c1=1e-3)
    result = steepest_descent(
        least_squares,
        np.full(6, 3.0),
        line_search=armijo,
        stopping=Stopping(maxiter=200, grtol=1e-6),
    )
    h = result.history
    steps = h.isel(iteration=slice(0, result.nit))
    assert np.all(np.diff(h.objective) < 0)
    assert np.all(
        steps.objective_after_step
        <= steps.objective + armijo.c1 * steps.step_length * steps.directional_derivative
    )
    # the Riesz direction: <g, p> = -|g|_*^2
    np.testing.assert_allclose(steps.directional_derivative, -steps.gradient_norm**2, rtol=1e-12)
    assert result.success  # measured: converges within the 200 iterations
    optimum = least_squares.value(least_squares.minimiser())
    assert result.fun - optimum <= 1e-10 * optimum


def test_steepest_descent_step_adapts_to_problem_scale(least_squares):
    scaled = LinearLeastSquares(100.0 * least_squares.A, least_squares.b, alpha=1.0)
    result = steepest_descent(scaled, np.zeros(6), stopping=Stopping(maxiter=30, grtol=0.0))
    assert result.status == "max_iterations"
    assert np.nanmax(result.history.step_length) < 1e-3  # far below the initial trial step of 1
    assert np.all(
        np.diff(result.history.objective) <= 0
    )  # strictly until it reaches rounding level
    assert result.fun < 0.96 * result.history.objective.values[0]


def test_adam_decreases_objective_with_minibatch_epochs(least_squares):
    recorder = least_squares.observe(ExampleRecorder())
    x0 = np.full(6, 3.0)
    result = adam(
        least_squares,
        x0,
        learning_rate=0.05,
        batch_size=16,
        seed=2,
        stopping=Stopping(maxiter=150, grtol=0.0),
    )
    assert result.nit == 150 and result.status == "max_iterations"
    assert least_squares.value(result.x) < 0.1 * least_squares.value(x0)
    # batches sweep every example once per epoch: 48 / 16 = 3 batches per epoch
    batches = recorder.gradient_examples[:6]
    for epoch in (batches[:3], batches[3:]):
        assert all(batch.size == 16 for batch in epoch)
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(48))
    np.testing.assert_array_equal(result.history.epoch.values[:6], [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(result.history.step_length.values[:-1], 0.05)


def test_adam_full_batch_is_reproducible_and_converges_on_nonlinear_problem():
    functional, truth = exponential_problem()
    x0 = truth + np.array([0.3, -0.2, 0.2, -0.4])
    runs = [
        adam(functional, x0, learning_rate=0.01, stopping=Stopping(maxiter=300, grtol=0.0))
        for _ in range(2)
    ]
    assert runs[0].history.drop_vars("wall_time").identical(runs[1].history.drop_vars("wall_time"))
    assert runs[0].fun < 0.1 * functional.value(x0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"learning_rate": -1e-3}, ValueError, "learning_rate"),
        ({"beta1": 1.0}, ValueError, "beta1"),
        ({"beta2": -0.1}, ValueError, "beta2"),
        ({"epsilon": 0.0}, ValueError, "epsilon"),
        ({"batch_size": 49}, ValueError, "n_examples=48"),
    ],
)
def test_adam_bad_options(least_squares, kwargs, error, match):
    with pytest.raises(error, match=match):
        adam(least_squares, np.zeros(6), **kwargs)


def test_first_order_bad_starting_points(least_squares):
    for solver in (steepest_descent, adam):
        with pytest.raises(ValueError, match="x0 must be a flat vector of length 6"):
            solver(least_squares, np.zeros((2, 3)))
        with pytest.raises(ValueError, match="x0 contains"):
            solver(least_squares, np.full(6, np.inf))
    with pytest.raises(ValueError, match="gradient_batch_size"):
        steepest_descent(least_squares, np.zeros(6), gradient_batch_size=0)
