"""Real signals to ``python -m pdecontrol cnn train`` on a tiny run: SIGINT and SIGTERM during a
resume-state write stop the command right after that write (exit 130 / 143, the state complete
and verified, no later write begun) and ``--resume`` ends bit-identical to an uninterrupted run;
SIGKILL in the middle of a state, network or figure write leaves only complete, verified files
(and the killed writer's temporary), and ``--resume`` finishes, removing the temporary.

The subprocess runs the command under a small wrapper that marks the write to interrupt: it
holds that write until the test has sent its signal, or kills itself half-way through it.
Timeouts below only guard against a hang; no wall-clock time is asserted.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pdecontrol.cli import main
from pdecontrol.continuation import HISTORY_FORMAT, load_run_state
from pdecontrol.continuation.state import RUN_STATE_FORMAT
from pdecontrol.io import read_archive, read_json, read_netcdf
from problems.cnn.evaluation import EVALUATION_FORMAT
from problems.cnn.network_file import read_network_file
from problems.cnn.run_outputs import PREDICTIONS_FORMAT

TINY = ["--mode", "single", "--resolution", "8", "--n-train", "40", "--n-val", "20",
        "--channels", "2", "--outer-iterations", "3", "--gauss-newton-steps", "1",
        "--cg-iterations", "2", "--batch", "20", "-q"]
ROOT = Path(__file__).resolve().parents[1]

#: argv: log file, what to do ("hold-state", "kill-state", "kill-network", "kill-figure"), at
#: which write of that kind (1-based), then the pdecontrol command line.
WRAPPER = r"""
import io, json, os, signal, sys, time
import numpy as np
import matplotlib.figure
import xarray as xr
log, action, at = sys.argv[1], sys.argv[2], int(sys.argv[3])
count = {"state": 0, "network": 0, "figure": 0}

def reached(kind, note=""):
    count[kind] += 1
    with open(log, "a") as handle:
        handle.write(f"{kind} {count[kind]}{note}\n")
    return action.endswith(kind) and count[kind] == at

def kill(path, data):
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)

savez = np.savez
def hooked_savez(handle, **entries):
    rows = len(json.loads(str(entries["__metadata__"]))["metadata"]["rows"])
    if reached("state", f" rows {rows}"):
        if action == "hold-state":
            open(log + ".inside", "w").close()
            while not os.path.exists(log + ".sent"):
                time.sleep(0.01)
        else:
            buffer = io.BytesIO()
            savez(buffer, **entries)
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            handle.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    savez(handle, **entries)
np.savez = hooked_savez

to_netcdf = xr.DataTree.to_netcdf
def hooked_to_netcdf(self, path, *args, **kwargs):
    result = to_netcdf(self, path, *args, **kwargs)
    if os.path.basename(path).startswith(".network.") and reached("network"):
        kill(path, open(path, "rb").read())
    return result
xr.DataTree.to_netcdf = hooked_to_netcdf

savefig = matplotlib.figure.Figure.savefig
def hooked_savefig(self, path, *args, **kwargs):
    if reached("figure"):
        buffer = io.BytesIO()
        savefig(self, buffer, *args, **kwargs)
        kill(path, buffer.getvalue())
    return savefig(self, path, *args, **kwargs)
matplotlib.figure.Figure.savefig = hooked_savefig

from pdecontrol.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _start(log: Path, action: str, at: int, out: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.Popen(
        [sys.executable, "-c", WRAPPER, str(log), action, str(at), "cnn", "train", *TINY,
         "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["cnn", "train", *TINY, "--out", str(out)]) == 0
    return out


def _assert_same_run(out: Path, reference: Path):
    """Bit-identical network and history (wall times aside) and the same summary numbers."""
    ours = read_network_file(out / "network.nc")
    theirs = read_network_file(reference / "network.nc")
    np.testing.assert_array_equal(ours.network.parameters, theirs.network.parameters)
    strip = ["wall_time"]
    xr.testing.assert_identical(ours.history.drop_vars(strip), theirs.history.drop_vars(strip))
    a, b = read_json(out / "summary.json"), read_json(reference / "summary.json")
    for key in ("final_objective", "final_validation_accuracy",
                "validation_accuracy_by_resolution"):
        assert a[key] == b[key], key


_READERS = {
    "network.nc": read_network_file,
    "history.nc": lambda p: read_netcdf(p, format=HISTORY_FORMAT),
    "predictions.nc": lambda p: read_netcdf(p, format=PREDICTIONS_FORMAT),
    "evaluation.nc": lambda p: read_netcdf(p, format=EVALUATION_FORMAT),
    "training_state.npz": lambda p: read_archive(p, format=RUN_STATE_FORMAT),
}


def _partial_and_verified(out: Path) -> tuple:
    """``(temporaries, files)`` under ``out``; every file that is not a temporary is read back
    verified (netCDF and archives by their SHA-256, JSON parsed, PNG by its signature)."""
    temporaries, files = [], []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if ".partial" in path.name:
            assert path.name.startswith("."), path
            temporaries.append(path)
            continue
        if path.suffix == ".json":
            read_json(path)
        elif path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        else:
            _READERS[path.name](path)
        files.append(path)
    return temporaries, files


def _wait_for(path: Path, process: subprocess.Popen):
    while not path.exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)


@pytest.mark.parametrize("signum, status, said", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_a_state_write_stops_after_it(signum, status, said, reference, tmp_path):
    out, log = tmp_path / "run", tmp_path / "writes.log"
    process = _start(log, "hold-state", 2, out)
    _wait_for(Path(f"{log}.inside"), process)
    process.send_signal(signum)
    Path(f"{log}.sent").touch()
    _, stderr = process.communicate(timeout=300)  # a hang guard only
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"pdecontrol cnn train: {said}"
    assert f"continue it with `pdecontrol cnn train --resume --out {out}`" in stderr
    # the write in progress was finished, the state holds its rows, nothing was written after it
    writes = log.read_text().splitlines()
    assert [line.split()[:2] for line in writes] == [["state", "1"], ["state", "2"]]
    state = load_run_state(out / "state" / "training_state.npz")
    assert state.status == "running" and len(state.rows) == int(writes[1].split()[-1]) > int(
        writes[0].split()[-1])
    temporaries, _ = _partial_and_verified(out)
    assert not temporaries
    assert main(["cnn", "train", "--resume", "--out", str(out), "-q"]) == 0
    _assert_same_run(out, reference)


@pytest.mark.parametrize("action, at", [("kill-state", 3), ("kill-network", 1),
                                        ("kill-figure", 2)])
def test_sigkill_leaves_complete_files_and_resume_finishes(action, at, reference, tmp_path):
    out, log = tmp_path / "run", tmp_path / "writes.log"
    process = _start(log, action, at, out)
    process.communicate(timeout=300)  # a hang guard only
    assert process.returncode == -signal.SIGKILL
    temporaries, files = _partial_and_verified(out)
    assert len(temporaries) == 1  # the write it was killed in
    assert out / "state" / "training_state.npz" in files
    assert main(["cnn", "train", "--resume", "--out", str(out), "-q"]) == 0
    temporaries, _ = _partial_and_verified(out)
    assert not temporaries
    _assert_same_run(out, reference)
