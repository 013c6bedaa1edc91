"""The derivative basis of 3-point-per-axis stencils: stencils <-> differential coefficients.

Per axis, three stencils (correlation convention, ``(s * y)[i] = sum_a s[a] y[i + a - 1]``):

* order 0: ``[1, 2, 1] / 4``      (identity up to ``O(h**2)``),
* order 1: ``[-1, 0, 1] / (2 h)`` (d/dx),
* order 2: ``[1, -2, 1] / h**2``  (d2/dx2).

In ``d`` dimensions the ``3**d`` tensor products (one factor per axis) form a basis of all
``3 x ... x 3`` stencils. Each is named by its derivative multi-index ``m = (m_0, ..., m_{d-1})``
(``m_k`` = derivative order along axis ``k``; axes are called x, y, z in order, so ``(0, 1)`` is
d/dy in 2D); applied to a smooth function it approximates ``d^|m| y / dx^m`` with ``O(h**2)`` error.

Coefficient vectors ``alpha`` have shape ``(..., 3**d)``, ordered by multi-index in C order
(``alpha.reshape(..., 3, ..., 3)[m]`` is the coefficient of multi-index ``m``), so
``s = sum_m alpha[m] basis[m]``. Because ``alpha`` does not depend on ``h``, a kernel learned at
spacing ``h`` is rediscretized at ``H`` by ``s_H = B(H) B(h)^-1 s_h``. Spacings ``h`` are a
scalar or one value per axis.
"""

from __future__ import annotations

import itertools
from functools import reduce
from typing import NamedTuple

import numpy as np

from ._validation import as_float_array, check_dim, check_finite, check_positive

__all__ = [
    "DerivativeBasis",
    "derivative_basis",
    "basis_matrix",
    "transfer_condition_number",
    "stencil_to_coefficients",
    "coefficients_to_stencil",
    "rediscretize",
    "split_by_order",
    "high_order_projector",
]

_AXIS_NAMES = ("x", "y", "z")

#: Unscaled 1D basis stencils as columns; column k is divided by h**k.
_UNSCALED_1D = np.array([[1.0, 2.0, 1.0], [-1.0, 0.0, 1.0], [1.0, -2.0, 1.0]]).T / np.array(
    [4.0, 2.0, 1.0]
)


class DerivativeBasis(NamedTuple):
    """The ``3**d`` basis stencils of :func:`derivative_basis`, all in multi-index C order.

    Attributes
    ----------
    stencils : ndarray, shape ``(3**d, 3, ..., 3)``
    multi_indices : tuple of tuple of int
        Derivative order per axis of each stencil.
    names : tuple of str
        E.g. ``'identity'``, ``'d/dy'``, ``'d2/dxdy'``, ``'d4/dx2dy2'``.
    orders : ndarray of int, shape ``(3**d,)``
        Total derivative order ``sum(m)`` of each stencil.
    """

    stencils: np.ndarray
    multi_indices: tuple
    names: tuple
    orders: np.ndarray


def _multi_indices(dim: int) -> tuple:
    return tuple(itertools.product(range(3), repeat=dim))


def _name(multi_index: tuple) -> str:
    order = sum(multi_index)
    if order == 0:
        return "identity"
    names = _AXIS_NAMES[: len(multi_index)]  # dim is 1, 2 or 3
    parts = "".join(
        f"d{axis}{m if m > 1 else ''}" for axis, m in zip(names, multi_index, strict=True) if m
    )
    return f"d{order if order > 1 else ''}/{parts}"


def _orders(dim: int) -> np.ndarray:
    return np.array([sum(m) for m in _multi_indices(dim)])


def _spacing(h, dim: int, name: str) -> tuple[float, ...]:
    """``h`` as one positive spacing per axis (a scalar is used on every axis)."""
    if np.ndim(h) == 0:
        return (check_positive(h, name),) * dim
    entries = tuple(np.ravel(h).tolist()) if isinstance(h, np.ndarray) else tuple(h)
    if len(entries) != dim:
        raise ValueError(
            f"{name} must be a scalar or have dim={dim} entries (one per axis), got {h!r}"
        )
    return tuple(check_positive(entry, f"{name}[{axis}]") for axis, entry in enumerate(entries))


