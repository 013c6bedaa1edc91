"""Galerkin restriction / prolongation of stencils, checked against explicit sparse products
(node-centred and cell-centred transfers)."""

import doctest
import itertools

import numpy as np
import pytest
from pyamg.gallery import stencil_grid

import pdecontrol.transfer.galerkin
from pdecontrol.stencils import derivative_basis, rediscretize
from pdecontrol.transfer import (
    galerkin_restriction_matrix,
    prolong,
    prolong_stencil,
    prolongation_matrix,
    restrict,
    restrict_stencil,
    restrict_stencil_transpose,
    restriction_matrix,
)

COARSE_SHAPES = {1: (8,), 2: (6, 5), 3: (4, 4, 5)}
CENTRINGS = pytest.mark.parametrize("centring", ["node", "cell"])


def tensor(factors):
    """Outer product of 1D stencils, axis k from factor k."""
    out = factors[0]
    for factor in factors[1:]:
        out = np.multiply.outer(out, factor)
    return out


def test_pyamg_stencil_grid_is_correlation_with_zero_padding(rng):
    """Test oracle: stencil_grid(s) y == sum_ab s[a, b] y[i + a - 1, j + b - 1], zero outside."""
    s = rng.standard_normal((3, 3))
    y = rng.standard_normal((5, 4))
    padded = np.pad(y, 1)
    expected = sum(s[a, b] * padded[a : a + 5, b : b + 4] for a in range(3) for b in range(3))
    np.testing.assert_allclose(
        (stencil_grid(s, y.shape) @ y.reshape(-1)).reshape(y.shape), expected
    )


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restrict_stencil_equals_the_rows_of_R_K_P_away_from_the_origin_faces(rng, dim):
    """Every row of R K_h P whose coarse node has all indices >= 1 is exactly the coarse stencil
    (the far boundary included); rows on a face index 0 differ, because fine node -1 lies outside
    the domain while its interpolation weight from coarse node 0 is lost."""
    coarse = COARSE_SHAPES[dim]
    fine = tuple(2 * n for n in coarse)
    stencils = rng.standard_normal((3,) + (3,) * dim)
    restricted = restrict_stencil(stencils, dim)
    P, R = prolongation_matrix(coarse), restriction_matrix(fine)
    nodes = list(itertools.product(*[range(n) for n in coarse]))
    away = [np.ravel_multi_index(i, coarse) for i in nodes if min(i) >= 1]
    face = [np.ravel_multi_index(i, coarse) for i in nodes if min(i) == 0]
    for s, t in zip(stencils, restricted, strict=True):
        galerkin = (R @ stencil_grid(s, fine) @ P).toarray()
        expected = stencil_grid(t, coarse).toarray()
        np.testing.assert_allclose(galerkin[away], expected[away], rtol=1e-13, atol=1e-14)
        assert np.all(np.abs(galerkin[face] - expected[face]).max(axis=1) > 1e-6)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_restrict_stencil_equals_R_K_P_at_every_coarse_cell(rng, dim):
    """Cell-centred: the whole matrix R K_h P is the coarse stencil, boundary cells included
    (the fine cells outside the domain form the coarse cells outside it)."""
    coarse = COARSE_SHAPES[dim]
    fine = tuple(2 * n for n in coarse)
    stencils = rng.standard_normal((3,) + (3,) * dim)
    restricted = restrict_stencil(stencils, dim, centring="cell")
    P, R = prolongation_matrix(coarse, "cell"), restriction_matrix(fine, "cell")
    for s, t in zip(stencils, restricted, strict=True):
        galerkin = (R @ stencil_grid(s, fine) @ P).toarray()
        np.testing.assert_allclose(galerkin, stencil_grid(t, coarse).toarray(),
                                   rtol=1e-13, atol=1e-14)


def test_galerkin_identity_on_grid_functions(rng):
    """K_H y == R K_h P y at coarse nodes with all indices >= 1, matrix-free (docs/method.md
    section 7)."""
    s = rng.standard_normal((3, 3))
    y = rng.standard_normal((6, 7))
    fine = (12, 14)
    via_fine = restrict((stencil_grid(s, fine) @ prolong(y, 2).reshape(-1)).reshape(fine), 2)
    coarse = (stencil_grid(restrict_stencil(s), y.shape) @ y.reshape(-1)).reshape(y.shape)
    np.testing.assert_allclose(coarse[1:, 1:], via_fine[1:, 1:], rtol=1e-12, atol=1e-13)


