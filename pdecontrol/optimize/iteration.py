"""The outer loop shared by all descent-type solvers: evaluate, record, test, step.

Row ``k`` of the history describes iterate ``x_k`` (``k = 0`` is the starting point) and the step
taken from it: ``objective`` and ``gradient_norm`` are evaluated at ``x_k`` on the examples of
iteration ``k``; step columns (``step_length``, ``backtracks``, CG columns ...) describe the step
``x_k -> x_{k+1}`` and are NaN in the last row, where no step was taken. Evaluation counts and
``wall_time`` are cumulative up to the end of row ``k``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import OptimizeResult
from tqdm.auto import tqdm

from ._checks import check_instance
from .counting import CountingFunctional
from .history import WALL_TIME, History
from .stopping import Stopping, StopReason

__all__ = ["Step", "run_iterations", "call_callback", "prepare"]

logger = logging.getLogger("pdecontrol.optimize")


@dataclass
class Step:
    """What a solver's step function returns.

    Attributes
    ----------
    x : ndarray
        The next iterate (ignored when ``failure`` is set: the current iterate is kept).
    record : dict
        Scalars for the current history row (step length, CG statistics, ...).
    failure : StopReason, optional
        Stop now, keeping the current iterate (e.g. a failed line search).
    stop_after : StopReason, optional
        Accept ``x``, evaluate it, record it, then stop (e.g. the ``ftol`` test).
    """

    x: np.ndarray
    record: dict = field(default_factory=dict)
    failure: StopReason | None = None
    stop_after: StopReason | None = None


def call_callback(callback, state: OptimizeResult) -> tuple[dict, bool]:
    """Run a user callback; return ``(scalars to record, stop requested)``.

    The callback receives an :class:`~scipy.optimize.OptimizeResult` with the current ``x``,
    ``fun``, ``jac``, ``nit`` and ``gradient_norm``; it may return ``None``/``False``
    (continue), ``True`` (stop) or a mapping of named scalars to record in the history, where an
    optional boolean entry ``"stop"`` requests a stop.
    """
    if callback is None:
        return {}, False
    answer = callback(state)
    if answer is None or isinstance(answer, (bool, np.bool_)):
        return {}, bool(answer)
    if isinstance(answer, Mapping):
        scalars = dict(answer)
        stop = bool(scalars.pop("stop", False))  # History.append checks that the rest are scalars
        return scalars, stop
    raise TypeError(
        f"callback must return None, a bool or a mapping of scalars, got {type(answer).__name__}"
    )


def run_iterations(
    functional: CountingFunctional,
    x0: np.ndarray,
    step: Callable[[OptimizeResult], Step],
    *,
    method: str,
    stopping: Stopping,
    draw_examples: Callable[[int], np.ndarray | None],
    callback=None,
    progress: bool = False,
    attrs: dict | None = None,
) -> OptimizeResult:
    """Run ``step`` until a stopping test holds; return the result with its history.

    ``draw_examples(k)`` gives the examples of iteration ``k`` (``None`` = all); ``step(state)``
    receives an OptimizeResult with ``x, fun, jac, nit, gradient_norm, initial_gradient_norm,
    examples`` and returns a :class:`Step`.
    """
    start = time.perf_counter()
    history = History()
    x = x0.copy()
    initial_gradient_norm = None
    pending = None
    with tqdm(total=stopping.maxiter, desc=method, disable=not progress, leave=False) as bar:
        for k in range(stopping.maxiter + 1):
            examples = draw_examples(k)
            fun, jac = functional.value_and_gradient(x, examples)
            fun, jac = float(fun), np.asarray(jac, dtype=np.float64)
            finite = bool(np.isfinite(fun) and np.all(np.isfinite(jac)))
            gradient_norm = functional.dual_norm(jac) if finite else float("nan")
            if initial_gradient_norm is None:
                initial_gradient_norm = gradient_norm
            state = OptimizeResult(
                x=x.copy(),
                fun=fun,
                jac=jac,
                nit=k,
                gradient_norm=gradient_norm,
                initial_gradient_norm=initial_gradient_norm,
                examples=examples,
            )
            row = {"objective": fun, "gradient_norm": gradient_norm}
            if examples is not None:
                row["batch_size"] = int(len(examples))
            if not finite:
                reason = StopReason.NON_FINITE
            else:
                scalars, callback_stop = call_callback(callback, state)
                row.update(scalars)
                reason = (
                    stopping.gradient_reason(gradient_norm, initial_gradient_norm)
                    or pending
                    or (StopReason.CALLBACK if callback_stop else None)
                    or (StopReason.MAX_ITERATIONS if k == stopping.maxiter else None)
                )
            if reason is None:
                outcome = step(state)
                row.update(outcome.record)
                reason = outcome.failure
            row.update(functional.counts())
            row[WALL_TIME] = time.perf_counter() - start
            history.append(row)
            logger.debug(
                "%s iteration %d: objective %.6e, gradient norm %.3e", method, k, fun, gradient_norm
            )
            bar.set_postfix(objective=f"{fun:.4e}", gradient=f"{gradient_norm:.2e}", refresh=False)
            if reason is not None:
                break
            bar.update(1)
            x = outcome.x
            pending = outcome.stop_after
    logger.info("%s stopped after %d iterations: %s (objective %.6e)", method, k, reason.value, fun)
    attrs = {"method": method, "status": reason.value, **(attrs or {})}
    return OptimizeResult(
        x=x,
        fun=fun,
        jac=jac,
        nit=k,
        success=reason.success,
        status=reason.value,
        message=reason.describe(),
        history=history.to_dataset(attrs),
        nfev=functional.n_value + functional.n_gradient,
        njev=functional.n_gradient,
        nhev=functional.n_gauss_newton_products,
    )


def prepare(functional, x0, stopping) -> tuple[CountingFunctional, np.ndarray]:
    """Validate the common solver inputs; return the counting wrapper and ``x0`` as float64."""
    counting = CountingFunctional(functional)
    check_instance(stopping, Stopping, "stopping")
    return counting, functional.check_parameters(x0, "x0")
