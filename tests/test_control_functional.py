"""ControlFunctional on a nonlinear problem shaped like the CNN (dense layers, no convolutions).

TanhNetwork: y0 = data L^T (static opening L), f = tanh(y K_j^T + b_j) - a * y (per-step K, b;
static damping a), z = y_T W^T (static classifier W). It uses every hook of ControlProblem,
including the linearisation cache.
"""
import numpy as np
import pytest

from pdecontrol.control import (
    EXPLICIT_MIDPOINT,
    FORWARD_EULER,
    RK4,
    ControlFunctional,
    ControlProblem,
    LeastSquaresLoss,
    ParameterLayout,
    QuadraticPenalty,
    SoftmaxCrossEntropyLoss,
    Tikhonov,
    TimeSmoothness,
    integrate,
)
from pdecontrol.verify import adjoint_test, gauss_newton_test, taylor_test, taylor_test_map

N_IN, C, N_OUT, N_STEPS, T = 3, 4, 3, 5, 1.2
STEPPERS = [FORWARD_EULER, EXPLICIT_MIDPOINT, RK4]


class TanhNetwork(ControlProblem):
    def linearize(self, y, control, static, t):
        activation = np.tanh(y @ control["K"].T + control["b"])
        return activation - static["a"] * y, 1.0 - activation ** 2

    def rhs(self, y, control, static, t):
        return self.linearize(y, control, static, t)[0]

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        slope = self.linearize(y, control, static, t)[1] if cache is None else cache
        pre = dy @ control["K"].T + y @ dcontrol["K"].T + dcontrol["b"]
        return slope * pre - dstatic["a"] * y - static["a"] * dy

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        slope = self.linearize(y, control, static, t)[1] if cache is None else cache
        g = slope * f_bar
        y_bar = g @ control["K"] - static["a"] * f_bar
        return y_bar, {"K": g.T @ y, "b": g.sum(axis=0)}, {"a": -np.sum(f_bar * y, axis=0)}

    def initial_state(self, data, static):
        return data @ static["L"].T

    def initial_state_tangent(self, data, static, dstatic):
        return data @ dstatic["L"].T

    def initial_state_adjoint(self, data, static, y0_bar):
        return {"L": y0_bar.T @ data}

    def output(self, y_final, static):
        return y_final @ static["W"].T

    def output_tangent(self, y_final, static, dy_final, dstatic):
        return dy_final @ static["W"].T + y_final @ dstatic["W"].T

    def output_adjoint(self, y_final, static, z_bar):
        return z_bar @ static["W"], {"W": z_bar.T @ y_final}


LAYOUT = ParameterLayout(N_STEPS, controls={"K": (C, C), "b": (C,)},
                         static={"L": (C, N_IN), "a": (C,), "W": (N_OUT, C)},
                         block_weights={"W": 0.5})


def make_functional(rng, loss=None, n_examples=9, **options):
    data = rng.standard_normal((n_examples, N_IN))
    targets = np.eye(N_OUT)[rng.integers(0, N_OUT, n_examples)]
    options.setdefault("final_time", T)
    return ControlFunctional(TanhNetwork(loss), LAYOUT, data, targets, **options)


