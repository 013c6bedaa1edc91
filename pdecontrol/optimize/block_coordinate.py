"""Block-coordinate descent: exact solve for one block, a few Gauss-Newton steps for the rest."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..functional import ReducedFunctional
from ._checks import check_instance
from .gauss_newton import gauss_newton_cg
from .iteration import Step, prepare, run_iterations
from .restricted import RestrictedFunctional, apply_block_solve, as_index_set
from .stopping import Stopping, StopReason

__all__ = ["block_coordinate_descent", "BLOCK_ORDERS", "OUTER_EVALUATIONS"]

_RESERVED_INNER_OPTIONS = ("stopping", "seed", "callback", "progress", "resume", "on_iteration")

#: Where the block solve stands in an outer iteration.
BLOCK_ORDERS = ("solve_first", "solve_last")
#: What is evaluated on all examples at every outer iterate.
OUTER_EVALUATIONS = ("gradient", "value", None)


def block_coordinate_descent(
    functional: ReducedFunctional,
    x0,
    solve_block=None,
    free_indices=None,
    *,
    order: str = "solve_first",
    outer_evaluation: str | None = "gradient",
    stopping: Stopping = Stopping(maxiter=10),
    inner_stopping: Stopping = Stopping(maxiter=2, grtol=0.0),
    inner_solver=gauss_newton_cg,
    inner_options: Mapping | None = None,
    seed=None,
    callback=None,
    progress: bool = False,
    resume=None,
    on_iteration=None,
):
    """Alternate an exact block solve with a few iterations of ``inner_solver`` on the free block.

    One outer iteration (the paper's schedule, docs/method.md section 4):

    1. ``x <- solve_block(x)``, keeping only the entries outside ``free_indices`` (e.g. the
       least-squares classifier on the whole training set);
    2. ``inner_solver`` (default :func:`gauss_newton_cg`, two iterations) on
       ``RestrictedFunctional(functional, free_indices, x)`` (e.g. kernels and biases).

    With ``order="solve_last"`` the two are swapped (the inner run, then the block solve), so
    that every outer iterate has its block solved for its free entries; solve the block of
    ``x0`` before the call. Without ``solve_block`` every parameter is free and an outer
    iteration is one inner run (a restarted inner solver).

    Parameters
    ----------
    functional : ReducedFunctional
        The joint objective.
    x0 : array_like, shape (functional.size,)
        Starting point.
    solve_block : callable, optional
        ``solve_block(x) -> x_new`` returning the full vector with the block outside
        ``free_indices`` minimised for the current free entries.
    free_indices : array_like of int or bool
        Indices or boolean mask of the parameters updated by ``inner_solver`` (with
        ``solve_block`` only).
    order : {"solve_first", "solve_last"}
        Block solve before or after the inner run.
    outer_evaluation : {"gradient", "value", None}
        Evaluated on all examples at every outer iterate: objective and dual gradient norm
        (needed by ``gtol``/``grtol``), the objective only (enough for ``ftol``), or nothing
        (``maxiter`` and the callback stop the run; the caller monitors it as it likes).
    stopping : Stopping
        Outer tests on the full objective and dual gradient norm (all examples); ``maxiter``
        counts outer iterations; ``ftol`` compares the objective before the outer iteration and
        after it.
    inner_stopping : Stopping
        Stopping criteria of each inner run (default: exactly two iterations).
    inner_solver : callable
        A solver with the signature of :func:`gauss_newton_cg` (e.g. :func:`steepest_descent`).
    inner_options : mapping, optional
        Extra keyword arguments for ``inner_solver`` (e.g. ``cg_maxiter``,
        ``gauss_newton_batch_size``); ``stopping``, ``seed``, ``callback``, ``progress``,
        ``resume`` and ``on_iteration`` are set by this driver.
    seed : int, numpy.random.Generator or None
        One generator shared by all inner runs (each draws fresh batches).
    callback, progress, resume, on_iteration :
        At every outer iterate, as in :func:`gauss_newton_cg`.

    Returns
    -------
    scipy.optimize.OptimizeResult
        History rows are outer iterates, with ``objective`` and ``gradient_norm`` of the full
        functional (as ``outer_evaluation`` gives them), and per outer step
        ``objective_after_block_solve`` (``"solve_first"`` with an outer evaluation),
        ``inner_iterations``, ``inner_status``, ``cg_iterations`` (total over the inner run,
        when it reports them), plus the cumulative evaluation counts and ``wall_time``.
    """
    x0 = prepare(functional, x0, stopping)
    if order not in BLOCK_ORDERS:
        raise ValueError(f"order must be one of {BLOCK_ORDERS}, got {order!r}")
    if outer_evaluation not in OUTER_EVALUATIONS:
        raise ValueError(f"outer_evaluation must be one of {OUTER_EVALUATIONS}, got "
                         f"{outer_evaluation!r}")
    if outer_evaluation != "gradient" and (stopping.gtol > 0 or stopping.grtol > 0):
        raise ValueError("stopping.gtol / grtol test the gradient: use outer_evaluation="
                         "'gradient', or set them to 0")
    if outer_evaluation is None and stopping.ftol > 0:
        raise ValueError("stopping.ftol tests the objective: use outer_evaluation='value' or "
                         "'gradient', or set it to 0")
    if solve_block is None:
        if free_indices is not None:
            raise ValueError("free_indices selects the block for solve_block; without "
                             "solve_block every parameter is free (leave free_indices None)")
        free = fixed = None
    else:
        if not callable(solve_block):
            raise TypeError(
                f"solve_block must be callable x -> x_new, got {type(solve_block).__name__}"
            )
        if free_indices is None:
            raise ValueError("solve_block needs free_indices: the parameters the inner solver "
                             "updates")
        free = as_index_set(free_indices, functional.size)
        fixed = np.setdiff1d(np.arange(functional.size), free)
        if fixed.size == 0:
            raise ValueError(
                "free_indices selects every parameter; leave the block for solve_block outside it"
            )
    check_instance(inner_stopping, Stopping, "inner_stopping")
    inner_options = dict(inner_options or {})
    reserved = [key for key in _RESERVED_INNER_OPTIONS if key in inner_options]
    if reserved:
        raise ValueError(
            f"inner_options must not set {reserved}; use inner_stopping / seed / callback of "
            "block_coordinate_descent instead"
        )
    rng = np.random.default_rng(seed)

    def inner_run(x):
        """The inner solver on the free entries of ``x``; returns the new x and its record."""
        if free is None:
            inner = inner_solver(functional, x, stopping=inner_stopping, seed=rng, **inner_options)
            x = np.array(inner.x)
        else:
            restricted = RestrictedFunctional(functional, free, x)
            inner = inner_solver(
                restricted, x[free], stopping=inner_stopping, seed=rng, **inner_options
            )
            x = x.copy()
            x[free] = inner.x
        record = {"inner_iterations": int(inner.nit), "inner_status": str(inner.status)}
        if "cg_iterations" in inner.history:
            record["cg_iterations"] = int(np.nansum(inner.history["cg_iterations"].values))
        return x, record

    def step(state):
        x, record = state.x, {}
        if free is not None and order == "solve_first":
            x = apply_block_solve(solve_block, x, fixed, functional)
            if outer_evaluation is not None:
                record["objective_after_block_solve"] = functional.value(x)
        x, inner_record = inner_run(x)
        record.update(inner_record)
        if free is not None and order == "solve_last":
            x = apply_block_solve(solve_block, x, fixed, functional)
        done = stopping.ftol > 0 and stopping.decrease_met(state.fun, functional.value(x))
        return Step(x, record, stop_after=StopReason.FUNCTION_DECREASE if done else None)

    def evaluate(x, examples):
        if outer_evaluation == "gradient":
            return functional.value_and_gradient(x, examples)
        if outer_evaluation == "value":
            return functional.value(x, examples), None
        return None, None

    return run_iterations(
        functional,
        x0,
        step,
        method="block-coordinate-descent",
        stopping=stopping,
        draw_examples=lambda k: None,
        evaluate=evaluate,
        rng=rng,
        callback=callback,
        progress=progress,
        resume=resume,
        on_iteration=on_iteration,
        attrs={
            "inner_solver": getattr(inner_solver, "__name__", str(inner_solver)),
            "inner_maxiter": inner_stopping.maxiter,
            "order": order,
            "outer_evaluation": str(outer_evaluation),
        },
    )
