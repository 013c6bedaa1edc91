"""The cross-entropy classifier block (problems.cnn.logistic_classifier), sampled classifier
solves, and the settings that select them."""

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.mesh import Mesh
from problems.cnn.classifier import ClassifierSolver, final_features, sample_examples
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.logistic_classifier import LogisticClassifierSolver
from problems.cnn.network import cnn_functional
from problems.cnn.paper import PAPER_CONFIGS
from problems.cnn.regularization import classifier_tikhonov
from problems.cnn.training import CNNTraining, train_single_level

CE = "softmax_cross_entropy"


def functional(rng, loss=CE, alpha=1e-2, n=60, n_classes=3):
    settings = small_settings(loss=loss)
    problem = settings.make_problem(Mesh((8, 8), extent=1.0), n_classes)
    images = rng.random((n, 8, 8))
    labels = rng.integers(0, n_classes, n)
    regularizers = [classifier_tikhonov(alpha)] if alpha else []
    F = cnn_functional(problem, images, labels, 2, regularizers=regularizers, dtype=np.float64)
    return F, problem.initial_parameters(2, 0)


@pytest.mark.parametrize("alpha", [1e-2, 0.0])
def test_newton_steps_reach_the_block_minimiser(rng, alpha):
    F, x = functional(rng, alpha=alpha)
    solver = LogisticClassifierSolver(F, newton_steps=15, cg_iterations=300, cg_rtol=1e-10)
    x1 = solver(x)
    value, gradient = F.value_and_gradient(x1)
    # the solver's block objective is the functional's, and its gradient in (W, c) vanishes
    assert solver.last_result.fun == pytest.approx(value, rel=1e-12)
    assert np.abs(gradient[solver.indices]).max() < 1e-7
    assert np.abs(F.value_and_gradient(x)[1][solver.indices]).max() > 1e-2
    free = np.setdiff1d(np.arange(F.size), solver.indices)
    np.testing.assert_array_equal(x1[free], x[free])  # only W and c change


def test_one_step_decreases_and_warm_starts(rng):
    F, x = functional(rng)
    solver = LogisticClassifierSolver(F, newton_steps=1, cg_iterations=3)
    values = [F.value(x)]
    for _ in range(3):
        x = solver(x)
        values.append(F.value(x))
        assert solver.last_result.cg_iterations <= 3
    assert all(b < a for a, b in zip(values, values[1:], strict=False))


def test_newton_steps_of_one_call(rng):
    F, x = functional(rng)
    solver = LogisticClassifierSolver(F, newton_steps=1, cg_iterations=3)
    three = solver(x, newton_steps=3)
    assert solver.last_result.nit == 3
    np.testing.assert_array_equal(three, solver(solver(solver(x))))  # = three calls of one step
    assert solver.last_result.nit == 1
    with pytest.raises(ValueError, match="newton_steps"):
        solver(x, newton_steps=0)


def test_features_start_on_a_cache_line(rng):
    F, x = functional(rng)
    for examples in (None, np.arange(7), np.arange(3, 50)):
        features = final_features(F, x, examples)
        assert features.ctypes.data % 64 == 0 and features.flags.c_contiguous


def test_sample_is_a_function_of_the_point(rng):
    x = rng.standard_normal(20)
    first = sample_examples(x, 100, 30, seed=4)
    np.testing.assert_array_equal(first, sample_examples(x.copy(), 100, 30, seed=4))
    assert first.size == 30 and np.unique(first).size == 30 and np.all(np.diff(first) > 0)
    x[3] += 1e-12
    assert not np.array_equal(first, sample_examples(x, 100, 30, seed=4))
    assert not np.array_equal(first, sample_examples(x, 100, 30, seed=5))
    assert sample_examples(x, 100, None, 0) is None and sample_examples(x, 100, 100, 0) is None


