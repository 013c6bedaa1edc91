"""The ``pdecontrol`` command line: help, a tiny training run and what it writes, evaluate,
plot, resume, the paper job on a tiny MNIST subset, and one-line errors.

One tiny run is trained per module and shared read-only (``run_dir``: a test that changes it
fails); a test that changes a run works on its own copy (``own_run``), so the order of the tests
does not matter."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

from pdecontrol.cli import build_parser, main
from pdecontrol.transfer import restrict
from problems.cnn.cli import TRAIN_DEFAULTS, paper_settings, train_settings
from problems.cnn.cli_settings import config_settings
from problems.cnn.config import TrainingSettings
from problems.cnn.evaluation import evaluate_across_scales
from problems.cnn.network_file import read_network_file
from problems.cnn.paper import PAPER_CONFIGS

TINY = [
    "--resolution",
    "16",
    "--n-train",
    "120",
    "--n-val",
    "40",
    "--channels",
    "2",
    "--outer-iterations",
    "1",
    "--gauss-newton-steps",
    "1",
    "--cg-iterations",
    "2",
    "--batch",
    "60",
    "-q",
]


def _contents(directory):
    """SHA-256 of every file under ``directory``, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def module_run(tmp_path_factory):
    """A finished tiny multilevel run (8x8 -> 16x16) on the synthetic set, and its contents."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["cnn", "train", *TINY, "--out", str(out)]) == 0
    return out, _contents(out)


@pytest.fixture
def run_dir(module_run):
    """The module's run, to read only: the test fails if it changed, added or removed a file."""
    out, contents = module_run
    yield out
    assert _contents(out) == contents, "the shared run changed; use the own_run fixture"


@pytest.fixture
def own_run(module_run, tmp_path):
    """A copy of the module's run for a test that changes it."""
    out, contents = module_run
    copy = shutil.copytree(out, tmp_path / "run")
    assert _contents(copy) == contents
    return copy


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "expected a message on stderr"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


@pytest.mark.parametrize("command", [[], ["cnn"], ["cnn", "train"], ["cnn", "evaluate"],
                                     ["cnn", "paper"], ["cnn", "plot"], ["problems"]])
def test_help_of_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: pdecontrol {' '.join(command)}".rstrip())


