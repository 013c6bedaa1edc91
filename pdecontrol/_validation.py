"""Input checks shared by the whole package.

Every public function validates its arguments with these helpers so that a bad input fails
early with a message that names the argument, what was wrong and what to do instead.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_int",
    "check_dim",
    "check_shape",
]


def as_float_array(value, name: str, dtype=None) -> np.ndarray:
    """Return ``value`` as a floating-point ndarray (float64 unless ``dtype`` or already float32).

    Raises ``TypeError`` naming ``name`` when the value is not numeric.
    """
    array = np.asarray(value)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real, got complex dtype {array.dtype}")
    if dtype is None:
        dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.float64
    return np.asarray(array, dtype=dtype)


def check_finite(array: np.ndarray, name: str) -> np.ndarray:
    """Raise ``ValueError`` if ``array`` holds NaN or infinity; return it unchanged otherwise."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf); "
            "check the data or the previous step that produced it"
        )
    return array


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float after checking that it is a finite number > 0."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_int(value, name: str, minimum: int) -> int:
    """Return ``value`` as an int after checking that it is an integer (not a bool) ``>= minimum``.

    Raises ``TypeError`` naming ``name`` for a non-integer, ``ValueError`` below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_dim(dim, name: str = "dim") -> int:
    """Return the spatial dimension ``dim`` after checking that it is 1, 2 or 3."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim not in (1, 2, 3):
        raise ValueError(f"{name} must be 1, 2 or 3, got {dim!r}")
    return int(dim)


def check_shape(array: np.ndarray, expected: tuple, name: str) -> np.ndarray:
    """Check ``array.shape`` against ``expected``, where ``None`` entries match any length."""
    shape = np.shape(array)
    if len(shape) != len(expected) or any(
        e is not None and s != e for s, e in zip(shape, expected, strict=True)
    ):
        pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {pretty}, got {shape}")
    return array
