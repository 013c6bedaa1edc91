"""The diffusion operator -div(exp(m) grad u): matrix, matrix-free products, derivatives in m,
boundary convention and convergence."""

import doctest

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from pyamg.gallery import stencil_grid

import pdecontrol.diffusion
from pdecontrol.assembly import stencil_matrix
from pdecontrol.diffusion import DiffusionOperator
from pdecontrol.mesh import Mesh
from pdecontrol.verify import adjoint_test, taylor_test_map

# Per-axis extents make the spacings differ, so a mixed-up axis would show.
MESHES = {
    1: Mesh(7, extent=1.0),
    2: Mesh((5, 6), extent=(1.0, 1.5)),
    3: Mesh((4, 3, 5), extent=(1.0, 0.5, 2.0)),
}
BATCH = (2, 3)


def apply_matrix(A, u, dim):
    """A applied to every grid function of a batch ``(*batch, *spatial)``."""
    lead = u.shape[: u.ndim - dim]
    return (A @ u.reshape(-1, A.shape[0]).T).T.reshape(lead + u.shape[u.ndim - dim :])


def boundary_nodes(mesh):
    """C-order indices of the nodes with an index 0 on some axis."""
    return np.flatnonzero(~DiffusionOperator(mesh).unknowns.reshape(-1))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matrix_free_product_equals_the_matrix_for_batched_states(rng, dim):
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    m = rng.standard_normal(mesh.shape)
    u = rng.standard_normal(BATCH + mesh.shape)
    product = operator.apply(m, u)
    assert product.shape == u.shape
    expected = apply_matrix(operator.matrix(m), u, dim)
    np.testing.assert_allclose(product, expected, rtol=1e-13, atol=1e-13 * abs(expected).max())


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_matrix_is_symmetric_psd_with_zero_boundary_rows_and_columns(rng, dim):
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    A = operator.matrix(rng.standard_normal(mesh.shape))
    assert A.shape == (mesh.size, mesh.size) and A.has_canonical_format
    assert abs(A - A.T).max() == 0.0
    boundary = boundary_nodes(mesh)
    assert A[boundary].nnz == 0 and A[:, boundary].nnz == 0
    unknowns = operator.unknowns.reshape(-1)
    eigenvalues = np.linalg.eigvalsh(A.toarray()[np.ix_(unknowns, unknowns)])
    assert eigenvalues.min() > 1e-3 * eigenvalues.max()  # positive definite on the unknowns
    np.linalg.cholesky(np.eye(mesh.size) + 0.1 * A.toarray())  # I + c A is SPD


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_values_at_boundary_nodes_are_ignored_and_come_out_zero(rng, dim):
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    m = rng.standard_normal(mesh.shape)
    u = rng.standard_normal(BATCH + mesh.shape)
    product = operator.apply(m, u)
    np.testing.assert_array_equal(product, operator.apply(m, u * operator.unknowns))
    assert not product[..., ~operator.unknowns].any()


def laplacian_stencil(h):
    """The (2d+1)-point stencil of -Laplace with spacings h, as a 3 x ... x 3 array."""
    stencil = np.zeros((3,) * len(h))
    centre = (1,) * len(h)
    for axis, spacing in enumerate(h):
        for side in (0, 2):
            index = list(centre)
            index[axis] = side
            stencil[tuple(index)] = -1.0 / spacing**2
        stencil[centre] += 2.0 / spacing**2
    return stencil


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_constant_coefficient_is_the_standard_laplacian_on_the_unknowns(dim):
    """m = c: exp(c) times the (2d+1)-point Laplacian on the (n-1)^d unknowns, zero elsewhere."""
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    c = 0.3
    A = operator.matrix(np.full(mesh.shape, c))
    unknowns = operator.unknowns.reshape(-1)
    inner = tuple(n - 1 for n in mesh.shape)
    stencil = np.exp(c) * laplacian_stencil(mesh.h)
    expected = stencil_matrix(stencil, inner)
    assert abs(expected - stencil_grid(stencil, inner, format="csr")).max() == 0.0
    restricted = A[unknowns][:, unknowns]
    assert restricted.nnz == expected.nnz and A.nnz == expected.nnz
    np.testing.assert_allclose(restricted.toarray(), expected.toarray(), rtol=1e-14)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_taylor_test_of_the_map_m_to_a_of_m_times_u(rng, dim):
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    m = 0.5 * rng.standard_normal(mesh.shape)
    u = rng.standard_normal(BATCH + mesh.shape)
    result = taylor_test_map(
        lambda x: operator.apply(x.reshape(mesh.shape), u),
        lambda dx: operator.derivative(m, u, dx.reshape(mesh.shape)),
        m.reshape(-1),
        rng=rng,
    )
    assert result.passed, result


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_dot_product_test_of_derivative_and_derivative_adjoint(rng, dim):
    mesh = MESHES[dim]
    operator = DiffusionOperator(mesh)
    m = rng.standard_normal(mesh.shape)
    u = rng.standard_normal(BATCH + mesh.shape)
    result = adjoint_test(
        lambda dm: operator.derivative(m, u, dm),
        lambda v: operator.derivative_adjoint(m, u, v),
        mesh.shape,
        u.shape,
        rng=rng,
    )
    assert result.passed and result.relative_error < 1e-10, result


