"""CNNProblem: derivative checks, reference forward pass, bases, float32, prediction, errors."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cnn_helpers import fitted_point, small_functional
from pdecontrol.control import ControlProblem, SoftmaxCrossEntropyLoss
from pdecontrol.control.timestepping import integrate
from pdecontrol.mesh import Mesh
from pdecontrol.ops import blas_threads, conv
from pdecontrol.verify import verify_problem
from problems.cnn.network import CNNProblem, accuracy, cnn_functional, predict
from problems.cnn.regularization import (
    classifier_tikhonov,
    high_order_kernel_penalty,
    time_smoothness,
)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("stepper", ["euler", "rk4"])
@pytest.mark.parametrize("loss", ["least_squares", "softmax"])
@pytest.mark.parametrize("kernel_basis", ["stencil", "derivative"])
@pytest.mark.parametrize("opening_activation", [None, "tanh"])
def test_verify_problem_1d_2d(rng, dim, stepper, loss, kernel_basis, opening_activation):
    softmax = loss == "softmax"
    _, J = small_functional(
        rng,
        dim,
        stepper=stepper,
        kernel_basis=kernel_basis,
        opening_activation=opening_activation,
        loss=SoftmaxCrossEntropyLoss() if softmax else None,
    )
    report = verify_problem(J, fitted_point(J, rng), rng=rng)
    assert report.passed, report


@pytest.mark.parametrize("stepper, loss", [("euler", None), ("rk4", SoftmaxCrossEntropyLoss())])
def test_verify_problem_3d(rng, stepper, loss):
    _, J = small_functional(rng, 3, stepper=stepper, loss=loss, opening_activation="tanh")
    report = verify_problem(J, fitted_point(J, rng), rng=rng)
    assert report.passed, report


@pytest.mark.parametrize("kernel_basis", ["stencil", "derivative"])
def test_verify_problem_with_regularizers(rng, kernel_basis):
    def regularizers(problem):
        return (
            high_order_kernel_penalty(problem, 1e-2)
            + time_smoothness(1e-2, 1.0)
            + [classifier_tikhonov(1e-3)]
        )

    _, J = small_functional(
        rng, 2, n_steps=3, kernel_basis=kernel_basis, stepper="rk4", regularizers=regularizers
    )
    assert len(J.regularizers) == 5
    report = verify_problem(J, fitted_point(J, rng), rng=rng)
    assert report.passed, report


def test_verify_problem_smooth_relu(rng):
    _, J = small_functional(rng, 2, activation="smooth_relu", opening_activation="smooth_relu")
    report = verify_problem(J, fitted_point(J, rng), rng=rng)
    assert report.passed, report


@pytest.mark.parametrize("opening_activation", [None, "relu"])
def test_forward_is_the_resnet(rng, opening_activation):
    problem, J = small_functional(
        rng, 2, n_steps=3, final_time=1.5, opening_activation=opening_activation
    )
    x = fitted_point(J, rng)
    p = J.layout.unflatten(x)
    y = conv(J.data, p["K0"], p["b0"])
    if opening_activation == "relu":
        y = np.maximum(y, 0.0)
    for j in range(3):
        y = y + 0.5 * np.tanh(conv(y, p["K"][j], p["b"][j]))
    h_d = problem.mesh.cell_volume
    z = h_d * np.einsum("ncij,kcij->nk", y, p["W"]) + p["c"]
    result = J.forward(x)
    np.testing.assert_allclose(result.final_states, y, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.outputs, z, rtol=0, atol=1e-13)
    np.testing.assert_allclose(predict(J, x), z, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu", "smooth_relu"])
def test_rhs_is_the_value_of_the_linearisation(rng, dtype, activation):
    """The value-only right-hand side (forward solves without a linearisation kept) is the
    linearisation's value bit for bit, so values, gradients and features agree exactly."""
    problem, J = small_functional(rng, 2, n_channels=3, activation=activation,
                                  kernel_basis="derivative", dtype=dtype)
    x = fitted_point(J, rng)
    control = {name: block[1] for name, block in J.layout.unflatten(x).items()
               if name in ("K", "b")}
    control = {name: np.asarray(value, dtype=dtype) for name, value in control.items()}
    y = rng.standard_normal((4, 3) + problem.mesh.shape).astype(dtype)
    value = problem.rhs(y, control, {}, 0.0)
    assert value.dtype == dtype
    np.testing.assert_array_equal(value, problem.linearize(y, control, {}, 0.0)[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu", "smooth_relu"])
@pytest.mark.parametrize("n_examples", [5, 800])  # serial and parallel kernels
def test_fused_euler_step_gives_the_linearised_sweeps_numbers(rng, dtype, activation, n_examples):
    """``CNNProblem.euler_step`` (one fused pass) is ``y + dt rhs(y)`` combined the default
    way bit for bit, so a forward solve keeping no linearisation (values, features, the
    monitor) and one keeping it (gradients, Gauss-Newton) reach the same states."""
    problem, J = small_functional(rng, 2, n_examples=n_examples, n_channels=4,
                                  activation=activation, dtype=dtype, final_time=0.7)
    x = fitted_point(J, rng)
    params = J.layout.unflatten(x)
    controls = {k: np.asarray(v, dtype=dtype) for k, v in params.controls.items()}
    static = {k: np.asarray(v, dtype=dtype) for k, v in params.static.items()}
    y = rng.standard_normal((n_examples, 4) + problem.mesh.shape).astype(dtype)
    step = {k: v[1] for k, v in controls.items()}
    fused = problem.euler_step(y, step, static, 0.35, 0.35)
    assert fused.dtype == dtype
    np.testing.assert_array_equal(
        fused, ControlProblem.euler_step(problem, y, step, static, 0.35, 0.35))
    y0 = np.asarray(problem.initial_state(J.data, static), dtype=dtype)
    sweeps = [integrate(problem, "euler", y0, controls, static, final_time=0.7, n_steps=2,
                        store_linearization=keep).final_state for keep in (False, True)]
    np.testing.assert_array_equal(*sweeps)
    np.testing.assert_array_equal(J.forward(x).final_states, sweeps[0])


def test_an_euler_step_that_differs_fails_verification(rng, monkeypatch):
    """verify_problem checks an overridden ``euler_step`` bit for bit, and the stepper refuses
    one of the wrong shape."""
    problem, J = small_functional(rng, 2)
    x = fitted_point(J, rng)
    assert verify_problem(J, x, rng=rng).results["euler step"].passed
    fused = CNNProblem.euler_step
    monkeypatch.setattr(CNNProblem, "euler_step",
                        lambda self, y, *args: fused(self, y, *args) * (1 + 1e-7))
    report = verify_problem(J, x, rng=rng)
    assert report.failed == ["euler step"], report
    monkeypatch.setattr(CNNProblem, "euler_step", lambda self, y, *args: fused(self, y, *args)[1:])
    with pytest.raises(ValueError, match="euler_step must return an array of the state's shape"):
        J.forward(x)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_derivative_basis_gives_the_same_network(rng, dim):
    _, J_stencil = small_functional(rng, dim)
    _, J_basis = small_functional(rng, dim, kernel_basis="derivative")
    J_basis.data[...] = J_stencil.data
    x_stencil = J_stencil.problem.initial_parameters(2, seed=3)
    x_basis = J_basis.problem.initial_parameters(2, seed=3)
    assert not np.allclose(x_stencil, x_basis)
    stencils = J_basis.problem.block_to_stencils(J_basis.layout.unflatten(x_basis)["K"])
    np.testing.assert_allclose(stencils, J_stencil.layout.unflatten(x_stencil)["K"], atol=1e-12)
    np.testing.assert_allclose(
        J_basis.forward(x_basis).final_states, J_stencil.forward(x_stencil).final_states, atol=1e-12
    )
    # with l = h the coefficients are O(1): K = B(1) beta
    assert np.abs(x_basis).max() < 10 * np.abs(x_stencil).max()


def test_layout_shapes_and_weights():
    problem = CNNProblem(Mesh((8, 6)), 3, 4, in_channels=2)
    layout = problem.layout(5)
    assert layout.shapes == {
        "K": (5, 3, 3, 3, 3),
        "b": (5, 3),
        "K0": (3, 2, 3, 3),
        "b0": (3,),
        "W": (4, 3, 8, 6),
        "c": (4,),
    }
    assert layout.block_weights["W"] == pytest.approx(1 / 48)
    assert all(layout.block_weights[k] == 1.0 for k in ("K", "b", "K0", "b0", "c"))
    assert problem.n_steps_of(np.zeros(layout.size)) == 5
    basis = CNNProblem(Mesh(8), 3, 4, kernel_basis="derivative").layout(2)
    assert basis.shapes["K"] == (2, 3, 3, 3) and basis.shapes["K0"] == (3, 1, 3)
    x1 = problem.initial_parameters(5, seed=1)
    np.testing.assert_array_equal(x1, problem.initial_parameters(5, seed=1))
    assert not np.array_equal(x1, problem.initial_parameters(5, seed=2))
    p = layout.unflatten(x1)
    assert not np.any(p["W"]) and not np.any(p["b"]) and np.std(p["K"]) > 0


def test_float32_close_to_float64(rng):
    _, J64 = small_functional(rng, 2, n_steps=3)
    x = fitted_point(J64, rng)
    x[J64.layout.slices["c"]] += 0.5  # a point with a non-zero misfit gradient
    _, J32 = small_functional(rng, 2, n_steps=3, dtype=np.float32)
    J32.data[...] = J64.data.astype(np.float32)
    v64, g64 = J64.value_and_gradient(x)
    v32, g32 = J32.value_and_gradient(x)
    assert J32.forward(x).final_states.dtype == np.float32
    assert abs(v32 - v64) <= 1e-5 * max(abs(v64), 1e-3)
    assert np.linalg.norm(g32 - g64) <= 1e-4 * np.linalg.norm(g64)
    G32 = J32.gauss_newton_operator(x)
    v = rng.standard_normal(J64.size)
    Gv = J64.gauss_newton_operator(x).matvec(v)
    assert np.linalg.norm(G32.matvec(v) - Gv) <= 1e-4 * np.linalg.norm(Gv)


def _blas_threads_now() -> int:
    return max(pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas")


def test_classifier_products_run_on_one_blas_thread(rng, monkeypatch):
    # OpenBLAS's idle threads spin after a multi-threaded call and slow the kernels that follow
    # (pdecontrol.ops.threads), so output, its tangent and its adjoint limit BLAS to one thread
    problem, J = small_functional(rng, 2)
    with blas_threads(2):
        if _blas_threads_now() < 2:
            pytest.skip("BLAS runs one thread here: nothing to limit")
        seen = []
        flat = problem._flat  # called inside each product's BLAS block

        def recording_flat(y):
            seen.append(_blas_threads_now())
            return flat(y)

        monkeypatch.setattr(problem, "_flat", recording_flat)
        x = fitted_point(J, rng)
        J.value_and_gradient(x)
        J.gauss_newton_operator(x).matvec(rng.standard_normal(J.size))
        assert _blas_threads_now() == 2  # restored after each product
    assert len(seen) >= 3 and set(seen) == {1}


def test_predict_and_accuracy_on_new_images(rng):
    problem, J = small_functional(rng, 2, n_examples=9)
    x = fitted_point(J, rng)
    labels = np.argmax(J.targets, axis=1)
    assert accuracy(J, x) == 1.0  # the classifier fits 9 examples exactly
    assert accuracy(J, x, J.data[:, 0], labels, batch_size=4) == 1.0
    scores = predict(J, x, J.data[:5], batch_size=2)
    np.testing.assert_allclose(scores, J.forward(x, np.arange(5)).outputs, atol=1e-13)
    flipped = (labels + 1) % 3
    assert accuracy(J, x, J.data, flipped) == 0.0


def test_bad_input_raises_clear_errors(rng):
    problem = CNNProblem(Mesh((8, 8)), 2, 3)
    images, labels = rng.random((4, 8, 8)), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"images must have shape \(n_examples, 1, 8, 8\)"):
        cnn_functional(problem, rng.random((4, 8, 6)), labels, 2)
    with pytest.raises(ValueError, match="non-finite"):
        bad = images.copy()
        bad[1, 2, 3] = np.nan
        cnn_functional(problem, bad, labels, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        cnn_functional(problem, images, np.array([0, 1, 3, 0]), 2)
    with pytest.raises(ValueError, match="integer class indices"):
        cnn_functional(problem, images, np.array([0, 1, 0.5, 0]), 2)
    with pytest.raises(ValueError, match="one entry per image"):
        cnn_functional(problem, images, labels[:3], 2)
    fine_x = CNNProblem(Mesh((16, 16)), 2, 3).initial_parameters(2, seed=0)
    with pytest.raises(ValueError, match="another mesh"):
        problem.parameters(fine_x)
    J = cnn_functional(problem, images, labels, 2)
    with pytest.raises(ValueError, match="flat vector of length"):
        J.value(fine_x)
    with pytest.raises(ValueError, match="kernel_basis"):
        CNNProblem(Mesh((8, 8)), 2, 3, kernel_basis="fourier")
    with pytest.raises(TypeError, match="Mesh"):
        CNNProblem((8, 8), 2, 3)
    with pytest.raises(ValueError, match="n_channels"):
        CNNProblem(Mesh((8, 8)), 0, 3)
    with pytest.raises(ValueError, match="activation"):
        CNNProblem(Mesh((8, 8)), 2, 3, activation="sigmoid")
    with pytest.raises(ValueError, match="reference_spacing"):
        CNNProblem(Mesh((8, 8)), 2, 3, kernel_basis="derivative", reference_spacing=(0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="both images and labels"):
        accuracy(J, J.problem.initial_parameters(2, 0), images)


@pytest.mark.parametrize("loss", [None, SoftmaxCrossEntropyLoss()], ids=["lsq", "softmax"])
@pytest.mark.parametrize("seed", [1, 2])
def test_verify_problem_at_random_points_with_small_steps(loss, seed):
    """At arbitrary (unfitted, unit-size) points the remainders need smaller steps to reach the
    eps**2 regime; with them every derivative pair passes (default steps fail at these points)."""
    rng = np.random.default_rng(seed)
    _, functional = small_functional(rng, loss=loss, stepper="rk4")
    x = rng.standard_normal(functional.size)
    report = verify_problem(functional, x, eps=1e-4 * 0.5 ** np.arange(6))
    assert report.passed, report
