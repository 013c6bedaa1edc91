"""Fused residual step of pdecontrol.ops: reference, tangent/adjoint, Taylor tests, errors."""

import numba
import numpy as np
import pytest

from pdecontrol.ops import (
    ResidualLinearization,
    conv,
    conv_kernel_gradient,
    conv_transpose,
    get_activation,
    residual_adjoint,
    residual_linearize,
    residual_step,
    residual_tangent,
)
from pdecontrol.ops._gradient_kernels import adjoint_driver, kernel_gradient_driver
from pdecontrol.ops._kernels import conv_driver

SHAPES = [(2, 3, 9), (2, 5, 6, 7), (2, 2, 4, 3, 5)]  # (N, C, *spatial) in 1D, 2D, 3D


def random_layer(rng, shape, dtype=np.float64):
    dim = len(shape) - 2
    y = rng.standard_normal(shape).astype(dtype)
    K = (0.3 * rng.standard_normal((shape[1], shape[1]) + (3,) * dim)).astype(dtype)
    b = (0.1 * rng.standard_normal(shape[1])).astype(dtype)
    return y, K, b


def random_direction(rng, y, K):
    return (
        rng.standard_normal(y.shape),
        rng.standard_normal(K.shape),
        rng.standard_normal(K.shape[0]),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["tanh", "relu", "smooth_relu"])
@pytest.mark.parametrize("skip", [True, False])
def test_step_matches_composition(rng, shape, name, skip):
    y, K, b = random_layer(rng, shape)
    expected = 0.7 * get_activation(name)(conv(y, K, b)) + (y if skip else 0)
    out, lin = residual_linearize(y, K, b, dt=0.7, activation=name, skip=skip)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(residual_step(y, K, b, 0.7, name, skip), out)
    np.testing.assert_allclose(
        lin.derivative, get_activation(name).derivative(conv(y, K, b)), atol=1e-15
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_paths_are_bitwise_equal(rng, force_twin, shape, dtype):
    y, K, b = random_layer(rng, shape, dtype)
    dy, dK, db = (d.astype(dtype) for d in random_direction(rng, y, K))
    results = []
    for path in ("serial", "parallel"):
        force_twin(path, conv_driver, kernel_gradient_driver)
        out, lin = residual_linearize(y, K, b, dt=0.3, activation="smooth_relu")
        results.append(
            (out, lin.derivative, residual_step(y, K, b), residual_tangent(lin, dy, dK, db),
             *residual_adjoint(lin, dy))
        )
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_float32_step_and_sweeps_keep_dtype(rng):
    y, K, b = random_layer(rng, (3, 4, 28, 28), np.float32)
    out, lin = residual_linearize(y, K, b)
    expected = y.astype(np.float64) + np.tanh(
        conv(y.astype(np.float64), K.astype(np.float64), b.astype(np.float64))
    )
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)
    dy, dK, db = (d.astype(np.float32) for d in random_direction(rng, y, K))
    assert residual_tangent(lin, dy, dK, db).dtype == np.float32
    assert all(r.dtype == np.float32 for r in residual_adjoint(lin, dy))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("skip", [True, False])
def test_adjoint_is_transpose_of_tangent(rng, shape, skip):
    y, K, b = random_layer(rng, shape)
    _, lin = residual_linearize(y, K, b, dt=0.5, activation="tanh", skip=skip)
    dy, dK, db = random_direction(rng, y, K)
    out_bar = rng.standard_normal(y.shape)
    lhs = np.vdot(residual_tangent(lin, dy, dK, db), out_bar)
    y_bar, K_bar, b_bar = residual_adjoint(lin, out_bar)
    rhs = np.vdot(dy, y_bar) + np.vdot(dK, K_bar) + np.vdot(db, b_bar)
    assert abs(lhs - rhs) / abs(lhs) < 1e-10


@pytest.mark.parametrize("channels", [1, 3, 5, 8, 17, 32])
@pytest.mark.parametrize("skip", [True, False])
def test_fused_adjoint_matches_transpose_and_kernel_gradient(rng, channels, skip):
    # one driver does both per image; odd and even channel counts, partial channel blocks
    y, K, b = random_layer(rng, (3, channels, 5, 6))
    _, lin = residual_linearize(y, K, b, dt=0.7, activation="tanh", skip=skip)
    out_bar = rng.standard_normal(y.shape)
    z = lin.derivative * out_bar
    y_bar, K_bar, b_bar = residual_adjoint(lin, out_bar)
    np.testing.assert_allclose(
        y_bar, (out_bar if skip else 0) + 0.7 * conv_transpose(z, K), rtol=0, atol=1e-13
    )
    np.testing.assert_allclose(K_bar, 0.7 * conv_kernel_gradient(y, z), rtol=1e-13, atol=0)
    np.testing.assert_allclose(b_bar, 0.7 * z.sum(axis=(0, 2, 3)), rtol=1e-13, atol=0)


