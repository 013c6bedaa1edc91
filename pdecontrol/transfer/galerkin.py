"""Galerkin restriction and prolongation of spatially constant 3-point-per-axis stencils.

Convention: stencils act by **correlation**; in 2D
``(K y)[i, j] = sum_ab s[a, b] y[i + a - 1, j + b - 1]`` (zero outside the domain), and likewise
in 1D (``s`` of shape ``(3,)``) and 3D (``(3, 3, 3)``). With ``P`` and ``R = 2**-d P.T`` of either
centring (:mod:`pdecontrol.transfer.matrices`), the coarse operator ``R K_h(s) P`` is again a
3-per-axis stencil, whose weights are a fixed linear map ``G`` (``3**d x 3**d``, the Kronecker
power of a 3x3 map ``M``) of the fine weights, so kernels are moved between meshes without
forming any operator. Leading axes of ``s`` (layers, output channels, input channels, ...) are
batched.

* ``centring="node"`` (d-linear ``P``, full weighting ``R``): ``M = [[1/2, 1/8, 0],
  [1/2, 3/4, 1/2], [0, 1/8, 1/2]]`` (rows: coarse offsets -1, 0, 1; columns: fine offsets).
  ``R K_h(s) P`` is the stencil at every coarse node whose indices are all >= 1; rows on a face
  with index 0 differ (fine node -1 lies outside the domain, so its share is lost).
* ``centring="cell"`` (injection ``P``, cell averaging ``R``): ``M = [[1/2, 0, 0],
  [1/2, 1, 1/2], [0, 0, 1/2]]``. ``R K_h(s) P`` is the stencil at **every** coarse cell, boundary
  cells included: the fine cells outside the domain that the stencil would reach form the coarse
  cells outside it, so both sides drop the same terms.
"""

from __future__ import annotations

from functools import cache, reduce

import numpy as np

from .._validation import as_float_array, check_dim, check_finite
from ._shapes import check_centring
from .matrices import PROLONGATION_WEIGHTS

__all__ = [
    "galerkin_restriction_matrix",
    "restrict_stencil",
    "restrict_stencil_transpose",
    "prolong_stencil",
]


def _galerkin_restriction_matrix_1d(centring: str) -> np.ndarray:
    """3x3 map from fine to coarse weights in 1D: ``M[B+1, A+1]`` for offsets ``A, B in {-1,0,1}``.

    Coarse weight at offset ``B`` is row ``J`` of ``R K P`` at column ``J + B``:
    ``sum_m r[m] s[A] p(m + A - 2B)``, with ``r = p / 2`` the restriction weights at fine offsets
    ``m`` from ``2J`` and ``p(q)`` the prolongation weight at fine offset ``q`` from a coarse
    point.
    """
    p = PROLONGATION_WEIGHTS[centring]
    r = {m: w / 2 for m, w in p.items()}
    matrix = np.zeros((3, 3))
    for B in (-1, 0, 1):
        for A in (-1, 0, 1):
            matrix[B + 1, A + 1] = sum(rm * p.get(m + A - 2 * B, 0.0) for m, rm in r.items())
    return matrix


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@cache
def _galerkin_maps(dim: int, centring: str) -> tuple[np.ndarray, np.ndarray]:
    """``(G, G^-1)`` for ``dim`` and ``centring``, as Kronecker powers of the 1D map and of its
    inverse (cached)."""
    one_d = _galerkin_restriction_matrix_1d(centring)
    forward = reduce(np.kron, [one_d] * dim)
    inverse = reduce(np.kron, [np.linalg.inv(one_d)] * dim)
    return _read_only(forward), _read_only(inverse)


def galerkin_restriction_matrix(dim: int = 2, centring: str = "node") -> np.ndarray:
    """The ``3**dim x 3**dim`` map ``G`` with ``flat(restrict_stencil(s)) = G @ flat(s)``.

    Stencils are flattened in C order (``s.reshape(-1)``). ``G`` is the Kronecker power of the
    1D map of ``centring`` and does not depend on the mesh size. The returned array is
    read-only (cached).

    Examples
    --------
    >>> galerkin_restriction_matrix(1)
    array([[0.5  , 0.125, 0.   ],
           [0.5  , 0.75 , 0.5  ],
           [0.   , 0.125, 0.5  ]])
    >>> galerkin_restriction_matrix(1, centring="cell")
    array([[0.5, 0. , 0. ],
           [0.5, 1. , 0.5],
           [0. , 0. , 0.5]])
    """
    return _galerkin_maps(check_dim(dim), check_centring(centring))[0]


def _stencil_array(s, dim: int, name: str) -> np.ndarray:
    s = check_finite(as_float_array(s, name), name)
    if s.ndim < dim or s.shape[s.ndim - dim :] != (3,) * dim:
        raise ValueError(
            f"{name} must have shape (..., {', '.join(['3'] * dim)}) for dim={dim} "
            f"(a 3-point-per-axis stencil, leading axes batched), got {s.shape}"
        )
    return s


def _apply(matrix: np.ndarray, s: np.ndarray, dim: int) -> np.ndarray:
    """Apply a ``3**dim``-square matrix to the flattened trailing stencil axes of ``s``."""
    flat = s.reshape(s.shape[: s.ndim - dim] + (3**dim,))
    out = flat @ matrix.T.astype(s.dtype, copy=False)
    return out.reshape(s.shape)


