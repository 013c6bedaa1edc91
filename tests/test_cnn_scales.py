"""MNIST across resolutions from the command line (issue 16): the transfer options of
``pdecontrol cnn train`` and ``paper`` (``--centring``, ``--kernel-transfer``,
``--smoothing-sigma``), three levels 28 -> 14 -> 7 end to end (multilevel and consistent:
history, network, predictions, evaluation, figures, ``evaluate`` at 28 / 14 / 7), outputs that
follow the network's centring, and resume refusing a changed transfer option.

The MNIST runs use 120 / 60 images and one outer iteration (seconds each); the runs are shared
read-only within the module."""

import json

import numpy as np
import pytest
import xarray as xr

from cnn_helpers import small_settings
from pdecontrol.cli import main
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict_image
from problems.cnn.data import load_image_sets, make_synthetic, to_numpy
from problems.cnn.evaluation import image_pyramid
from problems.cnn.network_file import read_network_file
from problems.cnn.run_outputs import TRANSFER_DEFAULTS, run_transfers
from problems.cnn.training import train_single_level

TINY_MNIST = ["--data", "mnist", "--n-train", "120", "--n-val", "60", "--channels", "2",
              "--outer-iterations", "1", "--gauss-newton-steps", "1", "--cg-iterations", "2",
              "--batch", "60", "-q"]


def _train(out, *options, mnist_dir):
    argv = ["cnn", "train", *TINY_MNIST, "--data-dir", str(mnist_dir), *options, "--out",
            str(out)]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def three_level_runs(mnist_dir, tmp_path_factory):
    """Finished 28 -> 14 -> 7 runs: node-centred Galerkin multilevel, and cell-centred
    rediscretized consistent with smoothed images."""
    root = tmp_path_factory.mktemp("scales")
    return {
        "multilevel": _train(root / "multilevel", "--mode", "multilevel", "--levels", "3",
                             mnist_dir=mnist_dir),
        "consistent": _train(root / "consistent", "--mode", "consistent", "--levels", "3",
                             "--centring", "cell", "--kernel-transfer", "rediscretize",
                             "--smoothing-sigma", "0.5", mnist_dir=mnist_dir),
    }


# ---------------------------------------------------------------------- three levels
def test_three_level_multilevel_trains_7_then_14_then_28(three_level_runs):
    run = three_level_runs["multilevel"]
    history = xr.open_dataset(run / "history.nc").load()
    shapes = list(dict.fromkeys(history["mesh_shape"].values.tolist()))
    assert shapes == ["7x7", "14x14", "28x28"]
    assert list(history["phase"].values).count("prolonged_start") == 2
    config = json.loads((run / "config.json").read_text())
    # defaults are not stored: the run reads as node-centred Galerkin without smoothing
    assert not set(TRANSFER_DEFAULTS) & set(config)
    assert run_transfers(config) == dict(TRANSFER_DEFAULTS)
    network = read_network_file(run / "network.nc").network
    assert network.mesh == Mesh((28, 28))
    predictions = xr.open_dataset(run / "predictions.nc").load()
    assert predictions["resolution"].values.tolist() == [28, 14, 7]
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["validation_accuracy_by_resolution"]) == {"28", "14", "7"}
    for name in ("training", "training_cost", "confusion_28", "confusion_14", "confusion_7",
                 "convolved", "accuracy"):
        assert (run / "figures" / f"{name}.png").is_file()


