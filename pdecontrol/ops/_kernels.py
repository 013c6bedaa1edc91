"""Jitted building blocks shared by :mod:`.conv` and :mod:`.residual` (private).

Shapes: images are flat per channel, ``x[n, c, p]`` with ``p`` the C-order index of the spatial
point; kernels are ``K[o, c, g, t]`` (see :mod:`._geometry`), with the output-channel axis padded
with zeros to a multiple of :data:`BLOCK`. All routines are correlations (no kernel flip).

Performance design (measured on the 2-core AVX-512 machine, see docs/operators.md; the timings
before 2026-11-30 are of 256-bit code, the default of LLVM's tuning for this CPU):

* each input channel of an image is copied once into masked, zero-margined rows
  (:func:`fill_buffers`), so every tap is one contiguous, unit-stride read and the innermost
  loop runs over all ``P`` points of the image (784 for 28x28), which LLVM vectorises;
* the innermost loop updates :data:`BLOCK` = 4 output channels at once from the tap triples of
  two input channels (24 FMAs per 6 loads + 4 load/store pairs of L1-resident accumulators;
  one input channel per pass, 12 FMAs per accumulator load/store pair, ran the C = 32 conv
  10-17 % slower, at 74-78 instead of 86-90 GFLOP/s on one core, i.e. the 256-bit FMA peak;
  8 output channels per pass spill the 48 weights and were slower); in an early prototype one
  output channel per pass ran at half the speed of two; the kernel gradient forms 12 dot
  products (4 output channels x 3 taps) per pass over the points;
* :func:`adjoint_driver` (the adjoint of a residual layer) runs the transpose and the kernel
  gradient image by image, so ``sigma'(a) * out_bar`` is read from memory once, not twice;
* accumulators live in a per-thread ``(BLOCK, P)`` scratch array; the epilogue (bias, activation,
  residual update, derivative store) runs on it while it is hot in L1 (fusion); it starts on a
  cache line (:func:`aligned_rows`), since with 512-bit code (see :mod:`._codegen`) every
  unaligned accumulator load and store is split across two lines: 0.85-0.93x the time of
  Numba's 32-byte alignment for conv, transpose and kernel gradient;
* ``parallel=True`` over contiguous chunks of the batch, :data:`CHUNKS_PER_THREAD` per thread,
  handed out dynamically so that a thread slowed down by other processes takes fewer (the
  callers run the drivers under ``numba.parallel_chunksize(1)``: calling
  ``set_parallel_chunksize`` inside a driver would disable caching); scratch allocated once
  per chunk;
  kernel-gradient partial sums in float64 over :data:`GRADIENT_CHUNKS` chunks whatever the
  thread count, summed in chunk order: the sums, and so every result downstream, do not depend
  on the Numba thread count (with the per-thread count, 4 or 8 chunks on 1 or 2 threads, a
  float64 training run differed by 4.7e-13; 64 chunks instead of 8 cost nothing measurable on
  2 cores: batch 1000, 28x28, C = 8 / 32: 23.1 / 206 ms against 22.0 / 220 ms);
* each driver is a :class:`~._dispatch.TwinKernel`: below
  :data:`~._dispatch.SERIAL_BELOW_MULTIPLY_ADDS` the caller runs its serial twin over the
  same chunks, so both paths give bitwise identical results (every output image is computed by
  the same code, and the kernel-gradient chunk sums are the same sums in the same order);
* ``fastmath={"contract"}`` (FMA) everywhere, plus ``"reassoc"`` only in the dot products of the
  kernel gradient (needed to vectorise a floating-point reduction). No ``nnan``/``ninf``.
"""

from __future__ import annotations

import enum

import numpy as np
from numba import njit, prange

from ._dispatch import SERIAL_BELOW_MULTIPLY_ADDS, twin_kernel
from .activations import activate, constant_like

__all__ = [
    "BLOCK",
    "CHUNKS_PER_THREAD",
    "GRADIENT_CHUNKS",
    "Epilogue",
    "aligned_rows",
    "fill_buffers",
    "accumulate_block",
    "conv_driver",
    "kernel_gradient_driver",
    "adjoint_driver",
]

BLOCK = 4
CHUNKS_PER_THREAD = 4
#: Chunks of the kernel-gradient partial sums (at most one image each): a constant, so that the
#: sums do not depend on the thread count; 4 per thread up to 16 threads.
GRADIENT_CHUNKS = 64
_STREAM = {"contract"}
_REDUCE = {"contract", "reassoc"}


