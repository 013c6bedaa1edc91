"""Batched multi-channel 3-wide convolutions in 1D, 2D and 3D, their adjoints and bias terms.

Convention: CORRELATION with zero "same" padding (no kernel flip), e.g. in 2D::

    y[n, o, i, j] = sum_{c, a, b} K[o, c, a, b] * x[n, c, i + a - 1, j + b - 1]

with ``x`` zero outside the grid; ``x`` has shape ``(N, C_in, *spatial)``, ``K`` has shape
``(C_out, C_in, 3, ..., 3)`` (one 3 per spatial axis), ``y`` has shape ``(N, C_out, *spatial)``.
Grid functions are point values (node- or cell-centred alike: the stencil acts on indices).
Only 3-wide stencils are supported.

All arrays of one call must share one dtype, float32 or float64; the result has that dtype
(no upcast). Non-float numeric input is converted to float64. Shapes, dimensions, channel counts
and dtypes are checked; NaN/inf are NOT checked (hot path) and propagate.
"""

from __future__ import annotations

import numba
import numpy as np

from .._validation import as_float_array
from . import _gradient_kernels, _kernels
from ._geometry import stencil_geometry
from .activations import ActivationKind

__all__ = ["conv", "conv_transpose", "conv_kernel_gradient", "add_bias", "bias_gradient"]

STENCIL_WIDTH = 3


# ---------------------------------------------------------------------------- validation
def check_batch(x, name: str, dtype=None) -> np.ndarray:
    """``x`` as a C-contiguous float array of shape (N, C, *spatial) with 1 to 3 spatial axes."""
    x = as_float_array(x, name, dtype=None)
    if x.ndim not in (3, 4, 5):
        raise ValueError(
            f"{name} must have shape (N, C, *spatial) with 1, 2 or 3 spatial axes, "
            f"got shape {x.shape}"
        )
    if min(x.shape) == 0:
        raise ValueError(f"{name} must not have an empty axis, got shape {x.shape}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype} but the other arrays are {dtype}; cast it")
    return np.ascontiguousarray(x)


def check_kernel(kernel, dim: int, dtype, name: str = "K", in_channels=None, out_channels=None):
    """``kernel`` as a C-contiguous array of shape (C_out, C_in, 3, ..., 3) with ``dim`` 3s."""
    kernel = as_float_array(kernel, name)
    expected = f"(C_out, C_in{', 3' * dim})"
    if kernel.ndim != dim + 2 or any(w != STENCIL_WIDTH for w in kernel.shape[2:]):
        raise ValueError(
            f"{name} must have shape {expected} for {dim}D images (3-wide stencils only), "
            f"got {kernel.shape}"
        )
    if in_channels is not None and kernel.shape[1] != in_channels:
        raise ValueError(
            f"{name} has {kernel.shape[1]} input channels but the input has {in_channels}"
        )
    if out_channels is not None and kernel.shape[0] != out_channels:
        raise ValueError(
            f"{name} has {kernel.shape[0]} output channels but expected {out_channels}"
        )
    if kernel.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {kernel.dtype} but the images are {dtype}; cast one of them"
        )
    return np.ascontiguousarray(kernel)


def check_bias(bias, channels: int, dtype, name: str = "b") -> np.ndarray:
    """``bias`` as a float array of shape (channels,) and the given dtype."""
    bias = as_float_array(bias, name)
    if bias.shape != (channels,):
        raise ValueError(
            f"{name} must have shape ({channels},) (one bias per channel), got {bias.shape}"
        )
    if bias.dtype != dtype:
        raise TypeError(f"{name} has dtype {bias.dtype} but the images are {dtype}; cast it")
    return bias


