"""Regularisers: values against direct formulas, Taylor tests, exact symmetric PSD Hessians."""
import numpy as np
import pytest

from pdecontrol.control import (
    GradientPenalty,
    ParameterLayout,
    QuadraticPenalty,
    Tikhonov,
    TimeSmoothness,
)
from pdecontrol.verify import adjoint_test, taylor_test_map

T = 2.0


@pytest.fixture
def layout():
    return ParameterLayout(5, controls={"K": (2, 3, 3)}, static={"W": (4, 3)},
                           block_weights={"W": 0.5})


def _regularizers(rng):
    return [
        Tikhonov("W", 0.7, reference=rng.standard_normal((4, 3))),
        Tikhonov("K", 0.3),
        TimeSmoothness("K", 1.3, final_time=T),
        QuadraticPenalty("K", 0.9, rng.standard_normal((4, 9))),
        GradientPenalty("W", 0.8, (0.25, 0.5)),
    ]


def test_values_match_direct_formulas(layout, rng):
    p = layout.random(rng)
    tik_w, tik_k, smooth, quad, grad = _regularizers(rng)
    assert tik_w.value(p) == pytest.approx(0.7 / 2 * 0.5 * np.sum((p["W"] - tik_w.reference) ** 2))
    assert tik_k.value(p) == pytest.approx(0.3 / 2 * np.sum(p["K"] ** 2))
    dt = T / 5
    assert smooth.value(p) == pytest.approx(
        1.3 / 2 * sum(dt * np.sum(((p["K"][j + 1] - p["K"][j]) / dt) ** 2) for j in range(4)))
    expected = sum(np.sum((quad.matrix @ p["K"][j, i].reshape(9)) ** 2)
                   for j in range(5) for i in range(2))
    assert quad.value(p) == pytest.approx(0.9 / 2 * expected)
    w = p["W"]
    expected = np.sum((np.diff(w, axis=0) / 0.25) ** 2) + np.sum((np.diff(w, axis=1) / 0.5) ** 2)
    assert grad.value(p) == pytest.approx(0.8 / 2 * 0.5 * expected)


def test_gradient_penalty_is_the_h1_seminorm_of_a_smooth_field():
    """For m = sin(pi x) cos(pi y) on [0, 1]^2: alpha/2 int |grad m|^2 = alpha pi^2 / 4."""
    n = 256
    h = 1.0 / (n - 1)
    x = np.linspace(0.0, 1.0, n)
    field = np.sin(np.pi * x)[:, None] * np.cos(np.pi * x)[None, :]
    layout = ParameterLayout(1, controls={}, static={"m": (n, n)}, block_weights={"m": h * h})
    params = layout.from_blocks({"m": field})
    value = GradientPenalty("m", 2.0, (h, h)).value(params)
    assert value == pytest.approx(np.pi**2 / 2, rel=1e-2)
    assert GradientPenalty("m", 2.0, (h, h)).value(layout.from_blocks({"m": np.ones((n, n))})) == 0


def test_every_regularizer_applies_the_block_weight(layout, rng):
    """On W (weight 0.5) a QuadraticPenalty with B = I is the Tikhonov term: alpha/2 w |W|^2."""
    p = layout.random(rng)
    quad, tik = QuadraticPenalty("W", 0.7, np.eye(3)), Tikhonov("W", 0.7)
    assert quad.value(p) == pytest.approx(tik.value(p)) == pytest.approx(
        0.7 / 2 * 0.5 * np.sum(p["W"] ** 2))
    np.testing.assert_allclose(quad.gradient(p)["W"], tik.gradient(p)["W"], rtol=1e-14)


@pytest.mark.parametrize("index", range(5))
def test_gradient_taylor_and_exact_hessian(layout, rng, index):
    reg = _regularizers(rng)[index]
    p = layout.random(rng)
    x = p.flat.copy()
    block = layout.slices[reg.block]
    def grad(v):
        return reg.gradient(layout.unflatten(v))[reg.block].reshape(-1)
    result = taylor_test_map(lambda v: reg.value(layout.unflatten(v)),
                             lambda dv: np.dot(grad(x), dv[block]), x, rng=rng)
    assert result.passed, result
    assert np.nanmin(result.orders) > 1.9
    # quadratic: the gradient is affine, so grad(x + v) - grad(x) equals H v exactly
    v = rng.standard_normal(layout.size)
    hv = reg.hessian_product(p, layout.unflatten(v))[reg.block].reshape(-1)
    np.testing.assert_allclose(grad(x + v) - grad(x), hv, rtol=1e-10, atol=1e-12)
    shape = layout.shapes[reg.block]
    def apply(u):
        return reg.hessian_block(u, layout)
    assert adjoint_test(apply, apply, shape, shape, rng=rng).passed
    assert np.vdot(v[block], hv) >= 0


@pytest.mark.parametrize("n_steps", [5, 10])
def test_time_smoothness_takes_dt_from_the_layout(n_steps):
    """A ramp from 0 to 1 over n values:
    alpha/2 * sum_j dt (1/((n-1) dt))^2 = alpha/2 / ((n-1) dt)."""
    smooth = TimeSmoothness("K", 1.0, final_time=T)
    layout = ParameterLayout(n_steps, controls={"K": (2, 3, 3)})
    p = layout.zeros()
    p["K"][...] = np.linspace(0, 1, n_steps)[:, None, None, None]
    dt = T / n_steps
    assert smooth.value(p) == pytest.approx(0.5 * 18 / ((n_steps - 1) * dt))


def test_errors(layout):
    with pytest.raises(ValueError, match="alpha"):
        Tikhonov("W", -1.0)
    with pytest.raises(ValueError, match="does not have"):
        Tikhonov("Q", 1.0).check_layout(layout)
    with pytest.raises(ValueError, match="static"):
        TimeSmoothness("W", 1.0, final_time=1.0).check_layout(layout)
    with pytest.raises(ValueError, match="final_time"):
        TimeSmoothness("K", 1.0, final_time=0.0)
    with pytest.raises(ValueError, match="trailing axes"):
        QuadraticPenalty("K", 1.0, np.ones((2, 7))).check_layout(layout)
    with pytest.raises(ValueError, match="shape"):
        Tikhonov("W", 1.0, reference=np.zeros(3)).check_layout(layout)
