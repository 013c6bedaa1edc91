"""The softmax curvature product of a linear model over stored features (pdecontrol.ops)."""

import numpy as np
import pytest

from pdecontrol.control import SoftmaxCrossEntropyLoss
from pdecontrol.ops import softmax_curvature_product
from pdecontrol.ops.softmax_curvature import CHUNK_ROWS, _chunk_sums


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


@pytest.mark.parametrize("s, p, k", [(1, 3, 2), (7, 5, 3), (8, 13, 10), (CHUNK_ROWS + 13, 9, 4),
                                     (3 * CHUNK_ROWS, 17, 10)])
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
    (lambda F, P, V: softmax_curvature_product(F, P[1:], V), "probabilities of shape"),
    (lambda F, P, V: softmax_curvature_product(F, P, V.T), "direction of shape"),
    (lambda F, P, V: softmax_curvature_product(F, P, V, np.zeros(4)), "bias_direction"),
    (lambda F, P, V: softmax_curvature_product(F, P, V, None, np.ones(3)), "weights"),
])
def test_bad_shapes_and_dtypes_are_refused(call, message):
    features, z, _, rng = _case(10, 6, 3)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(features, SoftmaxCrossEntropyLoss().probabilities(z), rng.standard_normal((3, 6)))
