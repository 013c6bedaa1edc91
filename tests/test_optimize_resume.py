"""Resuming optimisers from an IterationState, and evaluation observers."""

import numpy as np
import pytest

from optimize_problems import LinearLeastSquares, exponential_problem
from pdecontrol.control import SumFunctional, TransformedFunctional
from pdecontrol.optimize import (
    Stopping,
    adam,
    block_coordinate_descent,
    gauss_newton_cg,
    steepest_descent,
)
from pdecontrol.optimize.counting import EvaluationCounter


class _Interrupt(Exception):
    pass


def _interrupted_then_resumed(solver, functional, x0, stop_at, **options):
    """Run ``solver`` until the top of iteration ``stop_at`` (raising there), resume from the last
    reported state, and return (uninterrupted result, resumed result)."""
    whole = solver(functional, x0, **options)
    states = []

    def on_iteration(state):
        states.append(state)
        if state.iteration == stop_at:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        solver(functional, x0, on_iteration=on_iteration, **options)
    assert states[-1].iteration == stop_at
    resumed = solver(functional, x0, resume=states[-1], **options)
    return whole, resumed


def _assert_same_run(whole, resumed):
    np.testing.assert_array_equal(resumed.x, whole.x)
    assert resumed.nit == whole.nit and resumed.status == whole.status
    assert (resumed.nfev, resumed.njev, resumed.nhev) == (whole.nfev, whole.njev, whole.nhev)
    for name in whole.history.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(resumed.history[name].values, whole.history[name].values,
                                          err_msg=name)


@pytest.fixture
def least_squares(rng):
    return LinearLeastSquares(rng.standard_normal((48, 6)), rng.standard_normal(48), alpha=0.1)


def test_gauss_newton_sub_sampled_resumes_bit_identically(least_squares):
    _assert_same_run(*_interrupted_then_resumed(
        gauss_newton_cg, least_squares, np.full(6, 2.0), 3,
        stopping=Stopping(maxiter=6, grtol=0.0), gradient_batch_size=20,
        gauss_newton_batch_size=8, seed=4, cg_maxiter=3))


def test_steepest_descent_resumes_with_its_adaptive_step(least_squares):
    _assert_same_run(*_interrupted_then_resumed(
        steepest_descent, least_squares, np.full(6, 2.0), 4,
        stopping=Stopping(maxiter=9, grtol=0.0), gradient_batch_size=30, seed=1))


def test_adam_resumes_mid_epoch_with_its_moments(least_squares):
    # 48 examples in batches of 10: iteration 7 is inside the second epoch
    _assert_same_run(*_interrupted_then_resumed(
        adam, least_squares, np.full(6, 2.0), 7, learning_rate=0.05, batch_size=10, seed=2,
        stopping=Stopping(maxiter=12, grtol=0.0)))


def test_block_coordinate_descent_resumes_in_both_orders():
    functional, truth = exponential_problem()
    x0 = np.array([1.0, 1.0, 0.5, 2.0])

    def solve_weights(x):
        return functional.solve_linear_block(x)

    for order in ("solve_first", "solve_last"):
        _assert_same_run(*_interrupted_then_resumed(
            block_coordinate_descent, functional, x0, 2, solve_block=solve_weights,
            free_indices=[2, 3], order=order, stopping=Stopping(maxiter=4, grtol=0.0),
            inner_options={"gradient_batch_size": 20}, seed=3))


def test_resume_refuses_another_solver(least_squares):
    states = []
    gauss_newton_cg(least_squares, np.ones(6), stopping=Stopping(maxiter=1, grtol=0.0),
                    on_iteration=states.append)
    with pytest.raises(ValueError, match="resume holds a state of gauss-newton-cg"):
        steepest_descent(least_squares, np.ones(6), resume=states[-1])


def test_block_coordinate_descent_without_block_or_outer_evaluation(least_squares):
    result = block_coordinate_descent(
        least_squares, np.full(6, 2.0), outer_evaluation=None,
        stopping=Stopping(maxiter=3, grtol=0.0), inner_stopping=Stopping(maxiter=1, grtol=0.0))
    assert "objective" not in result.history and result.nit == 3
    assert least_squares.value(result.x) < least_squares.value(np.full(6, 2.0))
    with pytest.raises(ValueError, match="outer_evaluation='gradient'"):
        block_coordinate_descent(least_squares, np.ones(6), outer_evaluation="value")
    with pytest.raises(ValueError, match="without solve_block every parameter is free"):
        block_coordinate_descent(least_squares, np.ones(6), free_indices=[0, 1])


# ---------------------------------------------------------------------- observers
def test_an_evaluation_counts_once_and_each_term_announces_its_own(least_squares, rng):
    outer, inner = EvaluationCounter(), EvaluationCounter()
    matrix = np.eye(6)
    total = SumFunctional([least_squares, TransformedFunctional(least_squares, matrix)])
    total.observe(outer)
    least_squares.observe(inner)
    x = rng.standard_normal(6)
    total.value(x)
    total.gradient(x)  # the default gradient calls value_and_gradient: still one evaluation
    operator = total.gauss_newton_operator(x)
    operator.matvec(x)
    operator.matvec(x)
    assert outer.counts == {"value": 1, "gradient": 1, "gauss_newton_operator": 1,
                            "gauss_newton_product": 2}
    assert inner.counts == {"value": 2, "gradient": 2, "gauss_newton_operator": 2,
                            "gauss_newton_product": 4}
    inner.paused = True
    total.value(x)
    assert inner.counts["value"] == 2 and outer.counts["value"] == 2


def test_observer_errors(least_squares):
    with pytest.raises(TypeError, match="before\\(evaluation\\) or after"):
        least_squares.observe(object())
    with pytest.raises(ValueError, match="is not observing"):
        least_squares.unobserve(EvaluationCounter())