class Epilogue(enum.IntEnum):
    """What :func:`conv_driver` writes from the accumulated ``a = sum K x + bias``."""

    AFFINE = 0  #: out = [base +] dt * a
    ACTIVATE = 1  #: out = [base +] dt * sigma(a); optionally derivative <- sigma'(a)
    SCALE_BY_DERIVATIVE = 2  #: out = [base +] dt * derivative * a


@njit(cache=True, error_model="numpy")
def aligned_rows(n_points, like):
    """Uninitialised C-contiguous scratch ``(BLOCK, n_points)`` of ``like``'s dtype that starts on
    a 64-byte boundary (a cache line; rows stay aligned when ``n_points * itemsize`` is a multiple
    of 64, e.g. 28x28 images): the accumulator rows, read and written once per pass, are then
    never split across cache lines by 512-bit loads and stores (Numba aligns arrays to 32 bytes).
    """
    per_line = 64 // like.itemsize
    raw = np.empty(BLOCK * n_points + per_line, like.dtype)
    start = (-raw.ctypes.data % 64) // like.itemsize
    return raw[start : start + BLOCK * n_points].reshape((BLOCK, n_points))


@njit(cache=True, error_model="numpy", fastmath=_STREAM)
def fill_buffers(xn, scale, has_scale, masks, pad, buf):
    """``buf[c, m, pad + p] = xn[c, p] [* scale[c, p]] * masks[m, p]``, zero margins of ``pad``.

    ``xn`` and ``scale`` (C, P) (``scale`` is read only if ``has_scale``; it fuses a pointwise
    product such as ``sigma'(a) * y_bar`` into the copy), ``masks`` (M, P),
    ``buf`` (C, M, P + 2 pad).
    """
    n_points = xn.shape[1]
    for c in range(xn.shape[0]):
        channel = xn[c]
        for m in range(masks.shape[0]):
            row = buf[c, m]
            mask = masks[m]
            for p in range(pad):
                row[p] = 0
                row[pad + n_points + p] = 0
            inner = row[pad : pad + n_points]
            if has_scale:
                factor = scale[c]
                for p in range(n_points):
                    inner[p] = channel[p] * factor[p] * mask[p]
            else:
                for p in range(n_points):
                    inner[p] = channel[p] * mask[p]


@njit(cache=True, error_model="numpy", fastmath=_STREAM)
def accumulate_block(buf, kernel, o, shift, tap_mask, acc):
    """``acc[r, p] += sum_{c,g,t} kernel[o + r, c, g, t] * buf[c, tap_mask[g, t], q]``.

    ``q = shift[g] + t - 1 + p``, ``r = 0..BLOCK-1``; ``buf`` (C, M, P + 2 pad) from
    :func:`fill_buffers`, ``kernel`` (O_padded, C, G, 3), ``acc`` (BLOCK, P).

    Input channels are taken in pairs: one pass over the points adds the 6 taps of channels
    ``c, c + 1`` (24 FMAs, 24 weights in registers) per load and store of the 4 accumulators,
    half the accumulator traffic of one channel per pass; an odd last channel takes a pass of
    its own. Per point the sum runs over ``c`` in order within each pass.
    """
    n_points = acc.shape[1]
    n_in = buf.shape[0]
    acc0 = acc[0]
    acc1 = acc[1]
    acc2 = acc[2]
    acc3 = acc[3]
    for c in range(0, n_in - 1, 2):
        for g in range(shift.shape[0]):
            s = shift[g]
            left = buf[c, tap_mask[g, 0], s - 1 : s - 1 + n_points]
            centre = buf[c, tap_mask[g, 1], s : s + n_points]
            right = buf[c, tap_mask[g, 2], s + 1 : s + 1 + n_points]
            left1 = buf[c + 1, tap_mask[g, 0], s - 1 : s - 1 + n_points]
            centre1 = buf[c + 1, tap_mask[g, 1], s : s + n_points]
            right1 = buf[c + 1, tap_mask[g, 2], s + 1 : s + 1 + n_points]
            k0 = kernel[o, c, g]
            k1 = kernel[o + 1, c, g]
            k2 = kernel[o + 2, c, g]
            k3 = kernel[o + 3, c, g]
            m0 = kernel[o, c + 1, g]
            m1 = kernel[o + 1, c + 1, g]
            m2 = kernel[o + 2, c + 1, g]
            m3 = kernel[o + 3, c + 1, g]
            w00, w01, w02, v00, v01, v02 = k0[0], k0[1], k0[2], m0[0], m0[1], m0[2]
            w10, w11, w12, v10, v11, v12 = k1[0], k1[1], k1[2], m1[0], m1[1], m1[2]
            w20, w21, w22, v20, v21, v22 = k2[0], k2[1], k2[2], m2[0], m2[1], m2[2]
            w30, w31, w32, v30, v31, v32 = k3[0], k3[1], k3[2], m3[0], m3[1], m3[2]
            for p in range(n_points):
                xl = left[p]
                xc = centre[p]
                xr = right[p]
                zl = left1[p]
                zc = centre1[p]
                zr = right1[p]
                acc0[p] = (
                    acc0[p] + w00 * xl + w01 * xc + w02 * xr + v00 * zl + v01 * zc + v02 * zr
                )
                acc1[p] = (
                    acc1[p] + w10 * xl + w11 * xc + w12 * xr + v10 * zl + v11 * zc + v12 * zr
                )
                acc2[p] = (
                    acc2[p] + w20 * xl + w21 * xc + w22 * xr + v20 * zl + v21 * zc + v22 * zr
                )
                acc3[p] = (
                    acc3[p] + w30 * xl + w31 * xc + w32 * xr + v30 * zl + v31 * zc + v32 * zr
                )
    if n_in % 2:
        c = n_in - 1
        for g in range(shift.shape[0]):
            s = shift[g]
            left = buf[c, tap_mask[g, 0], s - 1 : s - 1 + n_points]
            centre = buf[c, tap_mask[g, 1], s : s + n_points]
            right = buf[c, tap_mask[g, 2], s + 1 : s + 1 + n_points]
            k0 = kernel[o, c, g]
            k1 = kernel[o + 1, c, g]
            k2 = kernel[o + 2, c, g]
            k3 = kernel[o + 3, c, g]
            w00, w01, w02 = k0[0], k0[1], k0[2]
            w10, w11, w12 = k1[0], k1[1], k1[2]
            w20, w21, w22 = k2[0], k2[1], k2[2]
            w30, w31, w32 = k3[0], k3[1], k3[2]
            for p in range(n_points):
                xl = left[p]
                xc = centre[p]
                xr = right[p]
                acc0[p] = acc0[p] + w00 * xl + w01 * xc + w02 * xr
                acc1[p] = acc1[p] + w10 * xl + w11 * xc + w12 * xr
                acc2[p] = acc2[p] + w20 * xl + w21 * xc + w22 * xr
                acc3[p] = acc3[p] + w30 * xl + w31 * xc + w32 * xr


