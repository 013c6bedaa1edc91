"""Inexact Gauss-Newton-CG: convergence rates, line search, sampling, history, interop, errors."""

import logging

import numpy as np
import pytest
import xarray as xr
from scipy.optimize import OptimizeResult, minimize

from optimize_problems import (
    ExampleRecorder,
    IndefiniteQuadratic,
    LinearLeastSquares,
    exponential_problem,
)
from pdecontrol.optimize import Armijo, Stopping, StopReason, gauss_newton_cg
from pdecontrol.verify import gauss_newton_test, taylor_test


@pytest.fixture
def least_squares(rng):
    A = rng.standard_normal((60, 8))
    return LinearLeastSquares(
        A, rng.standard_normal(60), alpha=1e-3, weights=rng.uniform(0.5, 2.0, 8)
    )


def test_test_problems_have_correct_gradients(rng, least_squares):
    exponential, truth = exponential_problem()
    for functional, x in ((least_squares, rng.standard_normal(8)), (exponential, truth + 0.3)):
        result = taylor_test(functional, x, rng=rng)
        assert result.passed, result
        assert gauss_newton_test(functional, x, rng=rng).passed


def test_linear_least_squares_converges_in_one_exact_step(least_squares):
    result = gauss_newton_cg(
        least_squares, np.zeros(8), stopping=Stopping(grtol=1e-10), cg_rtol=1e-13, cg_maxiter=50
    )
    assert isinstance(result, OptimizeResult)
    assert (
        result.success
        and result.status == StopReason.RELATIVE_GRADIENT_TOLERANCE == "relative_gradient_tolerance"
    )
    assert result.nit == 1
    assert result.history.step_length.values[0] == 1.0
    np.testing.assert_allclose(result.x, least_squares.minimiser(), rtol=1e-9)
    np.testing.assert_allclose(result.jac, least_squares.gradient(result.x))
    assert result.fun == least_squares.value(result.x)


def test_quadratic_convergence_near_zero_residual_solution():
    functional, truth = exponential_problem()
    result = gauss_newton_cg(
        functional,
        truth + np.array([0.3, -0.2, 0.2, -0.4]),
        cg_rtol=1e-12,
        cg_maxiter=8,
        stopping=Stopping(maxiter=20, gtol=1e-15, grtol=0.0),
        callback=lambda state: {"error": float(np.linalg.norm(state.x - truth))},
    )
    assert result.success and result.nit <= 8
    errors = result.history.error.values
    assert errors[-1] < 1e-12
    # e_{k+1} <= C e_k^2 while e_{k+1} is above rounding level (measured max ratio here: 1.9).
    above_rounding = errors[1:] > 1e-13
    ratios = errors[1:][above_rounding] / errors[:-1][above_rounding] ** 2
    assert ratios.size >= 3 and np.all(ratios < 5.0), ratios
    # and the last steps are quadratic, not merely linear: each error is far below the previous
    assert errors[-2] < 1e-3 * errors[-3]


def test_armijo_condition_holds_on_every_accepted_step(rng):
    functional, truth = exponential_problem()
    armijo = Armijo(c1=0.3, shrink=0.5)
    result = gauss_newton_cg(
        functional,
        truth + np.array([1.5, -1.0, 1.2, -1.5]),
        line_search=armijo,
        stopping=Stopping(maxiter=40, grtol=1e-8),
    )
    h = result.history.isel(iteration=slice(0, result.nit))
    assert result.success
    assert np.all(h.directional_derivative < 0)
    assert np.all(
        h.objective_after_step <= h.objective + armijo.c1 * h.step_length * h.directional_derivative
    )
    # the objective after each step is the next row's objective (full gradient, no sampling)
    np.testing.assert_array_equal(
        h.objective_after_step.values, result.history.objective.values[1:]
    )
    assert h.backtracks.sum() > 0  # the test exercises backtracking
    # every step length is 1 * shrink**backtracks
    np.testing.assert_allclose(h.step_length, armijo.shrink**h.backtracks)