def test_galerkin_coarsening_of_the_five_point_laplacian():
    """Textbook result (bilinear P, full weighting R): the 5-point Laplacian coarsens to the
    9-point stencil [[-1, -2, -1], [-2, 12, -2], [-1, -2, -1]] / (4 H^2)."""
    h = 0.1
    laplacian = np.array([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]]) / h**2
    expected = np.array([[-1.0, -2, -1], [-2, 12, -2], [-1, -2, -1]]) / (4 * (2 * h) ** 2)
    np.testing.assert_allclose(restrict_stencil(laplacian), expected, rtol=1e-14)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restriction_keeps_pure_derivative_stencils_and_rediscretizes_them(dim):
    """A basis stencil differentiating along every axis (all m_k >= 1) restricts exactly to the
    same derivative at H = 2h; the identity factor [1 2 1]/4 does not (it picks up R P smoothing).
    """
    h = 0.05
    basis = derivative_basis(dim, h)
    for s, m in zip(basis.stencils, basis.multi_indices, strict=True):
        if min(m) >= 1:
            np.testing.assert_allclose(
                restrict_stencil(s, dim),
                rediscretize(s, h, 2 * h, dim),
                rtol=0,
                atol=1e-13 * np.abs(s).max(),
            )
    identity = basis.stencils[0]
    assert not np.allclose(restrict_stencil(identity, dim), rediscretize(identity, h, 2 * h, dim))


