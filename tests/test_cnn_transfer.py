"""Moving networks between resolutions: Galerkin exactness, adjoints, identities, classifier,
for both centrings (node, cell) and both kernel transfers (Galerkin, rediscretization)."""

import numpy as np
import pytest

from pdecontrol.mesh import Mesh
from pdecontrol.ops import conv
from pdecontrol.stencils import derivative_basis, rediscretize
from pdecontrol.transfer import (
    galerkin_restriction_matrix,
    prolong,
    restrict,
    restrict_stencil,
    restrict_stencil_transpose,
)
from pdecontrol.verify import adjoint_test
from problems.cnn.network import CNNProblem
from problems.cnn.transfer import (
    NetworkTransfer,
    network_restriction_operator,
    prolong_network,
    restrict_classifier_only,
    restrict_network,
)

FINE_SHAPES = {1: (16,), 2: (8, 8), 3: (4, 4, 4)}
BASES = ["stencil", "derivative"]
#: (centring, kernel transfer) of every family of network transfers.
FAMILIES = pytest.mark.parametrize(
    "centring, kernel_transfer",
    [("node", "galerkin"), ("cell", "galerkin"), ("node", "rediscretize"),
     ("cell", "rediscretize")],
)


def problem(dim, kernel_basis="stencil", shape=None, centring="node"):
    return CNNProblem(
        Mesh(shape or FINE_SHAPES[dim], centring=centring), 3, 2, in_channels=2,
        kernel_basis=kernel_basis,
    )


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_restricted_layer_is_the_galerkin_operator_at_interior_nodes(rng, dim):
    """conv(R y, restrict_stencil(K)) == R conv(P R y, K) at coarse nodes with all indices >= 1."""
    shape = {1: (16,), 2: (12, 12), 3: (8, 8, 8)}[dim]
    y = rng.standard_normal((2, 3) + shape)
    K = rng.standard_normal((4, 3) + (3,) * dim)
    y_coarse = restrict(y, dim)
    coarse = conv(y_coarse, restrict_stencil(K, dim))
    galerkin = restrict(conv(prolong(y_coarse, dim), K), dim)
    interior = (Ellipsis,) + (slice(1, None),) * dim
    np.testing.assert_allclose(coarse[interior], galerkin[interior], rtol=0, atol=1e-12)
    assert np.abs(coarse - galerkin).max() > 1e-3  # the index-0 faces differ (documented)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_cell_centred_restricted_layer_is_the_galerkin_operator_at_every_cell(rng, dim):
    """Cell-centred: conv(R y, restrict_stencil(K)) == R conv(P R y, K) everywhere."""
    shape = {1: (16,), 2: (12, 12), 3: (8, 8, 8)}[dim]
    y = rng.standard_normal((2, 3) + shape)
    K = rng.standard_normal((4, 3) + (3,) * dim)
    y_coarse = restrict(y, dim, "cell")
    coarse = conv(y_coarse, restrict_stencil(K, dim, "cell"))
    galerkin = restrict(conv(prolong(y_coarse, dim, "cell"), K), dim, "cell")
    np.testing.assert_allclose(coarse, galerkin, rtol=0, atol=1e-12)


@FAMILIES
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kernel_basis", BASES)
def test_restriction_operator_adjoint(rng, dim, kernel_basis, centring, kernel_transfer):
    fine = problem(dim, kernel_basis, centring=centring)
    A = NetworkTransfer(fine, 2, kernel_transfer).operator()
    result = adjoint_test(A.matvec, A.rmatvec, (A.shape[1],), (A.shape[0],), rng=rng)
    assert result.passed, result
    assert result.relative_error < 1e-10


