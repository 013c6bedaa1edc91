"""Solvers by name, for settings files and the command line."""
from __future__ import annotations

from dataclasses import fields

from .amg import AMGConjugateGradient
from .base import LinearSolver
from .lu import SparseLU

__all__ = ["SOLVER_NAMES", "solver_by_name"]

_SOLVERS = {
    "splu": (SparseLU, {}),
    "amg-sa": (AMGConjugateGradient, {"method": "sa"}),
    "amg-rs": (AMGConjugateGradient, {"method": "rs"}),
}
SOLVER_NAMES = tuple(_SOLVERS)
"""``("splu", "amg-sa", "amg-rs")``."""


def solver_by_name(name: str, **options) -> LinearSolver:
    """The solver called ``name``, with ``options`` (keywords of its class).

    ``"splu"``: :class:`SparseLU` (``permc_spec``); ``"amg-sa"`` / ``"amg-rs"``:
    :class:`AMGConjugateGradient` with ``method="sa"`` / ``"rs"`` (``rtol``, ``maxiter``,
    ``warm_start``). ``solver_by_name(s.name, ...)`` round-trips.
    """
    if name not in _SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVER_NAMES)}; got {name!r}")
    cls, fixed = _SOLVERS[name]
    allowed = sorted({field.name for field in fields(cls)} - set(fixed))
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"solver {name!r} has no option(s) {', '.join(unknown)}; "
                        f"its options are {', '.join(allowed) or 'none'}")
    return cls(**fixed, **options)
