"""Inexact (optionally sub-sampled) Gauss-Newton-CG with an Armijo line search."""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..functional import ReducedFunctional
from ._checks import check_instance, check_real
from .cg import as_operator, conjugate_gradient
from .iteration import prepare, run_iterations
from .linesearch import Armijo, line_search_step
from .sampling import check_batch_size, draw_batch
from .stopping import Stopping

__all__ = ["gauss_newton_cg", "EISENSTAT_WALKER"]

EISENSTAT_WALKER = "eisenstat-walker"
"""``cg_rtol`` value selecting the adaptive forcing term
``min(forcing_max, sqrt(|g_k| / |g_0|))``."""


def _check_cg_rtol(cg_rtol):
    if isinstance(cg_rtol, str):
        if cg_rtol != EISENSTAT_WALKER:
            raise ValueError(
                f"cg_rtol must be a number in (0, 1) or {EISENSTAT_WALKER!r}, got {cg_rtol!r}"
            )
        return cg_rtol
    return check_real(cg_rtol, "cg_rtol", 0.0, 1.0, low_open=True)


def gauss_newton_cg(
    functional: ReducedFunctional,
    x0,
    *,
    stopping: Stopping = Stopping(),
    line_search: Armijo = Armijo(),
    cg_rtol=EISENSTAT_WALKER,
    forcing_max: float = 0.5,
    cg_maxiter: int = 10,
    gradient_batch_size: int | None = None,
    gauss_newton_batch_size: int | None = None,
    seed=None,
    preconditioner=None,
    callback=None,
    progress: bool = False,
    resume=None,
    on_iteration=None,
):
    """Minimise a reduced functional by inexact Gauss-Newton-CG with Armijo backtracking.

    Each iteration computes the gradient ``g``, solves ``G p = -g`` approximately by CG
    preconditioned with the inverse weights (so CG works in the functional's inner product and
    its residual is a dual norm) or a given ``preconditioner``, then backtracks from ``t = 1``.
    No learning rate.

    Parameters
    ----------
    functional : ReducedFunctional
        The objective.
    x0 : array_like, shape (functional.size,)
        Starting point.
    stopping : Stopping
        ``maxiter``, ``gtol``, ``grtol`` (dual gradient norm) and ``ftol`` tests.
    line_search : Armijo
        Sufficient-decrease constant, shrink factor, maximum backtracks.
    cg_rtol : float in (0, 1) or ``"eisenstat-walker"``
        CG forcing term: fixed, or ``min(forcing_max, sqrt(|g_k| / |g_0|))``.
    forcing_max : float in (0, 1)
        The cap of the Eisenstat-Walker forcing term (its ``eta_max``): a loose cap lets early
        steps stop after one or two CG iterations.
    cg_maxiter : int
        CG iterations per Gauss-Newton step ("a few" in the paper).
    gradient_batch_size : int, optional
        Examples drawn per iteration for the objective, gradient and line search (``None`` =
        all). Requires ``functional.n_examples``.
    gauss_newton_batch_size : int, optional
        Examples for the Gauss-Newton operator, drawn from the gradient batch (or from all
        examples when the gradient is not sub-sampled); must not exceed the gradient batch.
    seed : int, numpy.random.Generator or None
        Source of the batches; the same seed gives bitwise the same run. A Generator is used
        (and advanced) in place.
    preconditioner : callable or LinearOperator, optional
        ``M``, SPD, mapping a dual vector (a CG residual) to a primal one, e.g. the inverse of a
        regulariser's Hessian (prior preconditioning: CG iteration counts then do not grow with
        the mesh). Default the Riesz map ``g / weights``.
    callback : callable, optional
        ``callback(state)`` at every iterate; see
        :func:`pdecontrol.optimize.iteration.call_callback`.
    progress : bool
        Show a tqdm progress bar.
    resume, on_iteration :
        Continue from / report an :class:`~pdecontrol.optimize.iteration.IterationState` at the
        top of every iteration (see :func:`~pdecontrol.optimize.iteration.run_iterations`).

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x, fun, jac, nit, success, status`` (a :class:`StopReason` value), ``message``,
        ``nfev, njev, nhev`` and ``history`` (xarray Dataset over ``iteration`` with columns
        ``objective, gradient_norm, cg_iterations, cg_relative_residual, cg_forcing,
        cg_stop_reason, directional_derivative, step_length, backtracks, objective_after_step,
        n_value_evaluations, n_gradient_evaluations, n_gauss_newton_products, wall_time`` and,
        when sub-sampling, ``batch_size`` and ``gauss_newton_batch_size``).
    """
    x0 = prepare(functional, x0, stopping)
    check_instance(line_search, Armijo, "line_search")
    cg_rtol = _check_cg_rtol(cg_rtol)
    forcing_max = check_real(forcing_max, "forcing_max", 0.0, 1.0, low_open=True)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", 1)
    n_examples = functional.n_examples
    gradient_batch_size = check_batch_size(gradient_batch_size, n_examples, "gradient_batch_size")
    gauss_newton_batch_size = check_batch_size(
        gauss_newton_batch_size, n_examples, "gauss_newton_batch_size"
    )
    if (
        None not in (gradient_batch_size, gauss_newton_batch_size)
        and gauss_newton_batch_size > gradient_batch_size
    ):
        raise ValueError(
            f"gauss_newton_batch_size={gauss_newton_batch_size} exceeds gradient_batch_size="
            f"{gradient_batch_size}; the Gauss-Newton batch is drawn from the gradient batch"
        )
    rng = np.random.default_rng(seed)
    # with another preconditioner, CG still measures its residual in the functional's dual norm,
    # the norm of the gradient tests and the forcing term
    residual_norm = None if preconditioner is None else functional.dual_norm
    preconditioner = as_operator(functional.riesz if preconditioner is None else preconditioner,
                                 functional.size, "preconditioner")

    def direction(state):
        if cg_rtol == EISENSTAT_WALKER:
            forcing = min(forcing_max,
                          float(np.sqrt(state.gradient_norm / state.initial_gradient_norm)))
        else:
            forcing = cg_rtol
        population = n_examples if state.examples is None else state.examples
        examples = draw_batch(rng, population, gauss_newton_batch_size)
        operator = functional.gauss_newton_operator(state.x, examples)
        cg = conjugate_gradient(
            operator, -state.jac, rtol=forcing, maxiter=cg_maxiter, preconditioner=preconditioner,
            norm=residual_norm,
        )
        record = {
            "cg_iterations": cg.iterations,
            "cg_relative_residual": cg.relative_residual,
            "cg_forcing": forcing,
            "cg_stop_reason": cg.reason.value,
        }
        if examples is not None:
            record["gauss_newton_batch_size"] = int(len(examples))
        return cg.x, record

    return run_iterations(
        functional,
        x0,
        line_search_step(functional, direction, line_search, stopping),
        method="gauss-newton-cg",
        stopping=stopping,
        draw_examples=lambda k: draw_batch(rng, n_examples, gradient_batch_size),
        rng=rng,
        callback=callback,
        progress=progress,
        resume=resume,
        on_iteration=on_iteration,
        attrs={
            "cg_rtol": str(cg_rtol),
            "forcing_max": forcing_max,
            "cg_maxiter": int(cg_maxiter),
            "c1": line_search.c1,
            "shrink": line_search.shrink,
        },
    )
