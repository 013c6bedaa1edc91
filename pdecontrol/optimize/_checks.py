"""Option checks shared by the optimisers (each raises an error naming the option)."""

from __future__ import annotations

import numbers

import numpy as np

from ..functional import ReducedFunctional

__all__ = ["check_functional", "check_real", "check_instance"]


def check_functional(functional, name: str = "functional") -> ReducedFunctional:
    """Raise ``TypeError`` unless ``functional`` is a :class:`ReducedFunctional`."""
    if not isinstance(functional, ReducedFunctional):
        raise TypeError(
            f"{name} must be a pdecontrol.functional.ReducedFunctional, "
            f"got {type(functional).__name__}"
        )
    return functional


def check_real(
    value,
    name: str,
    low: float,
    high: float = np.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> float:
    """Return ``value`` as a float after checking it is a real number in the given interval.

    The interval is ``[low, high)`` by default; ``low_open`` / ``high_open`` open either end.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    inside = (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high
    )
    if not (np.isfinite(value) and inside):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value}")
    return value


def check_instance(value, cls: type, name: str):
    """Raise ``TypeError`` unless ``value`` is an instance of the options class ``cls``."""
    if not isinstance(value, cls):
        raise TypeError(
            f"{name} must be a pdecontrol.optimize.{cls.__name__}, got {type(value).__name__}"
        )
    return value
