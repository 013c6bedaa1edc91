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

__all__ = ["block_coordinate_descent"]

_RESERVED_INNER_OPTIONS = ("stopping", "seed", "callback", "progress")


def block_coordinate_descent(
    functional: ReducedFunctional,
    x0,
    solve_block,
    free_indices,
    *,
    stopping: Stopping = Stopping(maxiter=10),
    inner_stopping: Stopping = Stopping(maxiter=2, grtol=0.0),
    inner_solver=gauss_newton_cg,
    inner_options: Mapping | None = None,
    seed=None,
    callback=None,
    progress: bool = False,
):
    """Alternate an exact block solve with a few iterations of ``inner_solver`` on the free block.

    One outer iteration (the paper's schedule, METHOD.md section 4):

    1. ``x <- solve_block(x)``, keeping only the entries outside ``free_indices`` (e.g. the
       least-squares classifier on the whole training set);
    2. ``inner_solver`` (default :func:`gauss_newton_cg`, two iterations) on
       ``RestrictedFunctional(functional, free_indices, x)`` (e.g. kernels and biases).

    Parameters
    ----------
    functional : ReducedFunctional
        The joint objective.
    x0 : array_like, shape (functional.size,)
        Starting point.
    solve_block : callable
        ``solve_block(x) -> x_new`` returning the full vector with the block outside
        ``free_indices`` minimised for the current free entries.
    free_indices : array_like of int or bool
        Indices or boolean mask of the parameters updated by ``inner_solver``.
    stopping : Stopping
        Outer tests on the full objective and dual gradient norm (all examples); ``maxiter``
        counts outer iterations; ``ftol`` compares the objective before the block solve and after
        the inner iterations.
    inner_stopping : Stopping
        Stopping criteria of each inner run (default: exactly two iterations).
    inner_solver : callable
        A solver with the signature of :func:`gauss_newton_cg` (e.g. :func:`steepest_descent`).
    inner_options : mapping, optional
        Extra keyword arguments for ``inner_solver`` (e.g. ``cg_maxiter``,
        ``gauss_newton_batch_size``); ``stopping``, ``seed``, ``callback`` and ``progress`` are
        set by this driver.
    seed : int, numpy.random.Generator or None
        One generator shared by all inner runs (each draws fresh batches).
    callback : callable, optional
        Called at every outer iterate, as in :func:`gauss_newton_cg`.

    Returns
    -------
    scipy.optimize.OptimizeResult
        History rows are outer iterates, with ``objective`` and ``gradient_norm`` of the full
        functional, and per outer step ``objective_after_block_solve``, ``inner_iterations``,
        ``inner_status``, ``cg_iterations`` (total over the inner run, when it reports them),
        plus the cumulative evaluation counts and ``wall_time``.
    """
    counting, x0 = prepare(functional, x0, stopping)
    if not callable(solve_block):
        raise TypeError(
            f"solve_block must be callable x -> x_new, got {type(solve_block).__name__}"
        )
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

    def step(state):
        x = apply_block_solve(solve_block, state.x, fixed, counting)
        restricted = RestrictedFunctional(counting, free, x)
        value_after_block = counting.value(x)
        inner = inner_solver(
            restricted, x[free], stopping=inner_stopping, seed=rng, **inner_options
        )
        x[free] = inner.x
        record = {
            "objective_after_block_solve": value_after_block,
            "inner_iterations": int(inner.nit),
            "inner_status": str(inner.status),
        }
        if "cg_iterations" in inner.history:
            record["cg_iterations"] = int(np.nansum(inner.history["cg_iterations"].values))
        done = stopping.ftol > 0 and stopping.decrease_met(state.fun, counting.value(x))
        return Step(x, record, stop_after=StopReason.FUNCTION_DECREASE if done else None)

    return run_iterations(
        counting,
        x0,
        step,
        method="block-coordinate-descent",
        stopping=stopping,
        draw_examples=lambda k: None,
        callback=callback,
        progress=progress,
        attrs={
            "inner_solver": getattr(inner_solver, "__name__", str(inner_solver)),
            "inner_maxiter": inner_stopping.maxiter,
        },
    )
