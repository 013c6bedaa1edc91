"""Adding a problem's cotangent dicts into running totals (shared by the steppers and the
functional)."""
from __future__ import annotations

import numpy as np

__all__ = ["accumulate"]


def accumulate(total: dict, part):
    """Add a cotangent dict (missing blocks / ``None`` = zero) into ``total`` in float64."""
    if part is None:
        return
    for name, value in part.items():
        if value is None:
            continue
        if name not in total:
            raise ValueError(f"a problem adjoint returned a cotangent for block {name!r}, which is "
                             f"not one of the expected blocks {list(total)}")
        value = np.asarray(value, dtype=np.float64)
        if value.shape != total[name].shape:
            raise ValueError(f"a problem adjoint returned a cotangent of shape {value.shape} for "
                             f"block {name!r}, expected {total[name].shape} (summed over the "
                             "batch)")
        total[name] += value
