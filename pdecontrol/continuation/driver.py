"""Running a schedule: stage after stage, one labelled history, resumable after every row.

:func:`run_continuation` runs each stage's solver on the stage's objective from the previous
stage's end moved by the problem (space and/or time), and records one history row per iterate:

* ``stage``, ``stage_iteration`` (0 = the stage's start), ``phase`` (the start's name, e.g.
  ``"start"``, ``"prolonged_start"``, ``"time_refined_start"``, then ``"iterate"``), ``level``,
  ``mesh_shape`` (with a hierarchy), ``n_steps`` (with a time grid);
* ``objective`` and ``gradient_norm`` when the solver evaluated them on all examples
  (``batch_objective`` / ``batch_gradient_norm`` on a sub-sample), then the monitor's columns;
* the record of the step that produced the row (the solver's step columns: CG iterations, step
  length, inner status ...), absent at a stage's start;
* ``n_value_evaluations``, ``n_gradient_evaluations``, ``n_gauss_newton_products`` (evaluations
  of the stage objectives: one evaluation counts once, however many terms it has), ``work`` and
  ``fine_level_work`` (:class:`~pdecontrol.continuation.WorkMeter`, fine-level units) and the
  problem's named counts, all cumulative up to this iterate; ``wall_time`` (seconds of
  optimisation, without the monitor, callbacks and file writes).

With ``state_file`` the run writes its :class:`~pdecontrol.continuation.state.RunState` at the top
of every solver iteration; started again with the same problem, schedule, seed and starting
point, it continues from there and ends bit-identical to an uninterrupted run (``wall_time``
aside). A state of another run is refused, naming what differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ..functional import ReducedFunctional
from ..io import CorruptFileError
from ..optimize.counting import EvaluationCounter
from ..optimize.history import WALL_TIME, History
from ..optimize.stopping import StopReason
from .problem import ContinuationProblem, StageSetup
from .schedule import Schedule, Stage, start_phase
from .state import RunState, fingerprint_difference, load_run_state, save_run_state
from .work import WorkMeter

__all__ = ["run_continuation", "ContinuationResult", "RUN_STATUSES", "HISTORY_FORMAT"]

logger = logging.getLogger("pdecontrol.continuation")

#: Values of :attr:`ContinuationResult.status`.
RUN_STATUSES = ("completed", "stopped_by_callback", "failed")
#: Format name of a history written as netCDF (:func:`pdecontrol.io.write_netcdf`).
HISTORY_FORMAT = "pdecontrol-history-1"


@dataclass(frozen=True)
class ContinuationResult:
    """What :func:`run_continuation` returns.

    Attributes
    ----------
    x : ndarray
        The final parameters (of stage :attr:`stage`).
    stage : int
        The stage ``x`` belongs to (the last one, unless the run stopped early).
    history : xarray.Dataset
        One row per iterate (see :mod:`pdecontrol.continuation.driver`).
    status : str
        One of :data:`RUN_STATUSES`; ``"failed"`` when a solver met non-finite values.
    stage_x : tuple of ndarray
        Parameters at the end of every finished stage.
    stage_results : tuple of dict
        Per finished stage: the solver's ``status``, ``message`` and ``nit``.
    """

    x: np.ndarray
    stage: int
    history: xr.Dataset
    status: str
    stage_x: tuple
    stage_results: tuple


class _Clock:
    """Seconds of optimisation: a stopwatch that hooks pause."""

    def __init__(self, elapsed: float):
        self._origin = time.perf_counter() - elapsed

    def now(self) -> float:
        return time.perf_counter() - self._origin

    @contextmanager
    def paused(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self._origin += time.perf_counter() - start


def _normalised(document):
    """``document`` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(document, sort_keys=True))


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()


def _check_seed(seed):
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return int(seed)
    if isinstance(seed, (list, tuple)) and seed and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seed):
        return [int(s) for s in seed]
    raise TypeError(f"seed must be an int >= 0 or a list of them (it is saved with the run to "
                    f"resume it), got {seed!r}")


