"""Training on volumes (3D): the dimension of the data, the 3D resolution-consistent functional's
derivatives, the drivers' schedules and work in 3D, and a tiny ``pdecontrol cnn train --data
volumes`` run and what it writes (2D behaviour is covered by test_cnn_training / test_cnn_cli)."""

import json

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.cli import main
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict
from pdecontrol.verify import gauss_newton_test, taylor_test
from problems.cnn.data import make_volumes, to_numpy
from problems.cnn.evaluation import image_dim
from problems.cnn.network import cnn_functional
from problems.cnn.network_file import read_network_file
from problems.cnn.training import (
    CNNTraining,
    resolution_consistent_functional,
    train_multilevel,
    train_resolution_consistent,
    train_single_level,
)
from problems.cnn.transfer import restrict_network

TINY = small_settings(outer_iterations=1, gauss_newton_steps=1, cg_iterations=2, batch_size=20,
                      high_order_penalty=1e-3)


@pytest.fixture(scope="module")
def volumes():
    """40 training and 20 validation volumes at 8^3 (Datasets)."""
    return make_volumes(40, 8, seed=0), make_volumes(20, 8, seed=1)


# ---------------------------------------------------------------------- the dimension
def test_dimension_comes_from_the_dataset_or_dim(volumes):
    train, validation = volumes
    assert image_dim(train) == 3 and image_dim(to_numpy(train)) == 2
    assert image_dim(to_numpy(train), 3) == 3
    problem = CNNTraining(TINY, train, validation, n_levels=2)
    assert problem.dim == 3 and problem.hierarchy[0].mesh == Mesh((8, 8, 8))
    assert problem.fine_problem.in_channels == 1 and problem.describe()["dim"] == 3
    np.testing.assert_array_equal(problem.level_images(1)[0],
                                  restrict(to_numpy(train)[0], 3))
    # the same arrays without dim are 2D images of 8 channels; with dim=3 the volumes again
    arrays = CNNTraining(TINY, to_numpy(train), to_numpy(validation))
    assert arrays.dim == 2 and arrays.fine_problem.in_channels == 8
    assert "dim" not in arrays.describe()
    assert CNNTraining(TINY, to_numpy(train), to_numpy(validation), dim=3).dim == 3
    with pytest.raises(ValueError, match=r"train holds 3D images .* but dim=2 was given"):
        CNNTraining(TINY, train, dim=2)
    with pytest.raises(ValueError, match=r"dim must be 2 \(images\) or 3 \(volumes\)"):
        CNNTraining(TINY, to_numpy(train), dim=4)
    with pytest.raises(ValueError, match=r"shape \(N, n, n, n\) or \(N, C_in, n, n, n\)"):
        CNNTraining(TINY, (np.zeros((4, 8, 8)), np.arange(4) % 2), dim=3)


# ------------------------------------------------------------ the 3D consistent functional
@pytest.fixture(scope="module")
def consistent_functional_3d():
    rng = np.random.default_rng(3)
    settings = TINY.replace(time_smoothness=1e-2)
    fine = settings.make_problem(Mesh((8, 8, 8)), 3)
    images = rng.random((4, 8, 8, 8))
    labels = np.arange(4) % 3

    def make(problem, data, regs):
        return cnn_functional(problem, data, labels, 2, final_time=1.0, regularizers=regs)

    J_fine = make(fine, images, settings.make_regularizers(fine))
    coarse = [(1, make(fine.coarsen(), restrict(images, 3), ()))]
    functional = resolution_consistent_functional(J_fine, coarse, weight=0.7)
    x = fine.initial_parameters(2, seed=0)
    params = J_fine.layout.unflatten(x)
    params["b"][...] = 0.1 * rng.standard_normal(params["b"].shape)
    params["W"][...] = rng.standard_normal(params["W"].shape)
    params["c"][...] = 0.1
    return functional, J_fine, coarse, x


def test_consistent_functional_3d_value_and_taylor(consistent_functional_3d):
    functional, J_fine, coarse, x = consistent_functional_3d
    expected = J_fine.value(x) + 0.7 * coarse[0][1].value(restrict_network(J_fine.problem, x, 1))
    assert functional.value(x) == pytest.approx(expected, rel=1e-12)
    result = taylor_test(functional, x, rng=np.random.default_rng(1))
    assert result.passed, result
    assert np.all(np.abs(result.orders[np.isfinite(result.orders)] - 2) < 0.1), result.orders


