"""Grid transfers: sparse P/R, matrix-free restrict/prolong, images, multigrid identities, of
both centrings (node: d-linear / full weighting; cell: injection / cell averaging)."""

import doctest

import numpy as np
import pytest
import scipy.sparse as sp
from pyamg.gallery import stencil_grid
from scipy import ndimage

import pdecontrol.transfer.grids
import pdecontrol.transfer.matrices
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import (
    prolong,
    prolong_field,
    prolongation_matrix,
    restrict,
    restrict_field,
    restrict_image,
    restriction_matrix,
)

COARSE_SHAPES = {1: (5,), 2: (3, 4), 3: (2, 3, 2)}
CENTRINGS = pytest.mark.parametrize("centring", ["node", "cell"])


def fine(shape):
    return tuple(2 * n for n in shape)


def outer(factors):
    """Outer product of 1D arrays, axis k from factor k."""
    out = factors[0]
    for factor in factors[1:]:
        out = np.multiply.outer(out, factor)
    return out


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


def test_cell_centred_1d_matrices_are_injection_and_pairwise_averaging():
    P = prolongation_matrix(3, centring="cell").toarray()
    np.testing.assert_array_equal(P, np.repeat(np.eye(3), 2, axis=0))
    R = restriction_matrix(6, centring="cell").toarray()
    np.testing.assert_array_equal(2 * R, np.kron(np.eye(3), [[1.0, 1.0]]))


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_prolongation_is_exactly_2_to_the_d_times_restriction_transposed(dim, centring):
    coarse = COARSE_SHAPES[dim]
    P = prolongation_matrix(coarse, centring)
    R = restriction_matrix(fine(coarse), centring)
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


@CENTRINGS
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matrix_free_transfers_equal_the_sparse_matrices(rng, dim, dtype, rtol, centring):
    coarse = COARSE_SHAPES[dim]
    v = rng.standard_normal((2, 3) + fine(coarse)).astype(dtype)
    u = rng.standard_normal((2, 3) + coarse).astype(dtype)
    restricted, prolonged = restrict(v, dim, centring), prolong(u, dim, centring)
    assert restricted.dtype == dtype and prolonged.dtype == dtype
    assert restricted.shape == (2, 3) + coarse and prolonged.shape == (2, 3) + fine(coarse)
    np.testing.assert_allclose(
        restricted.reshape(2, 3, -1),
        apply_matrix(restriction_matrix(fine(coarse), centring), v, dim),
        rtol=rtol,
        atol=rtol,
    )
    np.testing.assert_allclose(
        prolonged.reshape(2, 3, -1),
        apply_matrix(prolongation_matrix(coarse, centring), u, dim),
        rtol=rtol,
        atol=rtol,
    )


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_adjoint_dot_product_restrict_is_2_to_minus_d_prolong_transposed(rng, dim, centring):
    coarse = COARSE_SHAPES[dim]
    v = rng.standard_normal((4,) + fine(coarse))
    u = rng.standard_normal((4,) + coarse)
    lhs = np.sum(restrict(v, dim, centring) * u)
    rhs = 2.0**-dim * np.sum(v * prolong(u, dim, centring))
    assert abs(lhs - rhs) / abs(rhs) < 1e-10


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_adjoint_dot_products_of_the_batched_transfers_against_their_matrices(rng, dim, centring):
    """<restrict(v), u> == <v, R^T u> and <prolong(u), v> == <u, P^T v>, R and P sparse."""
    coarse = COARSE_SHAPES[dim]
    v = rng.standard_normal((3,) + fine(coarse))
    u = rng.standard_normal((3,) + coarse)
    R, P = restriction_matrix(fine(coarse), centring), prolongation_matrix(coarse, centring)
    v_flat, u_flat = v.reshape(3, -1), u.reshape(3, -1)
    pairs = (
        (np.sum(restrict(v, dim, centring) * u), np.sum(v_flat * apply_matrix(R.T, u, dim))),
        (np.sum(prolong(u, dim, centring) * v), np.sum(u_flat * apply_matrix(P.T, v, dim))),
    )
    for lhs, rhs in pairs:
        assert abs(lhs - rhs) / abs(rhs) < 1e-10


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_restrict_after_prolong_is_exactly_the_identity(rng, dim):
    """R P = I: averaging the 2^d copies of a coarse value gives it back (matrices and arrays)."""
    coarse = COARSE_SHAPES[dim]
    u = rng.standard_normal((2,) + coarse)
    np.testing.assert_array_equal(restrict(prolong(u, dim, "cell"), dim, "cell"), u)
    RP = restriction_matrix(fine(coarse), "cell") @ prolongation_matrix(coarse, "cell")
    assert abs(RP - sp.identity(int(np.prod(coarse)))).max() == 0.0
    copies = prolong(u, dim, "cell")
    for corner in np.ndindex((2,) * dim):
        block = (Ellipsis,) + tuple(slice(k, None, 2) for k in corner)
        np.testing.assert_array_equal(copies[block], u)


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