def make_point(rng):
    return LAYOUT.random(rng, scale=0.6).flat.copy()


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
@pytest.mark.parametrize("loss", [LeastSquaresLoss(), SoftmaxCrossEntropyLoss()], ids=repr)
def test_taylor_and_gauss_newton(stepper, loss, rng):
    regularizers = [Tikhonov("W", 0.1), TimeSmoothness("K", 0.2, final_time=T),
                    QuadraticPenalty("K", 0.3, rng.standard_normal((2, C)))]
    functional = make_functional(rng, loss, stepper=stepper, regularizers=regularizers)
    x = make_point(rng)
    result = taylor_test(functional, x, rng=rng)
    assert result.passed, result
    np.testing.assert_allclose(result.orders, 2.0, atol=0.1)
    gn = gauss_newton_test(functional, x, rng=rng)
    assert gn.passed, gn


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
def test_step_tangent_and_adjoint(stepper, rng):
    """One step's tangent is the derivative of the step (Taylor) and the adjoint its transpose."""
    problem = TanhNetwork()
    p = LAYOUT.random(rng, scale=0.6)
    y = rng.standard_normal((2, C))
    control, static = p.control_at(1), p.static
    sizes = [y.size] + [v.size for v in control.values()] + [v.size for v in static.values()]
    names = [None] + list(control) + list(static)
    shapes = [y.shape] + [v.shape for v in control.values()] + [v.shape for v in static.values()]

    def split(v):
        parts = np.split(v, np.cumsum(sizes)[:-1])
        out = [part.reshape(shape) for part, shape in zip(parts, shapes, strict=True)]
        return (out[0], dict(zip(names[1:3], out[1:3], strict=True)),
                dict(zip(names[3:], out[3:], strict=True)))

    def step(v):
        yy, cc, ss = split(v)
        return stepper.step(problem, yy, cc, ss, 0.3, 0.25)

    lin = stepper.linearize(problem, y, control, static, 0.3, 0.25)

    def tangent(dv):
        dy, dc, ds = split(dv)
        return stepper.step_tangent(problem, lin, control, static, 0.3, 0.25, dy, dc, ds)

    def adjoint(y_bar):
        c_bar = {k: np.zeros(v.shape) for k, v in control.items()}
        s_bar = {k: np.zeros(v.shape) for k, v in static.items()}
        prev = stepper.step_adjoint(problem, lin, control, static, 0.3, 0.25, y_bar, c_bar, s_bar)
        return np.concatenate([prev.ravel()] + [v.ravel() for v in c_bar.values()]
                              + [v.ravel() for v in s_bar.values()])

    point = np.concatenate([y.ravel()] + [v.ravel() for v in control.values()]
                           + [v.ravel() for v in static.values()])
    assert taylor_test_map(step, tangent, point, rng=rng).passed
    assert adjoint_test(tangent, adjoint, point.shape, y.shape, rng=rng).relative_error < 1e-10


class CountingTanhNetwork(TanhNetwork):
    """TanhNetwork counting its rhs and linearize calls."""

    def __init__(self, loss=None):
        super().__init__(loss)
        self.calls = {"rhs": 0, "linearize": 0}

    def rhs(self, y, control, static, t):
        self.calls["rhs"] += 1
        return TanhNetwork.linearize(self, y, control, static, t)[0]     # not counted as linearize

    def linearize(self, y, control, static, t):
        self.calls["linearize"] += 1
        return super().linearize(y, control, static, t)


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
@pytest.mark.parametrize("mode", [dict(store_linearization=False), dict(checkpoint_every=1),
                                  dict(checkpoint_every=2),
                                  dict(checkpoint_every=2, store_linearization=True),
                                  dict(checkpoint_every=4, store_linearization=True)],
                         ids=["recompute", "checkpoint1", "checkpoint2", "checkpoint2-segments",
                              "checkpoint4-segments"])
def test_derivatives_do_not_depend_on_storage_mode(stepper, mode, rng):
    """Stored vs checkpointed vs stored linearisations: the same operations in the same order,
    so values, gradients and GN products are bit-identical."""
    x = make_point(rng)
    reference = make_functional(np.random.default_rng(1), stepper=stepper, store_linearization=True)
    other = make_functional(np.random.default_rng(1), stepper=stepper, **mode)
    v1, g1 = reference.value_and_gradient(x)
    v2, g2 = other.value_and_gradient(x)
    assert v1 == v2
    np.testing.assert_array_equal(g2, g1)
    d = rng.standard_normal(x.size)
    np.testing.assert_array_equal(other.gauss_newton_product(x, d),
                                  reference.gauss_newton_product(x, d))


@pytest.mark.parametrize("stepper", STEPPERS, ids=lambda s: s.name)
def test_gauss_newton_products_reuse_the_forward_linearization(stepper, rng):
    """One forward + k GN products: n_steps * stages linearize calls, not (2k + 1) times that."""
    k, per_sweep = 3, N_STEPS * stepper.n_stages
    x, directions = make_point(rng), rng.standard_normal((k, LAYOUT.size))
    stored = make_functional(np.random.default_rng(4), stepper=stepper, chunk_size=4)
    assert stored.store_linearization                      # the default when all states are stored
    stored.problem = CountingTanhNetwork()
    operator = stored.gauss_newton_operator(x)
    products = [operator.matvec(d) for d in directions]
    n_chunks = 3                                           # 9 examples in chunks of 4
    assert stored.problem.calls == {"rhs": 0, "linearize": n_chunks * per_sweep}
    stored.problem.calls.update(rhs=0, linearize=0)
    stored.value_and_gradient(x)                           # the gradient reuses the forward's too
    assert stored.problem.calls == {"rhs": 0, "linearize": n_chunks * per_sweep}

    recomputing = make_functional(np.random.default_rng(4), stepper=stepper, chunk_size=4,
                                  store_linearization=False)
    recomputing.problem = CountingTanhNetwork()
    operator = recomputing.gauss_newton_operator(x)
    for d, product in zip(directions, products, strict=True):
        np.testing.assert_array_equal(operator.matvec(d), product)
    assert recomputing.problem.calls == {"rhs": n_chunks * per_sweep,
                                         "linearize": 2 * k * n_chunks * per_sweep}


