"""Parameter blocks: restricted functional, variable projection, block-coordinate descent, ridge."""

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator

from optimize_problems import (
    LinearLeastSquares,
    exponential_problem,
    weakly_coupled_exponential_problem,
)
from pdecontrol.optimize import (
    RestrictedFunctional,
    Stopping,
    VariableProjection,
    block_coordinate_descent,
    gauss_newton_cg,
    regularized_least_squares,
    steepest_descent,
)
from pdecontrol.verify import adjoint_test, gauss_newton_test, taylor_test


def dense(operator, n):
    return np.column_stack([operator.matvec(e) for e in np.eye(n)])


# ---------------------------------------------------------------- RestrictedFunctional
@pytest.fixture
def weighted_least_squares(rng):
    return LinearLeastSquares(
        rng.standard_normal((30, 7)),
        rng.standard_normal(30),
        alpha=0.1,
        weights=rng.uniform(0.5, 2.0, 7),
    )


def test_restricted_functional_is_the_block_of_the_full_one(rng, weighted_least_squares):
    full = weighted_least_squares
    x = rng.standard_normal(7)
    free = np.array([5, 1, 3])
    restricted = RestrictedFunctional(full, free, x)
    mask = np.zeros(7, dtype=bool)
    mask[free] = True
    from_mask = RestrictedFunctional(full, mask, x)
    y = rng.standard_normal(3)
    embedded = restricted.embed(y)
    np.testing.assert_array_equal(embedded[[1, 3, 5]], y)  # sorted order
    np.testing.assert_array_equal(np.delete(embedded, [1, 3, 5]), np.delete(x, [1, 3, 5]))
    np.testing.assert_array_equal(restricted.restrict(embedded), y)
    assert restricted.value(y) == full.value(embedded) == from_mask.value(y)
    np.testing.assert_array_equal(restricted.gradient(y), full.gradient(embedded)[[1, 3, 5]])
    np.testing.assert_array_equal(restricted.weights, full.weights[[1, 3, 5]])
    assert restricted.n_examples == 30 and restricted.size == 3
    np.testing.assert_allclose(
        dense(restricted.gauss_newton_operator(y), 3),
        dense(full.gauss_newton_operator(embedded), 7)[np.ix_([1, 3, 5], [1, 3, 5])],
        rtol=1e-14,
    )
    assert taylor_test(restricted, y, rng=rng).passed
    operator = restricted.gauss_newton_operator(y, examples=np.arange(10))
    assert adjoint_test(operator.matvec, operator.rmatvec, 3, 3, rng=rng).passed
    assert gauss_newton_test(restricted, y, rng=rng).passed


@pytest.mark.parametrize(
    "free, error, match",
    [
        ([1, 1], ValueError, "repeated"),
        ([0, 7], ValueError, r"\[0, 7\)"),
        (np.zeros(7, dtype=bool), ValueError, "no parameters"),
        (np.ones(6, dtype=bool), ValueError, r"shape \(7,\)"),
        ([0.5, 1.5], TypeError, "integer index array"),
    ],
)
def test_restricted_functional_bad_indices(weighted_least_squares, free, error, match):
    with pytest.raises(error, match=match):
        RestrictedFunctional(weighted_least_squares, free, np.zeros(7))


def test_restricted_functional_bad_fixed_vector(weighted_least_squares):
    with pytest.raises(ValueError, match="x_fixed must be a flat vector of length 7"):
        RestrictedFunctional(weighted_least_squares, [0], np.zeros(6))
    with pytest.raises(ValueError, match="x_fixed contains"):
        RestrictedFunctional(weighted_least_squares, [0], np.full(7, np.nan))


# ---------------------------------------------------------------- variable projection
@pytest.fixture
def exponential():
    functional, truth = exponential_problem()
    return functional, truth, np.array([0.0, 0.0, 0.7, 3.6])


def test_variable_projection_gradient_by_envelope_theorem_passes_taylor(rng, exponential):
    functional, truth, x0 = exponential
    projection = VariableProjection(
        functional, functional.linear_indices, functional.solve_linear_block, x0
    )
    theta = projection.initial_parameters()
    result = taylor_test(projection, theta, rng=rng)
    assert result.passed, result
    eliminated = projection.eliminate(theta)
    np.testing.assert_allclose(functional.gradient(eliminated)[:2], 0.0, atol=1e-14)  # w is optimal
    assert projection.value(theta) == functional.value(eliminated)


def test_kaufman_operator_is_schur_complement_of_joint_gauss_newton(rng, exponential):
    functional, truth, x0 = exponential
    projection = VariableProjection(
        functional, [0, 1], functional.solve_linear_block, x0, block_cg_rtol=1e-13
    )
    theta = np.array([0.9, 3.2])
    joint = dense(functional.gauss_newton_operator(projection.eliminate(theta)), 4)
    schur = joint[2:, 2:] - joint[2:, :2] @ np.linalg.solve(joint[:2, :2], joint[:2, 2:])
    np.testing.assert_allclose(dense(projection.gauss_newton_operator(theta), 2), schur, rtol=1e-8)
    assert gauss_newton_test(projection, theta, rng=rng).passed
    block = VariableProjection(
        functional, [0, 1], functional.solve_linear_block, x0, gauss_newton="block"
    )
    np.testing.assert_allclose(
        dense(block.gauss_newton_operator(theta), 2), joint[2:, 2:], rtol=1e-14
    )


