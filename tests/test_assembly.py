"""Sparse assembly of stencils: equal to pyamg's stencil_grid, per-node weights, errors."""

import doctest

import numpy as np
import pytest
import scipy.sparse as sp
from pyamg.gallery import stencil_grid

import pdecontrol.assembly
from pdecontrol.assembly import stencil_matrix, variable_stencil_matrix

LAPLACIAN_5 = np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
LAPLACIAN_9 = np.array([[-1.0, -4.0, -1.0], [-4.0, 20.0, -4.0], [-1.0, -4.0, -1.0]]) / 6


def assert_same_csr(A, B):
    """Same shape, same stored pattern in the same order, same values (no tolerance)."""
    assert sp.isspmatrix_csr(A) and A.has_canonical_format
    assert A.shape == B.shape and A.dtype == B.dtype
    np.testing.assert_array_equal(A.indptr, B.indptr)
    np.testing.assert_array_equal(A.indices, B.indices)
    np.testing.assert_array_equal(A.data, B.data)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("laplacian 1d", (9,)),
        ("laplacian 5-point", (5, 7)),
        ("laplacian 9-point", (6, 4)),
        ("random 3x3x3", (3, 4, 5)),
        ("random 5x3", (6, 2)),
        ("random 7 wider than the grid", (3,)),
        ("random 5x5x3 on a thin grid", (2, 6, 1)),
    ],
)
def test_equals_pyamg_stencil_grid(rng, name, shape):
    stencils = {
        "laplacian 1d": np.array([-1.0, 2.0, -1.0]),
        "laplacian 5-point": LAPLACIAN_5,
        "laplacian 9-point": LAPLACIAN_9,
        "random 3x3x3": rng.standard_normal((3, 3, 3)),
        "random 5x3": rng.standard_normal((5, 3)),
        "random 7 wider than the grid": rng.standard_normal(7),
        "random 5x5x3 on a thin grid": rng.standard_normal((5, 5, 3)),
    }
    stencil = stencils[name]
    assert_same_csr(stencil_matrix(stencil, shape), stencil_grid(stencil, shape, format="csr"))


def test_zero_weights_are_not_stored_and_float32_is_kept():
    stencil = LAPLACIAN_5.astype(np.float32)
    A = stencil_matrix(stencil, (4, 4))
    # 5 entries per row, minus one per direction on each of the 4 grid edges of 4 nodes
    assert A.dtype == np.float32 and A.nnz == 5 * 16 - 4 * 4 and np.all(A.data != 0)
    assert stencil_matrix(np.zeros((3, 3)), (4, 4)).nnz == 0
    assert stencil_matrix([1, -2, 1], 5).dtype == np.float64


def test_stencil_acts_by_correlation(rng):
    """Row i of A is sum_o s[c + o] u[i + o]: an asymmetric stencil is not flipped."""
    stencil = rng.standard_normal((3, 3))
    u = rng.standard_normal((5, 6))
    padded = np.pad(u, 1)
    expected = sum(
        stencil[a, b] * padded[a : a + 5, b : b + 6] for a in range(3) for b in range(3)
    )
    np.testing.assert_allclose(
        (stencil_matrix(stencil, u.shape) @ u.reshape(-1)).reshape(u.shape), expected, rtol=1e-13
    )


def test_variable_weights_give_each_row_its_own_stencil(rng):
    """Per-node weights in 2D, checked against a dense matrix built entry by entry."""
    shape = (4, 3)
    offsets = np.array([[0, 0], [1, 0], [0, -1], [-2, 1]])
    weights = rng.standard_normal((4,) + shape)
    expected = np.zeros((12, 12))
    for k, offset in enumerate(offsets):
        for node in np.ndindex(shape):
            target = tuple(np.add(node, offset))
            if all(0 <= t < n for t, n in zip(target, shape, strict=True)):
                row, column = (np.ravel_multi_index(x, shape) for x in (node, target))
                expected[row, column] = weights[(k,) + node]
    A = variable_stencil_matrix(offsets, weights, shape)
    assert A.has_canonical_format
    np.testing.assert_array_equal(A.toarray(), expected)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: stencil_matrix(np.ones((2, 3)), (4, 4)), ValueError, "odd width on every axis"),
        (lambda: stencil_matrix(np.ones(3), (4, 4)), ValueError, "one axis per grid axis"),
        (lambda: stencil_matrix(np.ones(3), 0), ValueError, "shape\\[0\\] must be >= 1"),
        (lambda: stencil_matrix([1.0, np.nan, 1.0], 4), ValueError, "stencil contains 1 non-fin"),
        (lambda: stencil_matrix(["a"], 4), TypeError, "stencil must be a numeric array"),
        (lambda: variable_stencil_matrix([[0.5]], [1.0], 4), ValueError, "offsets must be an int"),
        (lambda: variable_stencil_matrix([0, 1], [1.0], 4), ValueError, "shape \\(K, 1\\)"),
        (lambda: variable_stencil_matrix([[1], [1]], 1.0, 4), ValueError, "must be distinct"),
        (
            lambda: variable_stencil_matrix([[0], [1]], np.ones((2, 5)), 4),
            ValueError,
            "weights must have shape \\(K, \\*shape\\) = \\(2, 4\\)",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_doctests():
    result = doctest.testmod(pdecontrol.assembly)
    assert result.attempted > 0 and result.failed == 0
