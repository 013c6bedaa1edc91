"""Shape and centring checks shared by the grid-transfer modules and :mod:`pdecontrol.mesh`."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["CENTRINGS", "as_grid_shape", "check_centring", "check_coarsenable", "spatial_shape"]

#: The two transfer families: ``"node"`` (values at nodes ``i h``; d-linear ``P``, full
#: weighting ``R``) and ``"cell"`` (values at cell centres ``(i + 1/2) h``; ``R`` averages the
#: ``2**d`` fine cells of a coarse cell, ``P`` copies a coarse value to them).
CENTRINGS = ("node", "cell")


def check_centring(centring) -> str:
    """Return ``centring`` after checking that it is one of :data:`CENTRINGS`."""
    if not isinstance(centring, str) or centring not in CENTRINGS:
        raise ValueError(f"centring must be one of {CENTRINGS}, got {centring!r}")
    return centring


def as_grid_shape(shape, name: str = "shape") -> tuple[int, ...]:
    """Return ``shape`` (an int or a sequence of 1 to 3 ints, each >= 1) as a tuple of ints."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        entries = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of 1 to 3 ints, got {type(shape).__name__}"
        ) from None
    if not 1 <= len(entries) <= 3:
        raise ValueError(
            f"{name} must have 1, 2 or 3 entries (the spatial dimension), got {entries}"
        )
    for axis, n in enumerate(entries):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{name}[{axis}] must be an int, got {n!r}")
        if n < 1:
            raise ValueError(f"{name}[{axis}] must be >= 1 node, got {n}")
    return tuple(int(n) for n in entries)


def check_coarsenable(shape: tuple[int, ...], name: str) -> None:
    """Raise ``ValueError`` unless every entry of ``shape`` is even and >= 2.

    A nodal coarsening keeps fine nodes ``0, 2, 4, ...`` and a cell-centred one merges cells
    ``2J, 2J+1``; both need an even number of points on every axis so that the fine grid is
    exactly twice the coarse one.
    """
    for axis, n in enumerate(shape):
        if n < 2 or n % 2:
            raise ValueError(
                f"{name} cannot be coarsened: spatial axis {axis} has {n} nodes, but coarsening "
                "needs an even number of nodes >= 2 on every axis; pad or crop to an even size"
            )


def spatial_shape(array: np.ndarray, dim: int, name: str) -> tuple[int, ...]:
    """The last ``dim`` entries of ``array.shape``; ``ValueError`` if ``array`` has fewer axes."""
    if array.ndim < dim:
        raise ValueError(
            f"{name} must have at least dim={dim} axes (the last {dim} are spatial), "
            f"got shape {array.shape}"
        )
    return tuple(array.shape[array.ndim - dim :])
