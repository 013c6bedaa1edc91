"""Sparse grid-transfer matrices on nodal meshes (pyamg style): ``P`` and ``R``.

Conventions (shared by the whole package)
-----------------------------------------
* Nodal meshes with ``n`` nodes per axis; coarse node ``j`` sits on fine node ``2j``, so a fine
  axis has exactly ``2 * n_coarse`` nodes. Grid functions are zero outside the domain.
* ``P`` is d-linear interpolation; 1D: ``(P u)[2j] = u[j]``, ``(P u)[2j+1] = (u[j] + u[j+1])/2``
  with ``u[n_coarse] = 0``.
* ``R`` is full weighting, ``R = 2**-d * P.T``; 1D: ``(R v)[j] = (v[2j-1] + 2 v[2j] + v[2j+1])/4``
  with ``v[-1] = 0``.
* In 2D and 3D both are tensor (Kronecker) products of the 1D matrices, acting on grid functions
  flattened in C order of the spatial shape (the last axis varies fastest).
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import scipy.sparse as sp

from ._shapes import as_grid_shape, check_coarsenable

__all__ = ["INTERPOLATION_WEIGHTS", "prolongation_matrix", "restriction_matrix"]

#: Weights of 1D linear interpolation: coarse node ``j`` feeds fine nodes ``2j-1, 2j, 2j+1``.
#: Full weighting uses the same weights halved (``R = P.T / 2`` in 1D).
INTERPOLATION_WEIGHTS = (0.5, 1.0, 0.5)


def _prolongation_matrix_1d(n_coarse: int) -> sp.csr_matrix:
    """1D interpolation, shape ``(2 n_coarse, n_coarse)``; fine nodes outside the axis dropped."""
    rows, cols, values = [], [], []
    coarse = np.arange(n_coarse)
    for offset, weight in zip((-1, 0, 1), INTERPOLATION_WEIGHTS, strict=True):
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


def prolongation_matrix(coarse_shape) -> sp.csr_matrix:
    """d-linear interpolation ``P`` from a coarse nodal grid to the grid twice as fine.

    Parameters
    ----------
    coarse_shape : int or tuple of int
        Coarse spatial shape ``(n_0, ..., n_{d-1})``, d = 1, 2 or 3.

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
    """
    coarse_shape = as_grid_shape(coarse_shape, "coarse_shape")
    return _kron_all(_prolongation_matrix_1d(n) for n in coarse_shape)


def restriction_matrix(fine_shape) -> sp.csr_matrix:
    """Full-weighting restriction ``R = 2**-d P.T`` from a nodal grid to the grid half as fine.

    Parameters
    ----------
    fine_shape : int or tuple of int
        Fine spatial shape; every entry must be even and >= 2.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(prod(n_k / 2), prod(n_k))``, acting on C-order flattened grid functions.

    Examples
    --------
    >>> restriction_matrix(4).toarray()
    array([[0.5 , 0.25, 0.  , 0.  ],
           [0.  , 0.25, 0.5 , 0.25]])
    """
    fine_shape = as_grid_shape(fine_shape, "fine_shape")
    check_coarsenable(fine_shape, "fine_shape")
    return _kron_all(0.5 * _prolongation_matrix_1d(n // 2).T for n in fine_shape)
