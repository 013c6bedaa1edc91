"""The continuation driver on a non-CNN problem: space and time stages, history, work, resume."""

import json

import numpy as np
import pytest

from continuation_problems import DIFFUSION_COST, DiffusionControl
from pdecontrol.continuation import (
    Schedule,
    Stage,
    load_run_state,
    run_continuation,
)
from pdecontrol.io import CorruptFileError
from pdecontrol.optimize import Stopping, block_coordinate_descent, gauss_newton_cg
from pdecontrol.verify import taylor_test

STAGE = Stage(solver=gauss_newton_cg, stopping=Stopping(maxiter=3, grtol=1e-10),
              options={"cg_maxiter": 8, "gradient_batch_size": 4, "gauss_newton_batch_size": 3})


def _schedule():
    """Two levels in space (coarse first), then twice the time steps on the fine level."""
    return Schedule([STAGE.replace(level=1, n_steps=4), STAGE.replace(level=0, n_steps=4),
                     STAGE.replace(level=0, n_steps=8, iterations=2)])


@pytest.fixture(scope="module")
def uninterrupted():
    return run_continuation(DiffusionControl(), _schedule(), seed=3)


def _same_runs(a, b):
    np.testing.assert_array_equal(a.x, b.x)
    assert a.status == b.status and a.stage == b.stage
    assert len(a.stage_x) == len(b.stage_x)
    for x, y in zip(a.stage_x, b.stage_x, strict=True):
        np.testing.assert_array_equal(x, y)
    assert set(a.history.data_vars) == set(b.history.data_vars)
    assert a.history.attrs == b.history.attrs
    for name in a.history.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(a.history[name].values, b.history[name].values,
                                          err_msg=name)


def test_history_labels_every_row(uninterrupted):
    history = uninterrupted.history
    assert uninterrupted.status == "completed"
    assert list(history.stage.values) == [0] * 4 + [1] * 4 + [2] * 3
    assert list(history.stage_iteration.values) == [0, 1, 2, 3] * 2 + [0, 1, 2]
    assert list(history.phase.values) == (["start"] + ["iterate"] * 3 + ["prolonged_start"]
                                          + ["iterate"] * 3 + ["time_refined_start"]
                                          + ["iterate"] * 2)
    assert list(history.mesh_shape.values) == ["8"] * 4 + ["16"] * 7
    assert list(history.n_steps.values) == [4] * 8 + [8] * 3
    assert "batch_objective" in history and "objective" not in history  # sub-sampled gradients
    assert np.isnan(history.cg_iterations.values[[0, 4, 8]]).all()  # no step led to a start
    assert np.all(history.cg_iterations.values[[1, 2, 3, 5, 6, 7, 9, 10]] >= 1)
    assert "distance_from_zero" in history and np.all(np.diff(history.wall_time.values) >= 0)
    assert history.work.attrs["units"] == "fine right-hand sides"
    assert [r["status"] for r in json.loads(history.attrs["stage_results"])] == [
        "max_iterations"] * 3


def test_work_counts_fine_level_units(uninterrupted):
    """Rebuild the work from the counted evaluations: a coarse example costs half a fine one."""
    history = uninterrupted.history
    assert np.all(np.diff(history.work.values) > 0)
    coarse = history.stage.values == 0
    assert np.all(history.fine_level_work.values[coarse] == 0)
    np.testing.assert_allclose(
        np.diff(history.fine_level_work.values[4:]), np.diff(history.work.values[4:]))
    # stage 0 (4 steps on a mesh of half the nodes), row 1: the work to reach x_1 is the
    # gradients at x_0 and x_1 (4 examples each), the GN operator (3 examples) with its CG
    # products (3 each) and the line search's values (4 each); costs per example and step
    row = history.isel(iteration=1)
    cost = {kind: 4 * DIFFUSION_COST[kind] for kind in DIFFUSION_COST}
    products, values = int(row.n_gauss_newton_products), int(row.n_value_evaluations)
    expected = 0.5 * (2 * 4 * cost["gradient"] + 3 * cost["gauss_newton_operator"]
                      + products * 3 * cost["gauss_newton_product"] + values * 4 * cost["value"])
    assert row.work.values == pytest.approx(expected)


def test_stage_ends_move_between_levels_and_time_grids(uninterrupted):
    problem = DiffusionControl()
    coarse_end, fine_end, _ = uninterrupted.stage_x
    schedule = _schedule()
    prolonged = problem.transfer(coarse_end, schedule[0], schedule[1])
    refined = problem.transfer(fine_end, schedule[1], schedule[2])
    assert prolonged.size == 4 * 16 and refined.size == 8 * 16
    theta = problem.layout(schedule[0]).unflatten(coarse_end)["theta"]
    np.testing.assert_allclose(problem.layout(schedule[1]).unflatten(prolonged)["theta"][:, ::2],
                               theta)
    refined_theta = problem.layout(schedule[2]).unflatten(refined)["theta"]
    fine_theta = problem.layout(schedule[1]).unflatten(fine_end)["theta"]
    np.testing.assert_allclose(refined_theta[0], fine_theta[0])  # before the first midpoint


