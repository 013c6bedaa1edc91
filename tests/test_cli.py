"""The framework's command line with a non-CNN problem registered in-process: dispatch, run
directories (created when a run starts, never over a user's folder, removed after an early
failure), resume after an interrupt, option checks on resume, errors and exit statuses."""

import json
import os
import signal

import numpy as np
import pytest
import xarray as xr

from continuation_problems import DiffusionControl
from pdecontrol.cli import (
    Command,
    ProblemCommands,
    RunCommand,
    UsageError,
    main,
    register_problem,
    registered_problems,
)
from pdecontrol.continuation import HISTORY_FORMAT, Schedule, Stage, run_continuation
from pdecontrol.optimize import Stopping


class Solve(RunCommand):
    """``pdecontrol diffusion solve``: the diffusion control problem through two levels."""

    name = "solve"
    help = "solve the diffusion control problem"

    def add_arguments(self, parser):
        parser.add_argument("--iterations", type=int, default=None)
        parser.add_argument("--nu", type=float, default=None)
        parser.add_argument("--interrupt-at", type=int, default=None, help="(test) Ctrl-C here")

    def configure(self, args):
        iterations = 2 if args.iterations is None else args.iterations
        if iterations < 1:
            raise UsageError(f"--iterations must be >= 1, got {iterations}")
        return {"iterations": iterations, "nu": 0.01 if args.nu is None else args.nu}

    def given_options(self, args):
        return [name for name in ("iterations", "nu") if getattr(args, name) is not None]

    def execute(self, config, run_dir, args):
        stage = Stage(n_steps=4, stopping=Stopping(maxiter=config["iterations"], grtol=0.0))
        run_dir.start(config, args.argv)
        run_dir.state_dir.mkdir(exist_ok=True)
        problem = DiffusionControl(nu=config["nu"])

        def interrupt(row):
            if len(rows) == args.interrupt_at:
                os.kill(os.getpid(), signal.SIGINT)
            rows.append(row)

        rows = []
        result = run_continuation(problem, Schedule.coarse_to_fine(2, stage), seed=1,
                                  state_file=run_dir.state_dir / "run.npz", callback=interrupt)
        run_dir.write_netcdf("history.nc", result.history, format=HISTORY_FORMAT)
        run_dir.write_json("summary.json", {"status": result.status, "x": result.x})
        print(f"run directory: {run_dir.path}")
        return 0


class Hello(Command):
    name = "hello"
    help = "print a greeting"

    def run(self, args):
        print("hello")
        return 0


@pytest.fixture(scope="module", autouse=True)
def diffusion_commands():
    return register_problem(ProblemCommands("diffusion", "a test problem", (Solve(), Hello())))


def _error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_problems_register_by_entry_point_and_in_process(capsys):
    problems = registered_problems()
    assert {"cnn", "diffusion"} <= set(problems)
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    assert "pdecontrol diffusion solve: solve the diffusion control problem" in out
    assert "pdecontrol cnn train" in out
    assert main(["diffusion", "hello"]) == 0 and capsys.readouterr().out == "hello\n"


def test_a_command_without_its_problem_gets_a_hint(capsys):
    assert main(["solve", "--out", "x"]) == 2
    assert "'solve' is a command of the problem 'diffusion'" in _error_line(capsys)


def test_run_directory_holds_config_results_and_state(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["diffusion", "solve", "--out", str(out), "-q"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["iterations"] == 2 and config["pdecontrol"]["problem"] == "diffusion"
    assert config["pdecontrol"]["argv"][:3] == ["pdecontrol", "diffusion", "solve"]
    history = xr.open_dataset(out / "history.nc").load()
    assert history.sizes["iteration"] == 6
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert (out / "state" / "run.npz").is_file()
    # the same --out again is refused; --resume returns the finished run
    assert main(["diffusion", "solve", "--out", str(out), "-q"]) == 2
    assert "already holds a run; continue it with --resume" in _error_line(capsys)
    assert main(["diffusion", "solve", "--out", str(out), "--resume", "-q"]) == 0
    assert main(["diffusion", "solve", "--out", str(out), "--resume", "--nu", "0.5", "-q"]) == 2
    assert "drop the changed option(s) ['nu']" in _error_line(capsys)
    with pytest.raises(SystemExit) as exit_info:  # argparse: hello takes no --out
        main(["diffusion", "hello", "--out", str(out)])
    assert exit_info.value.code == 2


def test_interrupted_run_exits_130_and_resumes_to_the_same_result(tmp_path, capsys):
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    assert main(["diffusion", "solve", "--out", str(whole), "-q"]) == 0
    assert main(["diffusion", "solve", "--out", str(interrupted), "--interrupt-at", "3",
                 "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (interrupted / "state" / "run.npz").is_file()  # kept: the run can resume
    assert main(["diffusion", "solve", "--out", str(interrupted), "--resume", "-q"]) == 0
    a = json.loads((whole / "summary.json").read_text())["x"]
    b = json.loads((interrupted / "summary.json").read_text())["x"]
    np.testing.assert_array_equal(a, b)


def test_never_writes_into_a_folder_it_did_not_create(tmp_path, capsys):
    users = tmp_path / "mine"
    users.mkdir()
    (users / "summary.json").write_text("the user's own file")
    assert main(["diffusion", "solve", "--out", str(users), "-q"]) == 2
    assert "is not a run directory of pdecontrol" in _error_line(capsys)
    assert (users / "summary.json").read_text() == "the user's own file"
    assert main(["diffusion", "solve", "--out", str(users), "--resume", "-q"]) == 2
    assert "nothing to resume" in _error_line(capsys)


def test_failed_start_leaves_nothing_and_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["diffusion", "solve", "--out", str(out), "--iterations", "0"]) == 2
    line = _error_line(capsys)
    assert line == "pdecontrol diffusion solve: error: --iterations must be >= 1, got 0"
    assert not out.exists()
    assert main(["diffusion", "solve", "--out", str(out), "--nu", "-1", "-q"]) == 2
    assert not out.exists()  # failed inside the run, before any state was written
    with pytest.raises(UsageError):
        main(["diffusion", "solve", "--out", str(out), "--iterations", "0", "-v"])