def test_consistent_functional_3d_gauss_newton_symmetric_psd(consistent_functional_3d):
    functional, _, _, x = consistent_functional_3d
    result = gauss_newton_test(functional, x, rng=np.random.default_rng(2))
    assert result.passed, result


# ---------------------------------------------------------------------- drivers
def test_multilevel_on_volumes_counts_coarse_work_at_an_eighth(volumes):
    train, validation = volumes
    result = train_multilevel(train, validation, TINY, n_levels=2, outer_iterations=[1, 1])
    history = result.history
    assert list(history.mesh_shape.values) == ["4x4x4"] * 2 + ["8x8x8"] * 2
    assert list(history.phase.values) == ["start", "iterate", "prolonged_start", "iterate"]
    # the coarse classifier solve: 40 examples, 2 layers, a 4^3 convolution = 1/8 of an 8^3 one
    assert history.work.values[0] == 40 * 2 / 8
    assert np.all(history.fine_level_work.values[:2] == 0)
    assert [n.mesh.shape for n in result.stage_networks] == [(4, 4, 4), (8, 8, 8)]
    assert np.all((history.validation_accuracy >= 0) & (history.validation_accuracy <= 1))
    assert history.attrs["fine_mesh_shape"] == "8x8x8"


def test_single_and_consistent_on_volume_arrays_with_dim(volumes):
    train, validation = (to_numpy(ds) for ds in volumes)
    single = train_single_level(train, validation, TINY.replace(batch_size=None), dim=3)
    assert single.network.mesh == Mesh((8, 8, 8))
    assert single.history.objective.values[1] < single.history.objective.values[0]
    consistent = train_resolution_consistent(train, validation, TINY, dim=3)
    assert consistent.network.mesh == Mesh((8, 8, 8))
    work = consistent.history.work.values - consistent.history.fine_level_work.values
    assert work[-1] > 0  # the 4^3 term is charged, at its eighth


# ---------------------------------------------------------------------- command line
VOLUME_RUN = ["cnn", "train", "--data", "volumes", "--resolution", "8", "--n-train", "40",
              "--n-val", "20", "--channels", "2", "--outer-iterations", "1",
              "--gauss-newton-steps", "1", "--cg-iterations", "2", "--batch", "20", "-q"]


def test_cli_trains_on_volumes_and_writes_a_valid_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*VOLUME_RUN, "--mode", "multilevel", "--levels", "2", "--out", str(out)]) == 0
    report = capsys.readouterr().out
    assert "4x4x4" in report and "8x8x8" in report
    summary = json.loads((out / "summary.json").read_text())
    assert summary["network_mesh_shape"] == [8, 8, 8] and summary["status"] == "completed"
    assert [s["mesh_shape"] for s in summary["stages"]] == ["4x4x4", "8x8x8"]
    assert set(summary["validation_accuracy_by_resolution"]) == {"8", "4"}
    network = read_network_file(out / "network.nc")
    assert network.network.problem.dim == 3 and network.network.mesh == Mesh((8, 8, 8))
    assert network.history.sizes["iteration"] == 4
    figures = {f.split("/")[-1] for f in summary["figures"]}
    assert {"training.png", "kernels.png", "confusion_8.png", "accuracy.png"} <= figures
    assert "convolved.png" not in figures
    for name in summary["files"]:
        assert (out / name).is_file(), name
    # and the network is evaluated on the run's volumes at the coarser resolution
    assert main(["cnn", "evaluate", str(out), "--resolution", "4", "--out", str(tmp_path),
                 "-q"]) == 0
    evaluation = json.loads((tmp_path / "evaluation_4.json").read_text())
    assert evaluation["accuracy"]["restricted"] == pytest.approx(
        summary["validation_accuracy_by_resolution"]["4"])


def test_cli_volume_errors_are_one_line(tmp_path, capsys):
    argv = [*VOLUME_RUN, "--mode", "consistent", "--resolution", "12", "--levels", "4",
            "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    assert err[-1].endswith("--levels 4: 12x12x12 volumes cannot be coarsened 3 times (halving "
                            "stops at 3x3x3: 12 -> 6 -> 3); use fewer levels (--levels 3 or "
                            "less) or a resolution divisible by 2**3")
    assert not (tmp_path / "r" / "network.nc").exists()
    with pytest.raises(SystemExit):
        main([*VOLUME_RUN, "--data", "cubes"])
    assert "invalid choice: 'cubes' (choose from 'synthetic', 'mnist', 'volumes')" in (
        capsys.readouterr().err)