@FAMILIES
@pytest.mark.parametrize("kernel_basis", BASES)
def test_two_level_operator_adjoint_and_composition(rng, kernel_basis, centring, kernel_transfer):
    fine = problem(2, kernel_basis, shape=(16, 8), centring=centring)
    A = network_restriction_operator(fine, 3, levels=2, kernel_transfer=kernel_transfer)
    assert A.shape == (fine.coarsen().coarsen().layout(3).size, fine.layout(3).size)
    result = adjoint_test(A.matvec, A.rmatvec, (A.shape[1],), (A.shape[0],), rng=rng)
    assert result.passed, result
    assert result.relative_error < 1e-10
    x = rng.standard_normal(A.shape[1])
    twice = restrict_network(fine, x, 2, kernel_transfer)
    np.testing.assert_allclose(A.matvec(x), twice, rtol=1e-14)
    once = restrict_network(fine, x, kernel_transfer=kernel_transfer)
    np.testing.assert_allclose(
        twice, restrict_network(fine.coarsen(), once, kernel_transfer=kernel_transfer)
    )


@FAMILIES
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("kernel_basis", BASES)
@pytest.mark.parametrize("levels", [1, 2])
def test_prolong_then_restrict_is_identity(rng, dim, kernel_basis, levels, centring,
                                           kernel_transfer):
    shape = {1: (16,), 2: (8, 16), 3: (8, 4, 4)}[dim]
    fine = problem(dim, kernel_basis, shape, centring)
    coarse = fine
    for _ in range(levels):
        coarse = coarse.coarsen()
    x_coarse = rng.standard_normal(coarse.layout(2).size)
    x_fine = prolong_network(coarse, x_coarse, levels, kernel_transfer)
    assert x_fine.shape == (fine.layout(2).size,)
    np.testing.assert_allclose(restrict_network(fine, x_fine, levels, kernel_transfer), x_coarse,
                               rtol=0, atol=1e-11)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_rediscretized_kernels_are_the_same_derivatives_at_the_new_spacing(rng, dim):
    """Every basis stencil at h restricts to the same basis stencil at H = 2h and prolongs back;
    in the derivative basis the blocks do not change (the map is the identity)."""
    fine = problem(dim)
    h, H = fine.mesh.h, fine.coarsen().mesh.h
    transfer = NetworkTransfer(fine, 1, "rediscretize")
    fine_basis, coarse_basis = derivative_basis(dim, h), derivative_basis(dim, H)
    taps = 3**dim
    restricted = fine_basis.stencils.reshape(taps, taps) @ transfer.kernel_restriction.T
    scale = np.abs(coarse_basis.stencils).max(axis=tuple(range(1, dim + 1)))
    np.testing.assert_allclose(restricted / scale[:, None],
                               coarse_basis.stencils.reshape(taps, taps) / scale[:, None],
                               rtol=0, atol=1e-13)
    s = rng.standard_normal((5,) + (3,) * dim)
    np.testing.assert_allclose((s.reshape(5, taps) @ transfer.kernel_restriction.T),
                               rediscretize(s, h, H, dim).reshape(5, taps), rtol=1e-13)
    derivative = NetworkTransfer(problem(dim, "derivative"), 1, "rediscretize")
    for matrix in (derivative.kernel_restriction, derivative.kernel_prolongation):
        np.testing.assert_allclose(matrix, np.eye(taps), rtol=0, atol=1e-11)


@pytest.mark.parametrize("centring", ["node", "cell"])
def test_kernel_maps_are_the_galerkin_maps(rng, centring):
    transfer = NetworkTransfer(problem(2, centring=centring), 2)
    np.testing.assert_array_equal(transfer.kernel_restriction,
                                  galerkin_restriction_matrix(2, centring))
    t = rng.standard_normal((5, 3, 3))
    np.testing.assert_allclose(
        (t.reshape(5, 9) @ transfer.kernel_restriction).reshape(5, 3, 3),
        restrict_stencil_transpose(t, 2, centring),
        atol=1e-15,
    )
    np.testing.assert_allclose(
        transfer.kernel_prolongation @ transfer.kernel_restriction, np.eye(9), atol=1e-12
    )


def test_blocks_move_as_documented(rng):
    fine = problem(2)
    x = rng.standard_normal(fine.layout(2).size)
    p = fine.layout(2).unflatten(x)
    coarse_problem = fine.coarsen()
    q = coarse_problem.layout(2).unflatten(restrict_network(fine, x))
    np.testing.assert_allclose(q["K"], restrict_stencil(p["K"], 2), atol=1e-14)
    np.testing.assert_allclose(q["K0"], restrict_stencil(p["K0"], 2), atol=1e-14)
    np.testing.assert_allclose(q["W"], restrict(p["W"], 2), atol=1e-14)
    for name in ("b", "b0", "c"):
        np.testing.assert_array_equal(q[name], p[name])
    ablation = coarse_problem.layout(2).unflatten(restrict_classifier_only(fine, x))
    np.testing.assert_array_equal(ablation["K"], p["K"])
    np.testing.assert_array_equal(ablation["K0"], p["K0"])
    np.testing.assert_allclose(ablation["W"], q["W"], atol=0)


