"""Fixed small CNN training runs whose histories and parameters are recorded in
``tests/data/cnn_reference_runs.nc`` (float64, synthetic images, a few seconds in all).

The file was written by ``python3 tests/cnn_reference_runs.py`` on the code before the training
machinery moved into :mod:`pdecontrol.continuation` (commit 139812d);
``tests/test_cnn_reference.py`` asserts that the drivers still produce them. Re-record only for
a deliberate change of behaviour, and say so in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cnn_helpers import small_settings  # noqa: E402
from problems.cnn.data import make_synthetic, to_numpy  # noqa: E402
from problems.cnn.training import (  # noqa: E402
    train_multilevel,
    train_resolution_consistent,
    train_single_level,
    train_time_continuation,
)

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "cnn_reference_runs.nc"

TINY = small_settings(
    outer_iterations=1,
    gauss_newton_steps=1,
    cg_iterations=2,
    batch_size=40,
    high_order_penalty=1e-3,
)


def _data(resolution: int):
    train = to_numpy(make_synthetic(60, resolution, seed=0))
    validation = to_numpy(make_synthetic(30, resolution, seed=1))
    return train, validation


def _runs():
    """name -> zero-argument callable returning a TrainingResult."""
    (train8, val8), (train16, val16) = _data(8), _data(16)
    return {
        "single": lambda: train_single_level(train8, val8, TINY.replace(outer_iterations=2)),
        "multilevel": lambda: train_multilevel(
            train8, val8, TINY, n_levels=2, outer_iterations=[2, 1]
        ),
        "multilevel_three_levels_smoothed": lambda: train_multilevel(
            train16, val16, TINY.replace(n_channels=3), n_levels=3, outer_iterations=[1, 1, 1],
            smoothing_sigma=0.8,
        ),
        "time": lambda: train_time_continuation(
            train8, val8, TINY.replace(n_steps=4), outer_iterations=[1, 1, 1]
        ),
        "consistent_fine_solve": lambda: train_resolution_consistent(
            train8, val8, TINY.replace(outer_iterations=2), consistency_weight=0.5
        ),
        "consistent_gauss_newton_full_batch": lambda: train_resolution_consistent(
            train16, val16, TINY.replace(batch_size=None), consistency_levels=(1, 2),
            classifier="gauss_newton",
        ),
        "cross_entropy": lambda: train_single_level(
            train8, val8, TINY.replace(loss="softmax_cross_entropy", outer_iterations=2)
        ),
        "single_from_initial": lambda: train_single_level(
            train8, val8, TINY, initial=_initial_vector(train8)
        ),
        "stopped_by_callback": lambda: train_multilevel(
            train8, val8, TINY, n_levels=2, outer_iterations=2,
            callback=lambda row: row["stage"] == 1,
        ),
    }


def _initial_vector(train) -> np.ndarray:
    """A fixed starting point: seeded kernels scaled by 0.5, biases 0.05."""
    problem = TINY.make_problem(_mesh(train), 10)
    x = problem.initial_parameters(TINY.n_steps, seed=7)
    params = problem.layout(TINY.n_steps).unflatten(x)
    params["K"][...] *= 0.5
    params["b"][...] = 0.05
    return x


def _mesh(train):
    from pdecontrol.mesh import Mesh

    return Mesh(train[0].shape[-2:])


def run_dataset(result) -> xr.Dataset:
    """History (all columns, dimension ``iteration``), final and per-stage parameters."""
    history = result.history.copy()
    history = history.drop_vars("wall_time")
    history["x"] = ("parameter", np.asarray(result.x, dtype=np.float64))
    for index, network in enumerate(result.stage_networks):
        history[f"stage_{index}_x"] = (f"stage_{index}_parameter", np.asarray(network.parameters))
    history.attrs = {
        "status": result.status,
        "driver": result.history.attrs["driver"],
        "n_stages": len(result.stage_networks),
    }
    return history


def record(path: Path = REFERENCE_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    for name, run in _runs().items():
        run_dataset(run()).to_netcdf(path, mode="a", group=name, engine="netcdf4")
        print(f"recorded {name}")


RUN_NAMES = (
    "single",
    "multilevel",
    "multilevel_three_levels_smoothed",
    "time",
    "consistent_fine_solve",
    "consistent_gauss_newton_full_batch",
    "cross_entropy",
    "single_from_initial",
    "stopped_by_callback",
)


if __name__ == "__main__":
    record()