def check_same_shape(array, reference: np.ndarray, name: str, reference_name: str) -> np.ndarray:
    """``array`` as a contiguous array with the shape and dtype of ``reference``."""
    array = as_float_array(array, name)
    if array.shape != reference.shape:
        raise ValueError(
            f"{name} must have the shape of {reference_name} {reference.shape}, got {array.shape}"
        )
    if array.dtype != reference.dtype:
        raise TypeError(
            f"{name} has dtype {array.dtype} but {reference_name} is {reference.dtype}; cast it"
        )
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------- kernel layout
def _padded_channels(channels: int) -> int:
    return -(-channels // _kernels.BLOCK) * _kernels.BLOCK


def blocked_kernel(kernel: np.ndarray) -> np.ndarray:
    """Kernel (C_out, C_in, 3, ..., 3) as (C_out rounded up to a multiple of BLOCK, C_in, G, 3).

    The extra output channels are zero.
    """
    out_channels, in_channels = kernel.shape[:2]
    blocked = np.zeros(
        (_padded_channels(out_channels), in_channels, 3 ** (kernel.ndim - 3), 3), dtype=kernel.dtype
    )
    blocked[:out_channels] = kernel.reshape((out_channels, in_channels) + blocked.shape[2:])
    return blocked


def blocked_bias(bias, channels: int, dtype) -> np.ndarray:
    """Bias padded to the blocked channel count (zeros when ``bias`` is None)."""
    blocked = np.zeros(_padded_channels(channels), dtype=dtype)
    if bias is not None:
        blocked[:channels] = bias
    return blocked


def transposed_kernel(kernel: np.ndarray) -> np.ndarray:
    """Kernel (C_in, C_out, 3, ..., 3) of the adjoint: channel axes swapped, space flipped."""
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * (kernel.ndim - 2)
    return np.ascontiguousarray(kernel[flip].swapaxes(0, 1))


def multiply_adds(n_images: int, out_channels: int, in_channels: int, geometry) -> int:
    """Multiply-adds of a batched 3-wide correlation, ``N * C_out * C_in * 3**d * P``."""
    return n_images * out_channels * in_channels * 3 * geometry.n_groups * geometry.size


def n_chunks(n_images: int) -> int:
    """Number of batch chunks of the parallel convolution (at most one image per chunk; the
    results do not depend on it)."""
    return min(n_images, _kernels.CHUNKS_PER_THREAD * numba.get_num_threads())


def gradient_chunks(n_images: int) -> int:
    """Number of batch chunks of the kernel gradient: independent of the thread count, since
    the partial sums per chunk change the last bits of the total."""
    return min(n_images, _gradient_kernels.GRADIENT_CHUNKS)


def run_conv(
    x1,
    kernel1,
    out_channels,
    *,
    x2=None,
    kernel2=None,
    bias=None,
    mode=_kernels.Epilogue.AFFINE,
    kind=ActivationKind.TANH,
    dt=1.0,
    base=None,
    derivative=None,
    store_derivative=False,
):
    """Call :func:`_kernels.conv_driver` (serial twin for small work) on validated arrays
    of shape (N, C, *spatial).

    ``kernel1``/``kernel2`` are (C_out, C, 3, ...) kernels; returns ``out`` (N, C_out, *spatial)
    (and fills ``derivative`` in place when ``store_derivative``).
    """
    n_images, spatial = x1.shape[0], x1.shape[2:]
    geometry = stencil_geometry(spatial)
    dtype = x1.dtype
    n_points = geometry.size
    out = np.empty((n_images, out_channels) + spatial, dtype)
    flat_out = out.reshape(n_images, out_channels, n_points)
    if x2 is None:
        flat_x2 = np.empty((n_images, 0, n_points), dtype)
        blocked2 = np.empty((_padded_channels(out_channels), 0, geometry.n_groups, 3), dtype)
    else:
        flat_x2, blocked2 = x2.reshape(n_images, x2.shape[1], n_points), blocked_kernel(kernel2)
    flat_base = flat_out if base is None else base.reshape(flat_out.shape)
    flat_derivative = flat_out if derivative is None else derivative.reshape(flat_out.shape)
    flat_x1 = x1.reshape(n_images, x1.shape[1], n_points)
    in_channels = x1.shape[1] + flat_x2.shape[1]
    chunks = n_chunks(n_images)
    driver = _kernels.conv_driver.choose(
        multiply_adds(n_images, out_channels, in_channels, geometry), chunks
    )
    with numba.parallel_chunksize(1):  # chunks handed out dynamically
        driver(
            flat_x1,
            blocked_kernel(kernel1),
            flat_x2,
            blocked2,
            blocked_bias(bias, out_channels, dtype),
            geometry.masks_by_dtype[dtype],
            geometry.pad,
            geometry.shift,
            geometry.tap_mask,
            chunks,
            int(mode),
            int(kind),
            dtype.type(dt),
            base is not None,
            flat_base,
            flat_derivative,
            store_derivative,
            flat_out,
        )
    return out


def gradient_partials(n_chunks: int, out_channels: int, in_channels: int, geometry):
    """Zeroed float64 per-chunk partial sums for a kernel-gradient driver:
    ``kernel_partial`` (n_chunks, C_out padded to BLOCK, C_in, G, 3), ``bias_partial``
    (n_chunks, C_out padded)."""
    padded = _padded_channels(out_channels)
    return (
        np.zeros((n_chunks, padded, in_channels, geometry.n_groups, 3)),
        np.zeros((n_chunks, padded)),
    )


def gradient_totals(kernel_partial, bias_partial, out_channels, in_channels, dim, dtype):
    """The partial sums of :func:`gradient_partials` added in chunk order, padding dropped:
    kernel gradient (C_out, C_in, 3, ..., 3) with ``dim`` 3s and bias gradient (C_out,), in
    ``dtype``."""
    kernel_shape = (out_channels, in_channels) + (STENCIL_WIDTH,) * dim
    return (
        kernel_partial[:, :out_channels].sum(axis=0).reshape(kernel_shape).astype(dtype),
        bias_partial[:, :out_channels].sum(axis=0).astype(dtype),
    )


def run_kernel_gradient(x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sum_n x-taps . z, sum_{n,p} z)`` for validated x (N, C_in, *s), z (N, C_out, *s).

    Returns the kernel gradient (C_out, C_in, 3, ..., 3) and the bias gradient (C_out,), in the
    dtype of ``x`` (accumulated in float64).
    """
    n_images, in_channels, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out_channels = z.shape[1]
    geometry = stencil_geometry(spatial)
    chunks = gradient_chunks(n_images)
    kernel_partial, bias_partial = gradient_partials(chunks, out_channels, in_channels, geometry)
    driver = _gradient_kernels.kernel_gradient_driver.choose(
        multiply_adds(n_images, out_channels, in_channels, geometry), chunks
    )
    with numba.parallel_chunksize(1):  # chunks handed out dynamically
        driver(
            x.reshape(n_images, in_channels, -1),
            z.reshape(n_images, out_channels, -1),
            geometry.masks_by_dtype[x.dtype],
            geometry.pad,
            geometry.shift,
            geometry.tap_mask,
            chunks,
            kernel_partial,
            bias_partial,
        )
    return gradient_totals(
        kernel_partial, bias_partial, out_channels, in_channels, len(spatial), x.dtype
    )


# ---------------------------------------------------------------------------- public API
def conv(x, K, b=None) -> np.ndarray:
    """Batched correlation ``y = K * x (+ b)`` with zero "same" padding.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *spatial), 1 to 3 spatial axes
    K : ndarray, shape (C_out, C_in, 3, ..., 3), same dtype as ``x``
    b : ndarray, shape (C_out,), optional
        One bias per output channel, added at every point.

    Returns
    -------
    y : ndarray, shape (N, C_out, *spatial), dtype of ``x``
        ``y[n, o, i] = sum_{c, a} K[o, c, a] x[n, c, i + a - 1] (+ b[o])`` (multi-index ``i, a``).
    """
    x = check_batch(x, "x")
    K = check_kernel(K, x.ndim - 2, x.dtype, "K", in_channels=x.shape[1])
    if b is not None:
        b = check_bias(b, K.shape[0], x.dtype)
    return run_conv(x, K, K.shape[0], bias=b)


def conv_transpose(y_bar, K) -> np.ndarray:
    """Adjoint of :func:`conv` w.r.t. ``x``: ``x_bar = K^T y_bar``.

    Parameters
    ----------
    y_bar : ndarray, shape (N, C_out, *spatial)
    K : ndarray, shape (C_out, C_in, 3, ..., 3), same dtype as ``y_bar``

    Returns
    -------
    x_bar : ndarray, shape (N, C_in, *spatial)
        Correlation of ``y_bar`` with the flipped, channel-transposed kernel, so that
        ``<conv(x, K), y_bar> = <x, conv_transpose(y_bar, K)>``.
    """
    y_bar = check_batch(y_bar, "y_bar")
    K = check_kernel(K, y_bar.ndim - 2, y_bar.dtype, "K")
    if K.shape[0] != y_bar.shape[1]:
        raise ValueError(
            f"K has {K.shape[0]} output channels but y_bar has {y_bar.shape[1]} channels"
        )
    return run_conv(y_bar, transposed_kernel(K), K.shape[1])


def conv_kernel_gradient(x, y_bar) -> np.ndarray:
    """Gradient of ``<conv(x, K), y_bar>`` w.r.t. ``K``, summed over the batch.

    Parameters
    ----------
    x : ndarray, shape (N, C_in, *spatial)
    y_bar : ndarray, shape (N, C_out, *spatial), same N, spatial shape and dtype

    Returns
    -------
    K_bar : ndarray, shape (C_out, C_in, 3, ..., 3), dtype of ``x`` (accumulated in float64)
        ``K_bar[o, c, a] = sum_{n, i} y_bar[n, o, i] x[n, c, i + a - 1]``.
    """
    x = check_batch(x, "x")
    y_bar = check_batch(y_bar, "y_bar", dtype=x.dtype)
    if y_bar.shape[0] != x.shape[0] or y_bar.shape[2:] != x.shape[2:]:
        raise ValueError(
            "y_bar must have the batch size and spatial shape of x "
            f"{(x.shape[0], '*') + x.shape[2:]}, "
            f"got {y_bar.shape}"
        )
    return run_kernel_gradient(x, y_bar)[0]


def add_bias(x, b) -> np.ndarray:
    """``x + b`` with one bias per channel, constant over batch and space.

    ``x`` (N, C, *spatial), ``b`` (C,) of the same dtype; returns a new array.
    """
    x = check_batch(x, "x")
    b = check_bias(b, x.shape[1], x.dtype)
    return x + b.reshape((1, -1) + (1,) * (x.ndim - 2))


def bias_gradient(y_bar) -> np.ndarray:
    """Adjoint of :func:`add_bias` w.r.t. ``b``: ``y_bar`` summed over batch and space, shape (C,).

    Accumulated in float64, returned in the dtype of ``y_bar``.
    """
    y_bar = check_batch(y_bar, "y_bar")
    axes = (0,) + tuple(range(2, y_bar.ndim))
    return y_bar.sum(axis=axes, dtype=np.float64).astype(y_bar.dtype)
