"""Activations of pdecontrol.ops: values, derivatives (Taylor), dtypes, errors."""

import numba
import numpy as np
import pytest

from pdecontrol.ops import ACTIVATION_NAMES, SMOOTH_RELU_ETA, Activation, get_activation
from pdecontrol.ops._dispatch import SERIAL_BELOW_ELEMENTS
from pdecontrol.ops.activations import _activate_array


def reference(name, a):
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    eta = SMOOTH_RELU_ETA
    return np.where(a >= eta, a, np.where(a <= -eta, 0.0, (a + eta) ** 2 / (4 * eta)))


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_values_match_reference_float64(rng, name):
    a = np.concatenate([rng.standard_normal(200) * 3, [-0.1, 0.1, 0.0, -0.05, 0.05]]).reshape(5, 41)
    value, derivative = get_activation(name).value_and_derivative(a)
    assert value.shape == a.shape and value.dtype == np.float64
    np.testing.assert_allclose(value, reference(name, a), rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(get_activation(name)(a), value)
    np.testing.assert_array_equal(get_activation(name).derivative(a), derivative)


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_float32_keeps_dtype_and_is_accurate(name):
    a = np.linspace(-12, 12, 100001, dtype=np.float32)
    value, derivative = get_activation(name).value_and_derivative(a)
    assert value.dtype == np.float32 and derivative.dtype == np.float32
    exact = reference(name, a.astype(np.float64))
    # smooth_relu's quadratic piece is computed in float32 from eta = float32(0.1): absolute error
    atol = 1e-7 if name == "smooth_relu" else 0.0
    np.testing.assert_allclose(value, exact, rtol=4e-7, atol=atol)


def test_small_arrays_take_the_serial_path(twin_picks):
    tanh = get_activation("tanh")
    tanh(np.ones((8, 32)))
    tanh.derivative(np.ones(SERIAL_BELOW_ELEMENTS - 1))
    tanh.value_and_derivative(np.ones(SERIAL_BELOW_ELEMENTS))
    large = "parallel" if numba.get_num_threads() > 1 else "serial"
    assert twin_picks == [(_activate_array, path) for path in ("serial", "serial", large)]


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_paths_are_bitwise_equal(rng, force_twin, name, dtype):
    a = (3 * rng.standard_normal((5, 201))).astype(dtype)
    a[0, :4] = [-SMOOTH_RELU_ETA, 0.0, SMOOTH_RELU_ETA, 0.05]
    results = []
    for path in ("serial", "parallel"):
        force_twin(path, _activate_array)
        results.append(get_activation(name).value_and_derivative(a))
    for serial, parallel in zip(*results, strict=True):
        np.testing.assert_array_equal(serial, parallel)


@pytest.mark.parametrize("name", ["tanh", "smooth_relu"])
def test_derivative_taylor_order_two(rng, name):
    # |sigma(a + e v) - sigma(a) - e sigma'(a) v| must fall as e^2 (C^1 activations)
    act = get_activation(name)
    a = rng.standard_normal(500)
    v = rng.standard_normal(500)
    steps = 2.0 ** -np.arange(4, 10)
    remainders = [
        np.linalg.norm(act(a + e * v) - act(a) - e * act.derivative(a) * v) for e in steps
    ]
    order = np.polyfit(np.log(steps), np.log(remainders), 1)[0]
    assert order > 1.9, order


def test_relu_derivative_is_step_function():
    a = np.array([-1.0, 0.0, 1e-300, 2.0])
    np.testing.assert_array_equal(get_activation("relu").derivative(a), [0.0, 0.0, 1.0, 1.0])


def test_smooth_relu_is_continuously_differentiable_at_the_joints():
    eta = SMOOTH_RELU_ETA
    a = np.array([-eta, np.nextafter(-eta, 0), np.nextafter(eta, 0), eta])
    value, derivative = get_activation("smooth_relu").value_and_derivative(a)
    np.testing.assert_allclose(value, [0, 0, eta, eta], atol=1e-15)
    np.testing.assert_allclose(derivative, [0, 0, 1, 1], atol=1e-14)


def test_get_activation_errors_and_identity():
    act = get_activation("tanh")
    assert get_activation(act) is act and act == Activation("tanh")
    with pytest.raises(ValueError, match="activation must be one of"):
        get_activation("sigmoid")
    with pytest.raises(TypeError, match="activation must be a name"):
        get_activation(3)