class _Run:
    """One call of :func:`run_continuation`."""

    def __init__(self, problem, schedule, x0, seed, state_file, callback, progress):
        if not isinstance(problem, ContinuationProblem):
            raise TypeError(f"problem must be a pdecontrol.continuation.ContinuationProblem, got "
                            f"{type(problem).__name__}")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a pdecontrol.continuation.Schedule, got "
                            f"{type(schedule).__name__}")
        hierarchy = problem.hierarchy
        n_levels = 1 if hierarchy is None else len(hierarchy)
        if schedule.deepest_level >= n_levels:
            raise ValueError(
                f"the schedule uses level {schedule.deepest_level}, but {type(problem).__name__} "
                f"has {n_levels} level(s); use levels 0 to {n_levels - 1} or a deeper hierarchy"
            )
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable(row) -> bool | None, got "
                            f"{type(callback).__name__}")
        self.problem, self.schedule, self.callback, self.progress = (
            problem, schedule, callback, progress)
        self.seed = _check_seed(seed)
        self.x0 = None if x0 is None else np.array(x0, dtype=np.float64)
        self.state_file = None if state_file is None else Path(state_file)
        self.fingerprint = _normalised({
            "problem": problem.describe(),
            "schedule": schedule.describe(),
            "seed": self.seed,
            "x0_sha256": None if self.x0 is None else _digest(self.x0),
        })
        sizes = [1.0] if hierarchy is None else [hierarchy.relative_size(k) for k in
                                                 range(n_levels)]
        self.meter = WorkMeter(sizes)
        self.counter = EvaluationCounter()
        self.rng = np.random.default_rng(self.seed)

    # ------------------------------------------------------------------ state
    def _load(self) -> RunState | None:
        if self.state_file is None or not self.state_file.exists():
            return None
        try:
            state = load_run_state(self.state_file)
        except CorruptFileError as error:
            raise error.with_fix("the run cannot continue from it: delete it to start the run "
                                 "over") from None
        if state.fingerprint != self.fingerprint:
            differ = fingerprint_difference(state.fingerprint, self.fingerprint)
            raise ValueError(
                f"{self.state_file} holds the state of a different run ({', '.join(differ)} "
                "differ); resume with the same problem, schedule, seed and starting point, or "
                "use another state file"
            )
        return state

    def _save(self, status, stage, solver_state, rows, stage_ends, stage_results, wall_time):
        if self.state_file is None:
            return
        save_run_state(self.state_file, RunState(
            fingerprint=self.fingerprint, status=status, stage=stage, solver_state=solver_state,
            rows=rows, counts=self.counter.get_state(), work=self.meter.get_state(),
            wall_time=wall_time, stage_ends=stage_ends, stage_results=stage_results))

    # ------------------------------------------------------------------ run
    def run(self) -> ContinuationResult:
        stages = self.schedule.stages
        rows, stage_ends, stage_results, first_stage, resume = [], [], [], 0, None
        elapsed = 0.0
        saved = self._load()
        if saved is not None:
            rows, stage_ends = list(saved.rows), list(saved.stage_ends)
            stage_results, first_stage = list(saved.stage_results), saved.stage
            resume, elapsed = saved.solver_state, saved.wall_time
            self.counter.set_state(saved.counts)
            self.meter.set_state(saved.work)
            if saved.status != "running":
                return self._result(rows, stage_ends, stage_results, saved.status,
                                    stage_ends[-1], saved.stage)
            logger.info("resuming from %s at stage %d, iteration %d", self.state_file,
                        first_stage, resume.iteration)
        clock = _Clock(elapsed)
        total = sum(stage.iterations + 1 for stage in stages)
        status, x, index = "completed", None, first_stage
        with tqdm(total=total, initial=len(rows), desc="continuation",
                  disable=not self.progress) as bar:
            for index in range(first_stage, len(stages)):
                stage = stages[index]
                previous = stages[index - 1] if index else None
                start_x = None
                if resume is None:
                    if index > 0:
                        start_x = self.problem.fit_transferred(
                            self.problem.transfer(stage_ends[-1], previous, stage),
                            stage_ends[-1], previous, stage, self.meter)
                    elif self.x0 is not None:
                        start_x = self.x0
                    else:
                        start_x = self.problem.initial_point(stage)
                result = self._run_stage(index, stage, previous, start_x, resume, rows,
                                         stage_ends, stage_results, clock, bar)
                resume = None
                x = np.array(result.x)
                stage_ends.append(x.copy())
                stage_results.append({"status": str(result.status), "message": result.message,
                                      "nit": int(result.nit)})
                if result.status == StopReason.CALLBACK.value:
                    status = "stopped_by_callback"
                elif result.status == StopReason.NON_FINITE.value:
                    status = "failed"
                    logger.error("stage %d stopped: %s", index, result.message)
                elif not result.success and result.status != StopReason.MAX_ITERATIONS.value:
                    logger.warning("stage %d ended early: %s", index, result.message)
                if status != "completed":
                    break
        with clock.paused():
            self._save(status, index, None, rows, stage_ends, stage_results, clock.now())
        return self._result(rows, stage_ends, stage_results, status, x, index)

    def _setup(self, stage: Stage) -> StageSetup:
        setup = self.problem.setup(stage, self.meter)
        if isinstance(setup, ReducedFunctional):
            setup = StageSetup(setup)
        if not isinstance(setup, StageSetup):
            raise TypeError(f"{type(self.problem).__name__}.setup must return a StageSetup or a "
                            f"ReducedFunctional, got {type(setup).__name__}")
        return setup

    def _run_stage(self, index, stage, previous, start_x, resume, rows, stage_ends,
                   stage_results, clock, bar):
        setup = self._setup(stage)
        objective = setup.objective
        phase = start_phase(previous, stage)
        objective.observe(self.counter)
        try:
            if resume is None:
                x = objective.check_parameters(start_x, f"the start of stage {index}")
                if setup.start is not None:
                    x = objective.check_parameters(setup.start(x.copy()),
                                                   f"StageSetup.start of stage {index}")
            else:
                x = resume.x

            def on_iteration(solver_state):
                with clock.paused():
                    self._save("running", index, solver_state, rows, stage_ends, stage_results,
                               clock.now())

            def callback(state):
                row = self._row(index, stage, phase, state, setup, clock)
                rows.append(row)
                bar.update(1)
                if self.callback is None:
                    return False
                with clock.paused():
                    answer = self.callback(dict(row))
                if not (answer is None or isinstance(answer, (bool, np.bool_))):
                    raise TypeError(f"callback must return None or a bool, got "
                                    f"{type(answer).__name__}")
                return bool(answer)

            options = {**stage.options, **setup.solver_options}
            return stage.solver(objective, x, stopping=stage.stopping, seed=self.rng,
                                callback=callback, resume=resume, on_iteration=on_iteration,
                                **options)
        finally:
            objective.unobserve(self.counter)
            self.meter.release()

    def _row(self, index, stage, phase, state, setup, clock) -> dict:
        row = {"stage": index, "stage_iteration": int(state.nit),
               "phase": phase if state.nit == 0 else "iterate", "level": stage.level}
        hierarchy = self.problem.hierarchy
        if hierarchy is not None:
            row["mesh_shape"] = "x".join(map(str, hierarchy[stage.level].mesh.shape))
        if stage.n_steps is not None:
            row["n_steps"] = stage.n_steps
        prefix = "" if state.examples is None else "batch_"
        if state.fun is not None:
            row[prefix + "objective"] = float(state.fun)
        if state.jac is not None:
            row[prefix + "gradient_norm"] = float(state.gradient_norm)
        row.update(state.step)
        monitored = {}
        if setup.monitor is not None:
            with clock.paused():
                self.counter.paused = self.meter.paused = True
                try:
                    monitored = dict(setup.monitor(state.x))
                finally:
                    self.counter.paused = self.meter.paused = False
        row.update(monitored)
        row.update(self.counter.history_columns())
        row.update(self.meter.columns())
        row[WALL_TIME] = clock.now()
        logged = [k for k in _LOGGED if k in row] + [k for k in monitored if k not in _LOGGED]
        logger.info("stage %d (level %d%s) iteration %d: %s", index, stage.level,
                    "" if stage.n_steps is None else f", {stage.n_steps} steps", state.nit,
                    ", ".join(f"{k} {row[k]:.5g}" for k in logged
                              if isinstance(row[k], (float, np.floating))))
        return row

    def _result(self, rows, stage_ends, stage_results, status, x, stage):
        history = History()
        for row in rows:
            history.append(row)
        dataset = history.to_dataset({
            "status": status,
            "problem": json.dumps(self.fingerprint["problem"], sort_keys=True),
            "schedule": json.dumps(self.fingerprint["schedule"], sort_keys=True),
            "seed": json.dumps(self.seed),
            "stage_results": json.dumps(stage_results, sort_keys=True),
        })
        for column in ("work", "fine_level_work"):
            if column in dataset:
                dataset[column].attrs["units"] = self.problem.work_unit
        if WALL_TIME in dataset:
            dataset[WALL_TIME].attrs["units"] = "s"
        return ContinuationResult(
            x=np.array(x, dtype=np.float64), stage=int(stage), history=dataset, status=status,
            stage_x=tuple(np.array(e) for e in stage_ends), stage_results=tuple(stage_results))


#: Columns named in the one-line log of every row (with the monitor's floats).
_LOGGED = ("objective", "batch_objective", "gradient_norm")


def run_continuation(problem: ContinuationProblem, schedule: Schedule, *, x0=None, seed=0,
                     state_file=None, callback=None, progress: bool = False) -> ContinuationResult:
    """Run ``schedule``'s stages on ``problem``; see :mod:`pdecontrol.continuation.driver`.

    Parameters
    ----------
    problem : ContinuationProblem
    schedule : Schedule
    x0 : array_like, optional
        Starting parameters of the first stage (default ``problem.initial_point``).
    seed : int or list of int
        Seeds the one random generator of the run, shared by every stage's solver.
    state_file : path, optional
        Write the resume state there after every row; resume from it when it exists.
    callback : callable, optional
        ``callback(row)`` after every row (a dict of its columns); return ``True`` to stop.
    progress : bool
        Show a tqdm bar over all rows.
    """
    return _Run(problem, schedule, x0, seed, state_file, callback, progress).run()