def test_three_level_consistent_run_is_cell_centred_everywhere(three_level_runs, mnist_dir):
    run = three_level_runs["consistent"]
    config = json.loads((run / "config.json").read_text())
    assert run_transfers(config) == {"centring": "cell", "kernel_transfer": "rediscretize",
                                     "smoothing_sigma": 0.5}
    network_file = read_network_file(run / "network.nc")
    network = network_file.network
    assert network.mesh.centring == "cell"
    assert network_file.metadata["run"]["centring"] == "cell"
    history = network_file.history
    assert json.loads(history.attrs["settings"])["n_channels"] == 2
    # predictions: the rediscretized network restricted with the cell R after smoothing, as an
    # independent computation from the API gives them
    predictions = xr.open_dataset(run / "predictions.nc").load()
    assert predictions["resolution"].values.tolist() == [28, 14, 7]
    _, validation = load_image_sets("mnist", 28, 120, 60, seed=0, data_dir=mnist_dir)
    images, labels = to_numpy(validation)
    for level, resolution in ((1, 14), (2, 7)):
        coarse = restrict_image(images, 2, level, 0.5, "cell")
        expected = network.restrict(level, "rediscretize").classify(coarse)
        np.testing.assert_array_equal(predictions["predicted"].sel(resolution=resolution),
                                      expected)
    evaluation = xr.open_dataset(run / "evaluation.nc").load()
    assert "rediscretized" in evaluation["variant"].values
    assert evaluation["resolution"].values.tolist() == [28, 14, 7]
    assert (run / "figures" / "confusion_7.png").is_file()


@pytest.mark.parametrize("resolution", [28, 14, 7])
def test_evaluate_follows_the_networks_centring_and_smoothing(three_level_runs, mnist_dir,
                                                              resolution, tmp_path, capsys):
    run = three_level_runs["consistent"]
    assert main(["cnn", "evaluate", str(run), "--resolution", str(resolution), "--data-dir",
                 str(mnist_dir), "--out", str(tmp_path), "-q"]) == 0
    result = json.loads((tmp_path / f"evaluation_{resolution}.json").read_text())
    assert result["centring"] == "cell" and result["smoothing_sigma"] == 0.5
    network = read_network_file(run / "network.nc").network
    _, validation = load_image_sets("mnist", 28, 120, 60, seed=0, data_dir=mnist_dir)
    images, labels = to_numpy(validation)
    levels = {28: 0, 14: 1, 7: 2}[resolution]
    if levels == 0:
        assert result["accuracy"]["native"] == network.accuracy(images, labels)
        return
    # a run trained with rediscretized transfers shows them by default, next to Galerkin
    assert {"restricted", "classifier-only", "rediscretized"} <= set(result["accuracy"])
    coarse = restrict_image(images, 2, levels, 0.5, "cell")
    assert result["accuracy"]["rediscretized"] == network.restrict(
        levels, "rediscretize").accuracy(coarse, labels)
    assert result["accuracy"]["restricted"] == network.restrict(levels).accuracy(coarse, labels)
    assert result["accuracy"]["classifier-only"] == network.restrict_classifier_only(
        levels).accuracy(coarse, labels)


def test_resume_refuses_a_changed_transfer_option(three_level_runs, tmp_path, capsys):
    import shutil

    run = shutil.copytree(three_level_runs["consistent"], tmp_path / "run")
    for option, value, name in (("--centring", "node", "centring"),
                                ("--kernel-transfer", "galerkin", "kernel_transfer"),
                                ("--smoothing-sigma", "1.0", "smoothing_sigma")):
        capsys.readouterr()
        assert main(["cnn", "train", "--resume", "--out", str(run), option, value, "-q"]) == 2
        assert f"drop the changed option(s) ['{name}']" in capsys.readouterr().err
    # the same options resume (the finished run is written again, no training)
    assert main(["cnn", "train", "--resume", "--out", str(run), "--centring", "cell",
                 "--smoothing-sigma", "0.5", "-q"]) == 0


