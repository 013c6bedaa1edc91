"""Work accounting of a run in fine-level units, through evaluation observers.

A problem tells the :class:`WorkMeter` what one evaluation of a functional costs per example
(its *cost model*, in units of its choosing: the CNN counts convolutions of one example through
the whole network) and on which level of the hierarchy it lives; the meter observes the
functional (:meth:`pdecontrol.ReducedFunctional.observe`) and adds
``cost[kind] * examples * relative_size(level)`` for every evaluation, so that work is counted in
fine-level units the way pyamg reports cycle complexity. Work that is not an evaluation (a block
solve, a data transfer) is added with :meth:`WorkMeter.charge`.
"""

from __future__ import annotations

from collections.abc import Mapping

from .._validation import check_int
from ..functional import EVALUATION_KINDS, ReducedFunctional

__all__ = ["WorkMeter"]


class _Metered:
    """Observer adding one functional's evaluations to a meter."""

    def __init__(self, meter: WorkMeter, cost: dict, level: int):
        self.meter, self.cost, self.level = meter, cost, level

    def before(self, evaluation) -> None:
        examples = evaluation.n_examples
        self.meter.charge(self.cost[evaluation.kind] * (1 if examples is None else examples),
                          self.level)


class WorkMeter:
    """Cumulative work of a run: all of it, the part on the finest level, and named counts.

    Parameters
    ----------
    relative_sizes : sequence of float
        Per level (0 = finest), the cost of a grid operation there relative to the finest
        level (:meth:`pdecontrol.mesh.MeshHierarchy.relative_size`; ``[1.0]`` without levels).

    Attributes
    ----------
    work, fine_level_work : float
        Work so far, in fine-level units; the part done on level 0.
    counts : dict
        Counted operations by history column name (e.g. ``"n_classifier_solves"``).
    paused : bool
        While true, nothing is added (e.g. while a run monitors its progress).
    """

    def __init__(self, relative_sizes):
        self.relative_sizes = tuple(float(size) for size in relative_sizes)
        if not self.relative_sizes or any(not 0 < size <= 1 for size in self.relative_sizes):
            raise ValueError(f"relative_sizes must be numbers in (0, 1], one per level, got "
                             f"{relative_sizes}")
        self.work = 0.0
        self.fine_level_work = 0.0
        self.counts = {}
        self.paused = False
        self._watched = []

    def watch(self, functional: ReducedFunctional, cost: Mapping, level: int = 0):
        """Count the work of every evaluation of ``functional`` on ``level``.

        ``cost`` maps evaluation kinds (:data:`pdecontrol.functional.EVALUATION_KINDS`; missing
        kinds cost nothing) to the cost of one example in the problem's unit. Returns
        ``functional``.
        """
        unknown = set(cost) - set(EVALUATION_KINDS)
        if unknown:
            raise ValueError(f"cost names unknown evaluation kinds {sorted(unknown)}; kinds are "
                             f"{list(EVALUATION_KINDS)}")
        cost = {kind: float(cost.get(kind, 0.0)) for kind in EVALUATION_KINDS}
        observer = _Metered(self, cost, self._check_level(level))
        functional.observe(observer)
        self._watched.append((functional, observer))
        return functional

    def release(self) -> None:
        """Stop watching every functional (the end of a stage)."""
        for functional, observer in self._watched:
            functional.unobserve(observer)
        self._watched.clear()

    def charge(self, work: float, level: int = 0, count: str | None = None) -> None:
        """Add ``work`` (fine-level units of ``level``'s size: multiplied by its relative size)
        and, with ``count``, one to that named count."""
        if self.paused:
            return
        level = self._check_level(level)
        work = float(work) * self.relative_sizes[level]
        self.work += work
        if level == 0:
            self.fine_level_work += work
        if count is not None:
            self.counts[count] = self.counts.get(count, 0) + 1

    def declare(self, *counts: str) -> None:
        """Make named counts appear (at 0) in every row before their first charge."""
        for name in counts:
            self.counts.setdefault(name, 0)

    def columns(self) -> dict:
        """History columns: ``work``, ``fine_level_work`` and the named counts."""
        return {"work": self.work, "fine_level_work": self.fine_level_work, **self.counts}

    def get_state(self) -> dict:
        return {"work": self.work, "fine_level_work": self.fine_level_work,
                "counts": dict(self.counts)}

    def set_state(self, state: dict) -> None:
        self.work = float(state["work"])
        self.fine_level_work = float(state["fine_level_work"])
        self.counts = {name: int(n) for name, n in state["counts"].items()}

    def _check_level(self, level) -> int:
        level = check_int(level, "level", 0)
        if level >= len(self.relative_sizes):
            raise ValueError(f"level {level} is not a level of this run (levels 0 to "
                             f"{len(self.relative_sizes) - 1})")
        return level
