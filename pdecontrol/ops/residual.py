"""Fused residual step ``y + dt * sigma(K y + b)`` with its tangent and adjoint.

One step of the forward-Euler ResNet (``dim`` = 1, 2 or 3 spatial axes, convolution as in
:mod:`.conv`)::

    a        = K y + b                     (correlation, zero "same" padding)
    out      = y + dt * sigma(a)           (skip=True; skip=False gives dt * sigma(a), the rhs)
    d_out    = dy + dt * sigma'(a) * (K dy + dK y + db)                       (tangent)
    y_bar    = out_bar + dt * K^T (sigma'(a) * out_bar)                       (adjoint, state)
    K_bar    = dt * conv_kernel_gradient(y, sigma'(a) * out_bar)             (adjoint, kernel)
    b_bar    = dt * sum_{n, space} sigma'(a) * out_bar                        (adjoint, bias)

:func:`residual_linearize` runs the forward step once and keeps ``sigma'(a)`` in a
:class:`ResidualLinearization`; every :func:`residual_tangent` / :func:`residual_adjoint` call
reuses it (Gauss-Newton-CG makes ~10 such sweeps per forward pass), so ``a`` and ``sigma`` are
never recomputed. With ``skip=False`` and ``dt=1`` the same functions are the right-hand side
``f(y) = sigma(K y + b)`` of the ODE and its tangent/adjoint, for integrators other than Euler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .._validation import check_positive
from ._geometry import stencil_geometry
from ._gradient_kernels import adjoint_driver
from ._kernels import Epilogue
from .activations import Activation, get_activation
from .conv import (
    blocked_kernel,
    check_batch,
    check_bias,
    check_kernel,
    check_same_shape,
    gradient_chunks,
    gradient_partials,
    gradient_totals,
    multiply_adds,
    run_conv,
    transposed_kernel,
)

__all__ = [
    "ResidualLinearization",
    "residual_step",
    "residual_linearize",
    "residual_tangent",
    "residual_adjoint",
]


@dataclass(frozen=True, eq=False)
class ResidualLinearization:
    """Everything a tangent or adjoint sweep needs from one forward step (read-only).

    ``y`` and ``K`` are held by reference, not copied: do not modify them in place while the
    linearization is in use.

    Attributes
    ----------
    y : ndarray, shape (N, C, *spatial)
        Input state of the step.
    K : ndarray, shape (C, C, 3, ..., 3)
    dt : float
    skip : bool
        Whether the step adds ``y`` (residual step) or is the bare rhs ``dt * sigma(K y + b)``.
    activation : Activation
    derivative : ndarray, shape (N, C, *spatial)
        ``sigma'(K y + b)``.
    """

    y: np.ndarray
    K: np.ndarray
    dt: float
    skip: bool
    activation: Activation
    derivative: np.ndarray


def _check_step(y, K, b, dt, activation):
    y = check_batch(y, "y")
    channels = y.shape[1]
    K = check_kernel(K, y.ndim - 2, y.dtype, "K", in_channels=channels, out_channels=channels)
    b = None if b is None else check_bias(b, channels, y.dtype)
    return y, K, b, check_positive(dt, "dt"), get_activation(activation)


def _forward(y, K, b, dt, activation, skip, store_derivative):
    y, K, b, dt, activation = _check_step(y, K, b, dt, activation)
    derivative = np.empty_like(y) if store_derivative else None
    out = run_conv(
        y,
        K,
        K.shape[0],
        bias=b,
        mode=Epilogue.ACTIVATE,
        kind=activation.kind,
        dt=dt,
        base=y if skip else None,
        derivative=derivative,
        store_derivative=store_derivative,
    )
    return out, (
        ResidualLinearization(y, K, dt, bool(skip), activation, derivative)
        if store_derivative
        else None
    )


def residual_step(
    y, K, b=None, dt: float = 1.0, activation="tanh", skip: bool = True
) -> np.ndarray:
    """One step ``y + dt * sigma(K y + b)`` (``dt * sigma(K y + b)`` if not ``skip``).

    Parameters
    ----------
    y : ndarray, shape (N, C, *spatial), float32 or float64
    K : ndarray, shape (C, C, 3, ..., 3), dtype of ``y``
    b : ndarray, shape (C,), optional
    dt : float > 0
    activation : {"tanh", "relu", "smooth_relu"} or Activation
    skip : bool

    Returns
    -------
    out : ndarray, shape and dtype of ``y``
    """
    return _forward(y, K, b, dt, activation, skip, store_derivative=False)[0]


def residual_linearize(y, K, b=None, dt: float = 1.0, activation="tanh", skip: bool = True):
    """As :func:`residual_step`, also returning the :class:`ResidualLinearization` at ``y``.

    Returns
    -------
    out : ndarray, shape and dtype of ``y``
    linearization : ResidualLinearization
    """
    return _forward(y, K, b, dt, activation, skip, store_derivative=True)


def _check_linearization(linearization):
    if not isinstance(linearization, ResidualLinearization):
        raise TypeError(
            "linearization must be the ResidualLinearization returned by residual_linearize, "
            f"got {type(linearization).__name__}"
        )
    return linearization


def residual_tangent(linearization, dy=None, dK=None, db=None) -> np.ndarray:
    """Directional derivative of the step: ``[dy +] dt * sigma'(a) * (K dy + dK y + db)``.

    Parameters
    ----------
    linearization : ResidualLinearization
    dy : ndarray, shape of ``y``, optional (zero when omitted)
    dK : ndarray, shape of ``K``, optional (zero when omitted)
    db : ndarray, shape (C,), optional (zero when omitted)

    Returns
    -------
    d_out : ndarray, shape and dtype of ``y``
    """
    lin = _check_linearization(linearization)
    y, K = lin.y, lin.K
    channels = y.shape[1]
    if dy is not None:
        dy = check_same_shape(dy, y, "dy", "y")
    if dK is not None:
        dK = check_same_shape(dK, K, "dK", "K")
    if db is not None:
        db = check_bias(db, channels, y.dtype, "db")
    # An omitted dy contributes nothing: run the state part with zero input channels.
    x1, kernel1 = (dy, K) if dy is not None else (y[:, :0], K[:, :0])
    x2, kernel2 = (y, dK) if dK is not None else (None, None)
    return run_conv(
        x1,
        kernel1,
        channels,
        x2=x2,
        kernel2=kernel2,
        bias=db,
        mode=Epilogue.SCALE_BY_DERIVATIVE,
        dt=lin.dt,
        base=dy if (lin.skip and dy is not None) else None,
        derivative=lin.derivative,
    )


def residual_adjoint(linearization, out_bar) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transpose of :func:`residual_tangent` applied to ``out_bar``.

    Parameters
    ----------
    linearization : ResidualLinearization
    out_bar : ndarray, shape of ``y``
        Adjoint (gradient) of the step's output.

    Returns
    -------
    y_bar : ndarray, shape of ``y``
        ``[out_bar +] dt * K^T (sigma'(a) * out_bar)``.
    K_bar : ndarray, shape of ``K``
        ``dt * conv_kernel_gradient(y, sigma'(a) * out_bar)``.
    b_bar : ndarray, shape (C,)
        ``dt * sum over batch and space of sigma'(a) * out_bar``.
    """
    lin = _check_linearization(linearization)
    return _fused_adjoint(lin, check_same_shape(out_bar, lin.y, "out_bar", "y"))


