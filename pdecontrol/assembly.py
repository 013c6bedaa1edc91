"""Sparse matrices of stencils on regular grids (CSR, C-order node numbering).

A stencil acts by **correlation**: ``(A u)[i] = sum_o s[o] u[i + o]`` over the offsets ``o`` of
the stencil (centre = offset 0); connections to nodes outside the grid are dropped (zero outside),
as in :func:`pyamg.gallery.stencil_grid`. Nodes are numbered in C order of the grid shape (the
last axis varies fastest), the numbering of :mod:`pdecontrol.transfer.matrices`. The matrices are
in canonical CSR form: sorted column indices, no duplicates, no stored zeros.

* :func:`stencil_matrix` - one constant stencil everywhere (odd width per axis, 1D/2D/3D).
* :func:`variable_stencil_matrix` - per-node weights for a list of offsets (variable
  coefficients).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._validation import as_float_array, check_finite
from .transfer._shapes import as_grid_shape

__all__ = ["stencil_matrix", "variable_stencil_matrix"]


def stencil_matrix(stencil, shape) -> sp.csr_matrix:
    """CSR matrix of a constant stencil on a grid: ``(A u)[i] = sum_o stencil[c + o] u[i + o]``.

    Parameters
    ----------
    stencil : array_like, shape ``(w_0, ..., w_{d-1})``
        Weights, every width odd (3, 5, ...); the centre ``c = (w_k // 2)_k`` is offset 0.
    shape : int or tuple of int
        Grid shape ``(n_0, ..., n_{d-1})``, ``d = stencil.ndim`` in 1, 2, 3.

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(N, N)`` with ``N = prod(n_k)``, dtype of ``stencil``
    (float32 kept, other numbers as float64). Equal to
    ``pyamg.gallery.stencil_grid(stencil, shape, format="csr")``.

    Examples
    --------
    >>> stencil_matrix([-1.0, 2.0, -1.0], 4).toarray()
    array([[ 2., -1.,  0.,  0.],
           [-1.,  2., -1.,  0.],
           [ 0., -1.,  2., -1.],
           [ 0.,  0., -1.,  2.]])
    """
    shape = as_grid_shape(shape, "shape")
    stencil = check_finite(as_float_array(stencil, "stencil"), "stencil")
    if stencil.ndim != len(shape):
        raise ValueError(
            f"stencil must have one axis per grid axis ({len(shape)} for shape {shape}), "
            f"got shape {stencil.shape}"
        )
    if any(w % 2 == 0 for w in stencil.shape):
        raise ValueError(
            f"stencil must have an odd width on every axis (a centre node), got shape "
            f"{stencil.shape}"
        )
    positions = np.argwhere(stencil != 0)
    offsets = positions - np.array(stencil.shape) // 2
    weights = stencil[tuple(positions.T)]
    return variable_stencil_matrix(offsets, weights.reshape((-1,) + (1,) * len(shape)), shape)


def variable_stencil_matrix(offsets, weights, shape) -> sp.csr_matrix:
    """CSR matrix with per-node weights: ``(A u)[i] = sum_k weights[k][i] u[i + offsets[k]]``.

    Parameters
    ----------
    offsets : array_like of int, shape ``(K, d)``
        Distinct node offsets, one row per stencil entry.
    weights : array_like, shape ``(K, n_0, ..., n_{d-1})`` or broadcastable to it
        ``weights[k][i]``: the coefficient of ``u[i + offsets[k]]`` in row ``i``. Entries that
        connect to nodes outside the grid are dropped, as are zero weights.
    shape : int or tuple of int
        Grid shape, ``d`` = 1, 2 or 3 axes.

    Returns
    -------
    scipy.sparse.csr_matrix, shape ``(N, N)``, ``N = prod(n_k)``, canonical (sorted, no zeros).

    Examples
    --------
    >>> variable_stencil_matrix([[0], [1]], [[1.0, 2.0, 3.0], [-1.0, -1.0, -1.0]], 3).toarray()
    array([[ 1., -1.,  0.],
           [ 0.,  2., -1.],
           [ 0.,  0.,  3.]])
    """
    shape = as_grid_shape(shape, "shape")
    dim, size = len(shape), int(np.prod(shape))
    offsets = np.asarray(offsets)
    if (
        offsets.ndim != 2
        or offsets.shape[1] != dim
        or not (offsets.size == 0 or np.issubdtype(offsets.dtype, np.integer))
    ):
        raise ValueError(
            f"offsets must be an int array of shape (K, {dim}) for shape {shape}, got "
            f"{offsets.dtype} array of shape {offsets.shape}"
        )
    offsets = offsets.astype(np.int64)
    if len(np.unique(offsets, axis=0)) != len(offsets):
        raise ValueError("offsets must be distinct; add the weights of repeated offsets")
    weights = check_finite(as_float_array(weights, "weights"), "weights")
    try:
        weights = np.broadcast_to(weights, (len(offsets),) + shape)
    except ValueError:
        raise ValueError(
            f"weights must have shape (K, *shape) = {(len(offsets),) + shape} or broadcast to "
            f"it, got {weights.shape}"
        ) from None
    strides = np.array([int(np.prod(shape[axis + 1 :])) for axis in range(dim)], dtype=np.int64)
    flat_offsets = offsets @ strides
    # Sorting the entries by flat offset sorts the column indices within every row.
    order = np.argsort(flat_offsets, kind="stable")
    offsets, flat_offsets, weights = offsets[order], flat_offsets[order], weights[order]
    kept = weights != 0
    for axis, n in enumerate(shape):
        target = np.arange(n) + offsets[:, axis, None]  # (K, n): node index reached on this axis
        inside = (target >= 0) & (target < n)
        kept = kept & inside.reshape((len(offsets),) + (1,) * axis + (n,) + (1,) * (dim - axis - 1))
    kept = kept.reshape(len(offsets), size).T  # (N, K): row-major, so rows come out in order
    rows, entries = np.nonzero(kept)
    data = weights.reshape(len(offsets), size)[entries, rows]
    indptr = np.concatenate(([0], np.cumsum(np.count_nonzero(kept, axis=1))))
    return sp.csr_matrix((data, rows + flat_offsets[entries], indptr), shape=(size, size))
