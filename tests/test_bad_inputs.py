"""The bad-input catalogue: every case is refused (or stops) with one line that names the problem
and the fix, the right exit status or exception, no traceback, and nothing on disk lost.

Command-line cases run ``pdecontrol.cli.main`` in-process on tiny settings; each checks that the
files present before (a finished CNN and heat run, a folder of the user's, copies made for the
case) are byte for byte unchanged afterwards and that a refused new run left no directory. API
cases check the exception type and message. The count of cases is in docs/cli.md (Robustness).
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pdecontrol.cli import main
from pdecontrol.io import (
    CorruptFileError,
    read_archive,
    read_netcdf,
    write_archive,
    write_netcdf,
)
from pdecontrol.memory import InsufficientMemoryError, check_memory
from pdecontrol.mesh import Mesh
from problems.cnn.config import TrainingSettings
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.network_file import load_network, read_network_file, save_network
from problems.cnn.training import train_single_level, train_time_continuation
from problems.heat import HeatSettings

CNN = ["--mode", "single", "--resolution", "8", "--n-train", "40", "--n-val", "20",
       "--channels", "2", "--outer-iterations", "1", "--gauss-newton-steps", "1",
       "--cg-iterations", "2", "--batch", "20", "-q"]
HEAT = ["--resolution", "8", "--levels", "2", "--steps", "4", "--times", "0.05,0.1",
        "--experiments", "2", "--gn-iterations", "2", "-q"]
PAPER = ["--n-train", "100", "--n-val", "50", "-q"]
USAGE, FAILED = 2, 1


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished runs: ``cnn`` (8x8), ``cnn16`` (16x16, another mesh) and ``heat``."""
    root = tmp_path_factory.mktemp("runs")
    paths = {"cnn": root / "cnn", "cnn16": root / "cnn16", "heat": root / "heat"}
    assert main(["cnn", "train", *CNN, "--out", str(paths["cnn"])]) == 0
    sixteen = [a if a != "8" else "16" for a in CNN]
    assert main(["cnn", "train", *sixteen, "--out", str(paths["cnn16"])]) == 0
    assert main(["heat", "invert", *HEAT, "--out", str(paths["heat"])]) == 0
    return paths


@pytest.fixture
def user(tmp_path):
    """A folder of the user's with two files (must never change)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's notes")
    (folder / "summary.json").write_text('{"mine": true}')
    return folder


@pytest.fixture
def unwritable(tmp_path):
    """A folder nothing can be created in (root: /sys; others: a folder without write bits)."""
    if os.geteuid() == 0:
        if not Path("/sys/kernel").is_dir():
            pytest.skip("no read-only folder for root here")
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def _snapshot(*roots) -> dict:
    files = {}
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _flip(path: Path, count: int = 2000, seed: int = 0):
    """Flip ``count`` bytes inside the file (same size)."""
    data = bytearray(path.read_bytes())
    for index in np.random.default_rng(seed).integers(0, len(data), count):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def _copy(runs, tmp_path, name="cnn") -> Path:
    copy = tmp_path / f"copy-{name}"
    shutil.copytree(runs[name], copy)
    return copy


def _run(argv, capsys) -> tuple:
    """``(exit status, stderr)`` of ``main(argv)`` (argparse's SystemExit included)."""
    try:
        status = main(argv)
    except SystemExit as error:
        status = error.code
    return status, capsys.readouterr().err


def _check_refusal(argv, status, expected_status, stderr, fragments):
    command = f"pdecontrol {argv[0]} {argv[1]}" if argv[0] in ("cnn", "heat") else "pdecontrol"
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if ": error:" in line]
    assert len(errors) == 1, stderr
    line = errors[0]
    assert line.startswith(f"{command}: error:"), line
    assert status == expected_status, (status, line)
    for fragment in fragments:
        assert fragment in line, (fragment, line)


