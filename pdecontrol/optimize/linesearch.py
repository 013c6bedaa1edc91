"""Armijo backtracking line search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from ._checks import check_real
from .iteration import Step
from .stopping import StopReason

__all__ = ["Armijo", "LineSearchResult", "armijo_backtracking", "line_search_step"]


@dataclass(frozen=True)
class Armijo:
    """Options of the Armijo backtracking line search (immutable, safe to share).

    Parameters
    ----------
    c1 : float
        Sufficient-decrease constant, ``0 < c1 < 1``; keep it below 1/2 so that full
        (Gauss-)Newton steps are accepted near a solution.
    shrink : float
        Factor ``0 < shrink < 1`` applied to the step after each failed trial.
    max_backtracks : int
        Number of reductions allowed before the search fails (``>= 0``).
    """

    c1: float = 1e-4
    shrink: float = 0.5
    max_backtracks: int = 30

    def __post_init__(self):
        for name in ("c1", "shrink"):
            value = check_real(getattr(self, name), name, 0.0, 1.0, low_open=True)
            object.__setattr__(self, name, value)
        backtracks = check_int(self.max_backtracks, "max_backtracks", 0)
        object.__setattr__(self, "max_backtracks", backtracks)


@dataclass(frozen=True)
class LineSearchResult:
    """Outcome of :func:`armijo_backtracking`.

    ``step`` and ``value`` are the accepted step length and ``phi(step)`` when ``success``;
    otherwise the last trial. ``backtracks`` counts the reductions made.
    """

    step: float
    value: float
    backtracks: int
    success: bool


def armijo_backtracking(
    phi: Callable[[float], float],
    value: float,
    slope: float,
    options: Armijo = Armijo(),
    initial_step: float = 1.0,
) -> LineSearchResult:
    """Find ``t = initial_step * shrink**j`` (smallest ``j``) with ``phi(t) <= value + c1 t slope``.

    Parameters
    ----------
    phi : callable
        ``t -> f(x + t p)``. A non-finite value counts as insufficient decrease.
    value : float
        ``phi(0) = f(x)``.
    slope : float
        Directional derivative ``phi'(0) = <g, p>``; must be negative (a descent direction).
    options : Armijo
        Constants of the search.
    initial_step : float
        First trial step ``> 0``.
    """
    if not slope < 0:
        raise ValueError(f"slope must be negative (a descent direction), got {slope}")
    if not (np.isfinite(initial_step) and initial_step > 0):
        raise ValueError(f"initial_step must be a finite number > 0, got {initial_step}")
    step = float(initial_step)
    for backtracks in range(options.max_backtracks + 1):
        trial = float(phi(step))
        if np.isfinite(trial) and trial <= value + options.c1 * step * slope:
            return LineSearchResult(step, trial, backtracks, True)
        if backtracks < options.max_backtracks:
            step *= options.shrink
    return LineSearchResult(step, trial, options.max_backtracks, False)


def line_search_step(
    functional, direction, options: Armijo, stopping, memory: dict | None = None
):
    """Build the step function of a line-search descent method for :func:`run_iterations`.

    ``direction(state) -> (p, record)`` gives a primal search direction and history scalars.
    The step checks ``<g, p> < 0``, runs :func:`armijo_backtracking` on the objective over the
    same examples as the gradient, and records ``directional_derivative``, ``step_length``,
    ``backtracks`` and ``objective_after_step``. With a solver ``memory`` dict the first trial is
    the last accepted step divided by ``shrink``, kept in ``memory["last_step"]`` (for directions
    without a natural scale; start it at ``options.shrink`` so that the first trial is 1);
    without, it is 1 (the (Gauss-)Newton step).
    """

    def step(state):
        p, record = direction(state)
        slope = float(np.dot(state.jac, p))
        record["directional_derivative"] = slope
        if not (np.all(np.isfinite(p)) and slope < 0):
            return Step(state.x, record, failure=StopReason.NO_DESCENT_DIRECTION)
        initial = 1.0 if memory is None else memory["last_step"] / options.shrink
        search = armijo_backtracking(
            lambda t: functional.value(state.x + t * p, state.examples),
            state.fun,
            slope,
            options,
            initial,
        )
        record.update(
            step_length=search.step, backtracks=search.backtracks, objective_after_step=search.value
        )
        if not search.success:
            return Step(state.x, record, failure=StopReason.LINE_SEARCH_FAILED)
        if memory is not None:
            memory["last_step"] = search.step
        done = stopping.ftol > 0 and stopping.decrease_met(state.fun, search.value)
        return Step(
            state.x + search.step * p,
            record,
            stop_after=StopReason.FUNCTION_DECREASE if done else None,
        )

    return step
