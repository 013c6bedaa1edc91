"""conv_least_squares: exact recovery, optimality, the ridge limit, batching, errors."""

import numpy as np
import pytest

from pdecontrol.ops import conv, conv_kernel_gradient, conv_least_squares

SHAPES = {1: (13,), 2: (9, 7), 3: (5, 6, 4)}


def _problem(dim, rng, n_images=4, in_channels=2, out_channels=3):
    x = rng.standard_normal((n_images, in_channels) + SHAPES[dim])
    kernel = rng.standard_normal((out_channels, in_channels) + (3,) * dim)
    bias = rng.standard_normal(out_channels)
    return x, kernel, bias


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_recovers_the_kernels_that_made_the_target(dim):
    rng = np.random.default_rng(dim)
    x, kernel, bias = _problem(dim, rng)
    fitted = conv_least_squares(x, conv(x, kernel, bias), bias=bias)
    assert fitted.dtype == np.float64 and fitted.shape == kernel.shape
    np.testing.assert_allclose(fitted, kernel, rtol=0, atol=1e-10)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_the_fit_solves_the_normal_equations(dim):
    """Half the objective's gradient at the fit, 1/M K-gradient of the residual + ridge (K - K_ref),
    vanishes."""
    rng = np.random.default_rng(10 + dim)
    x, reference, bias = _problem(dim, rng)
    target = rng.standard_normal((x.shape[0], 3) + SHAPES[dim])
    ridge = 0.3
    fitted = conv_least_squares(x, target, bias=bias, reference=reference, ridge=ridge)
    points = x.shape[0] * np.prod(SHAPES[dim])
    residual = conv(x, fitted, bias) - target
    gradient = conv_kernel_gradient(x, residual) / points + ridge * (fitted - reference)
    misfit_scale = np.abs(conv_kernel_gradient(x, target)).max() / points
    assert np.abs(gradient).max() < 1e-12 * misfit_scale
    # a perturbation only raises the objective
    def objective(K):
        return np.sum((conv(x, K, bias) - target) ** 2) / points + ridge * np.sum(
            (K - reference) ** 2)
    assert objective(fitted) < objective(fitted + 1e-3 * rng.standard_normal(fitted.shape))


def test_a_large_ridge_returns_the_reference_and_no_target_the_zero_kernel():
    rng = np.random.default_rng(3)
    x, reference, _ = _problem(2, rng)
    target = rng.standard_normal((x.shape[0], 3) + SHAPES[2])
    fitted = conv_least_squares(x, target, reference=reference, ridge=1e12)
    np.testing.assert_allclose(fitted, reference, atol=1e-9)
    np.testing.assert_array_equal(conv_least_squares(x, np.zeros_like(target), ridge=1.0), 0.0)


def test_batches_and_float32_input_do_not_change_the_fit():
    rng = np.random.default_rng(4)
    x, kernel, bias = _problem(2, rng, n_images=7)
    target = conv(x, kernel, bias) + 0.1 * rng.standard_normal((7, 3) + SHAPES[2])
    whole = conv_least_squares(x, target, bias=bias, ridge=1e-3)
    np.testing.assert_allclose(conv_least_squares(x, target, bias=bias, ridge=1e-3,
                                                  batch_size=2), whole, rtol=1e-12, atol=1e-14)
    single = conv_least_squares(x.astype(np.float32), target.astype(np.float32),
                                bias=bias.astype(np.float32), ridge=1e-3)
    assert single.dtype == np.float64
    np.testing.assert_allclose(single, whole, atol=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": np.zeros((4, 3, 9, 8))}, "target must have shape"),
        ({"target": np.zeros((5, 3, 9, 7))}, "target must have shape"),
        ({"bias": np.zeros(2)}, "bias must have shape"),
        ({"reference": np.zeros((3, 2, 3))}, "reference must have shape"),
        ({"reference": np.zeros((2, 2, 3, 3))}, "reference has 2 output channels"),
        ({"ridge": -1.0}, "ridge must be a finite number >= 0"),
        ({"ridge": float("nan")}, "ridge must be a finite number >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"x": np.zeros((4, 2, 9, 7))}, "singular normal equations"),
    ],
)
def test_bad_input_gets_a_one_line_message(change, message):
    rng = np.random.default_rng(5)
    x, _, _ = _problem(2, rng)
    arguments = {"x": x, "target": np.ones((4, 3, 9, 7))} | change
    with pytest.raises(ValueError, match=message) as error:
        conv_least_squares(arguments.pop("x"), arguments.pop("target"), **arguments)
    assert "\n" not in str(error.value)