# ---------------------------------------------------------------------- data and training
def test_mnist_restricted_by_the_centrings_r(mnist_dir):
    """``load_image_sets`` at 14: nodal full weighting, or the mean of each 2x2 block."""
    fine, _ = load_image_sets("mnist", 28, 30, 10, seed=3, data_dir=mnist_dir)
    cell, _ = load_image_sets("mnist", 14, 30, 10, seed=3, data_dir=mnist_dir, centring="cell")
    node, _ = load_image_sets("mnist", 14, 30, 10, seed=3, data_dir=mnist_dir)
    images = fine["images"].values.astype(np.float64)
    blocks = images.reshape(30, 14, 2, 14, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(cell["images"].values, blocks, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(node["images"].values, restrict_image(images, 2, 1),
                               rtol=1e-6, atol=1e-7)
    assert not np.allclose(node["images"].values, cell["images"].values)


def test_single_level_training_does_not_depend_on_the_centring():
    """One mesh, one network: the centring only labels the mesh (it decides how the network
    restricts later), so the parameters agree bit for bit."""
    train = to_numpy(make_synthetic(24, 8, 0))
    settings = small_settings(outer_iterations=1, cg_iterations=2, batch_size=12)
    node = train_single_level(train, None, settings, n_classes=10)
    cell = train_single_level(train, None, settings, n_classes=10, centring="cell")
    np.testing.assert_array_equal(node.network.parameters, cell.network.parameters)
    assert node.network.mesh.centring == "node" and cell.network.mesh.centring == "cell"
    # and they restrict differently
    coarse = image_pyramid(train, 1, centring="cell")[1][0]
    assert not np.allclose(node.network.restrict(1).predict(coarse),
                           cell.network.restrict(1).predict(coarse))


def test_paper_job_with_cell_centred_rediscretized_transfers(mnist_dir, tmp_path):
    out = tmp_path / "paper"
    assert main(["cnn", "paper", "--data-dir", str(mnist_dir), "--n-train", "100", "--n-val",
                 "50", "--outer-iterations", "1", "--gauss-newton-steps", "1",
                 "--cg-iterations", "2", "--batch", "50", "--centring", "cell",
                 "--kernel-transfer", "rediscretize", "--smoothing-sigma", "1", "--out",
                 str(out), "-q"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["transfers"] == {"centring": "cell", "kernel_transfer": "rediscretize",
                                    "smoothing_sigma": 1.0}
    fine = read_network_file(out / "network_fine.nc").network
    assert fine.mesh.centring == "cell"
    assert read_network_file(out / "network_multilevel.nc").network.mesh.centring == "cell"
    _, validation = load_image_sets("mnist", 28, 100, 50, seed=0, data_dir=mnist_dir)
    images, labels = to_numpy(validation)
    coarse = restrict_image(images, 2, 1, 1.0, "cell")
    assert results["restricted"]["accuracy"] == fine.restrict(1, "rediscretize").accuracy(
        coarse, labels)
    assert results["classifier_only"]["accuracy"] == fine.restrict_classifier_only(1).accuracy(
        coarse, labels)
    table = (out / "paper_table.md").read_text()
    assert ("cell-centred meshes, rediscretized kernel transfer, images smoothed (sigma 1) "
            "before restriction.") in table
    assert (out / "figures" / "confusion_restricted_14.png").is_file()


@pytest.mark.parametrize("mode", ["single", "time"])
def test_single_mesh_modes_record_the_centring(mode, tmp_path):
    """``--centring cell`` without levels: the network is cell-centred, and its outputs restrict
    it (and the images) the cell-centred way."""
    out = tmp_path / mode
    assert main(["cnn", "train", "--mode", mode, "--centring", "cell", "--resolution", "16",
                 "--n-train", "40", "--n-val", "20", "--channels", "2", "--outer-iterations",
                 "1", "--gauss-newton-steps", "1", "--cg-iterations", "2", "--batch", "20",
                 "--out", str(out), "-q"]) == 0
    assert json.loads((out / "config.json").read_text())["centring"] == "cell"
    network = read_network_file(out / "network.nc").network
    assert network.mesh == Mesh((16, 16), centring="cell")
    _, validation = load_image_sets("synthetic", 16, 40, 20, seed=0)
    images, _ = to_numpy(validation)
    predictions = xr.open_dataset(out / "predictions.nc").load()
    np.testing.assert_array_equal(
        predictions["predicted"].sel(resolution=8),
        network.restrict(1).classify(restrict_image(images, 2, 1, centring="cell")))
