"""End to end: train on the synthetic set (and a small MNIST subset), compare the multilevel start
with a random start, and the restricted network with the W-only ablation across scales.

Every run is seeded, so the numbers are reproducible; the asserted inequalities are the claims
of docs/method.md (sections 5 to 7) at CI size and would fail if the transfers, the work
accounting or the schedule regressed. The accuracy floors sit a few examples below what the runs
reach (measured values in the comments; 400 validation images, chance 10%), and training is
compared with its own start (random kernels, classifier solved: what fitting ``W`` alone gives),
so training that no longer improves the kernels fails.
"""

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.mesh import Mesh
from problems.cnn.data import load_mnist, make_synthetic, to_numpy, train_validation_split
from problems.cnn.evaluation import TrainedNetwork, evaluate_across_scales, image_pyramid
from problems.cnn.training import train_multilevel, train_resolution_consistent, train_single_level

SETTINGS = small_settings(
    outer_iterations=2, cg_iterations=4, batch_size=200, high_order_penalty=1e-3
)


@pytest.fixture(scope="module")
def synthetic():
    return to_numpy(make_synthetic(400, 16, seed=0)), to_numpy(make_synthetic(400, 16, seed=1))


@pytest.fixture(scope="module")
def single(synthetic):
    return train_single_level(*synthetic, SETTINGS)


def test_multilevel_beats_random_start_at_first_fine_iteration(synthetic, single):
    multilevel = train_multilevel(*synthetic, SETTINGS, n_levels=2)
    fine = multilevel.history.where(multilevel.history.level == 0, drop=True)
    reference = single.history
    assert fine.phase.values[0] == "prolonged_start"
    # prolonged coarse network (W re-solved) vs random kernels (W solved), before fine training
    assert fine.objective.values[0] < reference.objective.values[0]
    # after the first fine outer iteration
    assert fine.objective.values[1] < reference.objective.values[1]
    assert fine.validation_accuracy.values[1] > reference.validation_accuracy.values[1]
    # measured: single level 43.5% (start) -> 47.0%; prolonged start 48.75% -> 52.5%
    start, final = reference.validation_accuracy.values[[0, -1]]
    assert final > 0.45 and final > start + 0.02  # trained kernels beat W alone
    assert fine.validation_accuracy.values[0] > start + 0.03
    assert fine.validation_accuracy.values[-1] > 0.50
    # the same number of fine iterations cost about the same fine-level work
    np.testing.assert_allclose(
        fine.fine_level_work.values[-1], reference.fine_level_work.values[-1], rtol=0.1
    )


def test_restricted_network_beats_classifier_only_ablation(synthetic, single):
    """Galerkin-restricted network vs the W-only ablation on 8x8 images (docs/method.md
    sections 6-7).

    Trained with the high-order kernel penalty, the single-level network passes. With the
    resolution-consistent objective the ablation is beaten when W is trained with the kernels
    on the whole objective (``classifier="gauss_newton"``, weight 4); with ``"fine_solve"`` and
    weight 1 it was not on this set (29.5% vs 30.0%, docs/training.md).
    """
    train, validation = synthetic
    consistent = train_resolution_consistent(train, validation, SETTINGS, consistency_weight=4.0,
                                             classifier="gauss_newton")
    for result in (single, consistent):
        table = evaluate_across_scales(result.network, image_pyramid(validation, 1),
                                       variants=("galerkin", "classifier_only"))
        coarse = table.accuracy.sel(resolution=8)
        assert coarse.sel(variant="galerkin") > coarse.sel(variant="classifier_only")
        # measured: 30.0% (single), 31.0% (consistent) against 27.25% and 24.0%
        assert coarse.sel(variant="galerkin") > 0.27
        assert np.isnan(table.accuracy.sel(resolution=16, variant="classifier_only"))
        assert table.accuracy.sel(resolution=16, variant="galerkin") == pytest.approx(
            result.history.validation_accuracy.values[-1])