@njit(cache=True, error_model="numpy", fastmath=_STREAM)
def _write_row(mode, kind, acc, dt, has_base, base, derivative, store_derivative, out):
    """Epilogue for one output row of P points (see :class:`Epilogue`).

    Every branch is outside its loop so that each loop vectorises (a branch on
    ``store_derivative`` inside the activation loop made the tanh epilogue scalar).
    """
    n_points = acc.shape[0]
    if mode == Epilogue.ACTIVATE and store_derivative:
        for p in range(n_points):
            value, slope = activate(kind, acc[p])
            acc[p] = dt * value
            derivative[p] = slope
    elif mode == Epilogue.ACTIVATE:
        for p in range(n_points):
            acc[p] = dt * activate(kind, acc[p])[0]
    elif mode == Epilogue.SCALE_BY_DERIVATIVE:
        for p in range(n_points):
            acc[p] = dt * derivative[p] * acc[p]
    else:
        for p in range(n_points):
            acc[p] = dt * acc[p]
    if has_base:
        for p in range(n_points):
            out[p] = base[p] + acc[p]
    else:
        for p in range(n_points):
            out[p] = acc[p]


@njit(cache=True, error_model="numpy", fastmath=_STREAM)
def _conv_image(
    buf1,
    kernel1,
    buf2,
    kernel2,
    bias,
    shift,
    tap_mask,
    acc,
    mode,
    kind,
    dt,
    has_base,
    base,
    derivative,
    store_derivative,
    out,
):
    """One image of :func:`conv_driver`: ``out = epilogue(kernel1 * buf1 + kernel2 * buf2 + bias)``.

    ``buf1``/``buf2`` filled by :func:`fill_buffers` (``buf2`` may have 0 channels), ``acc``
    (BLOCK, P) scratch, ``out``/``base``/``derivative`` (O, P); the rest as in
    :func:`conv_driver`.
    """
    n_out, n_points = out.shape
    for o in range(0, n_out, BLOCK):
        for r in range(BLOCK):
            row = acc[r]
            for p in range(n_points):
                row[p] = bias[o + r]
        accumulate_block(buf1, kernel1, o, shift, tap_mask, acc)
        accumulate_block(buf2, kernel2, o, shift, tap_mask, acc)
        for r in range(min(BLOCK, n_out - o)):
            _write_row(
                mode,
                kind,
                acc[r],
                dt,
                has_base,
                base[o + r],
                derivative[o + r],
                store_derivative,
                out[o + r],
            )


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, cache=True, error_model="numpy", fastmath=_STREAM)
def conv_driver(
    x1,
    kernel1,
    x2,
    kernel2,
    bias,
    masks,
    pad,
    shift,
    tap_mask,
    n_chunks,
    mode,
    kind,
    dt,
    has_base,
    base,
    derivative,
    store_derivative,
    out,
):
    """``out = epilogue(conv(x1, kernel1) + conv(x2, kernel2) + bias)`` over the batch.

    ``x1`` (N, C1, P), ``x2`` (N, C2, P) (``C2`` may be 0), kernels
    (O_padded, C, G, 3),
    ``bias`` (O_padded,), ``out``/``base``/``derivative`` (N, O, P); ``base`` and
    ``derivative`` may be any array of that shape when unused. ``mode`` an :class:`Epilogue`,
    ``kind`` an activation kind, ``dt`` a scalar of the array dtype. The serial twin gives
    bitwise the same ``out`` (each image is computed by the same code whatever the chunking).
    """
    n_images, n_points = out.shape[0], out.shape[2]
    width = n_points + 2 * pad
    for chunk in prange(n_chunks):
        start = chunk * n_images // n_chunks
        stop = (chunk + 1) * n_images // n_chunks
        buf1 = np.empty((x1.shape[1], masks.shape[0], width), out.dtype)
        buf2 = np.empty((x2.shape[1], masks.shape[0], width), out.dtype)
        acc = aligned_rows(n_points, out)
        for n in range(start, stop):
            fill_buffers(x1[n], x1[n], False, masks, pad, buf1)
            fill_buffers(x2[n], x2[n], False, masks, pad, buf2)
            _conv_image(
                buf1,
                kernel1,
                buf2,
                kernel2,
                bias,
                shift,
                tap_mask,
                acc,
                mode,
                kind,
                dt,
                has_base,
                base[n],
                derivative[n],
                store_derivative,
                out[n],
            )


