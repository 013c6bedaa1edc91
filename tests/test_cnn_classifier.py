"""ClassifierSolver: optimality of (W, c), agreement of solvers, use as solve_block, errors."""

import numpy as np
import pytest

from cnn_helpers import small_functional
from pdecontrol.control import QuadraticPenalty, SoftmaxCrossEntropyLoss, Tikhonov
from pdecontrol.optimize import Stopping, VariableProjection, block_coordinate_descent
from problems.cnn.classifier import ClassifierSolver

REGULARIZERS = {
    "W": lambda problem: [Tikhonov("W", 1e-3)],
    "W+c with references": lambda problem: [
        Tikhonov("W", 1e-3, reference=0.5),
        Tikhonov("W", 2e-3),
        Tikhonov("c", 1e-2, reference=0.3),
    ],
}


@pytest.mark.parametrize("regularizers", list(REGULARIZERS))
@pytest.mark.parametrize("method", ["cg", "gram", "normal"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_in_w_and_c_vanishes_after_solve(rng, regularizers, method, dtype):
    _, J = small_functional(
        rng, 2, n_examples=12, regularizers=REGULARIZERS[regularizers], dtype=dtype
    )
    solve = ClassifierSolver(J, method=method, block_size=5)
    x = J.problem.initial_parameters(2, seed=1)
    before = np.linalg.norm(J.gradient(x)[solve.indices])
    x_new = solve(x)
    after = np.linalg.norm(J.gradient(x_new)[solve.indices])
    assert solve.last_result.method == method and solve.last_result.success
    assert after <= (1e-9 if dtype == np.float64 else 1e-5) * before
    np.testing.assert_array_equal(np.delete(x_new, solve.indices), np.delete(x, solve.indices))
    assert J.value(x_new) < J.value(x)


def test_unregularized_fit_and_solver_agreement(rng):
    _, J = small_functional(rng, 1, n_examples=8)
    x = J.problem.initial_parameters(2, seed=1)
    x_new = ClassifierSolver(J)(x)  # c eliminated by centring, no ridge: exact fit
    assert np.linalg.norm(J.gradient(x_new)[ClassifierSolver(J).indices]) < 1e-10
    assert J.value(x_new) < 1e-18
    _, J = small_functional(rng, 2, n_examples=12, regularizers=lambda p: [Tikhonov("W", 1e-2)])
    x = J.problem.initial_parameters(2, seed=1)
    cg = ClassifierSolver(J, method="cg")(x)
    gram = ClassifierSolver(J, method="gram")(x)
    normal = ClassifierSolver(J, method="normal", block_size=5)(x)
    np.testing.assert_allclose(cg, gram, rtol=0, atol=1e-8 * np.abs(gram).max())
    np.testing.assert_allclose(normal, gram, rtol=0, atol=1e-8 * np.abs(gram).max())


def test_auto_picks_the_smaller_system(rng):
    _, J = small_functional(rng, 2, n_examples=12, regularizers=lambda p: [Tikhonov("W", 1e-3)])
    solve = ClassifierSolver(J)
    solve(J.problem.initial_parameters(2, seed=0))
    assert solve.last_result.method == "gram"  # 12 examples < 128 features
    solve = ClassifierSolver(J, gram_max_examples=10)
    solve(J.problem.initial_parameters(2, seed=0))
    assert solve.last_result.method == "normal"  # more examples than allowed, 128 features
    solve = ClassifierSolver(J, gram_max_examples=10, normal_max_features=100)
    solve(J.problem.initial_parameters(2, seed=0))
    assert solve.last_result.method == "cg"
    _, J = small_functional(rng, 2, n_examples=12)  # no ridge: only CG applies
    solve = ClassifierSolver(J)
    solve(J.problem.initial_parameters(2, seed=0))
    assert solve.last_result.method == "cg"


def test_subset_of_examples(rng):
    _, J = small_functional(rng, 2, n_examples=12, regularizers=lambda p: [Tikhonov("W", 1e-3)])
    subset = np.arange(0, 12, 2)
    x = ClassifierSolver(J, examples=subset)(J.problem.initial_parameters(2, seed=0))
    g = J.gradient(x, examples=subset)[ClassifierSolver(J).indices]
    assert np.linalg.norm(g) < 1e-10


def test_as_solve_block_of_bcd_and_variable_projection(rng):
    _, J = small_functional(rng, 2, n_examples=12, regularizers=lambda p: [Tikhonov("W", 1e-3)])
    solve = ClassifierSolver(J)
    x0 = J.problem.initial_parameters(2, seed=0)
    free = np.setdiff1d(np.arange(J.size), solve.indices)
    result = block_coordinate_descent(
        J, x0, solve, free, stopping=Stopping(maxiter=2, grtol=0.0), seed=0
    )
    objective = result.history["objective_after_block_solve"].values
    assert objective[1] < objective[0] and J.value(result.x) < objective[0]
    vp = VariableProjection(J, solve.indices, solve, x0)
    theta = np.delete(x0, solve.indices)
    value, gradient = vp.value_and_gradient(theta)
    assert value == pytest.approx(J.value(solve(x0)), rel=1e-12)
    np.testing.assert_allclose(
        gradient, np.delete(J.gradient(solve(x0)), solve.indices), rtol=1e-9, atol=1e-12
    )


def test_classifier_errors(rng):
    _, J = small_functional(rng, 2, loss=SoftmaxCrossEntropyLoss())
    with pytest.raises(ValueError, match="LeastSquaresLoss"):
        ClassifierSolver(J)
    _, J = small_functional(rng, 2, regularizers=lambda p: [QuadraticPenalty("W", 1.0, np.eye(8))])
    with pytest.raises(ValueError, match="only Tikhonov"):
        ClassifierSolver(J)
    _, J = small_functional(rng, 2, regularizers=lambda p: [Tikhonov("c", 1.0)])
    with pytest.raises(ValueError, match="needs one on W"):
        ClassifierSolver(J)
    _, J = small_functional(rng, 2)
    for method in ("gram", "normal"):
        with pytest.raises(ValueError, match=f"method='{method}' needs"):
            ClassifierSolver(J, method=method)(J.problem.initial_parameters(2, seed=0))
    with pytest.raises(ValueError, match="method must be"):
        ClassifierSolver(J, method="qr")
    with pytest.raises(TypeError, match="CNNProblem"):
        ClassifierSolver(object())