def test_cell_centred_galerkin_of_grid_functions_is_exact_at_every_cell(rng):
    """K_H y == R K_h P y everywhere for cell-centred transfers, matrix-free."""
    s = rng.standard_normal((3, 3))
    y = rng.standard_normal((6, 7))
    fine = (12, 14)
    prolonged = prolong(y, 2, "cell").reshape(-1)
    via_fine = restrict((stencil_grid(s, fine) @ prolonged).reshape(fine), 2, "cell")
    t = restrict_stencil(s, centring="cell")
    coarse = (stencil_grid(t, y.shape) @ y.reshape(-1)).reshape(y.shape)
    np.testing.assert_allclose(coarse, via_fine, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_restriction_keeps_identity_and_first_derivatives_doubles_second(dim):
    """Per axis: [0 1 0] and [-1 0 1]/(2h) restrict to themselves at H = 2h (the latter as
    rediscretization would), [1 -2 1]/h^2 to twice the rediscretized 2 [1 -2 1]/H^2."""
    h = 0.05
    factors = {
        0: lambda h: np.array([0.0, 1.0, 0.0]),
        1: lambda h: np.array([-1.0, 0.0, 1.0]) / (2 * h),
        2: lambda h: np.array([1.0, -2.0, 1.0]) / h**2,
    }
    for m in itertools.product(range(3), repeat=dim):
        fine_stencil = tensor([factors[k](h) for k in m])
        expected = tensor([factors[k](2 * h) * (2.0 if k == 2 else 1.0) for k in m])
        np.testing.assert_allclose(restrict_stencil(fine_stencil, dim, centring="cell"), expected,
                                   rtol=0, atol=1e-13 * np.abs(expected).max())


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_prolongation_doubles_each_zero_sum_factor(rng, dim):
    """Cell-centred G^-1 has eigenvalue 1 on [0 1 0] and 2 on every zero-sum 1D stencil, so a
    tensor product with k zero-sum factors grows by 2^k (at most 2^d)."""
    one_d = [np.array([0.0, 1.0, 0.0]), np.array([-1.0, 0, 1]), np.array([1.0, -2, 1]),
             np.array([2.0, -3, 1])]
    for m in itertools.product(range(4), repeat=dim):
        vector = tensor([one_d[k] for k in m])
        factor = 2.0 ** sum(k > 0 for k in m)
        np.testing.assert_allclose(prolong_stencil(vector, dim, centring="cell"),
                                   factor * vector, atol=1e-13)


def test_cell_centred_galerkin_coarsening_of_the_five_point_laplacian():
    """Piecewise-constant coarsening doubles second derivatives: the 5-point Laplacian at h
    restricts to twice the 5-point Laplacian at H = 2h."""
    h = 0.1
    laplacian = np.array([[0.0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    np.testing.assert_allclose(restrict_stencil(laplacian / h**2, centring="cell"),
                               2 * laplacian / (2 * h) ** 2, rtol=1e-14)


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restrict_and_prolong_stencils_are_inverse_maps(rng, dim, centring):
    s = rng.standard_normal((3, 4, 2) + (3,) * dim)
    np.testing.assert_allclose(
        restrict_stencil(prolong_stencil(s, dim, centring), dim, centring), s, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        prolong_stencil(restrict_stencil(s, dim, centring), dim, centring), s, rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_prolongation_amplifies_order_k_components_by_2_to_the_k(dim):
    """G^-1 has eigenvalues 2^|m|; eigenvectors are tensor products of [1 4 1]/6 (order 0: the
    linear-element mass stencil), [-1 0 1] (order 1) and [1 -2 1] (order 2)."""
    one_d = [np.array([1.0, 4, 1]) / 6, np.array([-1.0, 0, 1]), np.array([1.0, -2, 1])]
    for m in itertools.product(range(3), repeat=dim):
        vector = one_d[m[0]]
        for k in m[1:]:
            vector = np.multiply.outer(vector, one_d[k])
        np.testing.assert_allclose(prolong_stencil(vector, dim), 2.0 ** sum(m) * vector, atol=1e-13)


def test_galerkin_matrix_is_the_kronecker_power_of_the_1d_map():
    one_d = galerkin_restriction_matrix(1)
    np.testing.assert_array_equal(one_d, [[0.5, 0.125, 0], [0.5, 0.75, 0.5], [0, 0.125, 0.5]])
    np.testing.assert_array_equal(
        galerkin_restriction_matrix(3), np.kron(np.kron(one_d, one_d), one_d)
    )
    np.testing.assert_array_equal(one_d.sum(axis=0), np.ones(3))  # row sums of K are preserved
    with pytest.raises(ValueError, match="read-only"):
        galerkin_restriction_matrix(2)[0, 0] = 1.0


def test_cell_centred_galerkin_matrix_and_its_inverse():
    one_d = galerkin_restriction_matrix(1, centring="cell")
    np.testing.assert_array_equal(one_d, [[0.5, 0, 0], [0.5, 1, 0.5], [0, 0, 0.5]])
    np.testing.assert_array_equal(
        galerkin_restriction_matrix(3, "cell"), np.kron(np.kron(one_d, one_d), one_d)
    )
    np.testing.assert_array_equal(one_d.sum(axis=0), np.ones(3))  # row sums of K are preserved
    inverse = prolong_stencil(np.eye(3), dim=1, centring="cell").T  # columns: G^-1 e_k
    np.testing.assert_array_equal(inverse, [[2, 0, 0], [-1, 1, -1], [0, 0, 2]])


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restrict_stencil_transpose_dot_product(rng, dim, centring):
    s = rng.standard_normal((2, 5) + (3,) * dim)
    t = rng.standard_normal((2, 5) + (3,) * dim)
    lhs = np.sum(restrict_stencil(s, dim, centring) * t)
    rhs = np.sum(s * restrict_stencil_transpose(t, dim, centring))
    assert abs(lhs - rhs) / abs(rhs) < 1e-10


@CENTRINGS
def test_batched_float32_stencils_keep_shape_and_dtype(rng, centring):
    kernels = rng.standard_normal((3, 16, 16, 3, 3)).astype(np.float32)
    for function in (restrict_stencil, prolong_stencil, restrict_stencil_transpose):
        out = function(kernels, centring=centring)
        assert out.shape == kernels.shape and out.dtype == np.float32
    np.testing.assert_allclose(
        restrict_stencil(kernels, centring=centring),
        restrict_stencil(kernels.astype(np.float64), centring=centring),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: restrict_stencil(np.zeros((3, 4))),
            ValueError,
            r"s must have shape \(\.\.\., 3, 3\)",
        ),
        (lambda: restrict_stencil(np.zeros(3)), ValueError, "for dim=2"),
        (lambda: prolong_stencil(np.zeros((5, 5)), dim=2), ValueError, "s must have shape"),
        (lambda: restrict_stencil(np.full((3, 3), np.nan)), ValueError, "s contains 9 non-finite"),
        (
            lambda: restrict_stencil_transpose(np.zeros((3, 3)), dim=3),
            ValueError,
            "t must have shape",
        ),
        (lambda: restrict_stencil(np.zeros((3, 3)), dim=4), ValueError, "dim must be 1, 2 or 3"),
        (lambda: galerkin_restriction_matrix(0), ValueError, "dim must be 1, 2 or 3"),
        (lambda: prolong_stencil("abc"), TypeError, "s must be a numeric array"),
        (lambda: restrict_stencil(np.zeros(3), 1, "face"), ValueError, "centring must be one of"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_doctests():
    result = doctest.testmod(pdecontrol.transfer.galerkin)
    assert result.attempted > 0 and result.failed == 0