@pytest.mark.parametrize("loss", ["least_squares", CE])
def test_sampled_solve_equals_the_solve_on_that_sample(rng, loss):
    F, x = functional(rng, loss=loss)
    options = {"newton_steps": 2} if loss == CE else {}
    Solver = LogisticClassifierSolver if loss == CE else ClassifierSolver
    sampled = Solver(F, sample_size=25, seed=3, **options)
    sample = sample_examples(x, F.n_examples, 25, 3)
    if loss == CE:  # the same solve on a functional holding only the sample
        sub = cnn_functional(F.problem, F.data[sample], np.argmax(F.targets[sample], 1), 2,
                             regularizers=F.regularizers, dtype=np.float64)
        expected = Solver(sub, **options)(x)
    else:
        expected = Solver(F, examples=sample)(x)
    np.testing.assert_allclose(sampled(x), expected, rtol=1e-12, atol=1e-14)
    assert sampled.last_result.n_examples == 25


def test_bad_arguments(rng):
    F_ls, _ = functional(rng, loss="least_squares")
    with pytest.raises(ValueError, match="use ClassifierSolver for least squares"):
        LogisticClassifierSolver(F_ls)
    F, _ = functional(rng)
    with pytest.raises(ValueError, match="cg_rtol"):
        LogisticClassifierSolver(F, cg_rtol=1.0)
    with pytest.raises(ValueError, match="not both"):
        ClassifierSolver(F_ls, examples=[0, 1], sample_size=5)
    with pytest.raises(ValueError, match="no block solve"):
        small_settings(loss=CE).classifier_solver(F)
    with pytest.raises(ValueError, match="classifier_newton_steps"):
        small_settings(classifier_newton_steps=-1)
    with pytest.raises(ValueError, match="gauss_newton_batch_size"):
        small_settings(gauss_newton_batch_size=0)
    for no_newton_solve in (small_settings(), small_settings(loss=CE)):
        with pytest.raises(ValueError, match="classifier_start_newton_steps applies to"):
            no_newton_solve.replace(classifier_start_newton_steps=3)


def test_settings_select_the_block_and_the_batches():
    assert small_settings().classifier_block
    assert not small_settings(loss=CE).classifier_block
    settings = small_settings(loss=CE, classifier_newton_steps=2, classifier_batch_size=20,
                              batch_size=30, gauss_newton_batch_size=10)
    assert settings.classifier_block
    train = to_numpy(make_synthetic(50, 8, seed=0))
    stage = CNNTraining(settings, train).stage(0, 2, 1)
    inner = stage.options["inner_options"]
    assert inner["gradient_batch_size"] == 30 and inner["gauss_newton_batch_size"] == 10
    # a curvature batch not smaller than the gradient's is the gradient's
    stage = CNNTraining(settings.replace(gauss_newton_batch_size=40), train).stage(0, 2, 1)
    assert stage.options["inner_options"]["gauss_newton_batch_size"] == 30


def test_training_with_the_classifier_block_counts_its_solves():
    settings = small_settings(loss=CE, classifier_newton_steps=2, classifier_batch_size=30,
                              batch_size=40, gauss_newton_batch_size=10, outer_iterations=2,
                              gauss_newton_steps=1, cg_iterations=3)
    train, validation = (to_numpy(make_synthetic(n, 8, seed=s)) for n, s in ((60, 0), (20, 1)))
    history = train_single_level(train, validation, settings).history
    # the start solve and one per outer iteration; each charged the forward solves of 30 examples
    assert history["n_classifier_solves"].values.tolist() == [1, 2, 3]
    objective = history["objective"].values
    assert objective[-1] < objective[0]


def test_the_stage_start_takes_its_own_newton_steps():
    settings = small_settings(loss=CE, classifier_newton_steps=1, outer_iterations=1,
                              gauss_newton_steps=1, cg_iterations=2, batch_size=None)
    train = to_numpy(make_synthetic(40, 8, seed=0))
    starts = {}
    for steps in (None, 1, 4):
        chosen = settings.replace(classifier_start_newton_steps=steps)
        history = train_single_level(train, None, chosen).history
        starts[steps] = history["objective"].values[0]  # after the start's classifier solve
        assert history["n_classifier_solves"].values.tolist() == [1, 2]
    assert starts[None] == starts[1] and starts[4] < starts[1]


def test_fast_config_is_the_cross_entropy_block_schedule():
    fast = PAPER_CONFIGS["fast"]
    assert fast.loss == CE and fast.classifier_block and fast.classifier_newton_steps > 0
    assert fast.gauss_newton_batch_size < fast.batch_size
    assert fast.n_channels == PAPER_CONFIGS["strong"].n_channels
