"""Losses: Taylor tests of gradients and Hessian actions, PSD, stability, target checks."""
import numpy as np
import pytest

from pdecontrol.control import LeastSquaresLoss, SoftmaxCrossEntropyLoss
from pdecontrol.verify import adjoint_test, taylor_test_map

LOSSES = [LeastSquaresLoss(), SoftmaxCrossEntropyLoss()]


def _targets(rng, shape):
    return np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_gradient_and_hessian_taylor(loss, rng):
    z = rng.standard_normal((6, 4))
    c = _targets(rng, z.shape)
    flat = z.reshape(-1)
    value = taylor_test_map(lambda v: loss.value(v.reshape(z.shape), c),
                            lambda dv: np.dot(loss.gradient(z, c).reshape(-1), dv), flat, rng=rng)
    assert value.passed, value
    assert np.nanmin(value.orders) > 1.9
    hessian = taylor_test_map(lambda v: loss.gradient(v.reshape(z.shape), c),
                              lambda dv: loss.hessian_product(z, c, dv.reshape(z.shape)), flat,
                              rng=rng)
    assert hessian.passed, hessian


@pytest.mark.parametrize("loss", LOSSES, ids=repr)
def test_hessian_symmetric_psd(loss, rng):
    z = rng.standard_normal((5, 3))
    c = _targets(rng, z.shape)
    def apply(v):
        return loss.hessian_product(z, c, v)
    assert adjoint_test(apply, apply, z.shape, z.shape, rng=rng).relative_error < 1e-12
    for _ in range(3):
        v = rng.standard_normal(z.shape)
        assert np.vdot(v, apply(v)) >= -1e-14


def test_least_squares_value():
    z = np.array([[1.0, 2.0], [0.0, 0.0]])
    c = np.array([[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(LeastSquaresLoss().per_example(z, c), [2.5, 1.0])
    assert LeastSquaresLoss().value(z, c) == pytest.approx(3.5)


def test_cross_entropy_is_stable_and_correct(rng):
    loss = SoftmaxCrossEntropyLoss()
    z = np.array([[1000.0, 0.0, -1000.0]])
    c = np.array([[0.0, 1.0, 0.0]])
    assert loss.value(z, c) == pytest.approx(1000.0)
    assert np.all(np.isfinite(loss.gradient(z, c)))
    z = rng.standard_normal((4, 3))
    c = _targets(rng, z.shape)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(loss.per_example(z, c), -np.log((p * c).sum(axis=1)))


def test_target_checks():
    with pytest.raises(ValueError, match="non-finite"):
        LeastSquaresLoss().check_targets(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="non-negative"):
        SoftmaxCrossEntropyLoss().check_targets(-np.ones((2, 3)))
    with pytest.raises(ValueError, match="one-hot"):
        SoftmaxCrossEntropyLoss().check_targets(np.ones(3))
    with pytest.raises(ValueError, match="must match"):
        LeastSquaresLoss().value(np.zeros((2, 3)), np.zeros((2, 4)))