# ---------------------------------------------------------------------- the command line
# (id, argv with OUT / RUN / RUN16 / HEAT / USER / UNWRITABLE / COPY placeholders, status,
#  fragments of the one line: the problem and the fix); "prepare" cases edit COPY first.
CASES = [
    # --- cnn train: settings out of range, named by their option, with the bound
    ("channels-zero", ["cnn", "train", *CNN, "--channels", "0", "--out", "OUT"], USAGE,
     ["--channels must be >= 1"]),
    ("channels-huge", ["cnn", "train", *CNN, "--channels", "1000000", "--out", "OUT"], USAGE,
     ["needs about", "parameters and optimiser vectors (--channels", "make those smaller"]),
    ("n-train-huge", ["cnn", "train", *CNN, "--n-train", "1000000000000", "--out", "OUT"], USAGE,
     ["needs about", "images (--n-train", "make those smaller"]),
    ("n-train-float", ["cnn", "train", *CNN, "--n-train", "1e9", "--out", "OUT"], USAGE,
     ["--n-train: invalid int value: '1e9'"]),
    ("n-train-zero", ["cnn", "train", *CNN, "--n-train", "0", "--out", "OUT"], USAGE,
     ["--n-train and --n-val must be >= 1"]),
    ("layers-huge", ["cnn", "train", *CNN, "--layers", "1000000000", "--out", "OUT"], USAGE,
     ["needs about", "--layers", "make those smaller"]),
    ("final-time-huge", ["cnn", "train", *CNN, "--final-time", "1e300", "--out", "OUT"], USAGE,
     ["--final-time must be finite, > 0 and <= 1000, got 1e+300"]),
    ("final-time-zero", ["cnn", "train", *CNN, "--final-time", "0", "--out", "OUT"], USAGE,
     ["--final-time must be finite, > 0"]),
    ("final-time-nan", ["cnn", "train", *CNN, "--final-time", "nan", "--out", "OUT"], USAGE,
     ["--final-time must be finite"]),
    ("high-order-penalty-huge", ["cnn", "train", *CNN, "--high-order-penalty", "1e300",
                                 "--out", "OUT"], USAGE,
     ["--high-order-penalty must be finite, >= 0 and <= 1000"]),
    ("high-order-penalty-negative", ["cnn", "train", *CNN, "--high-order-penalty", "-1",
                                     "--out", "OUT"], USAGE, ["--high-order-penalty must be"]),
    ("classifier-tikhonov-huge", ["cnn", "train", *CNN, "--classifier-tikhonov", "1e300",
                                  "--out", "OUT"], USAGE,
     ["--classifier-tikhonov must be finite, >= 0 and <= 1000"]),
    ("time-smoothness-inf", ["cnn", "train", *CNN, "--time-smoothness", "inf", "--out", "OUT"],
     USAGE, ["--time-smoothness must be finite"]),
    ("kernel-scale-huge", ["cnn", "train", *CNN, "--kernel-scale", "1e300", "--out", "OUT"],
     USAGE, ["--kernel-scale must be finite, > 0 and <= 1000"]),
    ("opening-scale-zero", ["cnn", "train", *CNN, "--opening-scale", "0", "--out", "OUT"],
     USAGE, ["--opening-scale must be finite, > 0"]),
    ("cg-rtol-above-one", ["cnn", "train", *CNN, "--cg-rtol", "2", "--out", "OUT"], USAGE,
     ["--cg-rtol must lie in (0, 1)"]),
    ("batch-negative", ["cnn", "train", *CNN, "--batch", "-1", "--out", "OUT"], USAGE,
     ["--batch must be >= 1"]),
    ("chunk-size-negative", ["cnn", "train", *CNN, "--chunk-size", "-5", "--out", "OUT"], USAGE,
     ["--chunk-size must be >= 1"]),
    ("activation-unknown", ["cnn", "train", *CNN, "--activation", "sigmoid", "--out", "OUT"],
     USAGE, ["--activation: invalid choice: 'sigmoid'"]),
    ("high-order-min-order", ["cnn", "train", *CNN, "--high-order-min-order", "7",
                              "--out", "OUT"], USAGE,
     ["--high-order-min-order must be <= 2 * dim"]),
    # --- cnn train: modes, levels, resolutions, data
    ("time-one-layer", ["cnn", "train", *CNN, "--mode", "time", "--layers", "1", "--out", "OUT"],
     USAGE, ["--layers = 1 is odd: one stage, no continuation", "use an even number"]),
    ("time-three-layers", ["cnn", "train", *CNN, "--mode", "time", "--layers", "3",
                           "--out", "OUT"], USAGE, ["--layers = 3 is odd"]),
    ("consistent-one-level", ["cnn", "train", *CNN, "--mode", "consistent", "--levels", "1",
                              "--out", "OUT"], USAGE, ["--mode consistent needs --levels >= 2"]),
    ("levels-zero", ["cnn", "train", *CNN, "--levels", "0", "--out", "OUT"], USAGE,
     ["--levels must be >= 1"]),
    ("resolution-two", ["cnn", "train", *CNN, "--resolution", "2", "--out", "OUT"], USAGE,
     ["--resolution must be >= 4"]),
    ("resolution-not-coarsenable", ["cnn", "train", *CNN, "--mode", "multilevel",
                                    "--resolution", "18", "--levels", "3", "--out", "OUT"], USAGE,
     ["cannot be coarsened", "use fewer levels"]),
    ("mnist-levels-past-7x7", ["cnn", "train", *CNN, "--mode", "multilevel", "--data", "mnist",
                               "--resolution", "28", "--levels", "4", "--data-dir", "USER",
                               "--out", "OUT"], USAGE,
     ["--levels 4: 28x28 images cannot be coarsened 3 times", "28 -> 14 -> 7",
      "use fewer levels (--levels 3 or less)"]),
    ("kernel-transfer-single-level", ["cnn", "train", *CNN, "--kernel-transfer", "rediscretize",
                                      "--out", "OUT"], USAGE,
     ["--kernel-transfer applies to --mode multilevel or consistent", "not --mode single"]),
    ("smoothing-sigma-time", ["cnn", "train", *CNN, "--mode", "time", "--smoothing-sigma", "1",
                              "--out", "OUT"], USAGE,
     ["--smoothing-sigma applies to --mode multilevel or consistent", "not --mode time"]),
    ("smoothing-sigma-negative", ["cnn", "train", *CNN, "--mode", "multilevel",
                                  "--smoothing-sigma", "-1", "--out", "OUT"], USAGE,
     ["--smoothing-sigma must be a positive number of pixels, got -1.0"]),
    ("centring-unknown", ["cnn", "train", *CNN, "--centring", "vertex", "--out", "OUT"], USAGE,
     ["argument --centring: invalid choice: 'vertex'"]),
    ("mnist-missing-folder", ["cnn", "train", *CNN, "--data", "mnist", "--resolution", "14",
                              "--data-dir",
                              "/nonexistent/mnist", "--out", "OUT"], USAGE,
     ["--data-dir /nonexistent/mnist is not a directory", "point it at the folder"]),
    ("mnist-resolution", ["cnn", "train", *CNN, "--data", "mnist", "--resolution", "20",
                          "--data-dir", "USER", "--out", "OUT"], USAGE, ["use 28, 14 or 7"]),
    # --- cnn train: where it writes
    ("out-is-users-folder", ["cnn", "train", *CNN, "--out", "USER"], USAGE,
     ["is not a run directory of pdecontrol", "choose a new --out"]),
    ("out-is-users-file", ["cnn", "train", *CNN, "--out", "USER/notes.txt"], USAGE,
     ["is not a run directory of pdecontrol", "choose a new --out"]),
    ("out-unwritable", ["cnn", "train", *CNN, "--out", "UNWRITABLE/run"], USAGE,
     ["cannot create the folder", "choose a folder you can write to"]),
    ("out-is-a-run", ["cnn", "train", *CNN, "--out", "RUN"], USAGE,
     ["already holds a run; continue it with --resume"]),
    ("resume-users-folder", ["cnn", "train", "--resume", "--out", "USER", "-q"], USAGE,
     ["is not a run directory of pdecontrol; nothing to resume"]),
    ("resume-without-out", ["cnn", "train", "--resume", "-q"], USAGE,
     ["--resume needs --out RUN_DIR"]),
    ("resume-changed-option", ["cnn", "train", "--resume", "--out", "RUN", "--channels", "3",
                               "-q"], USAGE, ["drop the changed option(s) ['n_channels']"]),
    ("resume-changed-centring", ["cnn", "train", "--resume", "--out", "RUN", "--centring",
                                 "cell", "-q"], USAGE, ["drop the changed option(s) ['centring']"]),
    ("resume-heat-run", ["cnn", "train", "--resume", "--out", "HEAT", "-q"], USAGE,
     ["holds a run of `pdecontrol heat invert`, not of `pdecontrol cnn train`"]),
    ("resume-empty-config", ["cnn", "train", "--resume", "--out", "COPY", "-q"], USAGE,
     ["no 'pdecontrol' entry", "start a new run"]),
    ("resume-config-lacks-settings", ["cnn", "train", "--resume", "--out", "COPY", "-q"], USAGE,
     ["lacks ['settings']", "start a new run"]),
    ("resume-config-not-json", ["cnn", "train", "--resume", "--out", "COPY", "-q"], USAGE,
     ["config.json is not valid JSON", "start a new run"]),
    ("resume-damaged-state", ["cnn", "train", "--resume", "--out", "COPY", "-q"], USAGE,
     ["training_state.npz", "delete it to start the run over"]),
    ("initial-missing", ["cnn", "train", *CNN, "--initial", "USER/none.nc", "--out", "OUT"],
     USAGE, ["--initial: no network file", "give a run directory or a network .nc"]),
    ("initial-other-mesh", ["cnn", "train", *CNN, "--initial", "RUN16", "--out", "OUT"], USAGE,
     ["is a network on 16x16, this run trains at 8x8", "train at its resolution"]),
    ("initial-multilevel", ["cnn", "train", *CNN, "--mode", "multilevel", "--initial", "RUN",
                            "--out", "OUT"], USAGE,
     ["--initial starts --mode single or consistent"]),
    ("initial-other-channels", ["cnn", "train", *CNN, "--channels", "3", "--initial", "RUN",
                                "--out", "OUT"], USAGE,
     ["n_channels (2 in the network file, 3 here)", "pass the network options"]),
    ("initial-damaged", ["cnn", "train", *CNN, "--initial", "COPY", "--out", "OUT"], USAGE,
     ["network.nc", "restore it"]),
    # --- cnn evaluate
    ("evaluate-missing", ["cnn", "evaluate", "USER/none", "--resolution", "8", "-q"], USAGE,
     ["no network file at", "give a run directory or its network.nc"]),
    ("evaluate-off-hierarchy", ["cnn", "evaluate", "RUN", "--resolution", "12", "-q"], USAGE,
     ["not on the mesh hierarchy", "times or divided by a power of 2"]),
    ("evaluate-huge-resolution", ["cnn", "evaluate", "RUN", "--resolution", "65536", "-q"],
     USAGE, ["evaluating at 65536x65536 needs about", "--resolution", "make those smaller"]),
    ("evaluate-tiny-resolution", ["cnn", "evaluate", "RUN", "--resolution", "2", "-q"], USAGE,
     ["--resolution must be >= 4"]),
    ("evaluate-variant", ["cnn", "evaluate", "RUN", "--resolution", "16", "--variant",
                          "restricted", "-q"], USAGE, ["does not apply", "use one of"]),
    ("evaluate-damaged", ["cnn", "evaluate", "COPY", "--resolution", "8", "--out", "OUT", "-q"],
     USAGE, ["network.nc", "restore it"]),
    ("evaluate-history-file", ["cnn", "evaluate", "RUN/history.nc", "--resolution", "8",
                               "--out", "OUT", "-q"], USAGE,
     ["is a 'pdecontrol-history-1' file, not 'pdecontrol-cnn-network-2'", "give the file"]),
    ("evaluate-not-netcdf", ["cnn", "evaluate", "USER/notes.txt", "--resolution", "8",
                             "--out", "OUT", "-q"], USAGE,
     ["cannot be read as netCDF", "restore it"]),
    ("evaluate-out-unwritable", ["cnn", "evaluate", "RUN", "--resolution", "8", "--out",
                                 "UNWRITABLE/eval", "-q"], USAGE,
     ["cannot create the folder", "choose a folder you can write to"]),
    ("evaluate-mnist-above-28", ["cnn", "evaluate", "RUN", "--resolution", "32", "--data",
                                 "mnist", "--data-dir", "USER", "-q"], USAGE,
     ["MNIST images are 28x28"]),
    # --- cnn plot
    ("plot-missing", ["cnn", "plot", "USER/none", "-q"], USAGE,
     ["is not a finished run directory", "--resume --out"]),
    ("plot-users-folder", ["cnn", "plot", "USER", "-q"], USAGE,
     ["is not a finished run directory"]),
    ("plot-network-of-another-mesh", ["cnn", "plot", "COPY", "-q"], USAGE,
     ["network.nc does not belong to the run", "--resume --out"]),
    ("plot-swapped-files", ["cnn", "plot", "COPY", "-q"], USAGE,
     ["is a 'pdecontrol-cnn-evaluation-1' file, not 'pdecontrol-cnn-predictions-1'"]),
    ("plot-damaged-network", ["cnn", "plot", "COPY", "-q"], USAGE,
     ["network.nc", "--resume --out"]),
    ("plot-damaged-evaluation", ["cnn", "plot", "COPY", "-q"], USAGE,
     ["evaluation.nc", "--resume --out"]),
    ("plot-edited-config", ["cnn", "plot", "COPY", "-q"], USAGE,
     ["does not belong to the run", "config.json was changed"]),
    ("plot-heat-run", ["cnn", "plot", "HEAT", "-q"], USAGE,
     ["is not a finished run directory (no network.nc)"]),
    # --- cnn paper
    ("paper-missing-mnist", ["cnn", "paper", *PAPER, "--data-dir", "/nonexistent/mnist",
                             "--out", "OUT"], USAGE,
     ["is not a directory", "point it at the folder"]),
    ("paper-consistent-iterations", ["cnn", "paper", *PAPER, "--consistent-iterations", "0",
                                     "--out", "OUT"], USAGE,
     ["--consistent-iterations must be >= 1"]),
    ("paper-huge", ["cnn", "paper", "--n-train", "1000000000", "--out", "OUT", "-q"], USAGE,
     ["this paper job needs about", "make those smaller"]),
    ("paper-final-time", ["cnn", "paper", *PAPER, "--final-time", "1e300", "--out", "OUT"],
     USAGE,
     ["--final-time must be finite, > 0 and <= 1000"]),
    ("paper-smoothing-sigma-zero", ["cnn", "paper", *PAPER, "--smoothing-sigma", "0", "--out",
                                    "OUT"], USAGE,
     ["--smoothing-sigma must be a positive number of pixels, got 0.0"]),
    # --- heat invert
    ("heat-source-huge", ["heat", "invert", *HEAT, "--source", "1e300", "--out", "OUT"], USAGE,
     ["--source must be <= 1e+06, got 1e+300"]),
    ("heat-noise-huge", ["heat", "invert", *HEAT, "--noise", "1e300", "--out", "OUT"], USAGE,
     ["--noise must be <= 1 (100% of the largest temperature)"]),
    ("heat-noise-zero", ["heat", "invert", *HEAT, "--noise", "0", "--out", "OUT"], USAGE,
     ["--noise must be a finite number > 0"]),
    ("heat-gamma-huge", ["heat", "invert", *HEAT, "--gamma", "1e300", "--out", "OUT"], USAGE,
     ["--gamma must be <= 1e+06"]),
    ("heat-beta-negative", ["heat", "invert", *HEAT, "--beta", "-1", "--out", "OUT"], USAGE,
     ["--beta must be a finite number >= 0"]),
    ("heat-final-time-huge", ["heat", "invert", *HEAT, "--final-time", "1e300", "--times",
                              "1e300", "--out", "OUT"], USAGE, ["--final-time must be <= 1e+06"]),
    ("heat-resolution-huge", ["heat", "invert", *HEAT, "--resolution", "65536", "--out", "OUT"],
     USAGE, ["this inversion needs about", "factorization (--resolution", "make those smaller"]),
    ("heat-steps-huge", ["heat", "invert", *HEAT, "--steps", "100000000000", "--out", "OUT"], USAGE,
     ["this inversion needs about", "(--resolution, --steps, --experiments)"]),
    ("heat-not-divisible", ["heat", "invert", *HEAT, "--resolution", "18", "--levels", "3",
                            "--out", "OUT"], USAGE, ["--resolution 18 must be divisible by"]),
    ("heat-theta", ["heat", "invert", *HEAT, "--theta", "0", "--out", "OUT"], USAGE,
     ["--theta must lie in (0, 1]"]),
    ("heat-times-beyond", ["heat", "invert", *HEAT, "--times", "0.3", "--out", "OUT"], USAGE,
     ["--times must increase within (0, final_time], got (0.3,)"]),
    ("heat-times-not-numbers", ["heat", "invert", *HEAT, "--times", "soon", "--out", "OUT"],
     USAGE, ["--times: expected TIMES, got 'soon'"]),
    ("heat-experiments", ["heat", "invert", *HEAT, "--experiments", "9", "--out", "OUT"], USAGE,
     ["--experiments must be at most 5"]),
    ("heat-solver", ["heat", "invert", *HEAT, "--solver", "cholmod", "--out", "OUT"], USAGE,
     ["--solver: invalid choice: 'cholmod'"]),
    ("heat-out-users-folder", ["heat", "invert", *HEAT, "--out", "USER"], USAGE,
     ["is not a run directory of pdecontrol"]),
    ("heat-out-unwritable", ["heat", "invert", *HEAT, "--out", "UNWRITABLE/run"], USAGE,
     ["cannot create the folder", "choose a folder you can write to"]),
    ("heat-resume-cnn-run", ["heat", "invert", "--resume", "--out", "RUN", "-q"], USAGE,
     ["holds a run of `pdecontrol cnn train`, not of `pdecontrol heat invert`"]),
    # --- heat plot
    ("heat-plot-missing", ["heat", "plot", "USER/none", "-q"], USAGE,
     ["is not a finished heat run directory", "run or resume pdecontrol heat invert"]),
    ("heat-plot-damaged-fields", ["heat", "plot", "COPY", "-q"], USAGE,
     ["fields.nc", "--resume --out"]),
    ("heat-plot-history-of-another-run", ["heat", "plot", "COPY", "-q"], USAGE,
     ["history.nc does not belong to the run", "--resume --out"]),
    ("heat-plot-cnn-run", ["heat", "plot", "RUN", "-q"], USAGE,
     ["is not a finished heat run directory (missing fields.nc)"]),
    # --- the framework
    ("command-without-problem", ["train", "--out", "OUT"], USAGE,
     ["'train' is a command of the problem 'cnn'", "run `pdecontrol cnn train ...`"]),
]


