"""Observations at several times within one forward sweep, and weighted least squares."""

import numpy as np
import pytest

from pdecontrol.control import RK4, ControlFunctional, LeastSquaresLoss
from pdecontrol.verify import gauss_newton_test, taylor_test
from test_control_functional import LAYOUT, N_IN, N_OUT, T, TanhNetwork, make_point

TIMES = (0.0, 0.48, 0.72, T)  # steps 0, 2, 3, 5 of dt = 0.24


def _functional(rng, times, targets, **options):
    data = np.random.default_rng(5).standard_normal((7, N_IN))
    return ControlFunctional(TanhNetwork(options.pop("loss", None)), LAYOUT, data, targets,
                             final_time=T, observation_times=times, **options)


@pytest.fixture
def targets(rng):
    return rng.standard_normal((7, N_OUT * len(TIMES)))


def test_several_times_equal_the_sum_of_one_time_functionals(rng, targets):
    together = _functional(rng, TIMES, targets, stepper=RK4)
    assert together.observation_steps == (0, 2, 3, 5)
    x = make_point(rng)
    singles = [_functional(rng, (t,), targets[:, k * N_OUT:(k + 1) * N_OUT], stepper=RK4)
               for k, t in enumerate(TIMES)]
    value, gradient = together.value_and_gradient(x)
    assert value == pytest.approx(sum(J.value(x) for J in singles), rel=1e-13)
    np.testing.assert_allclose(gradient, sum(J.gradient(x) for J in singles), rtol=1e-11,
                               atol=1e-14)
    v = rng.standard_normal(x.size)
    np.testing.assert_allclose(together.gauss_newton_product(x, v),
                               sum(J.gauss_newton_product(x, v) for J in singles), rtol=1e-11,
                               atol=1e-14)
    assert together.forward(x).outputs.shape == (7, N_OUT * len(TIMES))


def test_derivatives_are_exact_with_and_without_checkpointing(rng, targets):
    weights = np.tile([1.0, 0.5, 2.0], len(TIMES))
    plain = _functional(rng, TIMES, targets, loss=LeastSquaresLoss(weights))
    stored = _functional(rng, TIMES, targets, loss=LeastSquaresLoss(weights), checkpoint_every=2)
    x = make_point(rng)
    assert taylor_test(plain, x, rng=rng).passed
    assert gauss_newton_test(plain, x, rng=rng).passed
    a, b = plain.value_and_gradient(x), stored.value_and_gradient(x)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    v = rng.standard_normal(x.size)
    np.testing.assert_array_equal(plain.gauss_newton_product(x, v),
                                  stored.gauss_newton_product(x, v))


def test_weighted_least_squares_scales_each_output(rng, targets):
    x = make_point(rng)
    unit = _functional(rng, TIMES, targets)
    doubled = _functional(rng, TIMES, targets, loss=LeastSquaresLoss(2.0))
    assert doubled.value(x) == pytest.approx(2 * unit.value(x), rel=1e-14)
    with pytest.raises(ValueError, match="positive"):
        LeastSquaresLoss([1.0, -1.0])
    with pytest.raises(ValueError, match="has 2 weights, but the outputs have 12"):
        _functional(rng, TIMES, targets, loss=LeastSquaresLoss([1.0, 2.0])).value(x)


def test_observation_times_must_lie_on_the_grid(rng, targets):
    with pytest.raises(ValueError, match="observation time 0.5 is not on the time grid of 5 steps"):
        _functional(rng, (0.5, T), targets)
    with pytest.raises(ValueError, match="not on the time grid"):
        _functional(rng, (T + 0.24,), targets)
    with pytest.raises(ValueError, match="increasing"):
        _functional(rng, (0.48, 0.24), targets)
    with pytest.raises(ValueError, match="over 4 observation time"):
        _functional(rng, TIMES, targets[:, :3]).value(make_point(rng))