def test_variable_projection_caches_the_block_solve(exponential):
    functional, truth, x0 = exponential
    projection = VariableProjection(functional, [0, 1], functional.solve_linear_block, x0)
    theta = np.array([0.9, 3.2])
    projection.value_and_gradient(theta)
    projection.gauss_newton_operator(theta).matvec(np.ones(2))
    projection.value(theta)
    assert projection.n_block_solves == 1
    projection.value(theta + 0.1)
    assert projection.n_block_solves == 2


def test_variable_projection_converges_fast_and_block_variant_slowly(exponential):
    functional, truth, x0 = exponential
    runs = {}
    for variant in ("kaufman", "block"):
        projection = VariableProjection(
            functional, [0, 1], functional.solve_linear_block, x0, gauss_newton=variant
        )
        runs[variant] = projection, gauss_newton_cg(
            projection,
            projection.initial_parameters(),
            cg_rtol=1e-10,
            stopping=Stopping(maxiter=15, grtol=1e-10),
        )
    projection, result = runs["kaufman"]
    assert result.success and result.nit <= 8  # measured: 5
    np.testing.assert_allclose(projection.eliminate(result.x), truth, atol=1e-10)
    assert runs["block"][1].status == "max_iterations"  # measured error after 15 steps: ~1


def test_variable_projection_bad_arguments(exponential):
    functional, truth, x0 = exponential
    with pytest.raises(ValueError, match="gauss_newton must be"):
        VariableProjection(
            functional, [0, 1], functional.solve_linear_block, x0, gauss_newton="full"
        )
    with pytest.raises(ValueError, match="every parameter"):
        VariableProjection(functional, [0, 1, 2, 3], functional.solve_linear_block, x0)
    with pytest.raises(TypeError, match="solve_block must be callable"):
        VariableProjection(functional, [0, 1], None, x0)
    with pytest.raises(ValueError, match="block_cg_rtol"):
        VariableProjection(functional, [0, 1], functional.solve_linear_block, x0, block_cg_rtol=0.0)
    broken = VariableProjection(functional, [0, 1], lambda x: x[:3], x0)
    with pytest.raises(ValueError, match=r"solve_block\(x\) must be a flat vector of length 4"):
        broken.value(np.array([1.0, 2.0]))


# ---------------------------------------------------------------- block-coordinate descent
def test_block_coordinate_descent_reaches_joint_optimum_and_agrees_with_variable_projection():
    functional, truth, x0 = weakly_coupled_exponential_problem()
    result = block_coordinate_descent(
        functional,
        x0,
        functional.solve_linear_block,
        [2, 3],
        stopping=Stopping(maxiter=150, grtol=1e-9),
        inner_options={"cg_rtol": 1e-10},
    )
    assert (
        result.success and result.status == "relative_gradient_tolerance"
    )  # measured: 73 outer iterations
    np.testing.assert_allclose(result.x, truth, atol=1e-6)
    assert result.fun < 1e-14
    np.testing.assert_allclose(result.jac, functional.gradient(result.x))
    projection = VariableProjection(functional, [0, 1], functional.solve_linear_block, x0)
    projected = gauss_newton_cg(
        projection,
        projection.initial_parameters(),
        cg_rtol=1e-10,
        stopping=Stopping(maxiter=30, grtol=1e-12),
    )
    np.testing.assert_allclose(projection.eliminate(projected.x), result.x, atol=1e-6)
    joint = gauss_newton_cg(
        functional, x0, cg_rtol=1e-10, stopping=Stopping(maxiter=50, grtol=1e-12)
    )
    np.testing.assert_allclose(joint.x, result.x, atol=1e-6)


def test_block_coordinate_history_and_objective_decrease(rng):
    functional, truth, x0 = weakly_coupled_exponential_problem()

    def callback(state):
        return {"error": float(np.max(np.abs(state.x - truth)))}

    result = block_coordinate_descent(
        functional,
        x0,
        functional.solve_linear_block,
        [2, 3],
        stopping=Stopping(maxiter=5, grtol=0.0),
        callback=callback,
    )
    h = result.history
    assert result.nit == 5 and h.sizes["iteration"] == 6
    steps = h.isel(iteration=slice(0, 5))
    assert np.all(
        steps.objective_after_block_solve <= steps.objective
    )  # the exact block solve helps
    assert np.all(
        h.objective.values[1:] <= steps.objective_after_block_solve.values
    )  # GN steps help
    np.testing.assert_array_equal(steps.inner_iterations, 2)
    assert set(steps.inner_status.values) == {"max_iterations"}
    assert np.all(steps.cg_iterations > 0) and "error" in h
    assert np.all(np.diff(h.n_gradient_evaluations) > 0)


