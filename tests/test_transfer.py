"""Grid transfers: sparse P/R, matrix-free restrict/prolong, images, multigrid identities."""

import doctest

import numpy as np
import pytest
import scipy.sparse as sp
from pyamg.gallery import stencil_grid
from scipy import ndimage

import pdecontrol.transfer.grids
import pdecontrol.transfer.matrices
from pdecontrol.transfer import (
    prolong,
    prolongation_matrix,
    restrict,
    restrict_image,
    restriction_matrix,
)

COARSE_SHAPES = {1: (5,), 2: (3, 4), 3: (2, 3, 2)}


def fine(shape):
    return tuple(2 * n for n in shape)


def apply_matrix(matrix, x, dim):
    """Apply a sparse matrix to every grid function of a batch ``(..., *spatial)`` (C order)."""
    lead = x.shape[: x.ndim - dim]
    flat = x.reshape(-1, int(np.prod(x.shape[x.ndim - dim :]))).astype(np.float64)
    return (matrix @ flat.T).T.reshape(lead + (-1,))


def test_1d_matrices_match_the_defining_formulas():
    P = prolongation_matrix(3).toarray()
    expected = np.array(
        [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1], [0, 0, 0.5]]
    )
    np.testing.assert_array_equal(P, expected)
    R = restriction_matrix(6).toarray()
    np.testing.assert_array_equal(4 * R[1], [0, 1, 2, 1, 0, 0])
    np.testing.assert_array_equal(4 * R[0], [2, 1, 0, 0, 0, 0])  # v[-1] = 0 outside


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_prolongation_is_exactly_2_to_the_d_times_restriction_transposed(dim):
    coarse = COARSE_SHAPES[dim]
    P = prolongation_matrix(coarse)
    R = restriction_matrix(fine(coarse))
    assert sp.isspmatrix_csr(P) and sp.isspmatrix_csr(R)
    assert P.shape == (np.prod(fine(coarse)), np.prod(coarse))
    assert abs(P - 2**dim * R.T).max() == 0.0


def test_kronecker_order_is_c_order_of_the_spatial_shape():
    """Column j of P is the interpolation of the coarse unit vector at C-order index j."""
    coarse = (2, 3)
    P = prolongation_matrix(coarse)
    unit = np.zeros(coarse)
    unit[1, 2] = 1.0
    column = P[:, np.ravel_multi_index((1, 2), coarse)].toarray().reshape(fine(coarse))
    np.testing.assert_array_equal(column, prolong(unit, dim=2))
    assert column[2, 4] == 1.0 and column[3, 5] == 0.25


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matrix_free_transfers_equal_the_sparse_matrices(rng, dim, dtype, rtol):
    coarse = COARSE_SHAPES[dim]
    v = rng.standard_normal((2, 3) + fine(coarse)).astype(dtype)
    u = rng.standard_normal((2, 3) + coarse).astype(dtype)
    restricted, prolonged = restrict(v, dim), prolong(u, dim)
    assert restricted.dtype == dtype and prolonged.dtype == dtype
    assert restricted.shape == (2, 3) + coarse and prolonged.shape == (2, 3) + fine(coarse)
    np.testing.assert_allclose(
        restricted.reshape(2, 3, -1),
        apply_matrix(restriction_matrix(fine(coarse)), v, dim),
        rtol=rtol,
        atol=rtol,
    )
    np.testing.assert_allclose(
        prolonged.reshape(2, 3, -1),
        apply_matrix(prolongation_matrix(coarse), u, dim),
        rtol=rtol,
        atol=rtol,
    )


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_adjoint_dot_product_restrict_is_2_to_minus_d_prolong_transposed(rng, dim):
    coarse = COARSE_SHAPES[dim]
    v = rng.standard_normal((4,) + fine(coarse))
    u = rng.standard_normal((4,) + coarse)
    lhs = np.sum(restrict(v, dim) * u)
    rhs = 2.0**-dim * np.sum(v * prolong(u, dim))
    assert abs(lhs - rhs) / abs(rhs) < 1e-10


def test_integer_input_becomes_float64_and_input_is_not_modified(rng):
    v = rng.integers(-5, 5, size=(3, 8, 8))
    before = v.copy()
    assert restrict(v, 2).dtype == np.float64
    np.testing.assert_array_equal(v, before)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_injection_after_prolongation_is_the_identity(rng, dim):
    u = rng.standard_normal((2,) + COARSE_SHAPES[dim])
    injected = prolong(u, dim)[(Ellipsis,) + (slice(0, None, 2),) * dim]
    np.testing.assert_array_equal(injected, u)


def restrict_prolong_1d(n):
    """1D R P: tridiag(1/8, 3/4, 1/8) except (R P)[0, 0] = 5/8 (fine node -1 is outside)."""
    matrix = stencil_grid(np.array([1.0, 6.0, 1.0]) / 8, (n,)).toarray()
    matrix[0, 0] = 5.0 / 8
    return matrix


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restrict_after_prolong_is_a_121_over_8_stencil_not_the_identity(rng, dim):
    """R P is the tensor product of the 1D matrix above, exactly, boundary rows included."""
    coarse = COARSE_SHAPES[dim]
    u = rng.standard_normal(coarse)
    expected = restrict_prolong_1d(coarse[0])
    for n in coarse[1:]:
        expected = np.kron(expected, restrict_prolong_1d(n))
    np.testing.assert_allclose(
        restrict(prolong(u, dim), dim).reshape(-1), expected @ u.reshape(-1), rtol=1e-14, atol=1e-15
    )


