"""The resume state of a continuation run: one verified file, rewritten after every row.

It holds the run's fingerprint (problem, schedule, seed, starting point), where the run is (stage
and the solver's :class:`~pdecontrol.optimize.iteration.IterationState`), the history rows, the
work and evaluation counts, the clock and the parameters at the end of every finished stage.
Arrays are stored as they are (bit-exact), the rest as JSON, in one archive written atomically
with its SHA-256 (:func:`pdecontrol.io.write_archive`): a damaged file is refused, never resumed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..io import read_archive, write_archive
from ..optimize.iteration import IterationState

__all__ = ["RunState", "save_run_state", "load_run_state", "RUN_STATE_FORMAT"]

#: ``format`` of a run-state archive.
RUN_STATE_FORMAT = "pdecontrol-run-state-1"


@dataclass(frozen=True)
class RunState:
    """Where a continuation run stands (see the module docstring).

    Attributes
    ----------
    fingerprint : dict
        Identity of the run; a state is resumed only by the same run.
    status : str
        ``"running"``, ``"completed"``, ``"stopped_by_callback"`` or ``"failed"``.
    stage : int
        The stage being run (for a finished run: the last one).
    solver_state : IterationState or None
        The solver's state at the top of its current iteration (``None`` once finished).
    rows : list of dict
        History rows written so far.
    counts, work : dict
        Evaluation counts of the stage objectives and :class:`WorkMeter` state.
    wall_time : float
        Seconds of optimisation so far (hooks and file writes excluded).
    stage_ends : list of ndarray
        Parameters at the end of every finished stage.
    stage_results : list of dict
        Per finished stage: the solver's ``status``, ``message`` and ``nit``.
    """

    fingerprint: dict
    status: str
    stage: int
    solver_state: IterationState | None
    rows: list
    counts: dict
    work: dict
    wall_time: float
    stage_ends: list
    stage_results: list


def _split(value, arrays: dict, prefix: str):
    """``value`` with every ndarray replaced by a reference into ``arrays`` (JSON-able rest)."""
    if isinstance(value, np.ndarray):
        key = f"{prefix}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, dict):
        return {str(k): _split(v, arrays, f"{prefix}/{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split(v, arrays, f"{prefix}/{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _join(value, arrays: dict):
    """Inverse of :func:`_split`."""
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return arrays[value["__array__"]]
        return {k: _join(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_join(v, arrays) for v in value]
    return value


def save_run_state(path, state: RunState) -> Path:
    """Write ``state`` to ``path`` atomically (the folder must exist)."""
    arrays = {}
    solver_state = None
    if state.solver_state is not None:
        solver_state = _split(asdict(state.solver_state), arrays, "solver")
    document = {
        "fingerprint": state.fingerprint,
        "status": state.status,
        "stage": state.stage,
        "solver_state": solver_state,
        "rows": _split(state.rows, arrays, "rows"),
        "counts": state.counts,
        "work": state.work,
        "wall_time": state.wall_time,
        "stage_ends": _split(list(state.stage_ends), arrays, "stage_end"),
        "stage_results": state.stage_results,
    }
    return write_archive(path, arrays, document, format=RUN_STATE_FORMAT)


def load_run_state(path) -> RunState:
    """Read a state written by :func:`save_run_state` (refused if damaged:
    :class:`pdecontrol.io.CorruptFileError`)."""
    arrays, document = read_archive(path, format=RUN_STATE_FORMAT)
    solver_state = document["solver_state"]
    if solver_state is not None:
        fields = _join(solver_state, arrays)
        fields["rows"] = tuple(fields["rows"])
        fields["x"] = np.asarray(fields["x"], dtype=np.float64)
        solver_state = IterationState(**fields)
    return RunState(
        fingerprint=document["fingerprint"],
        status=document["status"],
        stage=int(document["stage"]),
        solver_state=solver_state,
        rows=_join(document["rows"], arrays),
        counts=document["counts"],
        work=document["work"],
        wall_time=float(document["wall_time"]),
        stage_ends=[np.asarray(x, dtype=np.float64) for x in _join(document["stage_ends"], arrays)],
        stage_results=document["stage_results"],
    )


def fingerprint_difference(saved: dict, current: dict, depth: int = 2) -> list:
    """Where two fingerprints differ: dotted keys, down to ``depth`` levels of dicts (sorted)."""
    differ = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True):
            continue
        if depth > 1 and isinstance(a, dict) and isinstance(b, dict):
            differ += [f"{key}.{inner}" for inner in fingerprint_difference(a, b, depth - 1)]
        else:
            differ.append(key)
    return differ
