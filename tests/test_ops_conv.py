"""Convolutions of pdecontrol.ops: scipy reference, adjoint dot-product tests, input errors."""

import numba
import numpy as np
import pytest
from scipy.signal import correlate

from pdecontrol.ops import add_bias, bias_gradient, conv, conv_kernel_gradient, conv_transpose
from pdecontrol.ops._dispatch import SERIAL_BELOW_MULTIPLY_ADDS
from pdecontrol.ops._gradient_kernels import kernel_gradient_driver
from pdecontrol.ops._kernels import conv_driver

# (spatial shape, C_in, C_out): odd and even sizes, channel counts below, at and above the
# 4-channel register block, 1D/2D/3D.
CASES = [
    ((7,), 1, 3),
    ((8,), 3, 4),
    ((5, 6), 2, 5),
    ((6, 6), 4, 8),
    ((28, 28), 1, 4),
    ((4, 5, 3), 3, 2),
    ((4, 4, 4), 2, 6),
]
ADJOINT_TOL = 1e-10


def reference_conv(x, K, b=None):
    """Explicit correlation with zero 'same' padding via scipy.signal.correlate (float64)."""
    n_images, n_out = x.shape[0], K.shape[0]
    y = np.zeros((n_images, n_out) + x.shape[2:])
    for n in range(n_images):
        for o in range(n_out):
            for c in range(x.shape[1]):
                y[n, o] += correlate(
                    x[n, c].astype(np.float64), K[o, c].astype(np.float64), mode="same"
                )
            if b is not None:
                y[n, o] += b[o]
    return y


def random_case(rng, spatial, c_in, c_out, n_images=3, dtype=np.float64):
    x = rng.standard_normal((n_images, c_in) + spatial).astype(dtype)
    K = rng.standard_normal((c_out, c_in) + (3,) * len(spatial)).astype(dtype)
    b = rng.standard_normal(c_out).astype(dtype)
    return x, K, b