def _set_config(copy, change):
    config = copy / "config.json"
    document = json.loads(config.read_text())
    change(document)
    config.write_text(json.dumps(document))


def _other_heat_history(copy, runs, tmp_path):
    other = tmp_path / "other-heat"
    assert main(["heat", "invert", *HEAT, "--noise", "0.02", "--out", str(other)]) == 0
    shutil.copy(other / "history.nc", copy / "history.nc")
    shutil.rmtree(other)


#: case -> (the finished run to copy as COPY, what to do to the copy)
PREPARE = {
    "resume-empty-config": ("cnn", lambda c, r, t: (c / "config.json").write_text("{}")),
    "resume-config-lacks-settings": ("cnn", lambda c, r, t: _set_config(
        c, lambda d: d.pop("settings"))),
    "resume-config-not-json": ("cnn", lambda c, r, t: (c / "config.json").write_text('{"m": ')),
    "resume-damaged-state": ("cnn", lambda c, r, t: _flip(c / "state" / "training_state.npz")),
    "initial-damaged": ("cnn", lambda c, r, t: _flip(c / "network.nc")),
    "evaluate-damaged": ("cnn", lambda c, r, t: _flip(c / "network.nc")),
    "plot-damaged-network": ("cnn", lambda c, r, t: _flip(c / "network.nc")),
    "plot-network-of-another-mesh": ("cnn", lambda c, r, t: shutil.copy(
        r["cnn16"] / "network.nc", c / "network.nc")),
    "plot-swapped-files": ("cnn", lambda c, r, t: shutil.copy(c / "evaluation.nc",
                                                              c / "predictions.nc")),
    "plot-damaged-evaluation": ("cnn", lambda c, r, t: _flip(c / "evaluation.nc", count=200)),
    "plot-edited-config": ("cnn", lambda c, r, t: _set_config(c, lambda d: d.update(seed=7))),
    "heat-plot-damaged-fields": ("heat", lambda c, r, t: _flip(c / "fields.nc")),
    "heat-plot-history-of-another-run": ("heat", _other_heat_history),
}