def test_derivative_adjoint_is_the_gradient_of_the_batched_energy(rng):
    """<v, A(m) u> summed over the batch, differentiated by central differences in m."""
    mesh = MESHES[2]
    operator = DiffusionOperator(mesh)
    m = rng.standard_normal(mesh.shape)
    u, v = rng.standard_normal((2, 3) + mesh.shape)
    dm = rng.standard_normal(mesh.shape)
    eps = 1e-6
    energy = [np.sum(v * operator.apply(m + s * eps * dm, u)) for s in (1, -1)]
    slope = np.sum(operator.derivative_adjoint(m, u, v) * dm)
    assert (energy[0] - energy[1]) / (2 * eps) == pytest.approx(slope, rel=1e-7)


def test_float32_states_and_fields_stay_float32(rng):
    mesh = MESHES[2]
    operator = DiffusionOperator(mesh)
    m = rng.standard_normal(mesh.shape).astype(np.float32)
    u = rng.standard_normal(BATCH + mesh.shape).astype(np.float32)
    assert operator.apply(m, u).dtype == np.float32
    assert operator.derivative(m, u, m).dtype == np.float32
    assert operator.derivative_adjoint(m, u, u).dtype == np.float32
    assert operator.apply(m.astype(np.float64), u).dtype == np.float64


def manufactured_1d(x):
    """u = sin(pi x) e^x (zero at 0 and 1), m = 0.8 cos(3x) + x, f = -(e^m u')'."""
    u = np.sin(np.pi * x) * np.exp(x)
    du = (np.pi * np.cos(np.pi * x) + np.sin(np.pi * x)) * np.exp(x)
    ddu = (2 * np.pi * np.cos(np.pi * x) + (1 - np.pi**2) * np.sin(np.pi * x)) * np.exp(x)
    m, dm = 0.8 * np.cos(3 * x) + x, -2.4 * np.sin(3 * x) + 1
    return u, m, -np.exp(m) * (dm * du + ddu)


def manufactured_2d(x, y):
    """u = sin(pi x) sin(2 pi y), m = 0.7 cos(2x + y) + 0.5 x, f = -div(e^m grad u)."""
    u = np.sin(np.pi * x) * np.sin(2 * np.pi * y)
    ux = np.pi * np.cos(np.pi * x) * np.sin(2 * np.pi * y)
    uy = 2 * np.pi * np.sin(np.pi * x) * np.cos(2 * np.pi * y)
    m = 0.7 * np.cos(2 * x + y) + 0.5 * x
    mx, my = -1.4 * np.sin(2 * x + y) + 0.5, -0.7 * np.sin(2 * x + y)
    return u, m, -np.exp(m) * (mx * ux + my * uy - 5 * np.pi**2 * u)


def max_error(n, dim):
    """max |u_h - u| at the nodes, u_h solving A(m) u_h = f on the unknowns of Mesh((n,)*dim)."""
    mesh = Mesh((n,) * dim)
    operator = DiffusionOperator(mesh)
    u, m, f = (manufactured_1d if dim == 1 else manufactured_2d)(*mesh.meshgrid())
    unknowns = operator.unknowns.reshape(-1)
    A = operator.matrix(m)[unknowns][:, unknowns]
    u_h = np.zeros(mesh.size)
    u_h[unknowns] = spla.spsolve(A.tocsc(), f.reshape(-1)[unknowns])
    return np.abs(u_h - u.reshape(-1)).max()


@pytest.mark.parametrize("dim, sizes", [(1, (64, 128, 256)), (2, (16, 32, 64))])
def test_discrete_solution_converges_at_second_order(dim, sizes):
    """Observed orders log2(e(n) / e(2n)) from three resolutions; docs/foundation.md has them."""
    errors = np.array([max_error(n, dim) for n in sizes])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(orders - 2.0) < 0.2), (errors, orders)


ZEROS = np.zeros((4, 4))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda op: DiffusionOperator((4, 4)), TypeError, "mesh must be a pdecontrol.mesh.Mesh"),
        (lambda op: op.matrix(np.zeros((4, 5))), ValueError, r"m must have the mesh shape \(4, 4"),
        (
            lambda op: op.apply(ZEROS, np.zeros((2, 4, 5))),
            ValueError,
            r"u must have shape \(\*batch, \*\(4, 4\)\)",
        ),
        (lambda op: op.apply(ZEROS, np.zeros(4)), ValueError, "u must have at least dim=2"),
        (lambda op: op.derivative(ZEROS, ZEROS, np.ones(3)), ValueError, "dm must have the mesh"),
        (
            lambda op: op.derivative_adjoint(ZEROS, np.zeros((2, 4, 4)), ZEROS),
            ValueError,
            r"v must have the shape of u \(2, 4, 4\)",
        ),
        (lambda op: op.matrix(np.full((4, 4), np.inf)), ValueError, "m contains 16 non-finite"),
        (lambda op: op.apply(ZEROS, ZEROS.astype(complex)), TypeError, "u must be real"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(DiffusionOperator(Mesh((4, 4))))


def test_doctests():
    result = doctest.testmod(pdecontrol.diffusion)
    assert result.attempted > 0 and result.failed == 0
