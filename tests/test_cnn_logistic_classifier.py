"""The cross-entropy classifier block (problems.cnn.logistic_classifier), sampled classifier
solves, and the settings that select them."""

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.mesh import Mesh
from problems.cnn.classifier import (
    ClassifierSolver,
    curvature_rows_first,
    final_features,
    sample_examples,
)
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.logistic_classifier import LogisticClassifierSolver, _LogisticBlock
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


def test_curvature_rows_are_a_random_part_of_the_examples(rng):
    x = rng.standard_normal(20)
    examples = np.arange(10, 110)
    order = curvature_rows_first(x, examples, 30, seed=4)
    np.testing.assert_array_equal(np.sort(order), examples)  # a permutation of the examples
    first, rest = order[:30], order[30:]
    assert np.all(np.diff(first) > 0) and np.all(np.diff(rest) > 0)  # each part sorted
    assert first.max() > 40  # not the first 30: a random part, even of examples sorted by label
    np.testing.assert_array_equal(order, curvature_rows_first(x.copy(), examples, 30, seed=4))
    x[3] += 1e-12  # a function of the point, as the sample
    assert not np.array_equal(order, curvature_rows_first(x, examples, 30, seed=4))
    assert not np.array_equal(order, curvature_rows_first(x, examples, 30, seed=5))
    np.testing.assert_array_equal(curvature_rows_first(x, examples, 100, 0), examples)


def test_sub_sampled_curvature_is_the_hessian_of_its_rows(rng):
    """The block's Hessian products over its first m rows are those of the block objective
    averaged over these rows; the value and gradient keep all rows."""
    n, m, k, p = 40, 15, 3, 12
    features = rng.standard_normal((n, p))
    targets = np.eye(k)[rng.integers(0, k, n)]
    W, c = rng.standard_normal((k, p)), rng.standard_normal(k)
    reference = rng.standard_normal((k, p)), rng.standard_normal(k)
    terms = (0.3, reference[0], 0.2, reference[1])
    sub = _LogisticBlock(features, targets, *terms, curvature_rows=m)
    full, rows = _LogisticBlock(features, targets, *terms), _LogisticBlock(
        features[:m], targets[:m], *terms)
    for block in (sub, full, rows):
        block.value(W, c)
    v = rng.standard_normal(W.size + c.size)
    np.testing.assert_allclose(sub.hessian_product(v), rows.hessian_product(v), rtol=1e-12)
    assert not np.allclose(sub.hessian_product(v), full.hessian_product(v))
    np.testing.assert_array_equal(sub.gradient(), full.gradient())
    assert sub.value(W, c) == full.value(W, c)


def test_sub_sampled_curvature_solve(rng):
    F, x = functional(rng, n=80)
    full = LogisticClassifierSolver(F, newton_steps=2, sample_size=60, seed=3)
    sub = LogisticClassifierSolver(F, newton_steps=2, sample_size=60, seed=3,
                                   curvature_sample_size=20)
    x_full, x_sub = full(x), sub(x)
    assert sub.last_result.n_examples == 60 and sub.last_result.n_curvature_examples == 20
    assert full.last_result.n_curvature_examples == 60
    # the same sample and objective (up to the order of its sums), other Newton steps
    assert sub.last_result.fun_start == pytest.approx(full.last_result.fun_start, rel=1e-12)
    assert sub.last_result.fun < sub.last_result.fun_start
    assert not np.allclose(x_sub, x_full)
    # not smaller than the sample: the whole sample, the same solve
    same = LogisticClassifierSolver(F, newton_steps=2, sample_size=60, seed=3,
                                    curvature_sample_size=60)
    np.testing.assert_array_equal(same(x), x_full)
    # settings reach the solver
    settings = small_settings(loss=CE, classifier_newton_steps=2, classifier_batch_size=60,
                              classifier_curvature_batch_size=20)
    assert settings.classifier_solver(F).curvature_sample_size == 20


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
    with pytest.raises(ValueError, match="curvature_sample_size"):
        LogisticClassifierSolver(F, curvature_sample_size=0)
    for no_newton_solve in (small_settings(), small_settings(loss=CE)):
        for name in ("classifier_start_newton_steps", "classifier_curvature_batch_size"):
            with pytest.raises(ValueError, match=f"{name} applies to"):
                no_newton_solve.replace(**{name: 3})


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