def _scales(h: tuple[float, ...]) -> np.ndarray:
    """Diagonal ``D(h)`` of ``B(h) = B(1) D(h)``: ``prod_k h_k**-m_k`` per multi-index."""
    return reduce(np.kron, [np.array([1.0, 1.0 / hk, 1.0 / hk**2]) for hk in h])


def basis_matrix(dim: int = 2, h=1.0) -> np.ndarray:
    """``B(h)``, shape ``(3**dim, 3**dim)``: column ``m`` is basis stencil ``m``, C-order flattened.

    ``s.reshape(-1) = B(h) @ alpha``.

    Examples
    --------
    >>> basis_matrix(1, h=0.5)
    array([[ 0.25, -1.  ,  4.  ],
           [ 0.5 ,  0.  , -8.  ],
           [ 0.25,  1.  ,  4.  ]])
    """
    dim = check_dim(dim)
    h = _spacing(h, dim, "h")
    return reduce(np.kron, [_UNSCALED_1D] * dim) * _scales(h)


def _inverse_basis_matrix(dim: int, h: tuple[float, ...]) -> np.ndarray:
    """``B(h)^-1 = D(h)^-1 B(1)^-1``, from the Kronecker power of the 1D inverse."""
    return reduce(np.kron, [np.linalg.inv(_UNSCALED_1D)] * dim) / _scales(h)[:, None]


def derivative_basis(dim: int = 2, h=1.0) -> DerivativeBasis:
    """The ``3**dim`` derivative basis stencils at spacing ``h`` (scalar or per axis).

    Examples
    --------
    >>> basis = derivative_basis(2, h=1.0)
    >>> basis.names[:4]
    ('identity', 'd/dy', 'd2/dy2', 'd/dx')
    >>> basis.stencils[basis.multi_indices.index((0, 1))]
    array([[-0.125,  0.   ,  0.125],
           [-0.25 ,  0.   ,  0.25 ],
           [-0.125,  0.   ,  0.125]])
    """
    matrix = basis_matrix(dim, h)
    dim = check_dim(dim)
    indices = _multi_indices(dim)
    return DerivativeBasis(
        stencils=matrix.T.reshape((3**dim,) + (3,) * dim),
        multi_indices=indices,
        names=tuple(_name(m) for m in indices),
        orders=_orders(dim),
    )


def transfer_condition_number(dim: int = 2, h=1.0) -> float:
    """2-norm condition number of ``B(h)``, the map from coefficients to stencil weights."""
    return float(np.linalg.cond(basis_matrix(dim, h)))


def _check_trailing(array, dim: int, name: str, trailing: tuple) -> np.ndarray:
    array = check_finite(as_float_array(array, name), name)
    if array.ndim < len(trailing) or array.shape[array.ndim - len(trailing) :] != trailing:
        expected = "(..., " + ", ".join(map(str, trailing)) + ")"
        raise ValueError(f"{name} must have shape {expected} for dim={dim}, got {array.shape}")
    return array


def _apply_matrix(
    matrix: np.ndarray, array: np.ndarray, n_trailing: int, out_trailing: tuple
) -> np.ndarray:
    """Apply ``matrix`` to the last ``n_trailing`` axes of ``array`` flattened in C order."""
    lead = array.shape[: array.ndim - n_trailing]
    out = array.reshape(lead + (-1,)) @ matrix.T.astype(array.dtype, copy=False)
    return out.reshape(lead + out_trailing)


def stencil_to_coefficients(s, h, dim: int = 2) -> np.ndarray:
    """Coefficients ``alpha = B(h)^-1 s`` of stencils in the derivative basis.

    Parameters
    ----------
    s : array_like, shape ``(..., 3, ..., 3)`` (``dim`` trailing axes of length 3)
    h : float or tuple of float
        Mesh spacing, scalar or per axis (> 0).
    dim : {1, 2, 3}, default 2

    Returns
    -------
    ndarray, shape ``(..., 3**dim)``, multi-index C order, same float dtype as ``s``.
    """
    dim = check_dim(dim)
    h = _spacing(h, dim, "h")
    s = _check_trailing(s, dim, "s", (3,) * dim)
    return _apply_matrix(_inverse_basis_matrix(dim, h), s, dim, (3**dim,))


