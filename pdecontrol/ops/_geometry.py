"""Index tables that let one flat, padding-free loop apply a 3-wide stencil in 1D, 2D or 3D.

An image with spatial shape ``(n_0, ..., n_{d-1})`` is stored flat (C order, ``P`` points).
A tap with offsets ``(o_0, ..., o_{d-1})`` in ``{-1, 0, 1}^d`` reads the flat point
``p + sum_k o_k * stride_k``. That flat shift is exact wherever the source lies inside the grid
along axes ``1..d-1``; where it would wrap into the neighbouring row/plane the source value is
multiplied by a 0/1 *mask* that zeroes exactly the points no valid destination can reach. Axis 0
needs no mask: a zero margin of ``pad = sum_k stride_k`` points on both ends of the per-channel
buffer absorbs every read that leaves the image. So each input channel is copied once into
``3**(d-1)`` masked, margin-padded rows and every tap is a contiguous, unit-stride read.

Taps are grouped as ``(group g, last-axis tap t)``: ``g`` enumerates the offsets of axes
``0..d-2`` in C order and ``t = o_{d-1} + 1``, which matches ``K.reshape(C_out, C_in, G, 3)``.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

__all__ = ["StencilGeometry", "stencil_geometry"]


class StencilGeometry:
    """Tables for a 3-wide stencil on one spatial shape (read-only arrays).

    Attributes
    ----------
    spatial : tuple of int
        The spatial shape.
    size : int
        ``P``, the number of grid points.
    pad : int
        Zero margin (points) on each end of a channel buffer.
    masks : ndarray, shape (M, P), float32 and float64 copies in ``masks_by_dtype``
        ``M = 3**(d-1)`` 0/1 masks; mask ``m`` enumerates offsets of axes ``1..d-1``.
    shift : ndarray of int64, shape (G,)
        Buffer index of the centre tap of group ``g`` for destination ``p = 0``.
    tap_mask : ndarray of int64, shape (G, 3)
        Mask row read by tap ``(g, t)``.
    """

    def __init__(self, spatial: tuple):
        self.spatial = tuple(int(n) for n in spatial)
        dim = len(self.spatial)
        self.size = int(np.prod(self.spatial))
        strides = [int(np.prod(self.spatial[k + 1 :])) for k in range(dim)]
        self.pad = sum(strides)
        inner_offsets = list(itertools.product((-1, 0, 1), repeat=dim - 1))
        index = np.indices(self.spatial).reshape(dim, -1)
        masks = np.ones((len(inner_offsets), self.size))
        for m, offsets in enumerate(inner_offsets):
            for axis, offset in zip(range(1, dim), offsets, strict=True):
                destination = index[axis] - offset
                masks[m] *= (destination >= 0) & (destination < self.spatial[axis])
        group_offsets = list(itertools.product((-1, 0, 1), repeat=dim - 1))
        self.shift = np.array(
            [
                self.pad + sum(o * strides[k] for k, o in enumerate(offsets))
                for offsets in group_offsets
            ],
            dtype=np.int64,
        )
        tap_mask = np.zeros((len(group_offsets), 3), dtype=np.int64)
        for g, offsets in enumerate(group_offsets):
            for t, last in enumerate((-1, 0, 1)):
                full = offsets + (last,)
                tap_mask[g, t] = inner_offsets.index(full[1:]) if dim > 1 else 0
        self.tap_mask = tap_mask
        self.masks_by_dtype = {np.dtype(dt): masks.astype(dt) for dt in (np.float32, np.float64)}
        for array in (self.shift, self.tap_mask, *self.masks_by_dtype.values()):
            array.setflags(write=False)

    @property
    def n_groups(self) -> int:
        """``G = 3**(d-1)``, the number of tap groups."""
        return self.shift.shape[0]


@lru_cache(maxsize=32)
def stencil_geometry(spatial: tuple) -> StencilGeometry:
    """Cached :class:`StencilGeometry` for a spatial shape (a tuple of ints)."""
    return StencilGeometry(spatial)