@pytest.mark.parametrize("shape", [(11, 5, 6, 7), (11, 3, 4, 3, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adjoint_twins_are_bitwise_equal(rng, force_twin, shape, dtype):
    y, K, b = random_layer(rng, shape, dtype)
    _, lin = residual_linearize(y, K, b, dt=0.3)
    out_bar = rng.standard_normal(shape).astype(dtype)
    results = []
    for path in ("serial", "parallel"):
        force_twin(path, adjoint_driver)
        results.append(residual_adjoint(lin, out_bar))
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


def test_fused_adjoint_does_not_depend_on_the_thread_count(rng):
    available = numba.config.NUMBA_NUM_THREADS
    if available < 2:
        pytest.skip("Numba runs one thread here: nothing to compare")
    y, K, b = random_layer(rng, (300, 4, 12, 12))
    _, lin = residual_linearize(y, K, b)
    out_bar = rng.standard_normal(y.shape)
    previous = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, 2, available}):
            numba.set_num_threads(threads)
            results.append(residual_adjoint(lin, out_bar))
    finally:
        numba.set_num_threads(previous)
    for result in results[1:]:
        for array, first in zip(result, results[0], strict=True):
            np.testing.assert_array_equal(array, first)


def test_tangent_with_omitted_directions_is_zero_filled(rng):
    y, K, b = random_layer(rng, SHAPES[1])
    _, lin = residual_linearize(y, K, b)
    dy, dK, db = random_direction(rng, y, K)
    np.testing.assert_allclose(
        residual_tangent(lin, dy=dy), residual_tangent(lin, dy, 0 * dK, 0 * db), atol=1e-14
    )
    np.testing.assert_allclose(
        residual_tangent(lin, dK=dK), residual_tangent(lin, 0 * dy, dK, 0 * db), atol=1e-14
    )
    np.testing.assert_allclose(
        residual_tangent(lin, db=db), residual_tangent(lin, 0 * dy, 0 * dK, db), atol=1e-14
    )
    np.testing.assert_array_equal(residual_tangent(lin), np.zeros_like(y))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["tanh", "smooth_relu"])
def test_step_taylor_order_two(rng, shape, name):
    y, K, b = random_layer(rng, shape)
    out, lin = residual_linearize(y, K, b, dt=0.5, activation=name)
    dy, dK, db = random_direction(rng, y, K)
    tangent = residual_tangent(lin, dy, dK, db)
    # small steps: smooth_relu is only C^1, so few points may cross a joint between two steps
    steps = 2.0 ** -np.arange(10, 16)
    remainders = [
        np.linalg.norm(
            residual_step(y + e * dy, K + e * dK, b + e * db, 0.5, name) - out - e * tangent
        )
        for e in steps
    ]
    order = np.polyfit(np.log(steps), np.log(remainders), 1)[0]
    assert order > 1.9, order


def test_bad_inputs_raise_clear_errors(rng):
    y, K, b = random_layer(rng, SHAPES[1])
    with pytest.raises(ValueError, match="output channels"):
        residual_step(y, K[:2], b)
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        residual_step(y, K, b, dt=0.0)
    with pytest.raises(ValueError, match="activation must be one of"):
        residual_step(y, K, b, activation="sigmoid")
    _, lin = residual_linearize(y, K, b)
    assert isinstance(lin, ResidualLinearization)
    with pytest.raises(TypeError, match="linearization must be the ResidualLinearization"):
        residual_tangent((y, K), dy=y)
    with pytest.raises(ValueError, match="dy must have the shape of y"):
        residual_tangent(lin, dy=y[:1])
    with pytest.raises(TypeError, match="out_bar has dtype float32"):
        residual_adjoint(lin, y.astype(np.float32))


def test_documented_control_problem_wiring_passes_verify_problem(rng):
    # The rhs hooks of docs/operators.md, plugged into the control framework (skip=False, dt=1).
    from pdecontrol.control import (
        ControlFunctional,
        ControlProblem,
        LeastSquaresLoss,
        ParameterLayout,
    )
    from pdecontrol.verify import verify_problem

    class ConvResNet(ControlProblem):
        def linearize(self, y, control, static, t):
            return residual_linearize(y, control["K"], control["b"], skip=False)

        def rhs(self, y, control, static, t):
            return residual_step(y, control["K"], control["b"], skip=False)

        def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
            cache = cache or self.linearize(y, control, static, t)[1]
            return residual_tangent(cache, dy, dcontrol["K"], dcontrol["b"])

        def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
            cache = cache or self.linearize(y, control, static, t)[1]
            y_bar, K_bar, b_bar = residual_adjoint(cache, f_bar)
            return y_bar, {"K": K_bar, "b": b_bar}, {}

    channels, size = 3, 6
    layout = ParameterLayout(2, controls={"K": (channels, channels, 3, 3), "b": (channels,)})
    data = rng.standard_normal((10, channels, size, size))
    targets = rng.standard_normal((10, channels * size * size))
    functional = ControlFunctional(
        ConvResNet(LeastSquaresLoss()), layout, data, targets, final_time=1.0
    )
    report = verify_problem(functional, layout.random(rng, scale=0.3).flat)
    assert report.passed, report