def _fused_adjoint(lin: ResidualLinearization, out_bar: np.ndarray):
    """:func:`residual_adjoint` on a validated ``out_bar``: one :func:`adjoint_driver` pass
    (transpose and kernel gradient image by image; ``z = sigma'(a) * out_bar`` is formed on
    the fly, never stored)."""
    y = lin.y
    n_images, channels, spatial = y.shape[0], y.shape[1], y.shape[2:]
    geometry = stencil_geometry(spatial)
    chunks = gradient_chunks(n_images)
    kernel_partial, bias_partial = gradient_partials(chunks, channels, channels, geometry)
    y_bar = np.empty_like(y)
    flat = (n_images, channels, geometry.size)
    work = 2 * multiply_adds(n_images, channels, channels, geometry)
    driver = adjoint_driver.choose(work, chunks)
    with numba.parallel_chunksize(1):  # chunks handed out dynamically
        driver(
            y.reshape(flat),
            out_bar.reshape(flat),
            lin.derivative.reshape(flat),
            blocked_kernel(transposed_kernel(lin.K)),
            geometry.masks_by_dtype[y.dtype],
            geometry.pad,
            geometry.shift,
            geometry.tap_mask,
            y.dtype.type(lin.dt),
            lin.skip,
            chunks,
            y_bar.reshape(flat),
            kernel_partial,
            bias_partial,
        )
    K_bar, b_bar = gradient_totals(
        kernel_partial, bias_partial, channels, channels, len(spatial), y.dtype
    )
    scale = y.dtype.type(lin.dt)
    return y_bar, scale * K_bar, scale * b_bar
