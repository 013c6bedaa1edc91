"""The heat-equation coefficient inversion (problems/heat): exact derivatives with implicit steps
(sparse LU and AMG-CG), the inversion through the continuation driver, recovery against noise,
and the command line."""

import json

import numpy as np
import pytest
import xarray as xr

from pdecontrol.cli import main
from pdecontrol.continuation import run_continuation
from pdecontrol.verify import verify_problem
from problems.heat import HeatEquation, HeatInversion, HeatSettings

TINY = HeatSettings(resolution=16, levels=2, n_steps=8, observation_times=(0.05, 0.1),
                    n_experiments=2, gn_iterations=8)


def _point(functional, seed=0):
    return 0.3 * np.random.default_rng(seed).standard_normal(functional.size)


@pytest.mark.parametrize("observations", ["field", "sensors"])
def test_derivatives_are_exact_with_sparse_lu(observations):
    inversion = HeatInversion(TINY.replace(observations=observations))
    functional = inversion.functional(1)
    report = verify_problem(functional, _point(functional))
    assert report.passed, report
    assert report.results["rhs jacobian"].relative_error < 1e-12


def test_derivatives_with_amg_solves_are_exact_to_their_tolerance():
    inversion = HeatInversion(TINY.replace(solver="amg-sa", solver_rtol=1e-10))
    functional = inversion.functional(0)
    x = _point(functional)
    functional.value(x)
    report = verify_problem(functional, x, solve_accuracy=functional.stepper.accuracy)
    assert report.passed, report
    exact = HeatInversion(TINY).functional(0)
    np.testing.assert_allclose(functional.gradient(x), exact.gradient(x), rtol=1e-6,
                               atol=1e-8 * np.linalg.norm(exact.gradient(x)))
    assert inversion.solver_statistics()["iterations_per_solve"] > 0


def test_three_dimensional_problem_verifies():
    inversion = HeatInversion(HeatSettings(dim=3, resolution=8, levels=1, n_steps=4,
                                           observation_times=(0.05, 0.1), n_experiments=1))
    functional = inversion.functional(0)
    assert verify_problem(functional, _point(functional)).passed


def test_coarse_to_fine_inversion_recovers_the_truth():
    inversion = HeatInversion(TINY)
    result = run_continuation(inversion, inversion.schedule())
    history = result.history
    assert result.status == "completed"
    assert list(np.unique(history["mesh_shape"].values)) == ["16x16", "8x8"]
    assert history["relative_error"].values[0] == 1.0  # m = 0
    assert history["relative_error"].values[-1] < 0.4
    fine = history.isel(iteration=np.flatnonzero(history["stage"].values == 1))
    assert fine["gradient_norm"].values[-1] <= TINY.grtol * fine["gradient_norm"].values[0]
    # the fine stage started from the coarse end moved by the boundary-respecting transfer
    start = inversion.hierarchy.prolong_field(result.stage_x[0].reshape(8, 8), 0, 1)
    first_fine_row_error = float(fine["relative_error"].values[0])
    truth = inversion.truth(0)
    assert first_fine_row_error == pytest.approx(
        np.linalg.norm(start - truth) / np.linalg.norm(truth), rel=1e-10)
    assert history["work"].attrs["units"] == "fine-mesh implicit steps"
    assert history["fine_level_work"].values[-1] < history["work"].values[-1]


def test_recovery_improves_as_the_noise_falls():
    errors = []
    for noise in (0.05, 0.01, 0.002):
        inversion = HeatInversion(TINY.replace(levels=1, noise=noise, gn_iterations=15))
        result = run_continuation(inversion, inversion.schedule())
        errors.append(float(result.history["relative_error"].values[-1]))
    assert errors[0] > errors[1] > errors[2], errors


def test_settings_and_problem_errors():
    with pytest.raises(ValueError, match="resolution 18 must be divisible by"):
        HeatSettings(resolution=18, levels=3)
    with pytest.raises(ValueError, match="observation_times must increase"):
        HeatSettings(observation_times=(0.1, 0.05))
    with pytest.raises(ValueError, match="solver must be one of"):
        HeatSettings(solver="cholmod")
    mesh = HeatInversion(TINY).hierarchy[0].mesh
    with pytest.raises(ValueError, match="sensors must be unknown nodes"):
        HeatEquation(mesh, sensors=[0, 17])
    with pytest.raises(ValueError, match="observation time 0.03 is not on the time grid"):
        HeatInversion(TINY.replace(observation_times=(0.03, 0.1)))


def test_command_line_run_resume_and_plot(tmp_path, capsys):
    out = tmp_path / "heat"
    argv = ["heat", "invert", "--resolution", "16", "--levels", "2", "--steps", "8", "--times",
            "0.05,0.1", "--experiments", "2", "--gn-iterations", "6", "--out", str(out), "-q"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["levels"]) == {"8x8", "16x16"} and summary["relative_error"] < 0.5
    assert summary["linear_solves"]["solver"] == "splu" and summary["linear_solves"]["setups"] > 0
    fields = xr.open_dataset(out / "fields.nc").load()
    assert fields["m_level0"].shape == (16, 16) and fields["m_true_level1"].shape == (8, 8)
    assert main(["heat", "invert", "--out", str(out), "--resume", "-q"]) == 0
    assert main(["heat", "invert", "--out", str(out), "--resume", "--noise", "0.1", "-q"]) == 2
    assert "['noise']" in capsys.readouterr().err
    (out / "figures" / "fields.png").unlink()
    assert main(["heat", "plot", str(out), "-q"]) == 0
    assert (out / "figures" / "fields.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["heat", "invert", "--dim", "3", "--resolution", "12", "--levels", "3",
                 "--out", str(tmp_path / "bad"), "-q"]) == 2
    assert "--resolution 12 must be divisible" in capsys.readouterr().err
