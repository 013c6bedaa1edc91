"""Small images side by side in one pass of the convolution kernels: every image's result is
bitwise the one it gets alone, whatever its neighbours, its place in the pass and the twin."""

import numpy as np
import pytest

from pdecontrol.ops import (
    conv,
    residual_adjoint,
    residual_linearize,
    residual_step,
    residual_tangent,
    use_serial_kernels,
)
from pdecontrol.ops._geometry import stencil_geometry
from pdecontrol.ops._kernels import VECTOR_POINTS, images_per_pass, pass_points


def test_images_per_pass_and_the_points_of_a_pass():
    passes = {shape: images_per_pass(stencil_geometry(shape).size, stencil_geometry(shape).pad)
              for shape in [(28, 28), (14, 14), (7, 7), (5,), (5, 6, 4)]}
    assert passes[(28, 28)] == 1 and passes[(14, 14)] == 4 and passes[(7, 7)] == 14
    for shape, group in passes.items():
        geometry = stencil_geometry(shape)
        points = pass_points(geometry.size, geometry.pad, group)
        span = (group - 1) * (geometry.size + geometry.pad) + geometry.size
        assert points % VECTOR_POINTS == 0 and span <= points < span + VECTOR_POINTS


def _results(y, dy, K, b):
    """conv, residual step, tangent and the adjoint's y_bar, each per image."""
    out, lin = residual_linearize(y, K, b, dt=0.3, activation="tanh", skip=True)
    return [conv(y, K, b), residual_step(y, K, b, dt=0.3), out, lin.derivative,
            residual_tangent(lin, dy, 0.5 * K, None), residual_adjoint(lin, dy)[0]]


@pytest.mark.parametrize("serial", [True, False])
@pytest.mark.parametrize(("shape", "n_images"), [((14, 14), 37), ((7, 7), 800), ((9, 7), 23),
                                                 ((5,), 41), ((5, 6, 4), 9)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_image_gets_what_it_gets_alone(shape, n_images, dtype, serial):
    rng = np.random.default_rng(len(shape) + n_images)
    channels = 3
    y = rng.standard_normal((n_images, channels) + shape).astype(dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    K = (0.4 * rng.standard_normal((channels, channels) + (3,) * len(shape))).astype(dtype)
    b = rng.standard_normal(channels).astype(dtype)
    previous = use_serial_kernels(serial)
    try:
        batch = _results(y, dy, K, b)
        order = rng.permutation(n_images)  # other neighbours, other places in a pass
        shuffled = _results(y[order], dy[order], K, b)
        alone = [_results(y[n:n + 1], dy[n:n + 1], K, b) for n in (0, n_images // 2, n_images - 1)]
        poisoned = y.copy()
        poisoned[0] = np.nan  # a neighbour's values never reach another image
        dirty = _results(poisoned, dy, K, b)
    finally:
        use_serial_kernels(previous)
    for whole, reordered, dirty_whole in zip(batch, shuffled, dirty, strict=True):
        np.testing.assert_array_equal(reordered, whole[order])
        np.testing.assert_array_equal(dirty_whole[1:], whole[1:])
    for n, single in zip((0, n_images // 2, n_images - 1), alone, strict=True):
        for whole, one in zip(batch, single, strict=True):
            np.testing.assert_array_equal(one[0], whole[n])
