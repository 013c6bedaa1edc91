"""Stages and schedules: which level, how many time steps, which optimiser, how long.

A :class:`Stage` is one optimisation run: a level of the problem's
:class:`~pdecontrol.mesh.MeshHierarchy` (0 = finest), a number of time steps (or ``None`` for a
problem without a time grid), the optimiser (any solver of :mod:`pdecontrol.optimize`, or one
with its signature), its :class:`~pdecontrol.optimize.Stopping` (``maxiter`` is the stage's
iteration budget) and further keyword options. A :class:`Schedule` is the ordered list of stages:
coarse to fine (space continuation), shallow to deep (time continuation), or any mix.
"""

from __future__ import annotations

import dataclasses
import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .._validation import check_int
from ..optimize import Stopping, gauss_newton_cg

__all__ = ["Stage", "Schedule", "describe_value", "per_stage"]


def describe_value(value):
    """A JSON-able description of an option value (for run fingerprints and history attributes):
    numbers, strings and None as they are; sequences and mappings element-wise; dataclasses as
    dicts; callables and other objects by qualified name; arrays by shape and dtype."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        return f"array{value.shape} {value.dtype}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: describe_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): describe_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [describe_value(v) for v in value]
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return f"{getattr(value, '__module__', '')}.{name}"


@dataclass(frozen=True)
class Stage:
    """One optimisation run of a schedule.

    Parameters
    ----------
    level : int
        Level of the problem's mesh hierarchy (0 = finest).
    n_steps : int or None
        Time steps of the stage's time grid (``None``: the problem has none).
    solver : callable
        ``solver(functional, x0, *, stopping, seed, callback, resume, on_iteration, **options)``,
        e.g. :func:`pdecontrol.optimize.gauss_newton_cg` (default) or
        :func:`~pdecontrol.optimize.block_coordinate_descent`.
    stopping : Stopping
        The stage's stopping tests; ``maxiter`` is its iteration budget.
    options : mapping
        Further keyword arguments of ``solver`` (e.g. ``cg_maxiter``); the problem's
        :class:`~pdecontrol.continuation.StageSetup` may add its own.
    phase : str, optional
        Name of the stage's first history row (default: from the move that starts it,
        e.g. ``"start"``, ``"prolonged_start"``, ``"time_refined_start"``).
    """

    level: int = 0
    n_steps: int | None = None
    solver: Callable = gauss_newton_cg
    stopping: Stopping = Stopping()
    options: Mapping = field(default_factory=dict)
    phase: str | None = None

    def __post_init__(self):
        check_int(self.level, "Stage.level", 0)
        if self.n_steps is not None:
            check_int(self.n_steps, "Stage.n_steps", 1)
        if not callable(self.solver):
            raise TypeError("Stage.solver must be a solver function, got "
                            f"{type(self.solver).__name__}")
        if not isinstance(self.stopping, Stopping):
            raise TypeError(f"Stage.stopping must be a pdecontrol.optimize.Stopping, got "
                            f"{type(self.stopping).__name__}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"Stage.options must be a mapping of solver keyword arguments, got "
                            f"{type(self.options).__name__}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        if self.phase is not None and not isinstance(self.phase, str):
            raise TypeError(f"Stage.phase must be a string or None, got {self.phase!r}")

    @property
    def iterations(self) -> int:
        """The stage's iteration budget (``stopping.maxiter``)."""
        return self.stopping.maxiter

    def replace(self, **changes) -> Stage:
        """A copy with some fields changed; ``iterations=`` sets ``stopping.maxiter``."""
        if "iterations" in changes:
            stopping = changes.get("stopping", self.stopping)
            changes["stopping"] = dataclasses.replace(stopping, maxiter=changes.pop("iterations"))
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """JSON-able description (level, steps, solver, stopping, options, phase)."""
        return {
            "level": self.level,
            "n_steps": self.n_steps,
            "solver": describe_value(self.solver),
            "stopping": describe_value(self.stopping),
            "options": describe_value(dict(self.options)),
            "phase": self.phase,
        }