@pytest.mark.parametrize("case, argv, status, fragments", CASES, ids=[c[0] for c in CASES])
def test_command_line_refuses_with_one_line(case, argv, status, fragments, runs, user,
                                            unwritable, tmp_path, capsys):
    copy = None
    if case in PREPARE:
        name, prepare = PREPARE[case]
        copy = _copy(runs, tmp_path, name)
        prepare(copy, runs, tmp_path)
    out = tmp_path / "new-run"
    places = {"OUT": out, "RUN16": runs["cnn16"], "RUN": runs["cnn"], "HEAT": runs["heat"],
              "USER": user, "UNWRITABLE": unwritable, "COPY": copy}
    argv = [_place(word, places) for word in argv]
    before = _snapshot(tmp_path, *runs.values())
    capsys.readouterr()
    code, stderr = _run(argv, capsys)
    _check_refusal(argv, code, status, stderr, fragments)
    assert _snapshot(tmp_path, *runs.values()) == before  # nothing written, nothing lost
    assert not out.exists()  # a refused new run leaves no directory


def _place(word: str, places: dict) -> str:
    for key, value in places.items():
        if word == key or word.startswith(key + "/"):
            return str(value) + word[len(key):]
    return word


def test_a_run_that_ends_non_finite_is_an_error_naming_the_options(tmp_path, capsys,
                                                                    monkeypatch):
    """Values that overflow inside the run (here: a loss made infinite): exit 1, one line
    naming the options, the new run directory removed."""
    from pdecontrol.control import LeastSquaresLoss

    per_example = LeastSquaresLoss.per_example
    monkeypatch.setattr(LeastSquaresLoss, "per_example",
                        lambda self, z, t: per_example(self, z, t) * np.inf)
    argv = ["cnn", "train", *CNN, "--out", str(tmp_path / "run")]
    code, stderr = _run(argv, capsys)
    _check_refusal(argv, code, FAILED, stderr,
                   ["training failed at stage 0 (8x8, 2 layers): the objective is inf",
                    "lower --final-time, --kernel-scale, --opening-scale"])
    assert not (tmp_path / "run").exists()


