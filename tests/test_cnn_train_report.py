"""What ``pdecontrol cnn train`` prints at its end (``problems.cnn.cli.train_report``) and the
per-stage summary in ``summary.json`` behind it (``problems.cnn.run_outputs.stage_summaries``)."""

import inspect
import json

import numpy as np
import pytest
import xarray as xr

from pdecontrol.cli import main
from problems.cnn.classifier import ClassifierSolver
from problems.cnn.cli import TRAIN_DEFAULTS, train_report
from problems.cnn.config import TrainingSettings

TINY = ["--resolution", "16", "--n-train", "120", "--n-val", "40", "--channels", "2",
        "--outer-iterations", "2", "--gauss-newton-steps", "1", "--cg-iterations", "2",
        "--batch", "60", "-q"]


def test_train_prints_what_each_level_did(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["cnn", "train", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    history = xr.open_dataset(out / "history.nc").load()
    accuracy = 100 * history["validation_accuracy"].values
    coarse, fine = summary["stages"]

    # the stages of summary.json are the history's rows, split where the level changes
    assert [coarse["mesh_shape"], fine["mesh_shape"]] == ["8x8", "16x16"]
    assert [coarse["start_phase"], fine["start_phase"]] == ["start", "prolonged_start"]
    assert coarse["outer_iterations"] == fine["outer_iterations"] == 2
    np.testing.assert_array_equal(
        100 * np.array([coarse["start_validation_accuracy"], coarse["final_validation_accuracy"],
                        fine["start_validation_accuracy"], fine["final_validation_accuracy"]]),
        accuracy[[0, 2, 3, 5]])
    assert coarse["fine_level_work"] == 0
    assert fine["fine_level_work"] == float(history["fine_level_work"].values[-1]) > 0
    # a coarse convolution counts a quarter of a fine one
    assert coarse["work"] == pytest.approx(fine["work"] / 4, rel=0.2)
    for name, column in (("work", "work"), ("wall_time_s", "wall_time")):
        assert coarse[name] + fine[name] == pytest.approx(float(history[column].values[-1]))
    assert summary["initial_validation_accuracy"] == coarse["start_validation_accuracy"]

    assert printed == train_report(json.loads((out / "config.json").read_text()), summary, out)
    assert len(printed) == 6  # run directory, heading, one line per level, final, figures
    assert printed[0] == f"run directory: {out}"
    assert printed[1].startswith(
        "coarse to fine (--mode multilevel): validation accuracy on 40 synthetic images")
    assert printed[2].startswith(
        f"  8x8: {accuracy[0]:.1f}% (random kernels) -> {accuracy[2]:.1f}% after 2 outer "
        "iterations; ")
    assert printed[3].startswith(
        f"  16x16: {accuracy[3]:.1f}% (prolonged from 8x8, before training on 16x16) -> "
        f"{accuracy[5]:.1f}% after 2 outer iterations; ")
    assert printed[4].startswith(f"final network 16x16: validation {accuracy[5]:.1f}%, ")
    figures = out / "figures"
    assert printed[-1].startswith(f"figures: {figures}/ training.png, ")
    listed = printed[-1].split("/ ", 1)[1].split(", ")
    assert all((figures / name).is_file() for name in listed)


def _stage(mesh, n_steps, phase, start, end, iterations=1):
    return {"mesh_shape": mesh, "n_steps": n_steps, "start_phase": phase,
            "start_validation_accuracy": start, "final_validation_accuracy": end,
            "outer_iterations": iterations, "wall_time_s": 1.0, "work": 2.5e5}


def test_report_of_time_continuation_and_a_missing_validation_accuracy():
    summary = {"n_val": 10, "network_mesh_shape": [16, 16], "final_validation_accuracy": 0.5,
               "final_training_accuracy": 0.75, "final_objective": 0.25,
               "command_wall_time_s": 3.0, "figures": ["figures/training.png"],
               "stages": [_stage("16x16", 1, "start", float("nan"), 0.25),
                          _stage("16x16", 2, "time_refined_start", 0.375, 0.5, 3)]}
    lines = train_report({"mode": "time", "data": "mnist", "initial": None}, summary, "runs/x")
    assert lines[1].startswith("shallow to deep (--mode time): validation accuracy on 10 mnist")
    assert lines[2] == ("  16x16, 1 layer: n/a (random kernels) -> 25.0% after 1 outer "
                        "iteration; 1 s, work 2.5e5")
    assert lines[3].startswith("  16x16, 2 layers: 37.5% (1 layer refined to 2, before training)"
                               " -> 50.0% after 3 outer iterations; ")
    assert lines[4] == ("final network 16x16: validation 50.0%, training 75.0%, objective 0.25; "
                        "3 s in all")
    lines = train_report({"mode": "single", "data": "synthetic", "initial": "net.nc"},
                         dict(summary, stages=summary["stages"][1:]), "runs/x")
    assert "(--initial network)" in lines[2] and "layer" not in lines[2]


def test_the_default_run_is_coarse_to_fine_with_the_dual_classifier_solve():
    """The main job shows Algorithm 1 (multilevel 16x16 -> 32x32 on the synthetic set), and its
    training set is small enough for the Gram classifier solve (the normal equations of 5,000
    examples took 3x longer per solve: docs/cli.md, "Measured")."""
    assert TRAIN_DEFAULTS["mode"] == "multilevel" and TRAIN_DEFAULTS["levels"] == 2
    assert TRAIN_DEFAULTS["data"] == "synthetic"
    settings = TrainingSettings(**TRAIN_DEFAULTS["settings"])
    features = settings.n_channels * 32 * 32
    gram_max = inspect.signature(ClassifierSolver).parameters["gram_max_examples"].default
    assert TRAIN_DEFAULTS["n_train"] <= min(gram_max, features)
    assert settings.exact_classifier and settings.classifier_tikhonov > 0
