"""The outer loop shared by all descent-type solvers: evaluate, record, test, step.

Row ``k`` of the history describes iterate ``x_k`` (``k = 0`` is the starting point) and the step
taken from it: ``objective`` and ``gradient_norm`` are evaluated at ``x_k`` on the examples of
iteration ``k``; step columns (``step_length``, ``backtracks``, CG columns ...) describe the step
``x_k -> x_{k+1}`` and are NaN in the last row, where no step was taken. Evaluation counts and
``wall_time`` are cumulative up to the end of row ``k``.

**Resuming.** At the top of every iteration the loop can hand an :class:`IterationState` to
``on_iteration``: the iterate, the position, the random generator's state, the solver's memory
(e.g. Adam's moments), the counts and the history so far. Passing it back as ``resume`` continues
the run from there, bit for bit as if it had never stopped (the iteration is evaluated again).
Every solver of :mod:`pdecontrol.optimize` takes ``resume`` and ``on_iteration``; long runs use
them to write their state after every iteration (:mod:`pdecontrol.continuation`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeResult
from tqdm.auto import tqdm

from ._checks import check_functional, check_instance
from .counting import EvaluationCounter
from .history import WALL_TIME, History
from .stopping import Stopping, StopReason

__all__ = ["Step", "IterationState", "run_iterations", "call_callback", "prepare"]

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


@dataclass(frozen=True)
class IterationState:
    """Everything a solver needs to continue from the top of iteration ``iteration``.

    Attributes
    ----------
    method : str
        The solver that wrote it (a state is refused by another solver).
    iteration : int
        The next iteration to evaluate.
    x : ndarray
        Its iterate (float64, read-only).
    initial_gradient_norm : float or None
        The dual gradient norm at iteration 0 (``None`` before it is known).
    pending : str or None
        A :class:`StopReason` value to stop with after evaluating ``x`` (the ``ftol`` test).
    rng_state : dict or None
        ``bit_generator.state`` of the solver's generator.
    memory : dict
        The solver's own state: name -> array, number, or the ``get_state()`` dict of an object.
    counts : dict
        Evaluation counts so far (:class:`~pdecontrol.optimize.counting.EvaluationCounter`).
    rows : tuple of dict
        History rows ``0 .. iteration - 1``.
    wall_time : float
        Seconds spent so far.
    last_step : dict
        The step record that produced ``x`` (empty at iteration 0).
    """

    method: str
    iteration: int
    x: np.ndarray
    initial_gradient_norm: float | None
    pending: str | None
    rng_state: dict | None
    memory: dict
    counts: dict
    rows: tuple
    wall_time: float
    last_step: dict


def _snapshot_memory(memory: dict) -> dict:
    """A deep copy of a solver memory; objects with ``get_state`` are stored as their state."""
    saved = {}
    for name, value in memory.items():
        saved[name] = value.get_state() if hasattr(value, "get_state") else copy.deepcopy(value)
    return saved


def _restore_memory(memory: dict, saved: dict) -> None:
    """Put a snapshot back into ``memory`` in place (objects via ``set_state``)."""
    if set(saved) != set(memory):
        raise ValueError(
            f"the resumed state holds solver memory {sorted(saved)}, this solver keeps "
            f"{sorted(memory)}; resume with the solver and options that wrote it"
        )
    for name, value in saved.items():
        if hasattr(memory[name], "set_state"):
            memory[name].set_state(value)
        else:
            memory[name] = copy.deepcopy(value)


def call_callback(callback, state: OptimizeResult) -> tuple[dict, bool]:
    """Run a user callback; return ``(scalars to record, stop requested)``.

    The callback receives an :class:`~scipy.optimize.OptimizeResult` with the current ``x``,
    ``fun``, ``jac``, ``nit``, ``gradient_norm``, ``examples`` and ``step`` (the record of the step
    that produced ``x``; empty at the start); ``fun``/``jac`` are ``None`` for solvers that do not
    evaluate every iterate. It may return ``None``/``False`` (continue), ``True`` (stop) or a
    mapping of named scalars to record in the history, where an optional boolean entry ``"stop"``
    requests a stop.
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
    functional,
    x0: np.ndarray,
    step: Callable[[OptimizeResult], Step],
    *,
    method: str,
    stopping: Stopping,
    draw_examples: Callable[[int], np.ndarray | None],
    evaluate: Callable | None = None,
    rng: np.random.Generator | None = None,
    memory: dict | None = None,
    callback=None,
    progress: bool = False,
    attrs: dict | None = None,
    resume: IterationState | None = None,
    on_iteration: Callable[[IterationState], None] | None = None,
) -> OptimizeResult:
    """Run ``step`` until a stopping test holds; return the result with its history.

    Parameters
    ----------
    functional : ReducedFunctional
        Counted by an :class:`~pdecontrol.optimize.counting.EvaluationCounter` while the loop runs.
    x0 : ndarray
        Starting point (ignored with ``resume``).
    step : callable
        ``step(state) -> Step``; ``state`` is an OptimizeResult with ``x, fun, jac, nit,
        gradient_norm, initial_gradient_norm, examples, step``.
    draw_examples : callable
        ``draw_examples(k)``: the examples of iteration ``k`` (``None`` = all).
    evaluate : callable, optional
        ``evaluate(x, examples) -> (fun, jac)`` at every iterate (default
        ``functional.value_and_gradient``); ``fun`` and/or ``jac`` may be ``None`` for a solver
        that does not need them (no ``objective`` / ``gradient_norm`` column, no test on them).
    rng : numpy.random.Generator, optional
        The generator of the solver's random draws; its state is saved and restored.
    memory : dict, optional
        The solver's mutable state, read and written by ``step`` through this dict (values:
        arrays, numbers, or objects with ``get_state()`` / ``set_state(state)``).
    resume : IterationState, optional
        Continue from this state (from ``on_iteration`` of an earlier run with the same solver,
        options and functional).
    on_iteration : callable, optional
        ``on_iteration(state)`` with the :class:`IterationState` at the top of every iteration.
    """
    memory = {} if memory is None else memory
    evaluate = functional.value_and_gradient if evaluate is None else evaluate
    history = History()
    counter = EvaluationCounter()
    x, initial_gradient_norm, pending, first, last_step, elapsed = x0.copy(), None, None, 0, {}, 0.0
    if resume is not None:
        check_instance(resume, IterationState, "resume")
        if resume.method != method:
            raise ValueError(
                f"resume holds a state of {resume.method}, not of {method}; resume a run with the "
                "solver that wrote the state"
            )
        x = functional.check_parameters(resume.x, "resume.x").copy()
        initial_gradient_norm, first = resume.initial_gradient_norm, resume.iteration
        pending = None if resume.pending is None else StopReason(resume.pending)
        last_step, elapsed = dict(resume.last_step), float(resume.wall_time)
        for row in resume.rows:
            history.append(row)
        counter.set_state(resume.counts)
        _restore_memory(memory, resume.memory)
        if resume.rng_state is not None:
            if rng is None:
                raise ValueError("resume holds a random generator state, but this solver has none")
            rng.bit_generator.state = resume.rng_state
    start = time.perf_counter() - elapsed
    fun = jac = None
    reason = None
    with functional.observed(counter), tqdm(
        total=stopping.maxiter, initial=first, desc=method, disable=not progress, leave=False
    ) as bar:
        for k in range(first, stopping.maxiter + 1):
            if on_iteration is not None:
                on_iteration(
                    IterationState(
                        method=method,
                        iteration=k,
                        x=_read_only(x.copy()),
                        initial_gradient_norm=initial_gradient_norm,
                        pending=None if pending is None else pending.value,
                        rng_state=None if rng is None else copy.deepcopy(rng.bit_generator.state),
                        memory=_snapshot_memory(memory),
                        counts=counter.get_state(),
                        rows=tuple(copy.deepcopy(history.rows)),
                        wall_time=time.perf_counter() - start,
                        last_step=dict(last_step),
                    )
                )
            examples = draw_examples(k)
            fun, jac = evaluate(x, examples)
            row = {}
            finite = True
            if fun is not None:
                fun = float(fun)
                row["objective"] = fun
                finite = bool(np.isfinite(fun))
            gradient_norm = float("nan")
            if jac is not None:
                jac = np.asarray(jac, dtype=np.float64)
                finite = finite and bool(np.all(np.isfinite(jac)))
                gradient_norm = functional.dual_norm(jac) if finite else float("nan")
                row["gradient_norm"] = gradient_norm
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
                step=dict(last_step),
            )
            if examples is not None:
                row["batch_size"] = int(len(examples))
            if not finite:
                reason = StopReason.NON_FINITE
            else:
                scalars, callback_stop = call_callback(callback, state)
                row.update(scalars)
                gradient_reason = (
                    None
                    if jac is None
                    else stopping.gradient_reason(gradient_norm, initial_gradient_norm)
                )
                reason = (
                    gradient_reason
                    or pending
                    or (StopReason.CALLBACK if callback_stop else None)
                    or (StopReason.MAX_ITERATIONS if k == stopping.maxiter else None)
                )
            if reason is None:
                outcome = step(state)
                row.update(outcome.record)
                reason = outcome.failure
            row.update(counter.history_columns())
            row[WALL_TIME] = time.perf_counter() - start
            history.append(row)
            logger.debug("%s iteration %d: objective %s, gradient norm %.3e", method, k, fun,
                         gradient_norm)
            if fun is not None:
                bar.set_postfix(objective=f"{fun:.4e}", gradient=f"{gradient_norm:.2e}",
                                refresh=False)
            if reason is not None:
                break
            bar.update(1)
            x = outcome.x
            last_step = dict(outcome.record)
            pending = outcome.stop_after
    if reason is None:  # resumed at the end (nothing left to do)
        raise ValueError(
            f"resume is at iteration {first}, past maxiter={stopping.maxiter}; nothing to continue"
        )
    logger.info("%s stopped after %d iterations: %s (objective %s)", method, k, reason.value, fun)
    attrs = {"method": method, "status": reason.value, **(attrs or {})}
    counts = counter.get_state()
    return OptimizeResult(
        x=x,
        fun=fun,
        jac=jac,
        nit=k,
        success=reason.success,
        status=reason.value,
        message=reason.describe(),
        history=history.to_dataset(attrs),
        nfev=counts["value"] + counts["gradient"],
        njev=counts["gradient"],
        nhev=counts["gauss_newton_product"],
    )


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def prepare(functional, x0, stopping) -> np.ndarray:
    """Validate the common solver inputs; return ``x0`` as a float64 vector."""
    check_functional(functional)
    check_instance(stopping, Stopping, "stopping")
    return functional.check_parameters(x0, "x0")