def test_block_coordinate_descent_accepts_other_inner_solvers_and_is_reproducible(rng):
    functional = LinearLeastSquares(
        rng.standard_normal((40, 6)), rng.standard_normal(40), alpha=1e-2
    )

    def solve_first_three(x):
        restricted = RestrictedFunctional(functional, [0, 1, 2], x)
        operator = restricted.gauss_newton_operator(x[:3])
        step = np.linalg.solve(dense(operator, 3), -restricted.gradient(x[:3]))
        return np.r_[x[:3] + step, x[3:]]

    runs = [
        block_coordinate_descent(
            functional,
            np.zeros(6),
            solve_first_three,
            [3, 4, 5],
            seed=3,
            stopping=Stopping(maxiter=4, grtol=0.0),
            inner_solver=steepest_descent,
            inner_options={"gradient_batch_size": 10},
        )
        for _ in range(2)
    ]
    assert runs[0].history.drop_vars("wall_time").identical(runs[1].history.drop_vars("wall_time"))
    # without sub-sampling every inner step decreases the full objective, so every outer one does
    full = block_coordinate_descent(
        functional,
        np.zeros(6),
        solve_first_three,
        [3, 4, 5],
        stopping=Stopping(maxiter=4, grtol=0.0),
        inner_solver=steepest_descent,
    )
    assert np.all(np.diff(full.history.objective) < 0)


def test_block_coordinate_descent_bad_arguments(rng, weighted_least_squares):
    solve = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="inner_options must not set"):
        block_coordinate_descent(
            weighted_least_squares, np.zeros(7), solve, [0], inner_options={"seed": 1}
        )
    with pytest.raises(ValueError, match="every parameter"):
        block_coordinate_descent(weighted_least_squares, np.zeros(7), solve, np.arange(7))
    with pytest.raises(TypeError, match="solve_block must be callable"):
        block_coordinate_descent(weighted_least_squares, np.zeros(7), "solve", [0])
    with pytest.raises(ValueError, match="x0 must be a flat vector"):
        block_coordinate_descent(weighted_least_squares, np.zeros(8), solve, [0])
    with pytest.raises(ValueError, match=r"solve_block\(x\) contains"):
        block_coordinate_descent(weighted_least_squares, np.zeros(7), lambda x: x * np.nan, [0])


# ---------------------------------------------------------------- regularised least squares
@pytest.mark.parametrize("method", ["cg", "lsqr"])
def test_regularized_least_squares_matches_dense_solution(rng, method):
    A = rng.standard_normal((50, 12))
    b = rng.standard_normal((50, 3))
    alpha = 0.5
    expected = np.linalg.solve(A.T @ A + alpha * np.eye(12), A.T @ b)
    result = regularized_least_squares(aslinearoperator(A), b, alpha, method=method, rtol=1e-12)
    assert result.success and result.status == "converged" and result.x.shape == (12, 3)
    np.testing.assert_allclose(result.x, expected, rtol=1e-8, atol=1e-10)
    misfit = A @ expected - b
    np.testing.assert_allclose(
        result.fun, 0.5 * np.sum(misfit**2) + 0.5 * alpha * np.sum(expected**2), rtol=1e-12
    )
    single = regularized_least_squares(A, b[:, 0], alpha, method=method, rtol=1e-12)
    assert single.x.shape == (12,)
    np.testing.assert_allclose(single.x, expected[:, 0], rtol=1e-8, atol=1e-10)
    warm = regularized_least_squares(A, b, alpha, method=method, rtol=1e-10, x0=expected)
    assert warm.nit <= 3  # started at the solution: at most one iteration per column
    np.testing.assert_allclose(warm.x, expected, rtol=1e-8, atol=1e-10)
    nearby = regularized_least_squares(A, b, alpha, method=method, rtol=1e-12, x0=expected + 0.1)
    np.testing.assert_allclose(
        nearby.x, expected, rtol=1e-8, atol=1e-10
    )  # the warm start keeps the damping


def test_regularized_least_squares_reports_iteration_cap(rng):
    A = rng.standard_normal((50, 12)) @ np.diag(np.geomspace(1, 1e3, 12))
    result = regularized_least_squares(A, rng.standard_normal(50), 0.0, rtol=1e-12, maxiter=2)
    assert not result.success and result.status == "max_iterations"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"method": "qr"}, ValueError, "method"),
        ({"rtol": 0.0}, ValueError, "rtol"),
        ({"b": np.ones(5)}, ValueError, r"b must have shape \(6,\)"),
        ({"x0": np.ones(5)}, ValueError, r"x0 must have shape \(4,\)"),
        ({"A": "matrix"}, TypeError, "A must be"),
    ],
)
def test_regularized_least_squares_bad_arguments(kwargs, error, match):
    arguments = {"A": np.ones((6, 4)), "b": np.ones(6), **kwargs}
    with pytest.raises(error, match=match):
        regularized_least_squares(arguments.pop("A"), arguments.pop("b"), **arguments)