def test_history_layout_and_counts(least_squares):
    result = gauss_newton_cg(
        least_squares, np.zeros(8), stopping=Stopping(maxiter=3, grtol=0.0), cg_maxiter=3
    )
    h = result.history
    assert isinstance(h, xr.Dataset) and h.sizes["iteration"] == result.nit + 1 == 4
    for name in (
        "objective",
        "gradient_norm",
        "cg_iterations",
        "cg_relative_residual",
        "step_length",
        "backtracks",
        "wall_time",
        "n_value_evaluations",
        "n_gradient_evaluations",
        "n_gauss_newton_products",
        "cg_forcing",
        "cg_stop_reason",
    ):
        assert name in h, name
    assert result.status == "max_iterations" and not result.success
    assert np.isnan(h.step_length.values[-1]) and h.cg_stop_reason.values[-1] == ""
    assert np.all(np.diff(h.wall_time) >= 0)
    np.testing.assert_array_equal(h.n_gradient_evaluations, np.arange(1, 5))
    assert h.n_gauss_newton_products.values[-1] == result.nhev == h.cg_iterations.sum()
    np.testing.assert_allclose(h.gradient_norm.values[-1], least_squares.dual_norm(result.jac))
    assert h.attrs["method"] == "gauss-newton-cg" and h.attrs["status"] == "max_iterations"


def test_eisenstat_walker_forcing_is_recorded(least_squares):
    result = gauss_newton_cg(
        least_squares, np.full(8, 5.0), stopping=Stopping(maxiter=4, grtol=0.0), cg_maxiter=2
    )
    h = result.history.isel(iteration=slice(0, result.nit))
    expected = np.minimum(0.5, np.sqrt(h.gradient_norm / h.gradient_norm[0]))
    np.testing.assert_allclose(h.cg_forcing, expected)


def test_callback_can_stop_and_record_scalars(least_squares):
    seen = []

    def callback(state):
        seen.append(state.nit)
        return {"accuracy": 0.5 + 0.1 * state.nit, "stop": state.nit == 2}

    result = gauss_newton_cg(least_squares, np.zeros(8), cg_maxiter=1, callback=callback)
    assert result.status == StopReason.CALLBACK and result.success and result.nit == 2
    assert seen == [0, 1, 2]
    np.testing.assert_allclose(result.history.accuracy, [0.5, 0.6, 0.7])
    assert (
        gauss_newton_cg(least_squares, np.zeros(8), cg_maxiter=1, callback=lambda s: True).nit == 0
    )
    with pytest.raises(TypeError, match="callback must return"):
        gauss_newton_cg(least_squares, np.zeros(8), callback=lambda s: 3)


def test_relative_decrease_stopping(least_squares):
    result = gauss_newton_cg(
        least_squares, np.zeros(8), cg_maxiter=1, stopping=Stopping(grtol=0.0, ftol=1e-3)
    )
    assert result.status == "function_decrease"
    h = result.history
    last_step = h.isel(iteration=result.nit - 1)
    assert (last_step.objective - last_step.objective_after_step) <= 1e-3 * max(
        1.0, abs(float(last_step.objective))
    )


def test_same_seed_gives_identical_history(rng):
    functional = LinearLeastSquares(
        rng.standard_normal((50, 6)), rng.standard_normal(50), alpha=1e-2
    )
    runs = [
        gauss_newton_cg(
            functional,
            np.ones(6),
            stopping=Stopping(maxiter=5, grtol=0.0),
            gradient_batch_size=20,
            gauss_newton_batch_size=10,
            seed=7,
            cg_maxiter=3,
        )
        for _ in range(2)
    ]
    first, second = (run.history.drop_vars("wall_time") for run in runs)
    assert first.identical(second)
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    other = gauss_newton_cg(
        functional,
        np.ones(6),
        stopping=Stopping(maxiter=5, grtol=0.0),
        gradient_batch_size=20,
        gauss_newton_batch_size=10,
        seed=8,
        cg_maxiter=3,
    )
    assert not np.array_equal(other.x, runs[0].x)


