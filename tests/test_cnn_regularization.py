"""High-order kernel penalty: level independence, bases, link to prolongation, errors."""

import numpy as np
import pytest

from pdecontrol.control import QuadraticPenalty, Tikhonov, TimeSmoothness
from pdecontrol.mesh import Mesh
from pdecontrol.stencils import derivative_basis, rediscretize
from pdecontrol.transfer import prolong_stencil
from problems.cnn.network import CNNProblem
from problems.cnn.regularization import (
    classifier_tikhonov,
    high_order_coefficient_matrix,
    high_order_kernel_penalty,
    time_smoothness,
)


def penalty(problem, kernels, **options):
    """Value of the penalty on one kernel block ``(n, 3, ..., 3)`` of stencils."""
    matrix = high_order_coefficient_matrix(problem, **options)
    flat = problem.stencils_to_block(kernels).reshape(len(kernels), -1)
    return 0.5 * np.sum((flat @ matrix.T) ** 2)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_same_operator_same_penalty_on_every_level(rng, dim):
    fine = CNNProblem(Mesh((8,) * dim), 2, 2)
    coarse = fine.coarsen()
    h, H = fine.mesh.h, coarse.mesh.h
    s_fine = rng.standard_normal((4,) + (3,) * dim)
    s_coarse = rediscretize(s_fine, h, H, dim)  # the same differential operator on H
    assert penalty(fine, s_fine) == pytest.approx(penalty(coarse, s_coarse), rel=1e-12)
    assert penalty(fine, s_fine) > 0


@pytest.mark.parametrize("dim", [1, 2])
def test_coarse_penalty_is_the_prolonged_weight_for_pure_derivatives(dim):
    """For the eigenvectors of the inverse Galerkin map with all m_k >= 1 (pure derivatives),
    the coarse penalty equals the fine penalty of the prolonged kernel (reference l = fine h)."""
    fine = CNNProblem(Mesh((8,) * dim), 2, 2)
    coarse = fine.coarsen()
    one_d = {1: np.array([-1.0, 0.0, 1.0]), 2: np.array([1.0, -2.0, 1.0])}
    for m in derivative_basis(dim).multi_indices:
        if min(m) == 0:
            continue
        stencil = np.array(1.0)
        for order in m:
            stencil = np.multiply.outer(stencil, one_d[order])
        s = stencil[None]
        prolonged = prolong_stencil(s, dim)
        np.testing.assert_allclose(prolonged, 2 ** sum(m) * s, atol=1e-12)
        assert penalty(coarse, s) == pytest.approx(penalty(fine, prolonged), rel=1e-12)


def test_derivative_basis_penalises_its_own_coefficients():
    problem = CNNProblem(Mesh((8, 8)), 2, 2, kernel_basis="derivative")
    matrix = high_order_coefficient_matrix(problem, min_order=2)
    orders = np.array(derivative_basis(2).orders)
    np.testing.assert_allclose(matrix, np.eye(9)[orders >= 2], atol=1e-12)
    coarse_matrix = high_order_coefficient_matrix(problem.coarsen(), min_order=2)
    np.testing.assert_allclose(coarse_matrix, np.eye(9)[orders >= 2], atol=1e-12)


def test_order_zero_part_is_free_and_penalty_blocks():
    problem = CNNProblem(Mesh((8, 8)), 2, 2)
    identity = np.outer([1, 2, 1], [1, 2, 1])[None] / 16.0
    assert penalty(problem, identity) < 1e-28
    regs = high_order_kernel_penalty(problem, 0.1)
    assert [r.block for r in regs] == ["K", "K0"] and all(
        isinstance(r, QuadraticPenalty) for r in regs
    )
    layout = problem.layout(3)
    params = layout.random(np.random.default_rng(0))
    expected = 0.1 * penalty(problem, params["K"].reshape(-1, 3, 3))
    assert regs[0].value(params) == pytest.approx(expected, rel=1e-12)
    smooth = time_smoothness(1e-2, 3.0)
    assert [type(r) for r in smooth] == [TimeSmoothness, TimeSmoothness]
    assert isinstance(classifier_tikhonov(1e-3), Tikhonov)


def test_penalty_errors():
    problem = CNNProblem(Mesh((8, 8)), 2, 2)
    with pytest.raises(ValueError, match="min_order"):
        high_order_coefficient_matrix(problem, min_order=0)
    with pytest.raises(ValueError, match="min_order"):
        high_order_coefficient_matrix(problem, min_order=5)
    with pytest.raises(ValueError, match="kernel blocks"):
        high_order_kernel_penalty(problem, 1.0, blocks=("W",))
    with pytest.raises(ValueError, match="reference_spacing"):
        high_order_coefficient_matrix(problem, reference_spacing=-1.0)
    with pytest.raises(TypeError, match="CNNProblem"):
        high_order_coefficient_matrix(Mesh((8, 8)))