def test_chunked_equals_unchunked(rng):
    x = make_point(rng)
    whole = make_functional(np.random.default_rng(2))
    chunked = make_functional(np.random.default_rng(2), chunk_size=4)
    examples = np.array([7, 1, 3, 4, 0])
    for ex in (None, examples):
        v1, g1 = whole.value_and_gradient(x, ex)
        v2, g2 = chunked.value_and_gradient(x, ex)
        assert v2 == pytest.approx(v1, rel=1e-14)
        np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-15)
        d = rng.standard_normal(x.size)
        np.testing.assert_allclose(chunked.gauss_newton_product(x, d, ex),
                                   whole.gauss_newton_product(x, d, ex), rtol=1e-12, atol=1e-15)


def test_forward_solves_at_most_forward_chunk_examples_at_a_time(rng, monkeypatch):
    import pdecontrol.control.functional as functional_module

    x = make_point(rng)
    functional = make_functional(np.random.default_rng(2), SoftmaxCrossEntropyLoss())
    whole = functional.forward(x)  # 9 examples: one chunk of FORWARD_CHUNK
    solved = []
    solve = functional._solve
    monkeypatch.setattr(functional, "_solve", lambda *a, **k: solved.append(a[2]) or solve(*a, **k))
    monkeypatch.setattr(functional_module, "FORWARD_CHUNK", 4)
    chunked = functional.forward(x)
    assert [idx.tolist() for idx in solved] == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    np.testing.assert_array_equal(chunked.examples, whole.examples)
    for name in ("final_states", "outputs", "losses"):  # BLAS's last bits depend on the rows
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-14,
                                   atol=1e-15)


def test_final_states_are_the_forward_ones_without_outputs(rng, monkeypatch):
    import pdecontrol.control.functional as functional_module

    x = make_point(rng)
    functional = make_functional(np.random.default_rng(2), SoftmaxCrossEntropyLoss())
    examples = np.array([7, 1, 3, 4, 0, 8])
    # in chunks of 4 for both (the problem's matrix products' last bits depend on the rows)
    monkeypatch.setattr(functional_module, "FORWARD_CHUNK", 4)
    expected = {key: functional.forward(x, ex).final_states
                for key, ex in (("all", None), ("some", examples))}

    def no_output(*args):
        raise AssertionError("final_states computed an output")

    monkeypatch.setattr(functional.problem, "output", no_output)
    for key, ex in (("all", None), ("some", examples)):
        states = functional.final_states(x, ex)
        assert states.dtype == functional.dtype
        np.testing.assert_array_equal(states, expected[key])


def test_subset_equals_functional_on_the_subset(rng):
    full = make_functional(rng, SoftmaxCrossEntropyLoss(), regularizers=[Tikhonov("W", 0.3)])
    examples = np.array([5, 2, 8])
    sub = ControlFunctional(full.problem, LAYOUT, full.data[examples], full.targets[examples],
                            final_time=T, regularizers=[Tikhonov("W", 0.3)])
    x = make_point(rng)
    v1, g1 = full.value_and_gradient(x, examples)
    v2, g2 = sub.value_and_gradient(x)
    assert v1 == pytest.approx(v2, rel=1e-14)
    np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-15)
    d = rng.standard_normal(x.size)
    np.testing.assert_allclose(full.gauss_newton_product(x, d, examples),
                               sub.gauss_newton_product(x, d), rtol=1e-13, atol=1e-15)
    assert full.value(x, examples) == pytest.approx(v1, rel=1e-14)