def test_sub_sampling_draws_the_documented_batches(rng):
    n_examples = 40
    base = LinearLeastSquares(
        rng.standard_normal((n_examples, 5)), rng.standard_normal(n_examples), alpha=1e-2
    )
    recorder = base.observe(ExampleRecorder())
    result = gauss_newton_cg(
        base,
        np.zeros(5),
        stopping=Stopping(maxiter=4, grtol=0.0),
        gradient_batch_size=10,
        gauss_newton_batch_size=4,
        seed=1,
        cg_maxiter=2,
    )
    assert len(recorder.gradient_examples) == result.nit + 1
    assert len(recorder.gauss_newton_examples) == result.nit
    # The last gradient (at the final iterate) has no Gauss-Newton product after it.
    batches = zip(recorder.gradient_examples[:-1], recorder.gauss_newton_examples, strict=True)
    for gradient_batch, gn_batch in batches:
        assert gradient_batch.size == 10 and np.unique(gradient_batch).size == 10
        assert (
            np.all(np.diff(gradient_batch) > 0)
            and gradient_batch.min() >= 0
            and gradient_batch.max() < 40
        )
        assert gn_batch.size == 4 and np.all(np.isin(gn_batch, gradient_batch))
    assert len({tuple(b) for b in recorder.gradient_examples}) > 1  # a fresh batch per iteration
    np.testing.assert_array_equal(result.history.batch_size, 10)
    np.testing.assert_array_equal(result.history.gauss_newton_batch_size.values[:-1], 4)
    # GN batch only: gradients on all examples, GN operator on 6 random examples
    base.unobserve(recorder)
    recorder = base.observe(ExampleRecorder())
    gauss_newton_cg(
        base,
        np.zeros(5),
        stopping=Stopping(maxiter=2, grtol=0.0),
        gauss_newton_batch_size=6,
        seed=np.random.default_rng(3),
    )
    assert all(batch is None for batch in recorder.gradient_examples)
    assert all(batch.size == 6 for batch in recorder.gauss_newton_examples)


def test_truncated_cg_on_indefinite_problem_still_descends(rng):
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    functional = IndefiniteQuadratic(
        q @ np.diag([-2.0, -0.5, 1.0, 2.0, 3.0, 4.0]) @ q.T, rng.standard_normal(6)
    )
    result = gauss_newton_cg(
        functional,
        rng.standard_normal(6),
        stopping=Stopping(maxiter=4, grtol=0.0),
        cg_maxiter=6,
        cg_rtol=1e-10,
    )
    h = result.history
    assert np.all(np.isfinite(result.x)) and np.all(np.isfinite(h.objective))
    assert np.all(np.diff(h.objective) < 0)
    assert "negative_curvature" in set(h.cg_stop_reason.values)


def test_agrees_with_scipy_trust_ncg_and_newton_cg(least_squares):
    # GN = Hessian here, so scipy's Newton-type methods on to_scipy() solve the same problem.
    ours = gauss_newton_cg(
        least_squares, np.zeros(8), stopping=Stopping(grtol=1e-12), cg_rtol=1e-12, cg_maxiter=50
    )
    np.testing.assert_allclose(ours.x, least_squares.minimiser(), rtol=0, atol=1e-12)
    for method, options in (("trust-ncg", {"gtol": 1e-12}), ("Newton-CG", {"xtol": 1e-14})):
        theirs = minimize(
            x0=np.zeros(8), method=method, options=options, **least_squares.to_scipy()
        )
        # scipy stops less tightly (measured max difference 1.6e-8 for Newton-CG)
        np.testing.assert_allclose(theirs.x, ours.x, rtol=0, atol=1e-7)
        np.testing.assert_allclose(theirs.fun, ours.fun, rtol=1e-12)