def test_an_unexpected_exception_is_one_line_too(tmp_path, capsys, monkeypatch):
    """A bug (here a KeyError from the data loader): exit 1, one line, the traceback only with
    -v; the new run directory is not created."""
    import problems.cnn.cli_shared as cli_shared

    def broken(*args, **kwargs):
        raise KeyError("images")

    monkeypatch.setattr(cli_shared, "load_image_sets", broken)
    argv = ["cnn", "train", *CNN, "--out", str(tmp_path / "run")]
    code, stderr = _run(argv, capsys)
    _check_refusal(argv, code, FAILED, stderr,
                   ["unexpected KeyError: 'images'", "rerun with -v for the traceback"])
    assert not (tmp_path / "run").exists()
    with pytest.raises(KeyError):
        main([*argv, "-v"])


# ---------------------------------------------------------------------- the Python API
@pytest.fixture(scope="module")
def network(runs):
    return read_network_file(runs["cnn"] / "network.nc").network


@pytest.fixture(scope="module")
def images():
    return to_numpy(make_synthetic(20, 8, seed=0))


def _settings(**changes):
    return TrainingSettings(n_channels=2, outer_iterations=1, batch_size=10, **changes)


API_CASES = [
    ("save-into-missing-folder", lambda t, n, d: save_network(t / "none" / "net.nc", n),
     FileNotFoundError, ["the folder", "does not exist; create it first"]),
    ("save-onto-a-folder", lambda t, n, d: save_network(t, n), IsADirectoryError,
     ["it is a folder; give a file name"]),
    ("save-into-unwritable", "unwritable", PermissionError,
     ["cannot write", "choose a folder you can write to"]),
    ("read-damaged-network", "damaged", CorruptFileError, ["is damaged", "restore it"]),
    ("read-foreign-netcdf", "foreign", CorruptFileError,
     ["carries no SHA-256", "write it again"]),
    ("read-truncated-network", "truncated", CorruptFileError,
     ["cannot be read as netCDF", "restore it"]),
    ("load-onto-another-mesh", lambda t, n, d: load_network(
        t / "net.nc", n.settings.make_problem(Mesh((4, 4)), n.problem.n_classes)), ValueError,
     ["load it without problem= and move it", "restrict(1)"]),
    ("images-times-1e30", lambda t, n, d: n.accuracy(d[0] * 1e30, d[1]), ValueError,
     ["must be scaled to about [0, 1]", "divide them by their maximum"]),
    ("images-uint8", lambda t, n, d: n.accuracy((d[0] * 255).astype(np.uint8), d[1]),
     TypeError, ["integer dtype uint8", "images / 255"]),
    ("train-uint8", lambda t, n, d: train_single_level(((d[0] * 255).astype(np.uint8), d[1]),
                                                       settings=_settings()),
     TypeError, ["integer dtype uint8", "images / 255"]),
    ("train-images-times-1e30", lambda t, n, d: train_single_level((d[0] * 1e30, d[1]),
                                                                   settings=_settings()),
     ValueError, ["must be scaled to about [0, 1]"]),
    ("images-nan", lambda t, n, d: n.predict(np.where(d[0] > 0.5, np.nan, d[0])), ValueError,
     ["non-finite value(s)", "check the data"]),
    ("settings-final-time-huge", lambda t, n, d: _settings(final_time=1e300), ValueError,
     ["TrainingSettings.final_time must be finite, > 0 and <= 1000"]),
    ("settings-tikhonov-nan", lambda t, n, d: _settings(classifier_tikhonov=float("nan")),
     ValueError, ["TrainingSettings.classifier_tikhonov must be finite"]),
    ("settings-channels-float", lambda t, n, d: TrainingSettings(n_channels=2.5), TypeError,
     ["TrainingSettings.n_channels must be an integer"]),
    ("heat-settings-noise", lambda t, n, d: HeatSettings(noise=2.0), ValueError,
     ["HeatSettings.noise must be <= 1"]),
    ("heat-settings-source", lambda t, n, d: HeatSettings(source=1e300), ValueError,
     ["HeatSettings.source must be <= 1e+06"]),
    ("time-continuation-one-layer", lambda t, n, d: train_time_continuation(
        d, settings=_settings(n_steps=1)), ValueError, ["is odd: one stage, no continuation"]),
    ("read-netcdf-other-format", lambda t, n, d: read_netcdf(t / "net.nc", format="other"),
     CorruptFileError, ["is a 'pdecontrol-cnn-network-2' file, not 'other'"]),
    ("write-netcdf-not-a-dataset", lambda t, n, d: write_netcdf(t / "x.nc", {"a": 1},
                                                                 format="x"),
     TypeError, ["write_netcdf writes xarray.Datasets, got dict"]),
    ("read-truncated-archive", "archive", CorruptFileError,
     ["cannot be read", "restore it"]),
    ("check-memory", lambda t, n, d: check_memory({"states (--n-train)": 1e18}, what="this run"),
     InsufficientMemoryError, ["this run needs about", "states (--n-train)", "make those smaller"]),
]


@pytest.mark.parametrize("case, call, error, fragments", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_with_one_line(case, call, error, fragments, network, images, unwritable,
                                   tmp_path):
    path = save_network(tmp_path / "net.nc", network)
    if call == "unwritable":
        def call(t, n, d):
            return save_network(unwritable / "net.nc", n)
    elif call in ("damaged", "foreign", "truncated"):
        target = tmp_path / "bad.nc"
        if call == "damaged":
            shutil.copy(path, target)
            _flip(target)
        elif call == "foreign":
            xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(target)
        else:
            target.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

        def call(t, n, d):
            return read_network_file(target)
    elif call == "archive":
        archive = write_archive(tmp_path / "state.npz", {"x": np.arange(4.0)}, {}, format="s")
        archive.write_bytes(archive.read_bytes()[:100])

        def call(t, n, d):
            return read_archive(archive, format="s")
    before = _snapshot(tmp_path)
    with pytest.raises(error) as raised:
        call(tmp_path, network, images)
    message = str(raised.value)
    assert "\n" not in message and "[Errno" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert _snapshot(tmp_path) == before


def test_the_catalogue_has_at_least_sixty_cases():
    assert len(CASES) + 2 + len(API_CASES) >= 60
