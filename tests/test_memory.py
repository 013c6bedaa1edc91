"""pdecontrol.memory.aligned_empty: arrays on a cache line, and what alignment does (speed only)."""

import numpy as np
import pytest

from pdecontrol.memory import CACHE_LINE, aligned_empty
from pdecontrol.ops import feature_outputs, feature_pullback, softmax_curvature_product


@pytest.mark.parametrize("shape, dtype", [((7, 5), np.float32), (3, np.float64),
                                          ((2, 3, 4), np.int16), ((1, 1), np.complex128)])
def test_aligned_empty_starts_on_a_cache_line(shape, dtype):
    for _ in range(20):  # different allocations land at different offsets
        a = aligned_empty(shape, dtype)
        assert a.ctypes.data % CACHE_LINE == 0
        assert a.shape == ((shape,) if np.isscalar(shape) else shape) and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        a[...] = 1  # the whole array is backed by its buffer
        assert np.all(a == 1)


def off_line(array, offset: int) -> np.ndarray:
    """A copy of ``array`` whose data starts ``offset`` bytes past a cache line."""
    raw = np.empty(array.nbytes + 2 * CACHE_LINE, np.uint8)
    start = -raw.ctypes.data % CACHE_LINE + offset
    copy = raw[start:start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    assert copy.ctypes.data % CACHE_LINE == offset
    return copy


@pytest.mark.parametrize("offset", [4, 16, 48])
def test_feature_products_do_not_depend_on_the_alignment(offset):
    rng = np.random.default_rng(0)
    s, p, k = 700, 64, 10
    F = aligned_empty((s, p), np.float32)
    F[...] = rng.standard_normal((s, p))
    G = off_line(F, offset)
    P = rng.random((s, k))
    P /= P.sum(axis=1, keepdims=True)
    V, U = rng.standard_normal((k, p)), rng.standard_normal((s, k))
    for product in (lambda X: softmax_curvature_product(X, P, V)[0],
                    lambda X: feature_outputs(X, V), lambda X: feature_pullback(X, U)):
        np.testing.assert_array_equal(product(F), product(G))
