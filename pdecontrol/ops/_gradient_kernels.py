"""Jitted kernel gradient and fused residual-layer adjoint (private; the layout, the blocking
and the design notes are those of :mod:`._kernels`).

Shapes: ``x[n, c, p]``, ``z[n, o, p]`` flat per channel; kernel sums ``(O_padded, C, G, 3)`` as
the kernels of :mod:`._kernels`, accumulated in float64 over :data:`GRADIENT_CHUNKS` chunks.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._dispatch import SERIAL_BELOW_MULTIPLY_ADDS, twin_kernel
from ._kernels import (
    BLOCK,
    REDUCE,
    STREAM,
    Epilogue,
    aligned_rows,
    conv_images,
    fill_images,
    images_per_pass,
    pass_points,
)
from .activations import constant_like

__all__ = ["GRADIENT_CHUNKS", "kernel_gradient_driver", "adjoint_driver"]

#: Chunks of the kernel-gradient partial sums (at most one image each): a constant, so that the
#: sums do not depend on the thread count; 4 per thread up to 16 threads.
GRADIENT_CHUNKS = 64


@njit(cache=True, error_model="numpy", fastmath=REDUCE)
def _correlate_block(buf, rows, shift, tap_mask, kernel_sums, o):
    """``kernel_sums[o + r, c, g, t] += sum_p rows[r, p] * buf[c, tap_mask[g, t], q]``.

    ``q = shift[g] + t - 1 + p``, ``r = 0..BLOCK-1``: 12 dot products that share the three tap
    loads (reassociated so that they vectorise).
    """
    n_points = rows.shape[1]
    z0 = rows[0]
    z1 = rows[1]
    z2 = rows[2]
    z3 = rows[3]
    zero = constant_like(0.0, z0[0])
    for c in range(buf.shape[0]):
        for g in range(shift.shape[0]):
            s = shift[g]
            left = buf[c, tap_mask[g, 0], s - 1 : s - 1 + n_points]
            centre = buf[c, tap_mask[g, 1], s : s + n_points]
            right = buf[c, tap_mask[g, 2], s + 1 : s + 1 + n_points]
            s00 = s01 = s02 = s10 = s11 = s12 = zero
            s20 = s21 = s22 = s30 = s31 = s32 = zero
            for p in range(n_points):
                xl = left[p]
                xc = centre[p]
                xr = right[p]
                s00 += z0[p] * xl
                s01 += z0[p] * xc
                s02 += z0[p] * xr
                s10 += z1[p] * xl
                s11 += z1[p] * xc
                s12 += z1[p] * xr
                s20 += z2[p] * xl
                s21 += z2[p] * xc
                s22 += z2[p] * xr
                s30 += z3[p] * xl
                s31 += z3[p] * xc
                s32 += z3[p] * xr
            kernel_sums[o, c, g, 0] += s00
            kernel_sums[o, c, g, 1] += s01
            kernel_sums[o, c, g, 2] += s02
            kernel_sums[o + 1, c, g, 0] += s10
            kernel_sums[o + 1, c, g, 1] += s11
            kernel_sums[o + 1, c, g, 2] += s12
            kernel_sums[o + 2, c, g, 0] += s20
            kernel_sums[o + 2, c, g, 1] += s21
            kernel_sums[o + 2, c, g, 2] += s22
            kernel_sums[o + 3, c, g, 0] += s30
            kernel_sums[o + 3, c, g, 1] += s31
            kernel_sums[o + 3, c, g, 2] += s32


@njit(cache=True, error_model="numpy", fastmath=REDUCE)
def _gradient_image(
    buf, zn, z_scale, has_z_scale, shift, tap_mask, rows, sums, kernel_sums, bias_sums
):
    """Add one image's ``sum_p z[o, p] x_tap[c, p]`` to ``kernel_sums``, ``sum_p z[o, p]`` to
    ``bias_sums`` (float64; the image's own sums run in the array dtype).

    ``buf`` (C, M, P + 2 pad) filled from the image ``x`` by :func:`fill_images`, ``zn`` and
    ``z_scale`` (O, P) with ``z = zn * z_scale`` if ``has_z_scale`` else ``zn``; scratch
    ``rows`` (BLOCK, P) and ``sums`` (shape of ``kernel_sums`` (O_padded, C, G, 3), array dtype).
    """
    n_out, n_points = zn.shape
    flat_sums = sums.reshape(-1)
    flat_kernel_sums = kernel_sums.reshape(-1)
    for i in range(flat_sums.size):
        flat_sums[i] = 0
    for o in range(0, n_out, BLOCK):
        for r in range(min(BLOCK, n_out - o)):
            row = rows[r]
            source = zn[o + r]
            factor = z_scale[o + r]
            for p in range(n_points):
                row[p] = source[p] * factor[p] if has_z_scale else source[p]
            total = constant_like(0.0, row[0])
            for p in range(n_points):
                total += row[p]
            bias_sums[o + r] += total
        # in a last, partial block the rows past n_out hold stale values: they only feed the
        # zero-padded output channels, which the caller discards
        _correlate_block(buf, rows, shift, tap_mask, sums, o)
    for i in range(flat_sums.size):
        flat_kernel_sums[i] += flat_sums[i]


@njit(cache=True, error_model="numpy", fastmath=REDUCE)
def _kernel_gradient_chunk(x, z, masks, pad, shift, tap_mask, start, stop, kernel_sums, bias_sums):
    """Add the sums of images ``start..stop-1`` to ``kernel_sums`` and ``bias_sums`` (float64)."""
    n_points = x.shape[2]
    buf = np.zeros((x.shape[1], masks.shape[0], n_points + 2 * pad), x.dtype)
    rows = aligned_rows(n_points, x)
    rows[:] = 0
    sums = np.empty(kernel_sums.shape, x.dtype)
    for n in range(start, stop):
        fill_images(x, x, False, n, 1, masks, pad, buf)
        _gradient_image(
            buf, z[n], z[n], False, shift, tap_mask, rows, sums, kernel_sums, bias_sums
        )


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, cache=True, error_model="numpy")
def kernel_gradient_driver(
    x, z, masks, pad, shift, tap_mask, n_chunks, kernel_partial, bias_partial
):
    """Per-chunk partial sums ``dK[o, c, g, t] = sum_{n,p} z[n, o, p] x_tap[n, c, p]``, ``db[o]``.

    ``x`` (N, C, P), ``z`` (N, O, P); ``kernel_partial`` (n_chunks, O_padded, C, G, 3) and
    ``bias_partial`` (n_chunks, O_padded), float64, zero on entry (summed by the caller).
    Per image the sums run in the array dtype, across images in float64. The serial twin walks
    the same ``n_chunks`` chunks, so its partial sums, and hence the caller's chunk-order
    total, are bitwise those of the parallel one; the callers pass ``n_chunks`` independent of
    the thread count (:data:`GRADIENT_CHUNKS`), since its last bits change with it. The
    parallel loop
    only calls :func:`_kernel_gradient_chunk`, whose array updates are explicit loops: the
    same code with array expressions (``sums[:] = 0``, ``kernel_sums += sums``) inside the
    ``prange`` body took 9.5 s instead of 4 s (CPU) to compile.
    """
    n_images = x.shape[0]
    for chunk in prange(n_chunks):
        _kernel_gradient_chunk(
            x,
            z,
            masks,
            pad,
            shift,
            tap_mask,
            chunk * n_images // n_chunks,
            (chunk + 1) * n_images // n_chunks,
            kernel_partial[chunk],
            bias_partial[chunk],
        )


@njit(cache=True, error_model="numpy", fastmath=STREAM)
def _adjoint_chunk(
    y,
    out_bar,
    derivative,
    kernel_t,
    masks,
    pad,
    shift,
    tap_mask,
    dt,
    has_base,
    start,
    stop,
    y_bar,
    kernel_sums,
    bias_sums,
):
    """Images ``start..stop-1`` of :func:`adjoint_driver`: ``y_bar`` rows and the gradient sums.

    ``z = derivative * out_bar`` is formed once into the masked buffers of the transpose, which
    takes the images side by side as :func:`conv_driver` does (:func:`images_per_pass`); the
    kernel gradient then takes them one by one (its sums run over one image's points, as in
    :func:`kernel_gradient_driver`), reading ``out_bar`` and ``derivative`` again while they
    are still in cache.
    """
    n_points = y.shape[2]
    group = images_per_pass(n_points, pad)
    n_accumulated = pass_points(n_points, pad, group)
    width = n_accumulated + 2 * pad
    buf_z = np.zeros((out_bar.shape[1], masks.shape[0], width), y.dtype)
    buf_y = np.zeros((y.shape[1], masks.shape[0], n_points + 2 * pad), y.dtype)
    no_input = np.empty((0, masks.shape[0], width), y.dtype)
    no_bias = np.zeros(kernel_t.shape[0], y.dtype)
    acc = aligned_rows(n_accumulated, y)
    rows = aligned_rows(n_points, y)
    rows[:] = 0
    sums = np.empty(kernel_sums.shape, y.dtype)
    for first in range(start, stop, group):
        count = min(group, stop - first)
        fill_images(out_bar, derivative, True, first, count, masks, pad, buf_z)
        conv_images(
            buf_z,
            kernel_t,
            no_input,
            kernel_t,
            no_bias,
            shift,
            tap_mask,
            acc,
            pad,
            first,
            count,
            Epilogue.AFFINE.value,
            0,
            dt,
            has_base,
            out_bar,
            y_bar,
            False,
            y_bar,
        )
        for n in range(first, first + count):
            fill_images(y, y, False, n, 1, masks, pad, buf_y)
            _gradient_image(
                buf_y,
                out_bar[n],
                derivative[n],
                True,
                shift,
                tap_mask,
                rows,
                sums,
                kernel_sums,
                bias_sums,
            )


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, cache=True, error_model="numpy")
def adjoint_driver(
    y,
    out_bar,
    derivative,
    kernel_t,
    masks,
    pad,
    shift,
    tap_mask,
    dt,
    has_base,
    n_chunks,
    y_bar,
    kernel_partial,
    bias_partial,
):
    """Fused adjoint of a residual layer: transpose and kernel gradient in one pass per image.

    With ``z = derivative * out_bar``: ``y_bar = [out_bar +] dt * K^T z`` (``has_base``) and the
    per-chunk partial sums of :func:`kernel_gradient_driver` for ``(x, z) = (y, z)``
    (without ``dt``). ``y``, ``out_bar``, ``derivative``, ``y_bar`` (N, C, P); ``kernel_t``
    the blocked kernel of the transpose (C_padded, C, G, 3); ``kernel_partial``
    (n_chunks, C_padded, C, G, 3) and ``bias_partial`` (n_chunks, C_padded), float64, zero on
    entry. Each image's ``y_bar`` and sums are bitwise those of :func:`conv_driver` and
    :func:`kernel_gradient_driver` on the same arrays, so with ``n_chunks`` =
    :data:`GRADIENT_CHUNKS` (the caller's choice) the results do not depend on the thread count
    or on which twin runs.
    """
    n_images = y.shape[0]
    for chunk in prange(n_chunks):
        _adjoint_chunk(
            y,
            out_bar,
            derivative,
            kernel_t,
            masks,
            pad,
            shift,
            tap_mask,
            dt,
            has_base,
            chunk * n_images // n_chunks,
            (chunk + 1) * n_images // n_chunks,
            y_bar,
            kernel_partial[chunk],
            bias_partial[chunk],
        )
