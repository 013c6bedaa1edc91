"""Jitted convolution kernels shared by :mod:`.conv` and :mod:`.residual` (private); the kernel
gradient and the fused adjoint are in :mod:`._gradient_kernels`.

Shapes: images are flat per channel, ``x[n, c, p]`` with ``p`` the C-order index of the spatial
point; kernels are ``K[o, c, g, t]`` (see :mod:`._geometry`), with the output-channel axis padded
with zeros to a multiple of :data:`BLOCK`. All routines are correlations (no kernel flip).

Performance design (measured on the 2-core AVX-512 machine, see docs/operators.md; the timings
before 2026-11-30 are of 256-bit code, the default of LLVM's tuning for this CPU):

* each input channel of an image is copied once into masked, zero-margined rows
  (:func:`fill_images`), so every tap is one contiguous, unit-stride read and the innermost
  loop runs over all ``P`` points of the image (784 for 28x28), which LLVM vectorises;
* small images share a pass: :func:`images_per_pass` images lie side by side in the rows, each
  followed by a zero gap of ``pad`` points (what a tap can reach past it), and the point loop
  runs over all of them, rounded up to a multiple of :data:`VECTOR_POINTS` (the points past the
  last image are computed and dropped), so it never needs a scalar tail and a 14x14 image's
  196 points do not pay a 784-point image's per-pass cost alone. Every output point sums the
  same products in the same order as one image alone would: the results are bitwise those of
  one image per pass (2026-12-01, 8 channels, batch 1,000: a residual step 3.1 -> 2.4 ms on
  14x14, 1.3 -> 0.6 ms on 7x7, 28x28 unchanged; docs/operators.md);
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
  kernel-gradient partial sums in float64 over
  :data:`._gradient_kernels.GRADIENT_CHUNKS` chunks whatever the thread count, summed in
  chunk order: the sums, and so every result downstream, do not depend on the Numba thread
  count (with the per-thread count, 4 or 8 chunks on 1 or 2 threads, a
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
from .activations import activate

__all__ = [
    "BLOCK",
    "CHUNKS_PER_THREAD",
    "Epilogue",
    "aligned_rows",
    "POINTS_PER_PASS",
    "images_per_pass",
    "pass_points",
    "fill_images",
    "accumulate_block",
    "conv_images",
    "conv_driver",
]

BLOCK = 4
CHUNKS_PER_THREAD = 4
#: The vectorised point loop of :func:`accumulate_block` runs over a multiple of this many points:
#: 16 float32 lanes of a 512-bit register, a multiple of the narrower vector widths.
VECTOR_POINTS = 16
#: Points a pass of the point loop covers at least when images are small (:func:`images_per_pass`):
#: about one 28x28 image, the size the blocking was tuned on.
POINTS_PER_PASS = 768
#: Numba fastmath flags: FMA contraction for streaming loops; reassociation added for the
#: reductions of the kernel gradient.
STREAM = {"contract"}
REDUCE = {"contract", "reassoc"}


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


@njit(cache=True, error_model="numpy")
def images_per_pass(n_points, pad):
    """Images side by side in one pass of the point loop: enough for :data:`POINTS_PER_PASS`
    points with their gaps of ``pad`` (1 for 28x28 images, 4 for 14x14, 14 for 7x7)."""
    return max(1, -(-POINTS_PER_PASS // (n_points + pad)))


@njit(cache=True, error_model="numpy")
def pass_points(n_points, pad, group):
    """Points of the accumulator rows for ``group`` images side by side: ``(group - 1) * (P +
    pad) + P`` rounded up to a multiple of :data:`VECTOR_POINTS`."""
    span = (group - 1) * (n_points + pad) + n_points
    return -(-span // VECTOR_POINTS) * VECTOR_POINTS


@njit(cache=True, error_model="numpy", fastmath=STREAM)
def fill_images(x, scale, has_scale, start, count, masks, pad, buf):
    """``buf[c, m, pad + j (P + pad) + p] = x[start + j, c, p] [* scale[start + j, c, p]] *
    masks[m, p]`` for the ``count`` images ``j``.

    ``x`` and ``scale`` (N, C, P) (``scale`` is read only if ``has_scale``; it fuses a
    pointwise product such as ``sigma'(a) * y_bar`` into the copy), ``masks`` (M, P), ``buf``
    (C, M, P' + 2 pad), allocated zero (``P'`` from :func:`pass_points`). The rest of ``buf``
    is not touched: its margins and the gaps between images stay zero; where fewer images than
    before are filled, the old ones behind them only feed points that are dropped.
    """
    n_points = x.shape[2]
    for j in range(count):
        xn = x[start + j]
        factors = scale[start + j]
        offset = pad + j * (n_points + pad)
        for c in range(xn.shape[0]):
            channel = xn[c]
            for m in range(masks.shape[0]):
                inner = buf[c, m, offset : offset + n_points]
                mask = masks[m]
                if has_scale:
                    factor = factors[c]
                    for p in range(n_points):
                        inner[p] = channel[p] * factor[p] * mask[p]
                else:
                    for p in range(n_points):
                        inner[p] = channel[p] * mask[p]


@njit(cache=True, error_model="numpy", fastmath=STREAM)
def accumulate_block(buf, kernel, o, shift, tap_mask, acc):
    """``acc[r, p] += sum_{c,g,t} kernel[o + r, c, g, t] * buf[c, tap_mask[g, t], q]``.

    ``q = shift[g] + t - 1 + p``, ``r = 0..BLOCK-1``; ``buf`` (C, M, P + 2 pad) from
    :func:`fill_images`, ``kernel`` (O_padded, C, G, 3), ``acc`` (BLOCK, P') with ``P'`` a
    multiple of :data:`VECTOR_POINTS` (:func:`pass_points`).

    Input channels are taken in pairs: one pass over the points adds the 6 taps of channels
    ``c, c + 1`` (24 FMAs, 24 weights in registers) per load and store of the 4 accumulators,
    half the accumulator traffic of one channel per pass; an odd last channel takes a pass of
    its own. Per point the sum runs over ``c`` in order within each pass.

    The loop runs over ``n_points // VECTOR_POINTS * VECTOR_POINTS`` points, a count LLVM
    knows to be a multiple of its vector width, so it emits no scalar epilogue (with LLVM's own
    epilogue the 24 scalar weights stayed live beside their 24 broadcasts and 17 broadcasts
    went to the stack, one extra load per FMA); the callers make ``n_points`` that multiple,
    so no point is left out. (Until 2026-12-01 a scalar loop that read the weights again took
    the last ``P mod 16`` points of every image: 4 of a 14x14 image's 196 points, at a quarter
    of its time; docs/operators.md.)
    """
    n_points = acc.shape[1]
    n_vector = n_points // VECTOR_POINTS * VECTOR_POINTS
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
            for p in range(n_vector):
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
            for p in range(n_vector):
                xl = left[p]
                xc = centre[p]
                xr = right[p]
                acc0[p] = acc0[p] + w00 * xl + w01 * xc + w02 * xr
                acc1[p] = acc1[p] + w10 * xl + w11 * xc + w12 * xr
                acc2[p] = acc2[p] + w20 * xl + w21 * xc + w22 * xr
                acc3[p] = acc3[p] + w30 * xl + w31 * xc + w32 * xr


@njit(cache=True, error_model="numpy", fastmath=STREAM)
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


@njit(cache=True, error_model="numpy", fastmath=STREAM)
def conv_images(
    buf1,
    kernel1,
    buf2,
    kernel2,
    bias,
    shift,
    tap_mask,
    acc,
    pad,
    start,
    count,
    mode,
    kind,
    dt,
    has_base,
    base,
    derivative,
    store_derivative,
    out,
):
    """Images ``start .. start + count - 1`` of :func:`conv_driver`, side by side in one pass:
    ``out = epilogue(kernel1 * buf1 + kernel2 * buf2 + bias)``.

    ``buf1``/``buf2`` filled with those images by :func:`fill_images` (``buf2`` may have 0
    channels), ``acc`` (BLOCK, P') scratch (``P'`` from :func:`pass_points`),
    ``out``/``base``/``derivative`` (N, O, P); the rest as in :func:`conv_driver`.
    """
    n_out, n_points = out.shape[1], out.shape[2]
    n_accumulated = acc.shape[1]
    for o in range(0, n_out, BLOCK):
        for r in range(BLOCK):
            row = acc[r]
            for p in range(n_accumulated):
                row[p] = bias[o + r]
        accumulate_block(buf1, kernel1, o, shift, tap_mask, acc)
        accumulate_block(buf2, kernel2, o, shift, tap_mask, acc)
        for j in range(count):
            n = start + j
            offset = j * (n_points + pad)
            for r in range(min(BLOCK, n_out - o)):
                _write_row(
                    mode,
                    kind,
                    acc[r, offset : offset + n_points],
                    dt,
                    has_base,
                    base[n, o + r],
                    derivative[n, o + r],
                    store_derivative,
                    out[n, o + r],
                )


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, cache=True, error_model="numpy", fastmath=STREAM)
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
    group = images_per_pass(n_points, pad)
    n_accumulated = pass_points(n_points, pad, group)
    width = n_accumulated + 2 * pad
    for chunk in prange(n_chunks):
        start = chunk * n_images // n_chunks
        stop = (chunk + 1) * n_images // n_chunks
        buf1 = np.zeros((x1.shape[1], masks.shape[0], width), out.dtype)
        buf2 = np.zeros((x2.shape[1], masks.shape[0], width), out.dtype)
        acc = aligned_rows(n_accumulated, out)
        for n in range(start, stop, group):
            count = min(group, stop - n)
            fill_images(x1, x1, False, n, count, masks, pad, buf1)
            fill_images(x2, x2, False, n, count, masks, pad, buf2)
            conv_images(
                buf1,
                kernel1,
                buf2,
                kernel2,
                bias,
                shift,
                tap_mask,
                acc,
                pad,
                n,
                count,
                mode,
                kind,
                dt,
                has_base,
                base,
                derivative,
                store_derivative,
                out,
            )