@njit(cache=True, error_model="numpy", fastmath=_REDUCE)
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


@njit(cache=True, error_model="numpy", fastmath=_REDUCE)
def _gradient_image(
    buf, zn, z_scale, has_z_scale, shift, tap_mask, rows, sums, kernel_sums, bias_sums
):
    """Add one image's ``sum_p z[o, p] x_tap[c, p]`` to ``kernel_sums``, ``sum_p z[o, p]`` to
    ``bias_sums`` (float64; the image's own sums run in the array dtype).

    ``buf`` (C, M, P + 2 pad) filled from the image ``x`` by :func:`fill_buffers`, ``zn`` and
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


@njit(cache=True, error_model="numpy", fastmath=_REDUCE)
def _kernel_gradient_chunk(x, z, masks, pad, shift, tap_mask, start, stop, kernel_sums, bias_sums):
    """Add the sums of images ``start..stop-1`` to ``kernel_sums`` and ``bias_sums`` (float64)."""
    n_points = x.shape[2]
    buf = np.empty((x.shape[1], masks.shape[0], n_points + 2 * pad), x.dtype)
    rows = aligned_rows(n_points, x)
    rows[:] = 0
    sums = np.empty(kernel_sums.shape, x.dtype)
    for n in range(start, stop):
        fill_buffers(x[n], x[n], False, masks, pad, buf)
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


@njit(cache=True, error_model="numpy", fastmath=_STREAM)
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

    Per image, ``z = derivative * out_bar`` is formed once into the masked buffers of the
    transpose; the kernel gradient then reads ``out_bar`` and ``derivative`` of the same image
    again while they are still in cache.
    """
    n_points = y.shape[2]
    width = n_points + 2 * pad
    buf_z = np.empty((out_bar.shape[1], masks.shape[0], width), y.dtype)
    buf_y = np.empty((y.shape[1], masks.shape[0], width), y.dtype)
    no_input = np.empty((0, masks.shape[0], width), y.dtype)
    no_bias = np.zeros(kernel_t.shape[0], y.dtype)
    acc = aligned_rows(n_points, y)
    rows = aligned_rows(n_points, y)
    rows[:] = 0
    sums = np.empty(kernel_sums.shape, y.dtype)
    for n in range(start, stop):
        fill_buffers(out_bar[n], derivative[n], True, masks, pad, buf_z)
        _conv_image(
            buf_z,
            kernel_t,
            no_input,
            kernel_t,
            no_bias,
            shift,
            tap_mask,
            acc,
            Epilogue.AFFINE.value,
            0,
            dt,
            has_base,
            out_bar[n],
            y_bar[n],
            False,
            y_bar[n],
        )
        fill_buffers(y[n], y[n], False, masks, pad, buf_y)
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
