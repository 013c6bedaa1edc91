"""The CNN drivers on the framework's continuation machinery reproduce the histories and
parameters recorded from the drivers before the move (tests/cnn_reference_runs.py).

Deliberate differences, asserted here: ``outer_iteration`` is ``stage_iteration``, the phase of
a training row is ``"iterate"`` (was ``"train"``), ``convolution_work`` is ``work``, a stage's
start row has no step columns (``cg_iterations`` NaN, was 0), and the resolution-consistent runs
count one evaluation of the summed objective once (the old counters counted it once per term).
"""

import json

import numpy as np
import pytest
import xarray as xr

from cnn_reference_runs import REFERENCE_FILE, RUN_NAMES, _runs

_RENAMED = {"outer_iteration": "stage_iteration", "convolution_work": "work"}
_COUNTERS = ("n_value_evaluations", "n_gradient_evaluations", "n_gauss_newton_products")
#: Terms of the objective per run (fine + coarse terms of the resolution-consistent runs).
_TERMS = {"consistent_fine_solve": 2, "consistent_gauss_newton_full_batch": 3}


@pytest.fixture(scope="module")
def runs():
    return _runs()


@pytest.mark.parametrize("name", RUN_NAMES)
def test_driver_reproduces_the_recorded_run(runs, name):
    with xr.open_dataset(REFERENCE_FILE, group=name, engine="netcdf4") as reference:
        reference = reference.load()
    result = runs[name]()
    history = result.history
    assert result.status == reference.attrs["status"]
    assert history.attrs["driver"] == reference.attrs["driver"]
    assert len(result.stage_networks) == reference.attrs["n_stages"]
    scale = float(np.max(np.abs(reference["x"].values)))
    np.testing.assert_allclose(result.x, reference["x"].values, rtol=1e-9, atol=1e-12 * scale)
    for index, network in enumerate(result.stage_networks):
        np.testing.assert_allclose(network.parameters, reference[f"stage_{index}_x"].values,
                                   rtol=1e-9, atol=1e-12 * scale)
    start = history.stage_iteration.values == 0
    for column in reference.data_vars:
        if column == "x" or column.startswith("stage_") and column.endswith("_x"):
            continue
        expected = reference[column].values
        actual = history[_RENAMED.get(column, column)].values
        if column == "phase":
            expected = np.where(expected == "train", "iterate", expected)
        if column == "cg_iterations":
            assert np.isnan(actual[start]).all() and np.all(expected[start] == 0)
            actual, expected = actual[~start], expected[~start]
        if column in _COUNTERS:
            expected = expected // _TERMS.get(name, 1)
            assert np.all(reference[column].values % _TERMS.get(name, 1) == 0)
        if expected.dtype.kind in "fc":
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-14, err_msg=column)
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=column)
    stage_results = json.loads(history.attrs["stage_results"])
    assert len(stage_results) == reference.attrs["n_stages"]