@pytest.mark.parametrize("spatial, c_in, c_out", CASES)
def test_conv_matches_scipy_correlate_float64(rng, spatial, c_in, c_out):
    x, K, b = random_case(rng, spatial, c_in, c_out)
    y = conv(x, K, b)
    assert y.dtype == np.float64 and y.shape == (3, c_out) + spatial
    np.testing.assert_allclose(y, reference_conv(x, K, b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("spatial, c_in, c_out", [CASES[1], CASES[2], CASES[5]])
def test_conv_float32_keeps_dtype_and_matches(rng, spatial, c_in, c_out):
    x, K, b = random_case(rng, spatial, c_in, c_out, dtype=np.float32)
    y = conv(x, K, b)
    assert y.dtype == np.float32
    scale = np.abs(reference_conv(np.abs(x), np.abs(K))).max()
    np.testing.assert_allclose(y, reference_conv(x, K, b), rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("channels", [1, 3, 5, 8, 17, 32])
def test_conv_and_transpose_match_scipy_for_any_channel_count(rng, channels):
    # input channels are taken in pairs plus an odd last one, output channels in blocks of 4
    # plus a partial block: counts below, at and above both
    x, K, b = random_case(rng, (5, 6), channels, channels, n_images=2)
    np.testing.assert_allclose(conv(x, K, b), reference_conv(x, K, b), rtol=0, atol=1e-12)
    y_bar = rng.standard_normal(x.shape)
    flipped = np.ascontiguousarray(K[:, :, ::-1, ::-1].swapaxes(0, 1))
    np.testing.assert_allclose(
        conv_transpose(y_bar, K), reference_conv(y_bar, flipped), rtol=0, atol=1e-12
    )


def test_conv_is_independent_of_batch_partitioning(rng, force_twin):
    # Chunks per thread must not leak: a batch equals its images convolved one by one.
    force_twin("parallel", conv_driver)
    x, K, b = random_case(rng, (6, 5), 3, 4, n_images=7)
    batch = conv(x, K, b)
    single = np.concatenate([conv(x[n : n + 1], K, b) for n in range(7)])
    np.testing.assert_array_equal(batch, single)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c_in", [1, 2, 3])
def test_every_point_gets_the_same_sum(rng, c_in, dtype):
    # 40 points: the vectorised loop covers points 0-31, the tail loop 32-39; shifted by 10,
    # interior points move from one loop to the other and must not change in any bit
    x = rng.standard_normal((2, c_in, 40)).astype(dtype)
    K = rng.standard_normal((4, c_in, 3)).astype(dtype)
    shifted = np.zeros_like(x)
    shifted[:, :, 10:] = x[:, :, :30]
    np.testing.assert_array_equal(conv(shifted, K)[:, :, 16:39], conv(x, K)[:, :, 6:29])


def test_small_batches_take_the_serial_path(rng, twin_picks):
    small = rng.standard_normal((2, 3, 5, 6))  # 2 * 3 * 3 * 9 * 30 multiply-adds
    K = rng.standard_normal((3, 3, 3, 3))
    conv(small, K)
    conv_kernel_gradient(small, small)
    # N * C * C * 9 * P = 4 * 8 * 8 * 9 * 256 multiply-adds, above the threshold
    large = rng.standard_normal((4, 8, 16, 16))
    assert 4 * 8 * 8 * 9 * 256 >= SERIAL_BELOW_MULTIPLY_ADDS
    K = rng.standard_normal((8, 8, 3, 3))
    conv(large, K)
    conv_transpose(large, K)
    conv_kernel_gradient(large, large)
    conv(large[:1], K)  # one image: one chunk, nothing to run in parallel
    parallel = "parallel" if numba.get_num_threads() > 1 else "serial"
    assert twin_picks == [
        (conv_driver, "serial"),
        (kernel_gradient_driver, "serial"),
        (conv_driver, parallel),
        (conv_driver, parallel),
        (kernel_gradient_driver, parallel),
        (conv_driver, "serial"),
    ]


@pytest.mark.parametrize("spatial, c_in, c_out", [CASES[1], CASES[3], CASES[6]])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_paths_are_bitwise_equal(rng, force_twin, spatial, c_in, c_out, dtype):
    # same chunks, same per-image code, chunk sums added in the same order
    x, K, b = random_case(rng, spatial, c_in, c_out, n_images=11, dtype=dtype)
    y_bar = rng.standard_normal((11, c_out) + spatial).astype(dtype)
    results = []
    for path in ("serial", "parallel"):
        force_twin(path, conv_driver, kernel_gradient_driver)
        results.append((conv(x, K, b), conv_transpose(y_bar, K), conv_kernel_gradient(x, y_bar)))
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_kernel_gradient_does_not_depend_on_the_thread_count(rng):
    # float64 partial sums per chunk: the same chunks on any number of threads, the same bits
    available = numba.config.NUMBA_NUM_THREADS
    if available < 2:
        pytest.skip("Numba runs one thread here: nothing to compare")
    x = rng.standard_normal((300, 4, 12, 12))
    z = rng.standard_normal((300, 4, 12, 12))
    previous = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, 2, available}):
            numba.set_num_threads(threads)
            results.append(conv_kernel_gradient(x, z))
    finally:
        numba.set_num_threads(previous)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def relative_gap(lhs, rhs):
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs))


@pytest.mark.parametrize("spatial, c_in, c_out", CASES)
def test_conv_transpose_is_adjoint(rng, spatial, c_in, c_out):
    x, K, _ = random_case(rng, spatial, c_in, c_out)
    y_bar = rng.standard_normal((3, c_out) + spatial)
    x_bar = conv_transpose(y_bar, K)
    assert x_bar.shape == x.shape
    assert relative_gap(np.vdot(conv(x, K), y_bar), np.vdot(x, x_bar)) < ADJOINT_TOL


