"""Fused elementwise update ``base + scale * vector`` for the time-steppers (Numba).

The Runge-Kutta steppers of :mod:`pdecontrol.control.timestepping` combine whole batches of
states (e.g. 2,000 x 8 x 28 x 28 float32 = 50 MB) once per stage in every forward, tangent and
adjoint sweep. NumPy's ``y.copy(); y += a * v`` takes three passes over memory and a temporary;
:func:`add_scaled` takes one pass and no temporary: parallel from
:data:`~._dispatch.SERIAL_BELOW_ELEMENTS` elements on, serial below (a small state costs about
what NumPy would, see :mod:`._dispatch`); both paths give identical results.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._dispatch import SERIAL_BELOW_ELEMENTS, twin_kernel

__all__ = ["add_scaled"]


@twin_kernel(SERIAL_BELOW_ELEMENTS, cache=True, error_model="numpy")
def _add_scaled_kernel(out, base, has_base, scale, vector):
    if has_base:
        for i in prange(out.size):
            out[i] = base[i] + scale * vector[i]
    else:
        for i in prange(out.size):
            out[i] = scale * vector[i]


def _fused(array, dtype, shape) -> bool:
    return (
        isinstance(array, np.ndarray)
        and array.dtype == dtype
        and array.shape == shape
        and array.flags.c_contiguous
    )


def add_scaled(base, scale: float, vector, out=None) -> np.ndarray:
    """``base + scale * vector`` elementwise (``base=None``: ``scale * vector``).

    Parameters
    ----------
    base : ndarray or None
        Same shape and dtype as ``vector``.
    scale : float
        Cast to the arrays' dtype first (as NumPy treats a Python scalar times an array), so
        float32 arrays are combined in float32.
    vector : ndarray
    out : ndarray, optional
        Where to write (may be ``base`` itself: an in-place update); if omitted, a new array of
        ``base``'s dtype (``vector``'s if ``base`` is None).

    Returns
    -------
    ndarray
        ``out``. float32 / float64 C-contiguous arrays of one shape take one Numba pass
        (parallel for large arrays); anything else (other dtypes, strided views) is computed
        by NumPy, with the same result.
    """
    vector = np.asarray(vector)
    dtype, shape = vector.dtype, vector.shape
    if out is None:
        out = np.empty(shape, dtype=dtype if base is None else np.asarray(base).dtype)
    arrays = [vector, out] + ([] if base is None else [base])
    if dtype in (np.float32, np.float64) and all(_fused(a, dtype, shape) for a in arrays):
        flat_vector = vector.reshape(-1)
        flat_base = flat_vector if base is None else base.reshape(-1)
        _add_scaled_kernel.choose(out.size)(
            out.reshape(-1), flat_base, base is not None, dtype.type(scale), flat_vector
        )
    elif base is None:
        np.multiply(vector, scale, out=out, casting="same_kind")
    else:
        np.add(base, scale * vector, out=out, casting="same_kind")
    return out