def test_restrict_after_prolong_is_spd_with_eigenvalues_between_one_half_and_one():
    """R P = 2^-d P^T P is symmetric positive definite; Gershgorin puts its spectrum in [1/2, 1]."""
    n = 9
    RP = (restriction_matrix(2 * n) @ prolongation_matrix(n)).toarray()
    np.testing.assert_array_equal(RP, RP.T)
    eigenvalues = np.linalg.eigvalsh(RP)
    assert 0.5 < eigenvalues.min() and eigenvalues.max() < 1.0
    assert (
        eigenvalues.max() > 0.98
    )  # smooth modes pass almost unchanged, oscillatory ones are halved


def test_transfers_reproduce_linear_functions_away_from_the_far_boundary():
    """P is exact for linear functions except at the last fine node (u[n] = 0 outside);
    R is exact at interior coarse nodes (symmetric weights summing to one)."""
    n = 6
    coarse = 0.3 + 1.7 * np.arange(n)
    fine_values = 0.3 + 1.7 * np.arange(2 * n) / 2
    np.testing.assert_allclose(prolong(coarse, 1)[:-1], fine_values[:-1], rtol=1e-15)
    np.testing.assert_allclose(restrict(fine_values, 1)[1:], coarse[1:], rtol=1e-15)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_classifier_weights_move_with_restriction(rng, dim):
    """h^d sum(W_h * P y_H) == H^d sum(R W_h * y_H) with H = 2h."""
    coarse = COARSE_SHAPES[dim]
    h = 1.0 / 7
    W = rng.standard_normal((10,) + fine(coarse))
    y = rng.standard_normal(coarse)
    axes = tuple(range(1, dim + 1))
    fine_scores = h**dim * np.sum(W * prolong(y, dim), axis=axes)
    coarse_scores = (2 * h) ** dim * np.sum(restrict(W, dim) * y, axis=axes)
    np.testing.assert_allclose(coarse_scores, fine_scores, rtol=1e-12)


def test_restriction_of_a_smooth_function_converges_at_second_order():
    """max |R f_h - f_H| = O(h^2) for f vanishing (to 4th order) at the boundary; order measured."""

    def sample(n):
        x = np.arange(n) / n
        return np.multiply.outer(np.sin(np.pi * x) ** 4, np.sin(2 * np.pi * x) ** 2 * np.exp(x))

    errors = [np.abs(restrict(sample(2 * n), 2) - sample(n)).max() for n in (16, 32, 64)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.15), orders


def test_restrict_image_without_smoothing_repeats_restrict(rng):
    x = rng.standard_normal((3, 2, 16, 8)).astype(np.float32)
    out = restrict_image(x, dim=2, levels=2)
    assert out.dtype == np.float32 and out.shape == (3, 2, 4, 2)
    np.testing.assert_array_equal(out, restrict(restrict(x, 2), 2))


def test_restrict_image_smooths_each_image_with_a_zero_boundary_gaussian(rng):
    x = rng.standard_normal((2, 3, 12, 12))
    out = restrict_image(x, dim=2, smoothing_sigma=1.0)
    image = x[1, 2]
    smoothed = ndimage.gaussian_filter(image, 1.0, mode="constant", cval=0.0)
    np.testing.assert_allclose(out[1, 2], restrict(smoothed, 2), rtol=1e-12, atol=1e-14)
    # batch and channel axes are not mixed
    np.testing.assert_allclose(
        out[1, 2], restrict_image(image, dim=2, smoothing_sigma=1.0), atol=1e-14
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: restrict(np.zeros((4, 7)), 2), ValueError, "axis 1 has 7 nodes.*pad or crop"),
        (lambda: restrict(np.zeros((4, 0)), 2), ValueError, "axis 1 has 0 nodes"),
        (lambda: restrict(np.zeros(8), 2), ValueError, "at least dim=2 axes"),
        (lambda: restrict(np.full((2, 4), np.nan), 2), ValueError, "x contains 8 non-finite"),
        (lambda: prolong(np.array([1.0, np.inf]), 1), ValueError, "non-finite"),
        (lambda: prolong(np.zeros(4), 4), ValueError, "dim must be 1, 2 or 3"),
        (lambda: prolong(np.zeros(4, complex), 1), TypeError, "x must be real"),
        (lambda: restrict(np.array(["a", "b"]), 1), TypeError, "x must be a numeric array"),
        (lambda: restriction_matrix((4, 5)), ValueError, "fine_shape cannot be coarsened"),
        (lambda: prolongation_matrix((2, 2, 2, 2)), ValueError, "coarse_shape must have 1, 2 or 3"),
        (lambda: prolongation_matrix(2.0), TypeError, "coarse_shape must be an int"),
        (
            lambda: restrict_image(np.zeros((12, 12)), 2, levels=3),
            ValueError,
            "divisible by 2\\*\\*levels",
        ),
        (
            lambda: restrict_image(np.zeros((8, 8)), 2, levels=0),
            ValueError,
            "levels must be an int >= 1",
        ),
        (
            lambda: restrict_image(np.zeros((8, 8)), 2, smoothing_sigma=-1),
            ValueError,
            "smoothing_sigma",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("module", [pdecontrol.transfer.matrices, pdecontrol.transfer.grids])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
