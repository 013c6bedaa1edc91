"""Products of a linear model with stored features: outputs, pull-backs, the softmax curvature
product (pdecontrol.ops)."""

import numpy as np
import pytest

from pdecontrol.control import SoftmaxCrossEntropyLoss
from pdecontrol.ops import feature_outputs, feature_pullback, softmax_curvature_product
from pdecontrol.ops.feature_products import (
    CHUNK_ROWS,
    _chunk_sums,
    _outputs_kernel,
    _pullback_chunk_sums,
)


def _case(s, p, k, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((s, p)).astype(dtype)
    z = rng.standard_normal((s, k))
    targets = rng.random((s, k)) * (rng.random((s, 1)) < 0.5) + np.eye(k)[rng.integers(0, k, s)]
    return features, z, targets, rng


def _reference(features, z, targets, V, v):
    """The loss's own Hessian product, pulled back through ``z = W f + c`` in float64."""
    f = features.astype(np.float64)
    u = SoftmaxCrossEntropyLoss().hessian_product(z, targets, f @ V.T + v)
    return u.T @ f, u.sum(axis=0)


# (19, 13, 5): full blocks of 8 rows and an odd number of outputs (pairs of outputs, then one)
@pytest.mark.parametrize("s, p, k", [(1, 3, 2), (7, 5, 3), (8, 13, 10), (19, 13, 5),
                                     (CHUNK_ROWS + 13, 9, 4), (3 * CHUNK_ROWS, 17, 10)])
def test_equals_the_loss_hessian_pulled_back(s, p, k):
    features, z, targets, rng = _case(s, p, k)
    V, v = rng.standard_normal((k, p)), rng.standard_normal(k)
    probabilities = SoftmaxCrossEntropyLoss().probabilities(z)
    W_part, c_part = softmax_curvature_product(features, probabilities, V, v,
                                               targets.sum(axis=1))
    W_ref, c_ref = _reference(features, z, targets, V, v)
    assert W_part.dtype == np.float64 and W_part.shape == (k, p) and c_part.shape == (k,)
    assert np.abs(W_part - W_ref).max() <= 1e-12 * np.abs(W_ref).max()
    assert np.abs(c_part - c_ref).max() <= 1e-12 * np.abs(c_ref).max()


def test_defaults_are_no_bias_direction_and_unit_weights():
    features, z, _, rng = _case(40, 6, 3)
    V = rng.standard_normal((3, 6))
    P = SoftmaxCrossEntropyLoss().probabilities(z)
    W_part, c_part = softmax_curvature_product(features, P, V)
    W_ref, c_ref = softmax_curvature_product(features, P, V, np.zeros(3), np.ones(40))
    np.testing.assert_array_equal(W_part, W_ref)
    np.testing.assert_array_equal(c_part, c_ref)


def test_float32_is_computed_in_float32_close_to_float64():
    features, z, targets, rng = _case(CHUNK_ROWS + 100, 50, 10, np.float32)
    V, v = rng.standard_normal((10, 50)), rng.standard_normal(10)
    P = SoftmaxCrossEntropyLoss().probabilities(z)
    W_part, c_part = softmax_curvature_product(features, P, V, v)
    W_ref, c_ref = _reference(features, z, np.eye(10)[np.argmax(targets, axis=1)], V, v)
    assert W_part.dtype == np.float32 and c_part.dtype == np.float64
    np.testing.assert_allclose(W_part, W_ref, rtol=0, atol=1e-5 * np.abs(W_ref).max())
    np.testing.assert_allclose(c_part, c_ref, rtol=0, atol=1e-5 * np.abs(c_ref).max())


def test_symmetric_and_positive_semidefinite():
    features, z, targets, rng = _case(300, 11, 5)
    P, w = SoftmaxCrossEntropyLoss().probabilities(z), targets.sum(axis=1)
    (V1, v1), (V2, v2) = [(rng.standard_normal((5, 11)), rng.standard_normal(5)) for _ in "12"]
    H1, h1 = softmax_curvature_product(features, P, V1, v1, w)
    H2, h2 = softmax_curvature_product(features, P, V2, v2, w)
    left, right = np.sum(V1 * H2) + v1 @ h2, np.sum(H1 * V2) + h1 @ v2
    assert abs(left - right) <= 1e-12 * abs(left)
    assert np.sum(V1 * H1) + v1 @ h1 > 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_and_parallel_twins_are_bitwise_equal(dtype):
    s, p, k = 3 * CHUNK_ROWS + 5, 21, 10
    features, z, targets, rng = _case(s, p, k, dtype)
    P = SoftmaxCrossEntropyLoss().probabilities(z)
    args = (features, P, targets.sum(axis=1), rng.standard_normal((k, p)).astype(dtype),
            rng.standard_normal(k))
    n_chunks = -(-s // CHUNK_ROWS)
    outputs = []
    for twin in (_chunk_sums.serial, _chunk_sums.parallel):
        G, g = np.empty((n_chunks, k, p), dtype), np.empty((n_chunks, k))
        twin(*args, G, g)
        outputs.append((G, g))
    np.testing.assert_array_equal(outputs[0][0], outputs[1][0])
    np.testing.assert_array_equal(outputs[0][1], outputs[1][1])


@pytest.mark.parametrize("call, message", [
    (lambda F, P, V: softmax_curvature_product(F.astype(np.int64), P, V), "float32 or float64"),
    (lambda F, P, V: softmax_curvature_product(F[0], P, V), "shape (s, p)"),
    (lambda F, P, V: softmax_curvature_product(F, P[1:], V), "probabilities must have"),
    (lambda F, P, V: softmax_curvature_product(F, P, V.T), "direction must have shape (k, p=6)"),
    (lambda F, P, V: softmax_curvature_product(F, P, V, np.zeros(4)), "bias_direction must"),
    (lambda F, P, V: softmax_curvature_product(F, P, V[:2]), "direction must have shape (k=3"),
    (lambda F, P, V: softmax_curvature_product(F, P, V, None, np.ones(3)), "weights must"),
    (lambda F, P, V: feature_outputs(F.astype(np.int32), V), "float32 or float64"),
    (lambda F, P, V: feature_outputs(F, V.T), "weights must have shape (k, p=6)"),
    (lambda F, P, V: feature_outputs(F, V, np.zeros(2)), "bias must have shape (k=3,)"),
    (lambda F, P, V: feature_pullback(F, P[1:]), "row_weights must have shape (s=10, k)"),
    (lambda F, P, V: feature_pullback(F, P[:, 0]), "row_weights must have shape (s=10, k)"),
])
def test_bad_shapes_and_dtypes_are_refused(call, message):
    features, z, _, rng = _case(10, 6, 3)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(features, SoftmaxCrossEntropyLoss().probabilities(z), rng.standard_normal((3, 6)))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("s, p, k", [(1, 3, 2), (7, 5, 3), (8, 13, 10), (19, 13, 5),
                                     (CHUNK_ROWS + 13, 9, 4)])
def test_outputs_and_pullback_equal_the_matrix_products(s, p, k, dtype, tolerance):
    features, _, _, rng = _case(s, p, k, dtype)
    W, c, U = rng.standard_normal((k, p)), rng.standard_normal(k), rng.standard_normal((s, k))
    f = features.astype(np.float64)
    Z_ref = f @ W.astype(dtype).astype(np.float64).T + c
    Z = feature_outputs(features, W, c)
    assert Z.dtype == np.float64 and Z.shape == (s, k)
    assert np.abs(Z - Z_ref).max() <= tolerance * np.abs(Z_ref).max()
    G_ref = U.astype(dtype).astype(np.float64).T @ f
    G = feature_pullback(features, U)
    assert G.dtype == dtype and G.shape == (k, p)
    assert np.abs(G - G_ref).max() <= tolerance * np.abs(G_ref).max()
    np.testing.assert_array_equal(feature_outputs(features, W), feature_outputs(features, W, 0 * c))


def test_outputs_and_pullback_are_adjoint():
    features, _, _, rng = _case(CHUNK_ROWS + 37, 19, 6)
    W, U = rng.standard_normal((6, 19)), rng.standard_normal((CHUNK_ROWS + 37, 6))
    left = np.sum(feature_outputs(features, W) * U)
    right = np.sum(W * feature_pullback(features, U))
    assert abs(left - right) <= 1e-12 * abs(left)


def test_the_curvature_product_is_the_pullback_of_the_outputs_hessian():
    features, z, targets, rng = _case(CHUNK_ROWS + 21, 15, 7)
    V, v = rng.standard_normal((7, 15)), rng.standard_normal(7)
    u = SoftmaxCrossEntropyLoss().hessian_product(z, targets, feature_outputs(features, V, v))
    W_part, c_part = softmax_curvature_product(
        features, SoftmaxCrossEntropyLoss().probabilities(z), V, v, targets.sum(axis=1))
    G = feature_pullback(features, u)
    assert np.abs(W_part - G).max() <= 1e-12 * np.abs(G).max()
    np.testing.assert_allclose(c_part, u.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_outputs_and_pullback_twins_are_bitwise_equal(dtype):
    s, p, k = 3 * CHUNK_ROWS + 5, 21, 10
    features, _, _, rng = _case(s, p, k, dtype)
    V, v, U = rng.standard_normal((k, p)).astype(dtype), rng.standard_normal(k), \
        rng.standard_normal((s, k))
    n_chunks = -(-s // CHUNK_ROWS)
    results = []
    for outputs, pullback in ((_outputs_kernel.serial, _pullback_chunk_sums.serial),
                              (_outputs_kernel.parallel, _pullback_chunk_sums.parallel)):
        Z, G = np.empty((s, k)), np.empty((n_chunks, k, p), dtype)
        outputs(features, V, v, Z)
        pullback(features, U, G)
        results.append((Z, G))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