def test_evaluation_across_three_levels_and_a_finer_mesh(synthetic, single):
    train, validation = synthetic
    test_sets = image_pyramid(validation, 2)
    table = evaluate_across_scales(single.network, test_sets, refit_sets=image_pyramid(train, 2))
    assert table.resolution.values.tolist() == [16, 8, 4]
    assert table.levels.values.tolist() == [0, 1, 2]
    assert table.mesh_shape.values.tolist() == ["16x16", "8x8", "4x4"]
    accuracy = table.accuracy
    assert np.all(np.isfinite(accuracy.sel(variant=["galerkin", "galerkin_refit_classifier"])))
    assert np.all(np.isfinite(accuracy.sel(resolution=[8, 4])))
    # re-solving W on coarse training data fits the coarse images better than moving W
    assert accuracy.sel(resolution=4, variant="galerkin_refit_classifier") > accuracy.sel(
        resolution=4, variant="galerkin"
    )
    # measured: re-solved W 34.5% (8x8) and 23.0% (4x4)
    assert accuracy.sel(resolution=8, variant="galerkin_refit_classifier") > 0.31
    assert accuracy.sel(resolution=4, variant="galerkin_refit_classifier") > 0.20
    # a network on 8x8 (restricted from 16x16), prolonged to classify 16x16 images: measured
    # 38.0%, better than on the 8x8 images it was made for (30.0%)
    coarse_network = single.network.restrict()
    finer = evaluate_across_scales(coarse_network, test_sets[:2], variants=("galerkin",))
    assert finer.levels.values.tolist() == [-1, 0]
    prolonged = float(finer.accuracy.sel(resolution=16, variant="galerkin"))
    assert prolonged > 0.34
    assert prolonged > float(finer.accuracy.sel(resolution=8, variant="galerkin")) + 0.04


@pytest.mark.parametrize("centring", ["node", "cell"])
def test_rediscretized_networks_classify_restricted_images(synthetic, single, centring):
    """The fine network restricted by rediscretization (kernels: same derivative coefficients at
    H = 2h), on node- or cell-centred meshes (the same trained weights, moved by that family's
    R and P), classifies the restricted images."""
    train, validation = synthetic
    network = single.network
    network = TrainedNetwork(network.problem.with_mesh(Mesh((16, 16), centring=centring)),
                             network.parameters, network.settings)
    variants = ("galerkin", "rediscretized", "rediscretized_refit_classifier")
    table = evaluate_across_scales(network, image_pyramid(validation, 1, centring=centring),
                                   refit_sets=image_pyramid(train, 1, centring=centring),
                                   variants=variants)
    accuracy = table.accuracy
    assert np.all(np.isfinite(accuracy)) and np.all((accuracy >= 0) & (accuracy <= 1))
    # on its own mesh every variant is the network itself
    np.testing.assert_array_equal(accuracy.sel(resolution=16),
                                  single.history.validation_accuracy.values[-1])
    # measured on 8x8: 28.5% (node), 30.5% (cell); W re-solved 32.5%, 34.25% (chance 10%)
    assert accuracy.sel(resolution=8, variant="rediscretized") > 0.26
    assert accuracy.sel(resolution=8, variant="rediscretized_refit_classifier") > 0.30


def test_evaluation_errors(synthetic, single):
    _, validation = synthetic
    with pytest.raises(ValueError, match="variants must be"):
        evaluate_across_scales(single.network, [validation], variants=("bilinear",))
    with pytest.raises(ValueError, match="not reached from"):
        images, labels = validation
        evaluate_across_scales(single.network, [(images[:, :12, :12], labels)])
    with pytest.raises(ValueError, match="one set per test set"):
        evaluate_across_scales(
            single.network, image_pyramid(validation, 1), refit_sets=[validation]
        )
    with pytest.raises(TypeError, match="TrainedNetwork"):
        evaluate_across_scales(single.x, [validation])


@pytest.mark.mnist
@pytest.mark.slow
def test_mnist_multilevel_14_to_28(mnist_dir):
    mnist = load_mnist("train", data_dir=mnist_dir)
    train, validation = (to_numpy(s) for s in train_validation_split(mnist, 2000, 1000, seed=0))
    settings = SETTINGS.replace(n_channels=2, outer_iterations=1, batch_size=1000, dtype="float32")
    result = train_multilevel(train, validation, settings, n_levels=2)
    history = result.history
    assert history.mesh_shape.values.tolist() == ["14x14"] * 2 + ["28x28"] * 2
    # measured (1,000 validation images): 83.8% -> 84.6% on 14x14, prolonged start 78.9% ->
    # 80.5% on 28x28; training lowers the fine objective and raises the fine accuracy
    accuracy = history.validation_accuracy.values
    assert np.all(accuracy > 0.76)
    assert accuracy[3] > accuracy[2] + 0.008
    assert history.objective.values[3] < history.objective.values[2]
    table = evaluate_across_scales(
        result.network, image_pyramid(validation, 1), variants=("galerkin", "interpolated_input")
    )
    # measured: 82.7% (interpolated 14x14 input), 78.3% (restricted network)
    assert float(table.accuracy.sel(resolution=14, variant="interpolated_input")) > 0.80
    assert float(table.accuracy.sel(resolution=14, variant="galerkin")) > 0.75