@CENTRINGS
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_classifier_weights_move_with_restriction(rng, dim, centring):
    """h^d sum(W_h * P y_H) == H^d sum(R W_h * y_H) with H = 2h."""
    coarse = COARSE_SHAPES[dim]
    h = 1.0 / 7
    W = rng.standard_normal((10,) + fine(coarse))
    y = rng.standard_normal(coarse)
    axes = tuple(range(1, dim + 1))
    fine_scores = h**dim * np.sum(W * prolong(y, dim, centring), axis=axes)
    coarse_scores = (2 * h) ** dim * np.sum(restrict(W, dim, centring) * y, axis=axes)
    np.testing.assert_allclose(coarse_scores, fine_scores, rtol=1e-12)


@CENTRINGS
def test_restriction_of_a_smooth_function_converges_at_second_order(centring):
    """max |R f_h - f_H| = O(h^2) for f vanishing (to 4th order) at the boundary, sampled at the
    mesh points (nodes or cell centres); order measured."""

    def sample(n):
        (x,) = Mesh(n, centring=centring).node_coordinates()
        return np.multiply.outer(np.sin(np.pi * x) ** 4, np.sin(2 * np.pi * x) ** 2 * np.exp(x))

    errors = [np.abs(restrict(sample(2 * n), 2, centring) - sample(n)).max() for n in (16, 32, 64)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.15), orders