def test_line_search_failure_is_reported(least_squares):
    class WrongGradient(LinearLeastSquares):
        def value_and_gradient(self, x, examples=None):
            value, gradient = super().value_and_gradient(x, examples)
            return value, -gradient  # points uphill: no step decreases the objective

        def gauss_newton_operator(self, x, examples=None):
            return super().gauss_newton_operator(x, examples)

    wrong = WrongGradient(least_squares.A, least_squares.b, alpha=1e-3)
    result = gauss_newton_cg(wrong, np.ones(8), line_search=Armijo(max_backtracks=5))
    assert result.status == StopReason.LINE_SEARCH_FAILED and not result.success
    assert result.history.backtracks.values[-1] == 5
    np.testing.assert_array_equal(result.x, np.ones(8))


def test_logs_instead_of_printing(least_squares, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="pdecontrol.optimize"):
        gauss_newton_cg(
            least_squares, np.zeros(8), stopping=Stopping(maxiter=2, grtol=0.0), progress=True
        )
    assert any("gauss-newton-cg stopped" in message for message in caplog.messages)
    captured = capsys.readouterr()
    assert captured.out == "" and "gauss-newton-cg" in captured.err  # the tqdm bar


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"stopping": Stopping}, TypeError, "stopping"),
        ({"cg_rtol": -0.1}, ValueError, "cg_rtol"),
        ({"cg_rtol": "adaptive"}, ValueError, "eisenstat-walker"),
        ({"cg_maxiter": 0}, ValueError, "cg_maxiter"),
        ({"gradient_batch_size": 61}, ValueError, "n_examples=60"),
        ({"gauss_newton_batch_size": 0}, ValueError, "between 1 and"),
        ({"gradient_batch_size": 5, "gauss_newton_batch_size": 10}, ValueError, "exceeds"),
        ({"gradient_batch_size": 2.5}, TypeError, "integer"),
        ({"line_search": {"c1": 0.1}}, TypeError, "Armijo"),
    ],
)
def test_bad_options_are_clear_errors(least_squares, kwargs, error, match):
    with pytest.raises(error, match=match):
        gauss_newton_cg(least_squares, np.zeros(8), **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gtol": -1.0}, "gtol"),
        ({"grtol": float("nan")}, "grtol"),
        ({"ftol": -1e-3}, "ftol"),
        ({"maxiter": -1}, "maxiter"),
    ],
)
def test_negative_tolerances_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Stopping(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"c1": 0.0}, {"c1": 1.0}, {"shrink": 1.0}, {"shrink": -0.5}, {"max_backtracks": -1}]
)
def test_bad_line_search_options(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Armijo(**kwargs)


def test_bad_starting_points_are_clear_errors(rng, least_squares):
    with pytest.raises(ValueError, match="x0 must be a flat vector of length 8"):
        gauss_newton_cg(least_squares, np.zeros(7))
    with pytest.raises(ValueError, match="x0 contains 1 non-finite"):
        gauss_newton_cg(least_squares, np.r_[np.zeros(7), np.nan])
    with pytest.raises(TypeError, match="ReducedFunctional"):
        gauss_newton_cg(lambda x: x @ x, np.zeros(8))
    non_separable = IndefiniteQuadratic(np.eye(3), np.ones(3))
    with pytest.raises(ValueError, match="separable"):
        gauss_newton_cg(non_separable, np.zeros(3), gradient_batch_size=2)


def test_non_finite_gradient_stops_with_a_clear_reason(least_squares):
    class BrokenGradient(LinearLeastSquares):
        def value_and_gradient(self, x, examples=None):
            value, gradient = super().value_and_gradient(x, examples)
            return value, gradient * (np.nan if np.abs(x).max() > 0 else 1.0)

    functional = BrokenGradient(least_squares.A, least_squares.b)
    result = gauss_newton_cg(functional, np.zeros(8))  # the first step leaves x = 0
    assert result.status == StopReason.NON_FINITE and not result.success and result.nit == 1
    assert np.isnan(result.history.gradient_norm.values[-1])
