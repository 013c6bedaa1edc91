"""Least-squares fit of a convolution's kernels to given outputs (ridge regression on stencils).

For images ``x`` (N, C_in, *spatial), targets ``t`` (N, C_out, *spatial), a bias ``b`` and a
reference kernel ``K_ref``, :func:`conv_least_squares` returns

    K* = argmin_K  1/M sum_{n, o, i} (conv(x, K)[n, o, i] + b[o] - t[n, o, i])^2
                   + ridge * ||K - K_ref||^2,         M = N * prod(spatial),

from the normal equations ``(G + ridge I) k_o = B_o + ridge k_ref_o`` of every output channel
``o`` (``k_o`` the ``C_in 3^d`` weights of its stencils). The Gram matrix ``G = 1/M sum_{n, i}
u u^T`` of the stencil neighbourhoods ``u = x[n, :, i + a - 1]`` is assembled with the package's
own operators, so the boundary convention (zero outside the grid) is exactly :func:`conv`'s:
``T = conv(x, E)`` with ``E`` the ``C_in 3^d`` unit stencils (every tap of every channel as one
output channel) and ``G = conv_kernel_gradient(x, T) / M``; ``B = conv_kernel_gradient(x, t - b)
/ M``. Everything runs in float64 (sums of the kernel gradient in float64 as always).
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.linalg

from .conv import STENCIL_WIDTH, check_batch, check_bias, check_kernel, conv, conv_kernel_gradient

__all__ = ["conv_least_squares"]

#: Bytes of tap images ``T`` per batch of :func:`conv_least_squares` (default ``batch_size``).
TAP_BYTES_PER_BATCH = 2**25


def conv_least_squares(x, target, *, bias=None, reference=None, ridge: float = 0.0,
                       batch_size: int | None = None) -> np.ndarray:
    """Kernels ``K`` (C_out, C_in, 3, ..., 3), float64, whose convolution of ``x`` best matches
    ``target`` in the mean square, with an optional ridge towards ``reference`` (module doc).

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *spatial), 1 to 3 spatial axes
    target : ndarray, shape (N, C_out, *spatial)
    bias : ndarray, shape (C_out,), optional
        Added to the convolution (not fitted); default zero.
    reference : ndarray, shape (C_out, C_in, 3, ..., 3), optional
        What the ridge pulls towards; default zero.
    ridge : float >= 0
        Weight of ``||K - reference||^2`` against the mean square misfit per point. With 0 the
        images must determine every stencil weight.
    batch_size : int, optional
        Images per batch of the assembly (default: tap images of at most 32 MiB); the result
        does not depend on it beyond rounding.
    """
    x = check_batch(x, "x").astype(np.float64, copy=False)
    target = check_batch(target, "target").astype(np.float64, copy=False)
    if target.shape[0] != x.shape[0] or target.shape[2:] != x.shape[2:]:
        raise ValueError(f"target must have shape (N, C_out) + spatial of x = ({x.shape[0]}, "
                         f"C_out, {', '.join(map(str, x.shape[2:]))}), got {target.shape}")
    n_images, in_channels, dim = x.shape[0], x.shape[1], x.ndim - 2
    out_channels = target.shape[1]
    kernel_shape = (out_channels, in_channels) + (STENCIL_WIDTH,) * dim
    if bias is not None:
        target = target - check_bias(np.asarray(bias, np.float64), out_channels, np.float64,
                                     "bias").reshape((1, out_channels) + (1,) * dim)
    if reference is None:
        reference = np.zeros(kernel_shape)
    reference = check_kernel(np.asarray(reference, np.float64), dim, np.float64, "reference",
                             in_channels=in_channels, out_channels=out_channels)
    if (not isinstance(ridge, numbers.Real) or isinstance(ridge, bool) or not np.isfinite(ridge)
            or ridge < 0):
        raise ValueError(f"ridge must be a finite number >= 0, got {ridge!r}")
    n_taps = in_channels * STENCIL_WIDTH**dim
    if batch_size is None:
        per_image = n_taps * int(np.prod(x.shape[2:])) * 8
        batch_size = max(1, TAP_BYTES_PER_BATCH // per_image)
    elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    unit_stencils = np.eye(n_taps).reshape((n_taps, in_channels) + (STENCIL_WIDTH,) * dim)
    gram = np.zeros((n_taps, n_taps))
    for start in range(0, n_images, batch_size):
        batch = x[start:start + batch_size]
        gram += conv_kernel_gradient(batch, conv(batch, unit_stencils)).reshape(n_taps, n_taps)
    points = n_images * int(np.prod(x.shape[2:]))
    gram = (gram + gram.T) / (2 * points)
    rhs = conv_kernel_gradient(x, target).reshape(out_channels, n_taps) / points
    rhs += ridge * reference.reshape(out_channels, n_taps)
    try:
        weights = scipy.linalg.solve(gram + ridge * np.eye(n_taps), rhs.T, assume_a="pos")
    except np.linalg.LinAlgError:
        raise ValueError("the images do not determine every stencil weight (singular normal "
                         "equations): give ridge > 0 or more varied images") from None
    return np.ascontiguousarray(weights.T).reshape(kernel_shape)
