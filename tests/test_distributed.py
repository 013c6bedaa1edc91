"""Control functionals on a real Dask ``LocalCluster`` (worker processes on the loopback
interface): values, gradients, Gauss-Newton products and predictions equal the serial ones,
training runs give the serial history, a killed worker is survived, a lost cluster stops the run
with a resumable state, and the ``--workers`` / ``--scheduler`` options."""

import json
import os
import signal
import sys
from pathlib import Path

import dask
import numpy as np
import pytest

from pdecontrol.cli import main
from pdecontrol.control import Tikhonov
from pdecontrol.distributed import (
    DistributedControlFunctional,
    current_client,
    distribute,
    start_client,
    using,
)
from problems.heat import HeatInversion, HeatSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cnn_helpers import small_functional  # noqa: E402
from cnn_reference_runs import _runs  # noqa: E402

HEAT = HeatSettings(resolution=16, levels=2, n_steps=8, observation_times=(0.05, 0.1),
                    n_experiments=3, gn_iterations=6)
HEAT_ARGV = ["heat", "invert", "--resolution", "16", "--levels", "2", "--steps", "8", "--times",
             "0.05,0.1", "--experiments", "2", "--gn-iterations", "6", "-q"]


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each."""
    environment = dict(os.environ)
    client = start_client(workers=2)
    _assert_environment_kept(environment)
    yield client
    client.close()
    client.cluster.close()
    _assert_environment_kept(environment)


def _assert_environment_kept(environment):
    """Starting workers leaves Numba's settings in this process alone (Dask writes its own
    ``pre-spawn-environ`` here; a ``NUMBA_NUM_THREADS`` among it once failed CI: Numba refused
    the changed thread count at its next compilation)."""
    changed = {name for name in set(os.environ) | set(environment)
               if os.environ.get(name) != environment.get(name)}
    assert not any(name.startswith("NUMBA") for name in changed), changed


def _compute_threads(dask_worker):
    from threadpoolctl import threadpool_info

    from pdecontrol.ops import _dispatch

    return _dispatch._SERIAL_ONLY[0], sorted({pool["num_threads"] for pool in threadpool_info()})


def test_workers_compute_in_one_thread(client):
    threads = client.run(_compute_threads)
    assert len(threads) == 2
    assert all(serial and pools == [1] for serial, pools in threads.values()), threads


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-300))


def _assert_same_evaluations(serial, distributed, x, v, examples=None):
    value, gradient = serial.value_and_gradient(x, examples)
    d_value, d_gradient = distributed.value_and_gradient(x, examples)
    assert abs(d_value - value) <= 1e-12 * abs(value)
    assert distributed.value(x, examples) == pytest.approx(d_value, rel=1e-14, abs=0)
    assert _relative(gradient, d_gradient) < 1e-12
    product = serial.gauss_newton_operator(x, examples) @ v
    operator = distributed.gauss_newton_operator(x, examples)
    assert _relative(product, operator @ v) < 1e-12
    assert _relative(product, operator @ v) < 1e-12  # the linearisation is reused
    forward, d_forward = serial.forward(x, examples), distributed.forward(x, examples)
    np.testing.assert_array_equal(d_forward.examples, forward.examples)
    for name in ("final_states", "outputs", "losses"):
        assert _relative(getattr(forward, name), getattr(d_forward, name)) < 1e-12, name
    prediction = distributed.forward(x, examples, final_states=False)
    assert prediction.final_states is None
    np.testing.assert_array_equal(prediction.examples, forward.examples)
    for name in ("outputs", "losses"):
        assert _relative(getattr(forward, name), getattr(prediction, name)) < 1e-12, name
    assert _relative(forward.final_states, distributed.final_states(x, examples)) < 1e-12


@pytest.mark.parametrize("n_shards", [1, 2, 3, 7])
def test_cnn_evaluations_equal_the_serial_ones(client, n_shards):
    rng = np.random.default_rng(0)
    problem, serial = small_functional(rng, n_examples=7,
                                       regularizers=lambda p: [Tikhonov("K", 1e-2)])
    x = problem.initial_parameters(2, seed=0) + 0.1 * rng.standard_normal(serial.size)
    v = rng.standard_normal(serial.size)
    distributed = DistributedControlFunctional.from_functional(serial, client, n_shards)
    assert distributed.n_shards == n_shards and distributed.regularizers == serial.regularizers
    _assert_same_evaluations(serial, distributed, x, v)
    # a sub-sampled step: any subset, in any order, is drawn across the shards
    _assert_same_evaluations(serial, distributed, x, v, examples=np.array([6, 0, 3, 2, 5]))
    assert distributed.transfers.sent > 0 and distributed.transfers.received > 0


def test_heat_evaluations_equal_the_serial_ones(client):
    inversion = HeatInversion(HEAT)
    serial = inversion.functional(1)
    with using(client):
        distributed = inversion.functional(1)
    assert isinstance(distributed, DistributedControlFunctional)
    assert distributed.n_shards == 2 and distributed.stepper.theta == serial.stepper.theta
    rng = np.random.default_rng(1)
    x, v = 0.3 * rng.standard_normal(serial.size), rng.standard_normal(serial.size)
    _assert_same_evaluations(serial, distributed, x, v)
    _assert_same_evaluations(serial, distributed, x, v, examples=[2, 1])


def _history_difference(serial, distributed) -> float:
    """Largest relative difference of the float columns (wall times aside); the integer
    columns (iterations, evaluation counts, phases) must be equal."""
    worst = 0.0
    assert list(serial.history.data_vars) == list(distributed.history.data_vars)
    for name, column in serial.history.data_vars.items():
        a, b = column.values, distributed.history[name].values
        if name == "wall_time":
            continue
        if a.dtype.kind != "f":
            np.testing.assert_array_equal(a, b, err_msg=name)
            continue
        finite = np.isfinite(a)
        np.testing.assert_array_equal(finite, np.isfinite(b), err_msg=name)
        scale = np.maximum(np.abs(a[finite]), 1e-12)
        worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]) / scale, initial=0.0)))
    return worst


def test_training_run_gives_the_serial_history(client):
    run = _runs()["multilevel"]  # 8x8 -> 16x16, sub-sampled GN steps, classifier solves
    serial = run()
    with using(client):
        distributed = run()
    assert _history_difference(serial, distributed) < 1e-12
    assert _relative(serial.x, distributed.x) < 1e-12


class _KillAWorker:
    """An observer that SIGKILLs the worker holding shard 0 after the ``at``-th evaluation."""

    def __init__(self, at):
        self.at, self.count, self.killed = at, 0, None

    def after(self, evaluation):
        self.count += 1
        functional = evaluation.functional
        if self.count != self.at or not isinstance(functional, DistributedControlFunctional):
            return
        client = functional.client
        worker = next(iter(client.who_has(functional._shards[0]).values()))[0]
        pid = client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)
        self.killed = worker


def test_worker_killed_mid_run_is_survived(client, monkeypatch):
    import problems.cnn.training_problem as training_problem

    killer = _KillAWorker(at=4)

    def distribute_and_watch(functional, n_shards=None):
        distributed = distribute(functional, n_shards)
        distributed.observe(killer)
        return distributed

    run = _runs()["multilevel"]
    serial = run()
    monkeypatch.setattr(training_problem, "distribute", distribute_and_watch)
    with using(client):
        survived = run()
    assert killer.killed is not None
    assert survived.status == serial.status
    assert _history_difference(serial, survived) < 1e-12
    assert _relative(serial.x, survived.x) < 1e-12
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker ...
    plugins = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert len(plugins) == 2  # ... and it is set up like the others
    assert all({"pdecontrol-retain-freed-memory", "pdecontrol-one-compute-thread"} <= set(names)
               for names in plugins.values())
    threads = client.run(_compute_threads)
    assert all(serial and pools == [1] for serial, pools in threads.values()), threads


def test_lost_cluster_stops_the_run_with_a_resumable_state(tmp_path, monkeypatch, capsys):
    """``--workers 2`` starts a local cluster; closing it mid-run stops the run loudly."""
    import problems.heat.inversion as inversion

    calls = []

    def distribute_and_lose(functional, n_shards=None):
        distributed = distribute(functional, n_shards)

        class CloseTheCluster:
            def after(self, evaluation):
                calls.append(evaluation.kind)
                if len(calls) == 12:
                    current_client().cluster.close()

        distributed.observe(CloseTheCluster())
        return distributed

    monkeypatch.setattr(inversion, "distribute", distribute_and_lose)
    out = tmp_path / "heat"
    assert main([*HEAT_ARGV, "--workers", "2", "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("pdecontrol heat invert: error: the Dask cluster failed")
    assert f"--resume --out {out}" in error
    assert not (out / "summary.json").exists()
    assert main([*HEAT_ARGV, "--out", str(out), "--resume"]) == 0  # serially, from the state
    assert (out / "summary.json").is_file()


def test_command_line_scheduler_and_bad_cluster_options(client, tmp_path, capsys):
    serial, distributed = tmp_path / "serial", tmp_path / "distributed"
    assert main([*HEAT_ARGV, "--out", str(serial)]) == 0
    assert main([*HEAT_ARGV, "--scheduler", client.scheduler.address,
                 "--out", str(distributed)]) == 0
    a, b = (json.loads((run / "summary.json").read_text()) for run in (serial, distributed))
    # CG stops on a tolerance: rounding can move its last iteration
    assert a["relative_error"] == pytest.approx(b["relative_error"], rel=1e-6)
    assert b["linear_solves"]["setups"] > 0 and b["linear_solves"]["solves"] > 0
    assert client.status == "running"  # a cluster given by address is left running
    capsys.readouterr()
    assert main([*HEAT_ARGV, "--workers", "0", "--out", str(tmp_path / "none")]) == 2
    assert "--workers must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*HEAT_ARGV, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert "not allowed with argument" in capsys.readouterr().err
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert main([*HEAT_ARGV, "--scheduler", "tcp://127.0.0.1:1",
                     "--out", str(tmp_path / "nowhere")]) == 2
    assert "cannot reach the Dask scheduler tcp://127.0.0.1:1" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "none").exists()


def test_cluster_failures_are_told_from_errors_of_the_problem(client):
    from concurrent.futures import CancelledError

    from distributed import KilledWorker

    from pdecontrol.cli.app import _cluster_failed

    assert _cluster_failed(KilledWorker("task", "tcp://127.0.0.1:1", 3), client)
    assert _cluster_failed(CancelledError(), client)
    assert not _cluster_failed(ValueError("a bad input of the problem"), client)
    assert not _cluster_failed(np.linalg.LinAlgError("singular"), client)


def test_serial_without_a_client_and_bad_shard_counts(client):
    _, serial = small_functional(np.random.default_rng(0), n_examples=4)
    assert current_client() is None and distribute(serial) is serial
    with pytest.raises(ValueError, match=r"n_shards must be an integer in \[1, 4\]"):
        DistributedControlFunctional.from_functional(serial, client, 5)
    with pytest.raises(TypeError, match="functional must be a ControlFunctional"):
        DistributedControlFunctional.from_functional(object(), client)
    with pytest.raises(ValueError, match="one of them"):
        start_client()
