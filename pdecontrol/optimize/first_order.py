"""First-order baselines on the same interface: steepest descent and Adam."""

from __future__ import annotations

import numpy as np

from .._validation import check_positive
from ..functional import ReducedFunctional
from ._checks import check_instance, check_real
from .iteration import Step, prepare, run_iterations
from .linesearch import Armijo, line_search_step
from .sampling import EpochBatches, check_batch_size, draw_batch
from .stopping import Stopping

__all__ = ["steepest_descent", "adam"]


def steepest_descent(
    functional: ReducedFunctional,
    x0,
    *,
    stopping: Stopping = Stopping(),
    line_search: Armijo = Armijo(),
    gradient_batch_size: int | None = None,
    seed=None,
    callback=None,
    progress: bool = False,
    resume=None,
    on_iteration=None,
):
    """Steepest descent along the Riesz direction ``-g / m`` with Armijo backtracking.

    The first trial step of each line search is the previous accepted step divided by
    ``line_search.shrink`` (1 at the first iteration), so the step length adapts to the scale of
    the problem. Parameters and the returned result are as in :func:`gauss_newton_cg` (without
    the CG columns).
    """
    x0 = prepare(functional, x0, stopping)
    check_instance(line_search, Armijo, "line_search")
    n_examples = functional.n_examples
    gradient_batch_size = check_batch_size(gradient_batch_size, n_examples, "gradient_batch_size")
    rng = np.random.default_rng(seed)
    memory = {"last_step": line_search.shrink}  # so that the first trial step is 1

    def direction(state):
        return -functional.riesz(state.jac), {}

    return run_iterations(
        functional,
        x0,
        line_search_step(functional, direction, line_search, stopping, memory),
        method="steepest-descent",
        stopping=stopping,
        draw_examples=lambda k: draw_batch(rng, n_examples, gradient_batch_size),
        rng=rng,
        memory=memory,
        callback=callback,
        progress=progress,
        resume=resume,
        on_iteration=on_iteration,
        attrs={"c1": line_search.c1, "shrink": line_search.shrink},
    )


def adam(
    functional: ReducedFunctional,
    x0,
    *,
    learning_rate: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
    batch_size: int | None = None,
    stopping: Stopping = Stopping(maxiter=1000, grtol=0.0),
    seed=None,
    callback=None,
    progress: bool = False,
    resume=None,
    on_iteration=None,
):
    """Adam (Kingma & Ba) on mini-batches of examples: the stochastic first-order baseline.

    Moments are taken of the Riesz gradient ``g / m``; the update is
    ``x <- x - learning_rate * m_hat / (sqrt(v_hat) + epsilon)``. One iteration is one
    mini-batch; batches sweep every example once per epoch (see
    :class:`~pdecontrol.optimize.sampling.EpochBatches`).

    Parameters
    ----------
    learning_rate, epsilon : float
        Step size and denominator guard, ``> 0``.
    beta1, beta2 : float
        Moment decay rates in ``[0, 1)``.
    batch_size : int, optional
        Examples per step (``None`` = full batch). Requires ``functional.n_examples``.
    stopping : Stopping
        ``maxiter`` counts steps; ``gtol``/``grtol`` use the (noisy) batch gradient; ``ftol`` is
        not used (no line search).
    seed, callback, progress, resume, on_iteration :
        As in :func:`~pdecontrol.optimize.gauss_newton_cg` (the moments and the position in the
        epoch are part of a resumed state).

    Returns
    -------
    scipy.optimize.OptimizeResult
        As :func:`gauss_newton_cg`; history columns ``objective`` and ``gradient_norm`` are on
        the batch of each step, plus ``step_length`` (the learning rate), ``update_norm`` and
        ``epoch``.
    """
    x0 = prepare(functional, x0, stopping)
    learning_rate = check_positive(learning_rate, "learning_rate")
    epsilon = check_positive(epsilon, "epsilon")
    beta1 = check_real(beta1, "beta1", 0.0, 1.0)
    beta2 = check_real(beta2, "beta2", 0.0, 1.0)
    batch_size = check_batch_size(batch_size, functional.n_examples, "batch_size")
    rng = np.random.default_rng(seed)
    memory = {"first_moment": np.zeros(functional.size), "second_moment": np.zeros(functional.size)}
    if batch_size is not None:
        memory["batches"] = EpochBatches(functional.n_examples, batch_size, rng)

    def step(state):
        t = state.nit + 1
        direction = functional.riesz(state.jac)
        first_moment = beta1 * memory["first_moment"] + (1 - beta1) * direction
        second_moment = beta2 * memory["second_moment"] + (1 - beta2) * direction**2
        memory.update(first_moment=first_moment, second_moment=second_moment)
        update = (
            learning_rate
            * (first_moment / (1 - beta1**t))
            / (np.sqrt(second_moment / (1 - beta2**t)) + epsilon)
        )
        record = {"step_length": learning_rate, "update_norm": functional.norm(update)}
        if "batches" in memory:
            record["epoch"] = memory["batches"].epoch
        return Step(state.x - update, record)

    return run_iterations(
        functional,
        x0,
        step,
        method="adam",
        stopping=stopping,
        draw_examples=lambda k: memory["batches"].next() if "batches" in memory else None,
        rng=rng,
        memory=memory,
        callback=callback,
        progress=progress,
        resume=resume,
        on_iteration=on_iteration,
        attrs={
            "learning_rate": learning_rate,
            "beta1": float(beta1),
            "beta2": float(beta2),
            "batch_size": -1 if batch_size is None else batch_size,
        },
    )