@CENTRINGS
def test_restrict_image_without_smoothing_repeats_restrict(rng, centring):
    x = rng.standard_normal((3, 2, 16, 8)).astype(np.float32)
    out = restrict_image(x, dim=2, levels=2, centring=centring)
    assert out.dtype == np.float32 and out.shape == (3, 2, 4, 2)
    np.testing.assert_array_equal(out, restrict(restrict(x, 2, centring), 2, centring))


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
        (lambda: restrict(np.zeros(4), 1, "edge"), ValueError, r"centring must be one of \('node'"),
        (lambda: prolongation_matrix(3, centring=None), ValueError, "centring must be one of"),
        (lambda: restrict_image(np.zeros((4, 4)), 2, centring="Cell"), ValueError, "centring"),
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
        (lambda: restrict_field(np.zeros((4, 7)), 2), ValueError, "axis 1 has 7 nodes.*pad or"),
        (lambda: restrict_field(np.zeros(8), 2), ValueError, "at least dim=2 axes"),
        (lambda: restrict_field([1.0, np.nan], 1), ValueError, "x contains 1 non-finite"),
        (lambda: prolong_field(np.zeros(4), 0), ValueError, "dim must be 1, 2 or 3"),
        (lambda: prolong_field(np.zeros(4, complex), 1), TypeError, "x must be real"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- parameter fields
@CENTRINGS
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_field_transfers_keep_constants_exactly_on_every_node(dim, dtype, centring):
    """A constant per batch entry comes back as the same constant, boundary nodes included."""
    values = np.array([0.195, -3.7, 1e3], dtype=dtype).reshape((3,) + (1,) * dim)
    coarse = np.broadcast_to(values, (3,) + COARSE_SHAPES[dim])
    fine_field = np.broadcast_to(values, (3,) + fine(COARSE_SHAPES[dim]))
    prolonged = prolong_field(coarse, dim, centring)
    restricted = restrict_field(fine_field, dim, centring)
    assert prolonged.dtype == dtype and restricted.dtype == dtype
    np.testing.assert_array_equal(prolonged, fine_field)
    np.testing.assert_array_equal(restricted, coarse)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_transfers_keep_constants_and_equal_the_field_transfers(rng, dim, dtype):
    """Cell transfers read no value outside the grid: zero-outside and constant-extended
    transfers coincide, and constants are kept at every cell, boundary cells included."""
    u = rng.standard_normal((2,) + COARSE_SHAPES[dim]).astype(dtype)
    v = rng.standard_normal((2,) + fine(COARSE_SHAPES[dim])).astype(dtype)
    np.testing.assert_array_equal(prolong_field(u, dim, "cell"), prolong(u, dim, "cell"))
    np.testing.assert_array_equal(restrict_field(v, dim, "cell"), restrict(v, dim, "cell"))
    constant = np.full(fine(COARSE_SHAPES[dim]), 0.195, dtype=dtype)
    np.testing.assert_array_equal(restrict(constant, dim, "cell"),
                                  np.full(COARSE_SHAPES[dim], 0.195, dtype=dtype))
    np.testing.assert_array_equal(prolong(constant, dim, "cell"),
                                  np.full(fine(fine(COARSE_SHAPES[dim])), 0.195, dtype=dtype))


def test_prolong_field_copies_the_last_node_where_prolong_halves_it():
    coarse = np.array([0.39, 0.195])
    np.testing.assert_array_equal(prolong_field(coarse, 1), [0.39, 0.2925, 0.195, 0.195])
    np.testing.assert_array_equal(prolong(coarse, 1), [0.39, 0.2925, 0.195, 0.0975])


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_field_transfers_differ_from_zero_outside_transfers_only_at_one_end(rng, dim):
    """prolong_field == prolong except at the last fine node of an axis; restrict_field ==
    restrict except at coarse node 0 of an axis, where it adds x[0] / 4 (x[-1] = x[0])."""
    u = rng.standard_normal((2,) + COARSE_SHAPES[dim])
    v = rng.standard_normal((2,) + fine(COARSE_SHAPES[dim]))
    away = (Ellipsis,) + (slice(None, -1),) * dim
    np.testing.assert_array_equal(prolong_field(u, dim)[away], prolong(u, dim)[away])
    np.testing.assert_array_equal(restrict_field(v, dim)[(Ellipsis,) + (slice(1, None),) * dim],
                                  restrict(v, dim)[(Ellipsis,) + (slice(1, None),) * dim])
    w = rng.standard_normal(8)
    assert restrict_field(w, 1)[0] == pytest.approx(restrict(w, 1)[0] + w[0] / 4, rel=1e-15)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_field_transfers_are_tensor_products_and_do_not_mix_batch_entries(rng, dim):
    """On a product of 1D fields each axis is transferred on its own; batch entries separately."""
    factors = [rng.standard_normal(n) for n in COARSE_SHAPES[dim]]
    product = outer(factors)
    expected = outer([prolong_field(f, 1) for f in factors])
    batch = np.stack([product, 2 * product, np.zeros_like(product)])
    prolonged = prolong_field(batch, dim)
    np.testing.assert_allclose(prolonged[0], expected, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(prolonged[1], 2 * expected, rtol=1e-14, atol=1e-15)
    assert not prolonged[2].any()
    fine_factors = [rng.standard_normal(2 * n) for n in COARSE_SHAPES[dim]]
    np.testing.assert_allclose(
        restrict_field(outer(fine_factors), dim),
        outer([restrict_field(f, 1) for f in fine_factors]),
        rtol=1e-13,
        atol=1e-15,
    )


def test_prolong_field_reproduces_linear_functions_except_at_the_last_fine_node():
    """d-linear interpolation is exact for a + b.x at every fine node but the last per axis."""
    coarse_mesh = Mesh((4, 6, 3))

    def linear(mesh):
        return 0.4 + sum(c * x for c, x in zip((0.7, -1.3, 2.1), mesh.meshgrid(), strict=True))

    prolonged = prolong_field(linear(coarse_mesh), 3)
    np.testing.assert_allclose(
        prolonged[:-1, :-1, :-1], linear(coarse_mesh.refine())[:-1, :-1, :-1], rtol=1e-14
    )


def test_integer_fields_become_float64_and_input_is_not_modified(rng):
    x = rng.integers(-5, 5, size=(3, 4, 4))
    before = x.copy()
    assert restrict_field(x, 2).dtype == np.float64 and prolong_field(x, 2).dtype == np.float64
    np.testing.assert_array_equal(x, before)


def restrict_prolong_field_1d(n):
    """1D R_f P_f: tridiag(1/8, 3/4, 1/8) with first row (7/8, 1/8), last row (1/8, 7/8)."""
    matrix = stencil_grid(np.array([1.0, 6.0, 1.0]) / 8, (n,)).toarray()
    matrix[0, 0] = matrix[-1, -1] = 7.0 / 8
    return matrix


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restrict_field_after_prolong_field_is_a_row_stochastic_smoother(rng, dim):
    """R_f P_f is the tensor product of the 1D matrix above (rows sum to one), exactly."""
    coarse = COARSE_SHAPES[dim]
    u = rng.standard_normal(coarse)
    expected = restrict_prolong_field_1d(coarse[0])
    for n in coarse[1:]:
        expected = np.kron(expected, restrict_prolong_field_1d(n))
    np.testing.assert_allclose(
        restrict_field(prolong_field(u, dim), dim).reshape(-1),
        expected @ u.reshape(-1),
        rtol=1e-14,
        atol=1e-15,
    )


def test_restrict_field_after_prolong_field_of_a_smooth_field_is_close_to_the_identity():
    """|R_f P_f u - u|: H^2/8 times second differences off the boundary (order 2), H/8 times
    the first difference at boundary nodes (order 1); measured for n = 16, 32, 64 in 2D."""
    interior, everywhere = [], []
    for n in (16, 32, 64):
        x, y = Mesh((n, n)).meshgrid()
        u = np.sin(2 * x + y) + x
        error = np.abs(restrict_field(prolong_field(u, 2), 2) - u)
        interior.append(error[1:-1, 1:-1].max())
        everywhere.append(error.max())
    assert everywhere[0] < 0.04 and interior[0] < 0.003
    interior_orders = np.log2(np.array(interior[:-1]) / interior[1:])
    boundary_orders = np.log2(np.array(everywhere[:-1]) / everywhere[1:])
    assert np.all(np.abs(interior_orders - 2.0) < 0.1), interior_orders
    assert np.all(np.abs(boundary_orders - 1.0) < 0.1), boundary_orders


@pytest.mark.parametrize("module", [pdecontrol.transfer.matrices, pdecontrol.transfer.grids])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
