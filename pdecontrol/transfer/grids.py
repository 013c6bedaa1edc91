"""Matrix-free, batched grid transfers (restrict, prolong, image restriction, and the
transfers of parameter fields) of both centrings.

Arrays have shape ``(..., *spatial)``: the last ``dim`` axes are spatial, all leading axes
(typically ``(batch, channels)``) are batched. float32 and float64 are preserved; other numeric
input is converted to float64. The operators are the tensor-product ``P`` and ``R`` of
:mod:`pdecontrol.transfer.matrices` (``centring="node"``: d-linear interpolation and full
weighting; ``centring="cell"``: piecewise-constant injection and cell averaging), applied one
axis at a time with array slicing; they agree with those sparse matrices up to rounding.

Two boundary conventions for nodal grids, one kernel per axis (the cell-centred kernels read no
value outside the grid, so there the two coincide):

* ``restrict`` / ``prolong``: grid functions are **zero outside** the grid (the virtual nodes
  ``-1`` and ``n`` are 0), the convention of the whole package (states, images, classifier
  weights).
* ``restrict_field`` / ``prolong_field``: parameter fields (coefficients such as ``m`` in
  ``-div(exp(m) grad u)``) are **extended by constants** (``x[-1] = x[0]``, ``x[n] = x[n-1]``),
  so constants are transferred exactly, boundary nodes included. Unlike the pair above,
  ``restrict_field`` is not ``2**-dim`` times the transpose of ``prolong_field`` (the ends
  differ).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._validation import as_float_array, check_dim, check_finite, check_positive
from ._shapes import check_centring, check_coarsenable, spatial_shape

__all__ = ["restrict", "prolong", "restrict_image", "restrict_field", "prolong_field"]


def _grid_array(x, dim: int, name: str = "x") -> np.ndarray:
    """Validate a batched grid array: numeric, float32/float64, finite, at least ``dim`` axes."""
    x = as_float_array(x, name)
    spatial_shape(x, dim, name)
    # min/max propagate NaN and see inf without allocating a mask; check_finite counts them.
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        check_finite(x, name)
    return x


def _along(ndim: int, axis: int, index) -> tuple:
    """Index tuple selecting ``index`` on ``axis`` and everything on the other axes."""
    return (slice(None),) * axis + (index,) + (slice(None),) * (ndim - axis - 1)


def _restrict_axis(v: np.ndarray, axis: int, extend: bool) -> np.ndarray:
    """1D full weighting along ``axis``: ``(v[2j-1] + 2 v[2j] + v[2j+1]) / 4``, ``v[-1] = 0``
    (``v[-1] = v[0]`` if ``extend``)."""
    even = v[_along(v.ndim, axis, slice(0, None, 2))]
    odd = v[_along(v.ndim, axis, slice(1, None, 2))]
    out = np.add(even, even)
    out += odd
    out[_along(v.ndim, axis, slice(1, None))] += odd[_along(v.ndim, axis, slice(None, -1))]
    if extend:
        out[_along(v.ndim, axis, 0)] += even[_along(v.ndim, axis, 0)]
    out *= 0.25
    return out


def _prolong_axis(u: np.ndarray, axis: int, extend: bool) -> np.ndarray:
    """1D linear interpolation along ``axis``: even nodes copy, odd nodes average, ``u[n] = 0``
    (``u[n] = u[n-1]`` if ``extend``)."""
    shape = list(u.shape)
    shape[axis] *= 2
    out = np.empty(shape, dtype=u.dtype)
    out[_along(u.ndim, axis, slice(0, None, 2))] = u
    odd = out[_along(u.ndim, axis, slice(1, None, 2))]
    np.add(
        u[_along(u.ndim, axis, slice(None, -1))],
        u[_along(u.ndim, axis, slice(1, None))],
        out=odd[_along(u.ndim, axis, slice(None, -1))],
    )
    last = u[_along(u.ndim, axis, -1)]
    odd[_along(u.ndim, axis, -1)] = last + last if extend else last
    odd *= 0.5
    return out


def _average_axis(v: np.ndarray, axis: int, extend: bool) -> np.ndarray:
    """1D cell averaging along ``axis``: ``(v[2J] + v[2J+1]) / 2`` (``extend`` changes nothing)."""
    out = v[_along(v.ndim, axis, slice(0, None, 2))] + v[_along(v.ndim, axis, slice(1, None, 2))]
    out *= 0.5
    return out


def _inject_axis(u: np.ndarray, axis: int, extend: bool) -> np.ndarray:
    """1D piecewise-constant injection along ``axis``: fine cells ``2J, 2J+1`` copy ``u[J]``
    (``extend`` changes nothing)."""
    return np.repeat(u, 2, axis=axis)


#: Per centring, the 1D kernels ``(restrict_axis, prolong_axis)``.
_AXIS_KERNELS = {"node": (_restrict_axis, _prolong_axis), "cell": (_average_axis, _inject_axis)}


def _restrict(x, dim, extend: bool, centring: str) -> np.ndarray:
    """Validate, then restrict every spatial axis (``extend``: constant ends)."""
    dim = check_dim(dim)
    restrict_axis = _AXIS_KERNELS[check_centring(centring)][0]
    x = _grid_array(x, dim)
    check_coarsenable(spatial_shape(x, dim, "x"), "x")
    for axis in range(x.ndim - dim, x.ndim):
        x = restrict_axis(x, axis, extend)
    return x


def _prolong(x, dim, extend: bool, centring: str) -> np.ndarray:
    """Validate, then prolong every spatial axis (``extend``: constant ends)."""
    dim = check_dim(dim)
    prolong_axis = _AXIS_KERNELS[check_centring(centring)][1]
    x = _grid_array(x, dim)
    for axis in range(x.ndim - dim, x.ndim):
        x = prolong_axis(x, axis, extend)
    return x


def restrict(x, dim: int, centring: str = "node") -> np.ndarray:
    """Restriction ``R`` of a batch of grid functions to the mesh half as fine.

    Parameters
    ----------
    x : array_like, shape ``(..., n_0, ..., n_{dim-1})``
        Grid functions; every spatial ``n_k`` even and >= 2.
    dim : {1, 2, 3}
        Number of trailing spatial axes.
    centring : {"node", "cell"}, default "node"
        Full weighting of nodal values, or the mean of the ``2**dim`` fine cells of each coarse
        cell.

    Returns
    -------
    ndarray, shape ``(..., n_0 / 2, ..., n_{dim-1} / 2)``, same float dtype as ``x``.

    Notes
    -----
    ``restrict = 2**-dim * prolong.T`` exactly (see :func:`prolong`, same ``centring``), so no
    separate transposes are needed: the adjoint of ``restrict`` is ``2**-dim * prolong`` and
    vice versa.

    The same ``R`` moves the weights of an integral classifier ``z = h**d * sum(W * y)`` to the
    coarse mesh: with ``W_H = R W_h``, ``H**d sum(W_H * y_H) = h**d sum(W_h * (P y_H))`` for every
    coarse ``y_H`` (because ``P = 2**d R.T`` and ``H = 2h``), so the coarse classifier applied to a
    coarse state equals the fine classifier applied to its interpolation.

    Examples
    --------
    >>> restrict(np.array([4.0, 8.0, 4.0, 0.0]), dim=1)
    array([4., 4.])
    >>> restrict(np.array([4.0, 8.0, 4.0, 0.0]), dim=1, centring="cell")
    array([6., 2.])
    """
    return _restrict(x, dim, extend=False, centring=centring)


def prolong(x, dim: int, centring: str = "node") -> np.ndarray:
    """Prolongation ``P`` of a batch of grid functions to the mesh twice as fine.

    Parameters
    ----------
    x : array_like, shape ``(..., n_0, ..., n_{dim-1})``
        Coarse grid functions (zero outside the domain).
    dim : {1, 2, 3}
        Number of trailing spatial axes.
    centring : {"node", "cell"}, default "node"
        d-linear interpolation of nodal values, or each coarse cell's value copied to its
        ``2**dim`` fine cells.

    Returns
    -------
    ndarray, shape ``(..., 2 n_0, ..., 2 n_{dim-1})``, same float dtype as ``x``.

    Notes
    -----
    ``prolong = 2**dim * restrict.T``. Nodal: injection undoes it,
    ``prolong(u)[..., ::2, ::2] == u``. Cell-centred: ``restrict`` undoes it exactly
    (``R P = I``).

    Examples
    --------
    >>> prolong(np.array([2.0, 4.0]), dim=1)
    array([2., 3., 4., 2.])
    >>> prolong(np.array([2.0, 4.0]), dim=1, centring="cell")
    array([2., 2., 4., 4.])
    """
    return _prolong(x, dim, extend=False, centring=centring)


def restrict_image(
    x, dim: int, levels: int = 1, smoothing_sigma=None, centring: str = "node"
) -> np.ndarray:
    """Restrict images ``levels`` times, optionally smoothing each time with a Gaussian first.

    Parameters
    ----------
    x : array_like, shape ``(..., n_0, ..., n_{dim-1})``
        Images on the fine mesh; each spatial size must be divisible by ``2**levels``.
    dim : {1, 2, 3}
        Number of trailing spatial axes.
    levels : int, default 1
        Number of coarsening steps.
    smoothing_sigma : float or None, default None
        Standard deviation of the Gaussian pre-smoothing, in pixels of the mesh being restricted
        (so the physical width doubles from one level to the next), applied on the spatial axes
        only with zero ('constant') boundary values as in the paper; ``None`` skips smoothing.
    centring : {"node", "cell"}, default "node"
        The restriction of :func:`restrict`.

    Returns
    -------
    ndarray, shape ``(..., n_0 / 2**levels, ...)``, same float dtype as ``x``.
    """
    dim = check_dim(dim)
    centring = check_centring(centring)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    sigma = None if smoothing_sigma is None else check_positive(smoothing_sigma, "smoothing_sigma")
    x = _grid_array(x, dim)
    shape = spatial_shape(x, dim, "x")
    factor = 2 ** int(levels)
    if any(n % factor for n in shape):
        raise ValueError(
            f"x has spatial shape {shape}, which cannot be coarsened levels={levels} times: every "
            f"spatial size must be divisible by 2**levels = {factor}; pad or crop, or use fewer "
            "levels"
        )
    sigmas = (0.0,) * (x.ndim - dim) + (sigma or 0.0,) * dim
    for _ in range(int(levels)):
        if sigma is not None:
            x = ndimage.gaussian_filter(x, sigmas, mode="constant", cval=0.0)
        x = restrict(x, dim, centring)
    return x


def restrict_field(x, dim: int, centring: str = "node") -> np.ndarray:
    """Restriction of a batch of parameter fields extended by constants (``x[-1] = x[0]``).

    Parameters and shapes as in :func:`restrict`. Nodal, 1D:
    ``(R_f x)[j] = (x[2j-1] + 2 x[2j] + x[2j+1]) / 4`` with ``x[-1] = x[0]``; tensor product in
    2D/3D. Constants restrict to the same constant everywhere, boundary nodes included; linear
    functions are reproduced at every coarse node but the first on each axis. Cell-centred: the
    same as :func:`restrict` (cell averaging reads no value outside the grid and keeps constants).

    Examples
    --------
    >>> restrict_field(np.array([4.0, 8.0, 4.0, 0.0]), dim=1)
    array([5., 4.])
    """
    return _restrict(x, dim, extend=True, centring=centring)


def prolong_field(x, dim: int, centring: str = "node") -> np.ndarray:
    """Prolongation of a batch of parameter fields extended by constants (``x[n] = x[n-1]``).

    Parameters and shapes as in :func:`prolong`. Nodal, 1D: ``(P_f x)[2j] = x[j]``,
    ``(P_f x)[2j+1] = (x[j] + x[j+1]) / 2`` with ``x[n] = x[n-1]``, so the last fine node copies
    the last coarse node; tensor product in 2D/3D. Constants are kept exactly; linear functions
    are reproduced at every fine node but the last on each axis. Injection undoes it.
    Cell-centred: the same as :func:`prolong` (piecewise constant, constants kept).

    Examples
    --------
    >>> prolong_field(np.array([2.0, 4.0]), dim=1)
    array([2., 3., 4., 4.])
    """
    return _prolong(x, dim, extend=True, centring=centring)
