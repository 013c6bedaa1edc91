"""What a problem supplies to a continuation run: its stage objectives and its parameter moves.

Subclass :class:`ContinuationProblem` and implement two methods:

* :meth:`~ContinuationProblem.setup` - the reduced functional a stage minimises (and, optionally,
  extra solver options, a hook run on the stage's starting point, and a monitor adding history
  columns), registering with the :class:`~pdecontrol.continuation.WorkMeter` what its
  evaluations cost;
* :meth:`~ContinuationProblem.initial_point` - the first stage's starting point.

Moving parameters between stages has defaults: in space, the blocks named in
:attr:`~ContinuationProblem.grid_blocks` (grid functions on the stage's mesh, trailing axes, zero
outside the grid) are interpolated or restricted with the hierarchy's transfers, those in
:attr:`~ContinuationProblem.field_blocks` (parameter fields, e.g. a log-coefficient) with its
boundary-respecting field transfers (a constant field stays constant up to the boundary), and
the other blocks copied; in time,
control blocks are interpolated between step midpoints
(:func:`pdecontrol.control.refine_in_time`). Both need :meth:`~ContinuationProblem.layout`;
override :meth:`~ContinuationProblem.transfer_in_space` for a problem-specific map (e.g. the
Galerkin transfer of convolution kernels). After a move,
:meth:`~ContinuationProblem.fit_transferred` may correct the new start with data (default: no
correction), charging what it costs to the run's :class:`~pdecontrol.continuation.WorkMeter`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..control.parameters import ParameterLayout, refine_in_time
from ..functional import ReducedFunctional
from ..mesh import MeshHierarchy
from .schedule import Stage

__all__ = ["ContinuationProblem", "StageSetup"]


@dataclass(frozen=True)
class StageSetup:
    """What a stage runs on (returned by :meth:`ContinuationProblem.setup`).

    Attributes
    ----------
    objective : ReducedFunctional
        What the stage's solver minimises.
    solver_options : mapping
        Keyword arguments added to the stage's solver options (e.g. ``solve_block`` and
        ``free_indices`` of :func:`~pdecontrol.optimize.block_coordinate_descent`, which depend
        on the stage's functional).
    start : callable, optional
        ``start(x) -> x`` on the stage's starting point, before its first row (e.g. re-solve a
        block that the transfer moved only approximately).
    monitor : callable, optional
        ``monitor(x) -> dict`` of extra history columns for every row (e.g. a validation
        accuracy, the error against a known truth); its evaluations are not counted as work.
        A column ``objective`` here replaces the solver's.
    """

    objective: ReducedFunctional
    solver_options: Mapping = field(default_factory=dict)
    start: Callable | None = None
    monitor: Callable | None = None

    def __post_init__(self):
        if not isinstance(self.objective, ReducedFunctional):
            raise TypeError(f"StageSetup.objective must be a ReducedFunctional, got "
                            f"{type(self.objective).__name__}")
        for name in ("start", "monitor"):
            if getattr(self, name) is not None and not callable(getattr(self, name)):
                raise TypeError(f"StageSetup.{name} must be callable or None")


class ContinuationProblem(ABC):
    """A problem that :func:`pdecontrol.continuation.run_continuation` can run through stages.

    Attributes
    ----------
    hierarchy : MeshHierarchy or None
        The meshes the stages' levels refer to (``None``: a problem without space levels; every
        stage is then on level 0).
    grid_blocks : tuple of str
        Parameter blocks that are grid functions on the stage's mesh (their trailing axes are the
        mesh's), zero outside it; moved by the hierarchy's ``prolong`` / ``restrict``.
    field_blocks : tuple of str
        Parameter blocks that are fields on the stage's mesh, extended by constants beyond it
        (coefficients); moved by the hierarchy's ``prolong_field`` / ``restrict_field``.
    work_unit : str
        What one unit of the ``work`` columns is (e.g. ``"fine convolutions"``).
    """

    hierarchy: MeshHierarchy | None = None
    grid_blocks: tuple = ()
    field_blocks: tuple = ()
    work_unit: str = "work units"

    # ------------------------------------------------------------------ required
    @abstractmethod
    def setup(self, stage: Stage, work) -> StageSetup | ReducedFunctional:
        """The objective of ``stage`` (a :class:`StageSetup`, or just the functional).

        Call ``work.watch(functional, cost, level)`` for every functional whose evaluations cost
        work (:class:`~pdecontrol.continuation.WorkMeter`); the run's evaluation counts need
        nothing.
        """

    @abstractmethod
    def initial_point(self, stage: Stage) -> np.ndarray:
        """Flat starting parameters of the first stage."""

    # ------------------------------------------------------------------ moves between stages
    def layout(self, stage: Stage) -> ParameterLayout:
        """The parameter layout of ``stage`` (needed by the default transfers)."""
        raise NotImplementedError(
            f"{type(self).__name__} moves parameters between stages with the default transfers, "
            "which need its parameter layout: implement layout(stage), or override "
            "transfer_in_space / transfer_in_time"
        )

    def transfer(self, x: np.ndarray, source: Stage, target: Stage) -> np.ndarray:
        """Parameters of ``source``'s end moved to ``target``'s start: space, then time."""
        if target.level != source.level:
            x = self.transfer_in_space(x, source, target.level)
            source = source.replace(level=target.level)
        if target.n_steps != source.n_steps:
            x = self.transfer_in_time(x, source, target.n_steps)
        return np.asarray(x, dtype=np.float64)

    def transfer_in_space(self, x: np.ndarray, stage: Stage, level: int) -> np.ndarray:
        """``x`` of ``stage`` moved to ``level``: :attr:`grid_blocks` and :attr:`field_blocks`
        interpolated (to a finer level) or restricted (coarser) by the hierarchy, other blocks
        copied."""
        if self.hierarchy is None:
            raise ValueError(f"{type(self).__name__} has no mesh hierarchy; its stages cannot "
                             "change level")
        source = self.layout(stage).unflatten(np.array(x, dtype=np.float64))
        target = self.layout(stage.replace(level=level)).zeros()
        hierarchy, finer = self.hierarchy, level < stage.level
        for name in target:
            value = source[name]
            if name in self.grid_blocks or name in self.field_blocks:
                field = "_field" if name in self.field_blocks else ""
                move = getattr(hierarchy, ("prolong" if finer else "restrict") + field)
                value = move(value, to_level=level, from_level=stage.level)
            if np.shape(value) != target[name].shape:
                raise ValueError(
                    f"block {name!r} has shape {np.shape(value)} on level {stage.level} and "
                    f"{target[name].shape} on level {level}: name it in grid_blocks or "
                    "field_blocks if it lives on the mesh, or override transfer_in_space"
                )
            target[name][...] = value
        return target.flat

    def fit_transferred(self, x: np.ndarray, source_x: np.ndarray, source: Stage, target: Stage,
                        work) -> np.ndarray:
        """The start of ``target`` after :meth:`transfer` moved ``source_x`` (the end of
        ``source``) to ``x``, corrected with data where a fixed linear map cannot do it (e.g.
        parameters fitted so that the new stage reproduces the old stage's states).

        Called by the driver after every move between stages, before the target's
        :meth:`setup`; charge the work it does with ``work.charge(amount, level)``
        (:class:`~pdecontrol.continuation.WorkMeter`). Default: ``x`` unchanged.
        """
        return x

    def transfer_in_time(self, x: np.ndarray, stage: Stage, n_steps: int) -> np.ndarray:
        """``x`` of ``stage`` on a grid of ``n_steps`` steps (controls interpolated between step
        midpoints, static blocks copied: :func:`pdecontrol.control.refine_in_time`)."""
        params = self.layout(stage).unflatten(np.array(x, dtype=np.float64))
        return refine_in_time(params, n_steps).flat

    # ------------------------------------------------------------------ identity
    def describe(self) -> dict:
        """JSON-able identity of the problem and its data; a saved run state of a problem that
        describes itself differently is refused (default: the class name only)."""
        return {"problem": f"{type(self).__module__}.{type(self).__qualname__}"}