def test_version_and_module_entry_point():
    completed = subprocess.run(
        [sys.executable, "-m", "pdecontrol", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.startswith("pdecontrol ")


def test_parser_defaults_are_not_shared():
    first, second = build_parser(), build_parser()
    a = first.parse_args(["cnn", "train", "--channels", "3"])
    b = second.parse_args(["cnn", "train"])
    assert a.n_channels == 3 and b.n_channels is None


def test_zero_batch_means_all_examples_and_paper_options_override_the_config():
    parser = build_parser()
    base = TRAIN_DEFAULTS["settings"]
    settings = train_settings(parser.parse_args(["cnn", "train", "--batch", "0"]), base)
    assert settings.batch_size is None and base["batch_size"] is not None
    settings = train_settings(parser.parse_args(["cnn", "train", "--chunk-size", "0"]), base)
    assert settings.chunk_size is None and settings.batch_size == base["batch_size"]

    settings, name = paper_settings(parser.parse_args(["cnn", "paper", "--config", "strong"]))
    assert settings == PAPER_CONFIGS["strong"] and name == "strong"
    args = parser.parse_args(
        ["cnn", "paper", "--config", "strong", "--channels", "4", "--batch", "0"])
    settings, name = paper_settings(args)
    assert (settings.n_channels, settings.batch_size) == (4, None)
    assert settings.kernel_scale == PAPER_CONFIGS["strong"].kernel_scale
    assert name == "strong with n_channels=4, batch_size=None"


@pytest.mark.parametrize("config", ["fast", "strong", "paper"])
def test_train_config_selects_a_named_configuration(config):
    """``cnn train --config NAME`` trains the settings of ``PAPER_CONFIGS[NAME]`` (options
    change single fields); MNIST defaults to the paper's 40,000 / 20,000 split."""
    args = build_parser().parse_args(["cnn", "train", "--config", config, "--data", "mnist",
                                      "--seed", "3"])
    chosen = args.handler.configure(args)
    assert chosen["config"] == config and (chosen["n_train"], chosen["n_val"]) == (40_000, 20_000)
    assert chosen["settings"] == PAPER_CONFIGS[config].replace(seed=3).to_dict()
    args = build_parser().parse_args(["cnn", "train", "--config", config, "--cg-iterations", "7"])
    chosen = args.handler.configure(args)
    assert chosen["settings"] == PAPER_CONFIGS[config].replace(cg_iterations=7).to_dict()
    assert (chosen["n_train"], chosen["n_val"]) == (TRAIN_DEFAULTS["n_train"],
                                                    TRAIN_DEFAULTS["n_val"])
    args = build_parser().parse_args(["cnn", "train"])
    main_job = TrainingSettings(**TRAIN_DEFAULTS["settings"]).replace(seed=0)
    assert args.handler.configure(args)["settings"] == main_job.to_dict()


def test_train_writes_a_run_directory_that_loads_back(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    assert config["mode"] == "multilevel" and config["resolution"] == 16
    assert config["settings"]["n_channels"] == 2 and config["settings"]["batch_size"] == 60
    network_file = read_network_file(run_dir / "network.nc")
    network = network_file.network
    assert network.mesh.shape == (16, 16) and network.mesh.h == (1 / 16, 1 / 16)
    assert network_file.metadata["run"]["data"] == "synthetic"
    history = xr.open_dataset(run_dir / "history.nc").load()
    # 8x8 stage: start + 1 outer iteration; 16x16: prolonged start + 1 outer iteration
    assert list(history["mesh_shape"].values) == ["8x8", "8x8", "16x16", "16x16"]
    assert list(history["phase"].values) == ["start", "iterate", "prolonged_start", "iterate"]
    np.testing.assert_allclose(history["objective"].values,
                               network_file.history["objective"].values)
    assert summary["final_objective"] == pytest.approx(float(history["objective"].values[-1]))
    assert summary["network_mesh_shape"] == [16, 16] and summary["status"] == "completed"
    assert 0 <= summary["final_validation_accuracy"] <= 1
    assert set(summary["validation_accuracy_by_resolution"]) == {"16", "8"}
    for name in summary["figures"]:
        assert (run_dir / name).read_bytes()[:4] == b"\x89PNG"
    assert {
        "figures/training.png",
        "figures/training_cost.png",
        "figures/confusion_8.png",
        "figures/kernels.png",
        "figures/convolved.png",
        "figures/accuracy.png",
    } <= set(summary["figures"])
    predictions = xr.open_dataset(run_dir / "predictions.nc").load()
    assert list(predictions["resolution"].values) == [16, 8]
    assert predictions.sizes["example"] == 40
    # the stored predictions are those of the saved network
    accuracy = network.accuracy(*_validation_images(config))
    assert summary["validation_accuracy_by_resolution"]["16"] == pytest.approx(accuracy)


def _validation_images(config):
    from problems.cnn.data import load_image_sets

    _, validation = load_image_sets(
        "synthetic", 16, config["n_train"], config["n_val"], seed=config["seed"]
    )
    return validation["images"].values, validation["labels"].values


def test_evaluate_at_a_coarser_and_a_finer_resolution(run_dir, tmp_path, capsys):
    argv = ["cnn", "evaluate", str(run_dir), "--resolution", "8", "--out", str(tmp_path), "-q"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "restricted" in out and "classifier-only" in out and "resolved" in out
    result = json.loads((tmp_path / "evaluation_8.json").read_text())
    assert result["levels"] == 1 and result["n_validation"] == 40 and result["n_refit"] == 120
    assert set(result["accuracy"]) == {"restricted", "classifier-only", "interpolated", "resolved"}
    # the restricted accuracy is that of the train command's restricted predictions
    summary = json.loads((run_dir / "summary.json").read_text())
    assert result["accuracy"]["restricted"] == pytest.approx(
        summary["validation_accuracy_by_resolution"]["8"]
    )
    table = xr.open_dataset(tmp_path / "evaluation_8.nc").load()
    assert "restricted" in list(table["variant"].values)
    assert (
        main(
            [
                "cnn",
                "evaluate",
                str(run_dir / "network.nc"),
                "--resolution",
                "32",
                "--variant",
                "prolonged",
                "--out",
                str(tmp_path),
                "-q",
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "evaluation_32.json").read_text())
    assert result["levels"] == -1 and list(result["accuracy"]) == ["prolonged"]


def test_evaluate_rediscretized_variants_only_when_named(run_dir, tmp_path):
    """rediscretized / rediscretized-resolved read the evaluation table's columns of the same
    names; they are not in the default set and do not apply on the network's own mesh."""
    argv = ["cnn", "evaluate", str(run_dir), "--resolution", "8", "--out", str(tmp_path), "-q",
            "--variant", "rediscretized", "--variant", "rediscretized-resolved"]
    assert main(argv) == 0
    result = json.loads((tmp_path / "evaluation_8.json").read_text())
    assert list(result["accuracy"]) == ["rediscretized", "rediscretized-resolved"]
    assert result["n_refit"] == 120
    config = json.loads((run_dir / "config.json").read_text())
    images, labels = _validation_images(config)
    table = evaluate_across_scales(read_network_file(run_dir / "network.nc").network,
                                   [(restrict(images, 2), labels)], variants=("rediscretized",))
    assert result["accuracy"]["rediscretized"] == pytest.approx(float(table.accuracy[0, 0]))
    assert main(["cnn", "evaluate", str(run_dir), "--resolution", "16", "--variant",
                 "rediscretized", "--out", str(tmp_path), "-q"]) == 2


def test_plot_regenerates_the_figures(own_run, capsys):
    figure = own_run / "figures" / "training.png"
    figure.unlink()
    assert main(["cnn", "plot", str(own_run), "-q"]) == 0
    assert figure.read_bytes()[:4] == b"\x89PNG"
    assert str(figure) in capsys.readouterr().out


def test_resume_and_refusal_to_overwrite(own_run, capsys):
    assert main(["cnn", "train", *TINY, "--out", str(own_run)]) == 2
    assert "already holds a run" in _error_line(capsys)
    # a finished run resumes to the same network without training again
    before = read_network_file(own_run / "network.nc").network.parameters.copy()
    history = xr.open_dataset(own_run / "history.nc").load()
    assert main(["cnn", "train", "--resume", "--out", str(own_run), "-q"]) == 0
    np.testing.assert_array_equal(
        read_network_file(own_run / "network.nc").network.parameters, before
    )
    resumed = xr.open_dataset(own_run / "history.nc").load()
    np.testing.assert_array_equal(resumed["objective"].values, history["objective"].values)
    assert main(["cnn", "train", "--resume", "--out", str(own_run), "--channels", "3", "-q"]) == 2
    assert "n_channels" in _error_line(capsys)


def test_initial_continues_from_a_trained_network(run_dir, tmp_path, capsys):
    out = tmp_path / "continued"
    argv = ["cnn", "train", *TINY, "--mode", "consistent", "--initial", str(run_dir),
            "--out", str(out)]
    assert main(argv) == 0
    # the start row is the trained network (its classifier re-solved on the same fine data)
    start = xr.open_dataset(out / "history.nc").load().isel(iteration=0)
    trained = json.loads((run_dir / "summary.json").read_text())
    assert float(start["validation_accuracy"]) == trained["final_validation_accuracy"]
    assert json.loads((out / "config.json").read_text())["initial"] == str(run_dir.resolve())

    for extra, message in [
        (["--mode", "multilevel"], "--initial starts --mode single or consistent"),
        (["--mode", "single", "--channels", "3"], "n_channels (2 in the network file, 3 here)"),
        (["--mode", "single", "--resolution", "32"], "is a network on 16x16"),
    ]:
        target = tmp_path / f"bad{len(extra)}{extra[-1]}"
        argv = ["cnn", "train", *TINY, *extra, "--initial", str(run_dir), "--out", str(target)]
        assert main(argv) == 2
        assert message in _error_line(capsys)
        assert not target.exists()  # refused before anything is written
    bad = ["cnn", "train", *TINY, "--mode", "single", "--initial", str(tmp_path)]
    assert main([*bad, "--out", str(tmp_path / "x")]) == 2
    assert "--initial: no network file" in _error_line(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "mnist", "--data-dir", "/nonexistent/mnist"], "is not a directory"),
        (["train", "--data", "mnist", "--resolution", "20", "--data-dir", "."], "use 28, 14 or 7"),
        (["train", "--resolution", "2"], "--resolution must be >= 4"),
        (["train", "--channels", "0"], "--channels must be >= 1"),
        (["train", "--resolution", "18", "--levels", "3"], "cannot be coarsened"),
        (["evaluate", "/nonexistent/run", "--resolution", "8"], "no network file"),
        (["plot", "/nonexistent/run"], "not a finished run directory"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["cnn", *argv, "-q"] + (["--out", str(out)] if argv[0] == "train" else [])
    assert main(argv) == 2
    line = _error_line(capsys)
    assert line.startswith(f"pdecontrol cnn {argv[1]}: error:") and message in line
    assert not out.exists()  # a run that failed before training leaves nothing behind


def test_evaluate_resolution_errors(run_dir, capsys):
    assert main(["cnn", "evaluate", str(run_dir), "--resolution", "12", "-q"]) == 2
    assert "not on the mesh hierarchy" in _error_line(capsys)
    assert (
        main(["cnn", "evaluate", str(run_dir), "--resolution", "32", "--variant", "restricted",
              "-q"]) == 2
    )
    assert "does not apply" in _error_line(capsys)


def test_verbose_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        main(
            [
                "cnn",
                "train",
                "--data",
                "mnist",
                "--data-dir",
                "/nonexistent",
                "-v",
                "--out",
                str(tmp_path / "run"),
            ]
        )


def test_paper_smoke_on_a_tiny_mnist_subset(mnist_dir, tmp_path, capsys):
    out = tmp_path / "paper"
    assert (
        main(
            [
                "cnn",
                "paper",
                "--data-dir",
                str(mnist_dir),
                "--n-train",
                "100",
                "--n-val",
                "50",
                "--outer-iterations",
                "1",
                "--gauss-newton-steps",
                "1",
                "--cg-iterations",
                "2",
                "--batch",
                "50",
                "--consistent",
                "--consistency-weight",
                "0.5",
                "--consistent-from",
                "multilevel",
                "--consistent-iterations",
                "2",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    table = (out / "paper_table.md").read_text()
    assert table == capsys.readouterr().out.split("\n", 1)[1].rstrip("\n") + "\n"
    for paper_number in (
        "0.218 -> 0.082",
        "82.9% -> 96.7%",
        "0.212 -> 0.081",
        "82.0% -> 96.4%",
        "0.218 -> 0.147",
        "87.0% -> 92.0%",
        "84.1%",
        "81.8% (worse)",
        "0.03 s",
    ):
        assert paper_number in table
    results = json.loads((out / "results.json").read_text())
    assert results["n_train"] == 100 and results["n_val"] == 50
    assert results["settings"]["n_channels"] == 2 and results["settings"]["outer_iterations"] == 1
    assert f"{100 * results['restricted']['accuracy']:.1f}%" in table
    assert "multilevel cost to reach fine-only's final accuracy" in table
    assert results["consistent"]["weight"] == 0.5
    assert results["consistent"]["start"] == "multilevel"
    row = "resolution-consistent network (14x14 loss weight 0.5, 2 outer iterations from the "
    assert row + "multilevel network) on 28x28" in table
    # it continued from the multilevel network: its start row is that network's final row
    consistent = xr.open_dataset(out / "history_consistent.nc").load()
    multilevel = xr.open_dataset(out / "history_multilevel.nc").load()
    assert consistent.sizes["iteration"] == 3
    assert float(consistent["validation_accuracy"][0]) == float(
        multilevel["validation_accuracy"][-1]
    )
    assert set(results["multilevel"]["cost_to_fine_only_accuracy"]) == {
        "fine_level_work",
        "wall_time",
    }
    fine_only = results["fine_only"]
    assert 0 <= fine_only["iterations_to_final_accuracy"] <= fine_only["outer_iterations"]
    own = fine_only["cost_to_final_accuracy"]  # its first time at its final accuracy
    assert own["wall_time"] <= fine_only["wall_time"]
    assert own["fine_level_work"] <= fine_only["fine_level_work"]
    figure_names = (
        "training",
        "training_cost",
        "confusion_restricted_14",
        "convolved",
        "kernels",
        "accuracy",
    )
    for name in figure_names:
        assert (out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
    history = xr.open_dataset(out / "history_multilevel.nc").load()
    assert list(history["mesh_shape"].values) == ["14x14", "14x14", "28x28", "28x28"]

    # `pdecontrol plot` redraws the paper figures from the files alone
    for figure in (out / "figures").iterdir():
        figure.unlink()
    assert main(["cnn", "plot", str(out), "-q"]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(p) for p in (out / "figures").iterdir())
    assert len(printed) == len(figure_names)
    (out / "predictions_restricted.nc").unlink()
    assert main(["cnn", "plot", str(out), "-q"]) == 2
    assert "predictions_restricted.nc" in capsys.readouterr().err


def test_prolongation_fit_options_reach_the_settings():
    parser = build_parser()
    args = parser.parse_args(["cnn", "paper", "--config", "fast", "--prolongation-fit", "0"])
    settings, name = paper_settings(args)
    assert PAPER_CONFIGS["fast"].prolongation_fit_examples == 500
    assert settings.prolongation_fit_examples == 0
    assert name == "fast with prolongation_fit_examples=0"
    args = parser.parse_args(["cnn", "train", "--prolongation-fit", "200",
                              "--prolongation-fit-ridge", "0.01"])
    settings = train_settings(args, TRAIN_DEFAULTS["settings"])
    assert (settings.prolongation_fit_examples, settings.prolongation_fit_ridge) == (200, 0.01)


def test_classifier_curvature_batch_option_reaches_the_settings():
    parser = build_parser()
    assert PAPER_CONFIGS["fast"].classifier_curvature_batch_size == 10_000
    for value, expected in (("0", None), ("3000", 3000)):
        args = parser.parse_args(["cnn", "train", "--config", "fast",
                                  "--classifier-curvature-batch", value])
        settings = train_settings(args, config_settings("fast"))
        assert settings.classifier_curvature_batch_size == expected


def test_coarse_settings_set_the_coarser_levels_of_a_multilevel_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["cnn", "train", *TINY, "--coarse", "gauss-newton-steps=2", "batch=0",
                 "--out", str(out)]) == 0
    changes = {"gauss_newton_steps": 2, "batch_size": None}
    assert json.loads((out / "config.json").read_text())["coarse_settings"] == changes
    history = xr.open_dataset(out / "history.nc").load()
    assert json.loads(history.attrs["level_settings"]) == {"1": changes}
    # the coarse stage took 2 Gauss-Newton steps per outer iteration, the fine stage 1
    assert history.inner_iterations.values[[1, 3]].tolist() == [2, 1]
    # resumed with its saved settings; a changed --coarse is refused
    assert main(["cnn", "train", "--resume", "--out", str(out), "-q"]) == 0
    assert main(["cnn", "train", "--resume", "--out", str(out), "--coarse",
                 "gauss-newton-steps=1", "-q"]) == 2
    assert "drop the changed option(s) ['coarse_settings']" in _error_line(capsys)
    # a run without --coarse stores nothing (older runs resume)
    plain = tmp_path / "plain"
    assert main(["cnn", "train", *TINY, "--out", str(plain)]) == 0
    assert "coarse_settings" not in json.loads((plain / "config.json").read_text())
    for args, message in (
        (["--mode", "single", "--coarse", "batch=10"],
         "--coarse sets the coarser levels of --mode multilevel, not --mode single"),
        (["--coarse", "channels=4"], "--coarse takes NAME=VALUE with NAME one of "
                                     "gauss-newton-steps, cg-iterations"),
        (["--coarse", "batch"], "--coarse takes NAME=VALUE"),
        (["--coarse", "cg-iterations=two"], "--coarse cg-iterations: expected int, got 'two'"),
        (["--coarse", "cg-iterations=0"], "--coarse: cg-iterations must be >= 1, got 0"),
    ):
        assert main(["cnn", "train", *TINY, *args, "--out", str(tmp_path / "bad")]) == 2
        assert message in _error_line(capsys)


def test_coarse_iterations_set_the_coarser_levels_of_a_multilevel_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["cnn", "train", *TINY, "--outer-iterations", "2", "--coarse-iterations", "1",
                 "--prolongation-fit", "30", "--out", str(out)]) == 0
    history = xr.open_dataset(out / "history.nc").load()
    assert list(history.mesh_shape.values) == ["8x8"] * 2 + ["16x16"] * 3
    assert json.loads((out / "config.json").read_text())["coarse_iterations"] == 1
    assert main(["cnn", "train", *TINY, "--mode", "single", "--coarse-iterations", "1",
                 "--out", str(tmp_path / "other")]) == 2
    assert "--coarse-iterations sets the coarser levels of --mode multilevel" in _error_line(
        capsys)
