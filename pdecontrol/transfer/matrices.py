"""Sparse grid-transfer matrices (pyamg style): ``P`` and ``R`` of both centrings.

Conventions (shared by the whole package)
-----------------------------------------
* ``n`` points per axis and grid functions zero outside the domain; a fine axis has exactly
  ``2 * n_coarse`` points. ``centring`` picks the family (:data:`CENTRINGS`):
* ``"node"`` (the default): coarse node ``j`` sits on fine node ``2j``. ``P`` is d-linear
  interpolation; 1D: ``(P u)[2j] = u[j]``, ``(P u)[2j+1] = (u[j] + u[j+1])/2`` with
  ``u[n_coarse] = 0``. ``R`` is full weighting; 1D:
  ``(R v)[j] = (v[2j-1] + 2 v[2j] + v[2j+1])/4`` with ``v[-1] = 0``.
* ``"cell"``: coarse cell ``J`` is the union of fine cells ``2J, 2J+1``. ``P`` is piecewise-constant
  injection, 1D ``(P u)[2J] = (P u)[2J+1] = u[J]``; ``R`` is cell averaging,
  ``(R v)[J] = (v[2J] + v[2J+1])/2``. No value outside the grid is read, and ``R P = I``.
* Both: ``R = 2**-d * P.T``. In 2D and 3D both are tensor (Kronecker) products of the 1D
  matrices, acting on grid functions flattened in C order of the spatial shape (the last axis
  varies fastest).
"""

from __future__ import annotations

from functools import reduce
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from ._shapes import CENTRINGS, as_grid_shape, check_centring, check_coarsenable

__all__ = [
    "CENTRINGS",
    "INTERPOLATION_WEIGHTS",
    "PROLONGATION_WEIGHTS",
    "prolongation_matrix",
    "restriction_matrix",
]

#: Weights of 1D linear interpolation: coarse node ``j`` feeds fine nodes ``2j-1, 2j, 2j+1``.
#: Full weighting uses the same weights halved (``R = P.T / 2`` in 1D).
INTERPOLATION_WEIGHTS = (0.5, 1.0, 0.5)

#: Per centring, the 1D prolongation as ``{offset: weight}``: coarse point ``j`` feeds fine point
#: ``2j + offset``. The restriction uses the same weights halved (``R = P.T / 2`` in 1D).
PROLONGATION_WEIGHTS = MappingProxyType({
    "node": MappingProxyType(dict(zip((-1, 0, 1), INTERPOLATION_WEIGHTS, strict=True))),
    "cell": MappingProxyType({0: 1.0, 1: 1.0}),
})


def _prolongation_matrix_1d(n_coarse: int, centring: str) -> sp.csr_matrix:
    """1D ``P``, shape ``(2 n_coarse, n_coarse)``; fine points outside the axis dropped."""
    rows, cols, values = [], [], []
    coarse = np.arange(n_coarse)
    for offset, weight in PROLONGATION_WEIGHTS[centring].items():
        fine = 2 * coarse + offset
        inside = (fine >= 0) & (fine < 2 * n_coarse)
        rows.append(fine[inside])
        cols.append(coarse[inside])
        values.append(np.full(int(inside.sum()), weight))
    return sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
        shape=(2 * n_coarse, n_coarse),
    )


def _kron_all(factors) -> sp.csr_matrix:
    return reduce(lambda a, b: sp.kron(a, b, format="csr"), factors).tocsr()


def prolongation_matrix(coarse_shape, centring: str = "node") -> sp.csr_matrix:
    """Prolongation ``P`` from a coarse grid to the grid twice as fine.

    Parameters
    ----------
    coarse_shape : int or tuple of int
        Coarse spatial shape ``(n_0, ..., n_{d-1})``, d = 1, 2 or 3.
    centring : {"node", "cell"}, default "node"
        d-linear interpolation of nodal values, or piecewise-constant injection of cell values.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(prod(2 n_k), prod(n_k))``, acting on C-order flattened grid functions.

    Examples
    --------
    >>> prolongation_matrix(2).toarray()
    array([[1. , 0. ],
           [0.5, 0.5],
           [0. , 1. ],
           [0. , 0.5]])
    >>> prolongation_matrix(2, centring="cell").toarray()
    array([[1., 0.],
           [1., 0.],
           [0., 1.],
           [0., 1.]])
    """
    coarse_shape = as_grid_shape(coarse_shape, "coarse_shape")
    centring = check_centring(centring)
    return _kron_all(_prolongation_matrix_1d(n, centring) for n in coarse_shape)


def restriction_matrix(fine_shape, centring: str = "node") -> sp.csr_matrix:
    """Restriction ``R = 2**-d P.T`` from a grid to the grid half as fine.

    Parameters
    ----------
    fine_shape : int or tuple of int
        Fine spatial shape; every entry must be even and >= 2.
    centring : {"node", "cell"}, default "node"
        Full weighting of nodal values, or averaging of the ``2**d`` fine cells of a coarse cell.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(prod(n_k / 2), prod(n_k))``, acting on C-order flattened grid functions.

    Examples
    --------
    >>> restriction_matrix(4).toarray()
    array([[0.5 , 0.25, 0.  , 0.  ],
           [0.  , 0.25, 0.5 , 0.25]])
    >>> restriction_matrix(4, centring="cell").toarray()
    array([[0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5]])
    """
    fine_shape = as_grid_shape(fine_shape, "fine_shape")
    check_coarsenable(fine_shape, "fine_shape")
    centring = check_centring(centring)
    return _kron_all(0.5 * _prolongation_matrix_1d(n // 2, centring).T for n in fine_shape)