def coefficients_to_stencil(alpha, h, dim: int = 2) -> np.ndarray:
    """Stencils ``s = B(h) alpha`` from derivative-basis coefficients.

    Parameters
    ----------
    alpha : array_like, shape ``(..., 3**dim)``, multi-index C order
    h : float or tuple of float
    dim : {1, 2, 3}, default 2

    Returns
    -------
    ndarray, shape ``(..., 3, ..., 3)``, same float dtype as ``alpha``.

    Examples
    --------
    >>> coefficients_to_stencil([0.0, 0.0, 1.0], h=0.5, dim=1)
    array([ 4., -8.,  4.])
    """
    dim = check_dim(dim)
    h = _spacing(h, dim, "h")
    alpha = _check_trailing(alpha, dim, "alpha", (3**dim,))
    return _apply_matrix(basis_matrix(dim, h), alpha, 1, (3,) * dim)


def rediscretize(s, h_from, h_to, dim: int = 2) -> np.ndarray:
    """Re-express stencils for spacing ``h_to``, keeping their derivative coefficients.

    ``s_to = B(h_to) B(h_from)^-1 s``; the raw weights of a multi-index ``m`` component scale by
    ``prod_k (h_from_k / h_to_k)**m_k``. Shapes as in :func:`stencil_to_coefficients`.

    Examples
    --------
    >>> rediscretize(np.array([1.0, -2.0, 1.0]), h_from=1.0, h_to=2.0, dim=1)
    array([ 0.25, -0.5 ,  0.25])
    """
    dim = check_dim(dim)
    h_from = _spacing(h_from, dim, "h_from")
    h_to = _spacing(h_to, dim, "h_to")
    s = _check_trailing(s, dim, "s", (3,) * dim)
    matrix = basis_matrix(dim, h_to) @ _inverse_basis_matrix(dim, h_from)
    return _apply_matrix(matrix, s, dim, (3,) * dim)


def split_by_order(alpha, dim: int = 2) -> dict[int, np.ndarray]:
    """Split coefficient vectors by total derivative order ``|m|``.

    Parameters
    ----------
    alpha : array_like, shape ``(..., 3**dim)``, multi-index C order

    Returns
    -------
    dict
        ``{order: part}`` for ``order = 0 .. 2*dim``; each ``part`` has the shape of ``alpha`` and
        holds the coefficients of that order, zeros elsewhere, so the parts sum to ``alpha``.
    """
    dim = check_dim(dim)
    alpha = _check_trailing(alpha, dim, "alpha", (3**dim,))
    orders = _orders(dim)
    return {
        order: np.where(orders == order, alpha, 0).astype(alpha.dtype)
        for order in range(2 * dim + 1)
    }


def high_order_projector(min_order: int, dim: int = 2) -> np.ndarray:
    """Matrix ``Q`` (``3**dim`` square): flattened stencil -> its part of order >= ``min_order``.

    ``Q = B diag(|m| >= min_order) B^-1`` is a projector (``Q @ Q = Q``) and does not depend on
    the spacing ``h``. A penalty ``0.5 * ||Q s||**2`` on kernels (gradient ``Q.T @ Q @ s``) limits
    the growth of prolonged kernels (:func:`pdecontrol.transfer.prolong_stencil` multiplies
    order-k weights by ``2**k``).

    Examples
    --------
    >>> q = high_order_projector(1, dim=1)
    >>> q @ np.array([1.0, 2.0, 1.0])   # the identity stencil has no order >= 1 part
    array([0., 0., 0.])
    """
    dim = check_dim(dim)
    if (
        isinstance(min_order, bool)
        or not isinstance(min_order, (int, np.integer))
        or not (0 <= min_order <= 2 * dim)
    ):
        raise ValueError(
            f"min_order must be an int in [0, {2 * dim}] for dim={dim}, got {min_order!r}"
        )
    unit = (1.0,) * dim
    mask = (_orders(dim) >= min_order).astype(float)
    return basis_matrix(dim, unit) @ (mask[:, None] * _inverse_basis_matrix(dim, unit))