def test_forward_result_and_unused_controls(rng):
    functional = make_functional(rng)
    x = make_point(rng)
    result = functional.forward(x, np.array([4, 2]))
    assert result.final_states.shape == (2, C) and result.outputs.shape == (2, N_OUT)
    np.testing.assert_array_equal(result.examples, [4, 2])
    assert result.losses.sum() / 2 == pytest.approx(functional.value(x, np.array([4, 2])))
    prediction = functional.forward(x, np.array([4, 2]), final_states=False)
    assert prediction.final_states is None
    for name in ("outputs", "losses", "examples"):  # the same numbers, bit for bit
        np.testing.assert_array_equal(getattr(prediction, name), getattr(result, name))
    # a layout block the problem never reads gets a zero gradient
    layout = ParameterLayout(N_STEPS, controls={"K": (C, C), "b": (C,), "unused": (2,)},
                             static={"L": (C, N_IN), "a": (C,), "W": (N_OUT, C)})
    extra = ControlFunctional(functional.problem, layout, functional.data, functional.targets,
                              final_time=T)
    gradient = layout.unflatten(extra.gradient(layout.random(rng, 0.5).flat))
    assert not np.any(gradient["unused"]) and np.any(gradient["K"])


def test_float32_states_close_to_float64(rng):
    x = make_point(rng)
    f64 = make_functional(np.random.default_rng(3))
    f32 = make_functional(np.random.default_rng(3), dtype=np.float32)
    v64, g64 = f64.value_and_gradient(x)
    v32, g32 = f32.value_and_gradient(x)
    assert isinstance(v32, float) and g32.dtype == np.float64
    assert f32.forward(x).final_states.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_input_errors(rng):
    functional = make_functional(rng)
    x = make_point(rng)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        functional.value(bad)
    with pytest.raises(ValueError, match="length"):
        functional.value(x[:-1])
    data, targets = functional.data.copy(), functional.targets.copy()
    data[0, 0] = np.nan
    with pytest.raises(ValueError, match="data contains"):
        ControlFunctional(TanhNetwork(), LAYOUT, data, targets, final_time=T)
    targets[1, 1] = np.inf
    with pytest.raises(ValueError, match="targets contains"):
        ControlFunctional(TanhNetwork(), LAYOUT, functional.data, targets, final_time=T)
    with pytest.raises(ValueError, match="one row per example"):
        ControlFunctional(TanhNetwork(), LAYOUT, functional.data, functional.targets[:-1],
                          final_time=T)
    with pytest.raises(ValueError, match="final_time"):
        ControlFunctional(TanhNetwork(), LAYOUT, functional.data, functional.targets,
                          final_time=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        make_functional(rng, chunk_size=0)
    with pytest.raises(TypeError, match="store_linearization"):
        make_functional(rng, store_linearization=1)
    assert not make_functional(rng, checkpoint_every=3).store_linearization
    with pytest.raises(ValueError, match="does not have"):
        make_functional(rng, regularizers=[Tikhonov("Q", 1.0)])
    wrong_targets = ControlFunctional(TanhNetwork(), LAYOUT, functional.data,
                                      np.zeros((functional.n_examples, N_OUT + 1)), final_time=T)
    with pytest.raises(ValueError, match="output returned shape"):
        wrong_targets.value(x)
    with pytest.raises(ValueError, match="examples must lie"):
        functional.value(x, np.array([0, 99]))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", ["control", "static", "state"])
def test_problem_cannot_modify_parameters_or_states(rng, dtype, target):
    class Mutating(TanhNetwork):
        def rhs(self, y, control, static, t):
            {"control": control["b"], "static": static["a"], "state": y}[target][0] = 0.0
            return super().rhs(y, control, static, t)

    functional = ControlFunctional(Mutating(), LAYOUT, rng.standard_normal((2, N_IN)),
                                   np.zeros((2, N_OUT)), final_time=T, dtype=dtype)
    with pytest.raises(ValueError, match="read-only"):
        functional.value(make_point(rng))


def test_trajectory_tangent_matches_finite_difference_of_integrate(rng):
    problem, p = TanhNetwork(), LAYOUT.random(rng, scale=0.6)
    y0 = rng.standard_normal((3, C))
    dp = LAYOUT.random(rng)
    def run(q, y):
        return integrate(problem, "rk4", y, q.controls, q.static, final_time=T, n_steps=N_STEPS)
    trajectory = run(p, y0)
    dy0 = rng.standard_normal(y0.shape)
    tangent = trajectory.tangent(dy0, dp.controls, dp.static)
    eps = 1e-6
    plus = LAYOUT.unflatten(p.flat + eps * dp.flat)
    minus = LAYOUT.unflatten(p.flat - eps * dp.flat)
    central = (run(plus, y0 + eps * dy0).final_state
               - run(minus, y0 - eps * dy0).final_state) / (2 * eps)
    np.testing.assert_allclose(tangent, central, rtol=1e-7, atol=1e-9)