def per_stage(values, n_stages: int, name: str) -> list:
    """``values`` (an int >= 0 or one per stage, or None) as a list of ``n_stages`` ints (or
    Nones); errors name the argument ``name``."""
    if values is None:
        return [None] * n_stages
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        return [check_int(values, name, 0)] * n_stages
    values = list(values)
    if len(values) != n_stages:
        raise ValueError(f"{name} must be an int or one value per stage ({n_stages}), got {values}")
    return [check_int(v, f"{name}[{i}]", 0) for i, v in enumerate(values)]


class Schedule:
    """The ordered stages of a continuation run.

    Parameters
    ----------
    stages : sequence of Stage
        At least one. Either every stage has ``n_steps`` or none has.

    Examples
    --------
    >>> base = Stage(stopping=Stopping(maxiter=5, grtol=1e-6))
    >>> [(s.level, s.n_steps) for s in Schedule.coarse_to_fine(3, base, n_steps=8)]
    [(2, 8), (1, 8), (0, 8)]
    >>> [(s.level, s.n_steps) for s in Schedule.shallow_to_deep([2, 4, 8], base)]
    [(0, 2), (0, 4), (0, 8)]
    """

    def __init__(self, stages: Sequence[Stage]):
        stages = tuple(stages)
        if not stages:
            raise ValueError("a Schedule needs at least one Stage")
        for index, stage in enumerate(stages):
            if not isinstance(stage, Stage):
                raise TypeError(f"stages[{index}] must be a Stage, got {type(stage).__name__}")
        timed = {stage.n_steps is not None for stage in stages}
        if len(timed) != 1:
            raise ValueError("either every stage has n_steps (a time grid) or none has; got "
                             f"{[s.n_steps for s in stages]}")
        self.stages = stages

    def __len__(self) -> int:
        return len(self.stages)

    def __iter__(self):
        return iter(self.stages)

    def __getitem__(self, index):
        return self.stages[index]

    def __repr__(self) -> str:
        return "Schedule([" + ", ".join(
            f"level {s.level}, {s.n_steps} steps, {s.iterations} iterations" for s in self
        ) + "])"

    @property
    def deepest_level(self) -> int:
        """The largest level any stage uses."""
        return max(stage.level for stage in self.stages)

    def describe(self) -> list:
        """JSON-able description of every stage."""
        return [stage.describe() for stage in self.stages]

    @classmethod
    def coarse_to_fine(cls, n_levels: int, stage: Stage, *, n_steps=None,
                       iterations=None) -> Schedule:
        """Space continuation: ``stage`` on levels ``n_levels - 1, ..., 0`` (coarsest first).

        ``iterations``: an int or one per level, coarsest first (default: the stage's).
        """
        n_levels = check_int(n_levels, "n_levels", 1)
        counts = per_stage(iterations, n_levels, "iterations")
        stages = []
        for level, count in zip(range(n_levels - 1, -1, -1), counts, strict=True):
            changes = {"level": level, "n_steps": n_steps if n_steps is not None else stage.n_steps}
            if count is not None:
                changes["iterations"] = count
            stages.append(stage.replace(**changes))
        return cls(stages)

    @classmethod
    def shallow_to_deep(cls, steps: Sequence[int], stage: Stage, *, level=None,
                        iterations=None) -> Schedule:
        """Time continuation: ``stage`` with ``steps[0], steps[1], ...`` time steps (increasing).

        ``iterations``: an int or one per stage (default: the stage's).
        """
        steps = [check_int(n, f"steps[{i}]", 1) for i, n in enumerate(steps)]
        if not steps or any(a >= b for a, b in itertools.pairwise(steps)):
            raise ValueError(f"steps must increase strictly, got {steps}")
        counts = per_stage(iterations, len(steps), "iterations")
        stages = []
        for n, count in zip(steps, counts, strict=True):
            changes = {"n_steps": n, "level": stage.level if level is None else level}
            if count is not None:
                changes["iterations"] = count
            stages.append(stage.replace(**changes))
        return cls(stages)


def start_phase(previous: Stage | None, stage: Stage) -> str:
    """Name of a stage's first row: its own ``phase``, else from the move that starts it."""
    if stage.phase is not None:
        return stage.phase
    if previous is None:
        return "start"
    parts = []
    if stage.level != previous.level:
        parts.append("prolonged" if stage.level < previous.level else "restricted")
    if stage.n_steps != previous.n_steps:
        parts.append("time_refined" if stage.n_steps > previous.n_steps else "time_coarsened")
    return "_".join(parts or ["continued"]) + "_start"