@pytest.mark.parametrize("spatial, c_in, c_out", CASES)
def test_kernel_gradient_is_adjoint_of_conv_in_K(rng, spatial, c_in, c_out):
    x, K, _ = random_case(rng, spatial, c_in, c_out)
    y_bar = rng.standard_normal((3, c_out) + spatial)
    K_bar = conv_kernel_gradient(x, y_bar)
    assert K_bar.shape == K.shape
    assert relative_gap(np.vdot(conv(x, K), y_bar), np.vdot(K, K_bar)) < ADJOINT_TOL


def test_kernel_gradient_float32_matches_float64(rng):
    x, _, _ = random_case(rng, (9, 10), 3, 5, dtype=np.float32)
    y_bar = rng.standard_normal((3, 5, 9, 10)).astype(np.float32)
    K_bar = conv_kernel_gradient(x, y_bar)
    assert K_bar.dtype == np.float32
    exact = conv_kernel_gradient(x.astype(np.float64), y_bar.astype(np.float64))
    np.testing.assert_allclose(K_bar, exact, rtol=0, atol=1e-5 * np.abs(exact).max())


@pytest.mark.parametrize("spatial", [(5,), (4, 7), (3, 4, 5)])
def test_bias_and_bias_gradient_are_adjoint(rng, spatial):
    x = rng.standard_normal((4, 3) + spatial)
    b = rng.standard_normal(3)
    y_bar = rng.standard_normal(x.shape)
    shifted = add_bias(x, b)
    for c in range(3):
        np.testing.assert_array_equal(shifted[:, c], x[:, c] + b[c])
    lhs = np.vdot(add_bias(np.zeros_like(x), b), y_bar)
    assert relative_gap(lhs, np.vdot(b, bias_gradient(y_bar))) < ADJOINT_TOL
    # conv's fused bias is the same affine term
    K = rng.standard_normal((3, 3) + (3,) * len(spatial))
    np.testing.assert_allclose(conv(x, K, b), add_bias(conv(x, K), b), rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: conv(np.zeros((2, 3)), np.zeros((1, 3, 3))),
            r"x must have shape \(N, C, \*spatial\)",
        ),
        (lambda: conv(np.zeros((2, 3, 5, 5)), np.zeros((1, 2, 3, 3))), "input channels"),
        (lambda: conv(np.zeros((2, 3, 5, 5)), np.zeros((1, 3, 5, 5))), "3-wide"),
        (lambda: conv(np.zeros((2, 3, 5, 5)), np.zeros((1, 3, 3))), r"\(C_out, C_in, 3, 3\)"),
        (
            lambda: conv(np.zeros((2, 3, 5)), np.zeros((2, 3, 3)), np.zeros(3)),
            r"b must have shape \(2,\)",
        ),
        (lambda: conv(np.zeros((0, 3, 5)), np.zeros((2, 3, 3))), "empty axis"),
        (lambda: conv_transpose(np.zeros((2, 4, 5)), np.zeros((2, 3, 3))), "output channels"),
        (lambda: conv_kernel_gradient(np.zeros((2, 3, 5)), np.zeros((2, 4, 6))), "spatial shape"),
        (lambda: add_bias(np.zeros((2, 3, 5)), np.zeros(2)), "one bias per channel"),
    ],
)
def test_bad_shapes_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: conv(np.zeros((2, 3, 5), np.float32), np.zeros((2, 3, 3))), "K has dtype float64"),
        (
            lambda: conv(np.zeros((2, 3, 5)), np.zeros((2, 3, 3)), np.zeros(2, np.float32)),
            "b has dtype",
        ),
        (
            lambda: conv_kernel_gradient(np.zeros((2, 3, 5)), np.zeros((2, 4, 5), np.float32)),
            "y_bar has dtype",
        ),
        (lambda: conv(np.array([["a"]]), np.zeros((2, 3, 3))), "x must be a numeric array"),
    ],
)
def test_dtype_mismatch_raises_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()