def test_functional_of_a_stage_has_exact_derivatives():
    problem = DiffusionControl()
    functional = problem.functional(STAGE.replace(level=0, n_steps=4))
    x = np.random.default_rng(1).standard_normal(functional.size)
    assert taylor_test(functional, x).passed


@pytest.mark.parametrize("interrupt_at", [1, 3, 4, 6, 8, 10])
def test_interrupted_run_resumes_bit_identically(uninterrupted, tmp_path, interrupt_at):
    state_file = tmp_path / "state.npz"

    def interrupt(row):
        if len(rows) == interrupt_at:
            raise KeyboardInterrupt
        rows.append(row)

    rows = []
    with pytest.raises(KeyboardInterrupt):
        run_continuation(DiffusionControl(), _schedule(), seed=3, state_file=state_file,
                         callback=interrupt)
    assert load_run_state(state_file).status == "running"
    resumed = run_continuation(DiffusionControl(), _schedule(), seed=3, state_file=state_file)
    _same_runs(uninterrupted, resumed)
    assert load_run_state(state_file).status == "completed"
    # a finished run returns its result without running anything
    again = run_continuation(DiffusionControl(), _schedule(), seed=3, state_file=state_file)
    _same_runs(uninterrupted, again)


def test_state_of_another_run_or_a_damaged_state_is_refused(tmp_path):
    state_file = tmp_path / "state.npz"
    run_continuation(DiffusionControl(), _schedule(), seed=3, state_file=state_file,
                     callback=lambda row: True)
    with pytest.raises(ValueError, match=r"different run \(seed differ\)"):
        run_continuation(DiffusionControl(), _schedule(), seed=4, state_file=state_file)
    with pytest.raises(ValueError, match=r"different run \(problem.nu differ\)"):
        run_continuation(DiffusionControl(nu=0.02), _schedule(), seed=3, state_file=state_file)
    content = bytearray(state_file.read_bytes())
    content[len(content) // 2] ^= 0xFF
    state_file.write_bytes(bytes(content))
    with pytest.raises(CorruptFileError, match="state.npz"):
        run_continuation(DiffusionControl(), _schedule(), seed=3, state_file=state_file)


def test_callback_stops_and_any_solver_runs_a_stage():
    problem = DiffusionControl()
    result = run_continuation(problem, _schedule(), callback=lambda row: row["stage"] == 1)
    assert result.status == "stopped_by_callback" and result.stage == 1
    assert result.history.sizes["iteration"] == 5 and len(result.stage_x) == 2
    restarted = Schedule([Stage(level=1, n_steps=4, solver=block_coordinate_descent,
                                stopping=Stopping(maxiter=2, grtol=0.0),
                                options={"outer_evaluation": None,
                                         "inner_stopping": Stopping(maxiter=1, grtol=0.0)})])
    result = run_continuation(problem, restarted)
    history = result.history
    assert "objective" not in history and list(history.inner_status.values)[1:] == [
        "max_iterations"] * 2
    assert history.n_gradient_evaluations.values[-1] == 4  # 2 inner runs of 2 evaluations


def test_driver_errors():
    problem = DiffusionControl()
    with pytest.raises(ValueError, match="uses level 2, but DiffusionControl has 2 level"):
        run_continuation(problem, Schedule([Stage(level=2, n_steps=4)]))
    with pytest.raises(TypeError, match="seed must be an int"):
        run_continuation(problem, _schedule(), seed=np.random.default_rng(0))
    with pytest.raises(ValueError, match="either every stage has n_steps"):
        Schedule([Stage(n_steps=4), Stage()])
    with pytest.raises(ValueError, match="steps must increase strictly"):
        Schedule.shallow_to_deep([4, 2], STAGE)
    assert DIFFUSION_COST["gradient"] == 2


class _FittedDiffusion(DiffusionControl):
    """Corrects every move between stages: scales the moved controls and charges 100 units."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def fit_transferred(self, x, source_x, source, target, work):
        self.calls.append((source.level, target.level, source.n_steps, target.n_steps,
                           source_x.size, x.size))
        work.charge(100.0, target.level)
        return 0.5 * x


def test_fit_transferred_corrects_every_move_and_its_work_is_charged(uninterrupted):
    problem = _FittedDiffusion()
    result = run_continuation(problem, _schedule(), seed=3)
    # one call per move: coarse -> fine in space, 4 -> 8 steps in time
    assert problem.calls == [(1, 0, 4, 4, 4 * 8, 4 * 16), (0, 0, 4, 8, 4 * 16, 8 * 16)]
    schedule = _schedule()
    moved = problem.transfer(result.stage_x[0], schedule[0], schedule[1])
    starts = result.history.stage_iteration.values == 0
    distance = result.history.distance_from_zero.values[starts]  # the monitor's norm of x
    assert distance[1] == pytest.approx(np.linalg.norm(0.5 * moved), rel=1e-12)
    # the charge lands between the previous stage's last row and the next stage's start
    work = result.history.work.values
    plain = uninterrupted.history.work.values
    np.testing.assert_allclose(work[:4], plain[:4])
    assert work[4] - work[3] == pytest.approx(plain[4] - plain[3] + 100.0)