def restrict_stencil(s, dim: int = 2, centring: str = "node") -> np.ndarray:
    """Galerkin restriction ``R K_h(s) P`` of spatially constant stencils, read off without ``K_h``.

    Parameters
    ----------
    s : array_like, shape ``(..., 3)``, ``(..., 3, 3)`` or ``(..., 3, 3, 3)``
        Fine-mesh stencils (correlation convention), leading axes batched.
    dim : {1, 2, 3}, default 2
    centring : {"node", "cell"}, default "node"
        The family of ``R`` and ``P``.

    Returns
    -------
    ndarray, same shape and float dtype as ``s``
        Coarse-mesh stencils: ``K_H(t) = R K_h(s) P`` at coarse nodes with all indices >= 1
        (nodal), at every coarse cell (cell-centred).

    Notes
    -----
    Nodal: stencils scaled as derivatives keep their meaning: ``[-1, 0, 1] / (2h)`` restricts to
    ``[-1, 0, 1] / (2H)`` and ``[1, -2, 1] / h**2`` to ``[1, -2, 1] / H**2`` (``H = 2h``); the
    identity picks up a smoothing term, ``[0, 1, 0] -> [1/8, 3/4, 1/8]`` (the stencil of ``R P``).

    Cell-centred: ``M`` keeps the weight sum and halves every zero-sum part, so the identity is
    kept (``R P = I``) and ``[-1, 0, 1] / (2h)`` restricts to ``[-1, 0, 1] / (2H)``, but
    ``[1, -2, 1] / h**2`` restricts to ``2 [1, -2, 1] / H**2``: twice the rediscretized second
    derivative (the known factor of piecewise-constant coarsening).

    Examples
    --------
    >>> restrict_stencil(np.array([0.0, 1.0, 0.0]), dim=1)
    array([0.125, 0.75 , 0.125])
    >>> restrict_stencil(np.array([-1.0, 0.0, 1.0]), dim=1)
    array([-0.5,  0. ,  0.5])
    >>> restrict_stencil(np.array([1.0, -2.0, 1.0]), dim=1, centring="cell")
    array([ 0.5, -1. ,  0.5])
    """
    dim = check_dim(dim)
    s = _stencil_array(s, dim, "s")
    return _apply(_galerkin_maps(dim, check_centring(centring))[0], s, dim)


def restrict_stencil_transpose(t, dim: int = 2, centring: str = "node") -> np.ndarray:
    """Adjoint of :func:`restrict_stencil`: ``flat(out) = G.T @ flat(t)``, batched like it.

    Use it to pull a derivative with respect to coarse stencils back to the fine stencils
    (a network trained through its Galerkin-restricted kernels).
    """
    dim = check_dim(dim)
    t = _stencil_array(t, dim, "t")
    return _apply(_galerkin_maps(dim, check_centring(centring))[0].T, t, dim)


def prolong_stencil(s, dim: int = 2, centring: str = "node") -> np.ndarray:
    """The unique fine stencil whose Galerkin restriction is ``s`` (inverts ``restrict_stencil``).

    Parameters
    ----------
    s : array_like, shape ``(..., 3)``, ``(..., 3, 3)`` or ``(..., 3, 3, 3)``
        Coarse-mesh stencils (correlation convention), leading axes batched.
    dim : {1, 2, 3}, default 2
    centring : {"node", "cell"}, default "node"

    Returns
    -------
    ndarray, same shape and float dtype as ``s``
        ``restrict_stencil(prolong_stencil(s)) == s`` up to rounding.

    Notes
    -----
    ``G`` is invertible (1D determinant 1/8 nodal, 1/4 cell-centred); its inverse is computed
    once per ``dim`` and centring and cached. Nodal prolongation **amplifies** the raw weights
    of a k-th derivative component by ``2**k``: ``G**-1`` has eigenvalues ``2**|m|`` with
    eigenvectors the tensor products of ``[1, 4, 1]/6`` (order 0), ``[-1, 0, 1]`` (order 1) and
    ``[1, -2, 1]`` (order 2), e.g. ``[1, -2, 1] -> 4 [1, -2, 1]``. (The derivative coefficients
    in units of ``h`` are what stays fixed: ``[1, -2, 1]/H**2`` becomes ``[1, -2, 1]/h**2``.)
    Kernels with large high-order parts therefore grow when prolonged; penalise that part during
    coarse training (:func:`pdecontrol.stencils.high_order_projector`). Cell-centred
    prolongation doubles the zero-sum part of the stencil per axis (1D inverse
    ``[[2, 0, 0], [-1, 1, -1], [0, 0, 2]]``): eigenvalue 1 for ``[0, 1, 0]``, 2 for every
    zero-sum stencil; tensor products ``2**k`` with ``k`` the number of zero-sum factors, so
    kernels grow by at most ``2**d`` (``4**d`` nodal).

    Examples
    --------
    >>> prolong_stencil(np.array([1.0, -2.0, 1.0]), dim=1)
    array([ 4., -8.,  4.])
    >>> prolong_stencil(np.array([1.0, -2.0, 1.0]), dim=1, centring="cell")
    array([ 2., -4.,  2.])
    """
    dim = check_dim(dim)
    s = _stencil_array(s, dim, "s")
    return _apply(_galerkin_maps(dim, check_centring(centring))[1], s, dim)
