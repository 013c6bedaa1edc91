"""Why an optimiser stopped, and the stopping criteria shared by all solvers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .._validation import check_int
from ._checks import check_real

__all__ = ["StopReason", "Stopping"]


class StopReason(str, Enum):
    """Reason an outer optimisation loop ended (a ``str`` enum; ``result.status`` is its value).

    Members that count as success: ``GRADIENT_TOLERANCE``, ``RELATIVE_GRADIENT_TOLERANCE``,
    ``FUNCTION_DECREASE`` and ``CALLBACK``.
    """

    GRADIENT_TOLERANCE = "gradient_tolerance"
    """The dual gradient norm fell to ``gtol`` or below."""
    RELATIVE_GRADIENT_TOLERANCE = "relative_gradient_tolerance"
    """The dual gradient norm fell to ``grtol`` times its initial value or below."""
    FUNCTION_DECREASE = "function_decrease"
    """The last step reduced the objective by a relative amount of ``ftol`` or less."""
    CALLBACK = "callback"
    """The user callback asked to stop (returned ``True`` or ``{"stop": True, ...}``)."""
    MAX_ITERATIONS = "max_iterations"
    """``maxiter`` iterations were taken without meeting a convergence test."""
    LINE_SEARCH_FAILED = "line_search_failed"
    """No step length in the backtracking sequence gave sufficient decrease."""
    NO_DESCENT_DIRECTION = "no_descent_direction"
    """The search direction was not a descent direction (``<g, p> >= 0``)."""
    NON_FINITE = "non_finite"
    """The objective or gradient became NaN or infinite."""

    @property
    def success(self) -> bool:
        """Whether this reason means the solver met a convergence or user stopping test."""
        return self in _SUCCESS

    def describe(self) -> str:
        """A one-sentence message for ``OptimizeResult.message``."""
        return _MESSAGES[self]


_SUCCESS = frozenset(
    {
        StopReason.GRADIENT_TOLERANCE,
        StopReason.RELATIVE_GRADIENT_TOLERANCE,
        StopReason.FUNCTION_DECREASE,
        StopReason.CALLBACK,
    }
)

_MESSAGES = {
    StopReason.GRADIENT_TOLERANCE: "Gradient norm is below gtol.",
    StopReason.RELATIVE_GRADIENT_TOLERANCE: (
        "Gradient norm relative to the initial one is below grtol."
    ),
    StopReason.FUNCTION_DECREASE: "Relative decrease of the objective is below ftol.",
    StopReason.CALLBACK: "The callback requested a stop.",
    StopReason.MAX_ITERATIONS: "Maximum number of iterations reached.",
    StopReason.LINE_SEARCH_FAILED: (
        "Line search failed: no sufficient decrease after max_backtracks reductions; "
        "the direction may be poor or the gradient inaccurate."
    ),
    StopReason.NO_DESCENT_DIRECTION: "The search direction is not a descent direction.",
    StopReason.NON_FINITE: "The objective or gradient is NaN or infinite.",
}


@dataclass(frozen=True)
class Stopping:
    """Stopping criteria of an outer optimisation loop (immutable, safe to share).

    Parameters
    ----------
    maxiter : int
        Maximum number of iterations (steps); ``>= 0``.
    gtol : float
        Stop when the dual gradient norm ``functional.dual_norm(g) <= gtol`` (0 disables).
    grtol : float
        Stop when ``dual_norm(g_k) <= grtol * dual_norm(g_0)`` (0 disables).
    ftol : float
        Stop when the last step's decrease ``(f_k - f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol``
        (0 disables). With sub-sampled gradients both values are on the same batch.
    """

    maxiter: int = 50
    gtol: float = 0.0
    grtol: float = 1e-6
    ftol: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "maxiter", check_int(self.maxiter, "maxiter", 0))
        for name in ("gtol", "grtol", "ftol"):
            object.__setattr__(self, name, check_real(getattr(self, name), name, 0.0))

    def gradient_reason(
        self, gradient_norm: float, initial_gradient_norm: float
    ) -> StopReason | None:
        """The gradient test met at this iterate, if any (absolute test first)."""
        if gradient_norm <= self.gtol:
            return StopReason.GRADIENT_TOLERANCE
        if gradient_norm <= self.grtol * initial_gradient_norm:
            return StopReason.RELATIVE_GRADIENT_TOLERANCE
        return None

    def decrease_met(self, value_before: float, value_after: float) -> bool:
        """Whether a step from ``value_before`` to ``value_after`` meets the ``ftol`` test."""
        scale = max(abs(value_before), abs(value_after), 1.0)
        return (value_before - value_after) <= self.ftol * scale