@pytest.mark.parametrize("centring", ["node", "cell"])
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_classifier_is_consistent_on_interpolated_states(rng, dim, centring):
    """H^d <W_H, y_H> == h^d <W_h, P y_H> for W_H = R W_h, and for W_h = prolonged W_H."""
    fine = problem(dim, centring=centring)
    coarse = fine.coarsen()
    y_coarse = rng.standard_normal((4, 3) + coarse.mesh.shape)
    W_fine = rng.standard_normal((2, 3) + fine.mesh.shape)
    x = fine.layout(1).zeros()
    x["W"][...] = W_fine
    W_coarse = coarse.layout(1).unflatten(restrict_network(fine, x.flat))["W"]
    axes = tuple(range(1, dim + 2))

    def outputs(W, y, mesh):
        return mesh.cell_volume * np.tensordot(y, W, axes=(axes, axes))

    y_interp = prolong(y_coarse, dim, centring)
    np.testing.assert_allclose(
        outputs(W_coarse, y_coarse, coarse.mesh), outputs(W_fine, y_interp, fine.mesh), rtol=1e-12
    )
    W_back = fine.layout(1).unflatten(prolong_network(coarse, restrict_network(fine, x.flat)))["W"]
    np.testing.assert_allclose(
        outputs(W_back, y_interp, fine.mesh), outputs(W_coarse, y_coarse, coarse.mesh), rtol=1e-12
    )


def test_cell_centred_prolonged_classifier_is_the_injection(rng):
    """R P = I on cells, so W_h = P (R P)^-1 W_H is P W_H: every fine cell copies its coarse W."""
    coarse = problem(2, centring="cell").coarsen()
    x = rng.standard_normal(coarse.layout(2).size)
    W = coarse.layout(2).unflatten(x)["W"]
    fine_W = coarse.refine().layout(2).unflatten(prolong_network(coarse, x))["W"]
    np.testing.assert_allclose(fine_W, prolong(W, 2, "cell"), rtol=0, atol=1e-15)


def test_derivative_basis_moves_the_same_stencils(rng):
    stencil, basis = problem(2), problem(2, "derivative")
    x = stencil.initial_parameters(2, seed=4)
    xb = basis.initial_parameters(2, seed=4)
    ks = stencil.coarsen().layout(2).unflatten(restrict_network(stencil, x))["K"]
    kb = basis.coarsen().layout(2).unflatten(restrict_network(basis, xb))["K"]
    np.testing.assert_allclose(basis.coarsen().block_to_stencils(kb), ks, atol=1e-12)
    # the coarse problem keeps the fine reference length l, so beta keeps its meaning
    assert basis.coarsen().reference_spacing == basis.reference_spacing


def test_transfer_errors(rng):
    fine = problem(2)
    with pytest.raises(ValueError, match="cannot be coarsened"):
        NetworkTransfer(CNNProblem(Mesh((7, 8)), 2, 2), 2)
    with pytest.raises(ValueError, match="another mesh"):
        restrict_network(fine, np.zeros(fine.coarsen().layout(2).size + 1))
    transfer = NetworkTransfer(fine, 2)
    with pytest.raises(ValueError, match="has 2 layers|with 2 layers"):
        transfer.prolong(np.zeros(fine.layout(2).size))
    with pytest.raises(ValueError, match="levels"):
        restrict_network(fine, np.zeros(fine.layout(2).size), levels=0)
    with pytest.raises(TypeError, match="CNNProblem"):
        NetworkTransfer(Mesh((8, 8)), 2)
    with pytest.raises(ValueError, match="kernel_transfer must be one of"):
        NetworkTransfer(fine, 2, "bilinear")
