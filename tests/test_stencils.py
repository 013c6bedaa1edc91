"""The derivative basis of 3-per-axis stencils and the stencil <-> coefficient maps."""

import doctest
import itertools

import numpy as np
import pytest

import pdecontrol.stencils
from pdecontrol.stencils import (
    basis_matrix,
    coefficients_to_stencil,
    derivative_basis,
    high_order_projector,
    rediscretize,
    split_by_order,
    stencil_to_coefficients,
    transfer_condition_number,
)

RATES = np.array([1.3, -0.9, 1.1])  # f(x) = exp(RATES . x): d^m f = prod(RATES^m) f


def correlate_at_point(stencil, function, point, h):
    """sum_a s[a] f(point + (a - 1) h): one stencil application (correlation) at one point."""
    dim = stencil.ndim
    total = 0.0
    for a in itertools.product(range(3), repeat=dim):
        total += stencil[a] * function(point + (np.array(a) - 1) * h)
    return total


def observed_orders(errors):
    errors = np.asarray(errors)
    return np.log2(errors[:-1] / errors[1:])


def test_basis_names_multi_indices_and_orders():
    basis = derivative_basis(2, 0.5)
    assert basis.stencils.shape == (9, 3, 3) and len(basis.names) == 9
    assert basis.names[basis.multi_indices.index((0, 1))] == "d/dy"
    assert basis.names[basis.multi_indices.index((2, 2))] == "d4/dx2dy2"
    assert basis.names[basis.multi_indices.index((1, 1))] == "d2/dxdy"
    assert list(basis.orders) == [sum(m) for m in basis.multi_indices]
    three_d = derivative_basis(3)
    assert three_d.stencils.shape == (27, 3, 3, 3) and three_d.names[-1] == "d6/dx2dy2dz2"
    assert derivative_basis(1).names == ("identity", "d/dx", "d2/dx2")


def test_2d_basis_has_the_tensor_product_scale_factors():
    """d/dy = [1 2 1]'[-1 0 1]/(8h), d2/dxdy /(4h^2), third derivatives /(2h^3), d4 /h^4."""
    h = 0.25
    basis = derivative_basis(2, h)
    stencil = dict(zip(basis.multi_indices, basis.stencils, strict=True))
    smooth, first, second = np.array([1, 2, 1.0]), np.array([-1, 0, 1.0]), np.array([1, -2, 1.0])
    np.testing.assert_allclose(stencil[(0, 1)], np.outer(smooth, first) / (8 * h))
    np.testing.assert_allclose(stencil[(1, 1)], np.outer(first, first) / (4 * h**2))
    np.testing.assert_allclose(stencil[(2, 1)], np.outer(second, first) / (2 * h**3))
    np.testing.assert_allclose(stencil[(2, 2)], np.outer(second, second) / h**4)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_each_basis_stencil_approximates_its_derivative_at_second_order(dim):
    rates = RATES[:dim]
    point = np.array([0.3, -0.2, 0.1])[:dim]
    function = lambda x: np.exp(rates @ x)  # noqa: E731
    spacings = [0.2 * 2.0**-k for k in range(3)]
    aspect = np.array([1.0, 1.5, 0.75])[:dim]  # per-axis spacings h * aspect
    for index, m in enumerate(derivative_basis(dim).multi_indices):
        exact = np.prod(rates ** np.array(m)) * function(point)
        errors = []
        for h in spacings:
            stencil = derivative_basis(dim, tuple(h * aspect)).stencils[index]
            errors.append(abs(correlate_at_point(stencil, function, point, h * aspect) - exact))
        orders = observed_orders(errors)
        assert np.all(np.abs(orders - 2.0) < 0.1), (m, orders)


def test_coefficients_give_the_differential_operator_at_second_order(rng):
    """s = B(h) alpha applied to a non-separable f approximates sum_m alpha_m d^m f, O(h^2)."""
    alpha = rng.standard_normal(9)
    wave = np.array([1.1, 0.6])
    point = np.array([0.2, 0.4])

    def derivative(m, x):
        """d^m of exp(RATES . x) + sin(wave . x)."""
        exponential = np.prod(RATES[:2] ** np.array(m)) * np.exp(RATES[:2] @ x)
        return exponential + np.prod(wave ** np.array(m)) * np.sin(wave @ x + sum(m) * np.pi / 2)

    exact = sum(
        a * derivative(m, point)
        for a, m in zip(alpha, itertools.product(range(3), repeat=2), strict=True)
    )
    errors = []
    for h in (0.1, 0.05, 0.025):
        stencil = coefficients_to_stencil(alpha, h)
        errors.append(
            abs(correlate_at_point(stencil, lambda x: derivative((0, 0), x), point, h) - exact)
        )
    assert np.all(np.abs(observed_orders(errors) - 2.0) < 0.1), observed_orders(errors)


@pytest.mark.parametrize("dim, h", [(1, 0.3), (2, (0.1, 0.2)), (3, (0.5, 1.0, 0.25))])
def test_stencil_coefficient_round_trip_batched(rng, dim, h):
    s = rng.standard_normal((2, 4) + (3,) * dim)
    alpha = stencil_to_coefficients(s, h, dim)
    assert alpha.shape == (2, 4, 3**dim)
    np.testing.assert_allclose(coefficients_to_stencil(alpha, h, dim), s, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        alpha.reshape(8, -1).T,
        np.linalg.solve(basis_matrix(dim, h), s.reshape(8, -1).T),
        rtol=1e-10,
    )


def test_float32_is_preserved(rng):
    s = rng.standard_normal((5, 3, 3)).astype(np.float32)
    assert stencil_to_coefficients(s, 0.1).dtype == np.float32
    assert rediscretize(s, 0.1, 0.2).dtype == np.float32


def test_rediscretize_keeps_coefficients_and_inverts(rng):
    s = rng.standard_normal((3, 3, 3, 3))
    h_from, h_to = (0.1, 0.2, 0.05), (0.3, 0.1, 0.1)
    moved = rediscretize(s, h_from, h_to, dim=3)
    np.testing.assert_allclose(
        stencil_to_coefficients(moved, h_to, 3), stencil_to_coefficients(s, h_from, 3), rtol=1e-10
    )
    np.testing.assert_allclose(rediscretize(moved, h_to, h_from, dim=3), s, rtol=1e-10, atol=1e-12)


def test_split_by_order_partitions_the_coefficients(rng):
    alpha = rng.standard_normal((4, 9))
    parts = split_by_order(alpha, dim=2)
    assert sorted(parts) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(sum(parts.values()), alpha)
    orders = derivative_basis(2).orders
    for order, part in parts.items():
        assert np.all(part[:, orders != order] == 0) and np.all(
            part[:, orders == order] == alpha[:, orders == order]
        )


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_high_order_projector_keeps_exactly_the_high_order_part(rng, dim):
    s = rng.standard_normal(3**dim)
    h = tuple(0.1 * (k + 1) for k in range(dim))
    for min_order in range(2 * dim + 1):
        Q = high_order_projector(min_order, dim)
        np.testing.assert_allclose(Q @ Q, Q, atol=1e-12)
        parts = split_by_order(stencil_to_coefficients(s.reshape((3,) * dim), h, dim), dim)
        high = sum(part for order, part in parts.items() if order >= min_order)
        # the projector is independent of h: compare with the h-dependent route
        np.testing.assert_allclose(
            Q @ s, coefficients_to_stencil(high, h, dim).reshape(-1), atol=1e-10
        )
    np.testing.assert_allclose(high_order_projector(0, dim), np.eye(3**dim), atol=1e-14)


def test_condition_numbers_are_kronecker_products():
    """cond(B(1)) in d dimensions is cond of the 1D map to the power d (Kronecker property)."""
    one_d = transfer_condition_number(1, 1.0)
    assert one_d == pytest.approx(4.27382, rel=1e-5)
    for dim in (2, 3):
        assert transfer_condition_number(dim, 1.0) == pytest.approx(one_d**dim, rel=1e-10)
    assert transfer_condition_number(2, 1 / 28) > 1e6  # scaling h^-|m| dominates at fine spacings


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: stencil_to_coefficients(np.zeros((3, 4)), 0.1),
            ValueError,
            r"s must have shape \(\.\.\., 3, 3\)",
        ),
        (lambda: stencil_to_coefficients(np.zeros(3), 0.1, dim=2), ValueError, "for dim=2"),
        (
            lambda: stencil_to_coefficients(np.zeros((3, 3)), 0.0),
            ValueError,
            "h must be a finite number > 0",
        ),
        (
            lambda: stencil_to_coefficients(np.zeros((3, 3)), (0.1, -1)),
            ValueError,
            r"h\[1\] must be",
        ),
        (
            lambda: stencil_to_coefficients(np.zeros((3, 3)), (0.1, 0.1, 0.1)),
            ValueError,
            "dim=2 entries",
        ),
        (
            lambda: stencil_to_coefficients(np.zeros((3, 3)), "0.1"),
            TypeError,
            "h must be a real number",
        ),
        (
            lambda: stencil_to_coefficients(np.full((3, 3), np.nan), 0.1),
            ValueError,
            "s contains 9 non-finite",
        ),
        (
            lambda: coefficients_to_stencil(np.zeros(8), 0.1),
            ValueError,
            r"alpha must have shape \(\.\.\., 9\)",
        ),
        (lambda: rediscretize(np.zeros((3, 3)), 0.1, np.inf), ValueError, "h_to must be"),
        (lambda: derivative_basis(4), ValueError, "dim must be 1, 2 or 3"),
        (
            lambda: split_by_order(np.zeros(9), dim=3),
            ValueError,
            r"alpha must have shape \(\.\.\., 27\)",
        ),
        (
            lambda: high_order_projector(5, dim=2),
            ValueError,
            r"min_order must be an int in \[0, 4\]",
        ),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_doctests():
    result = doctest.testmod(pdecontrol.stencils)
    assert result.attempted > 0 and result.failed == 0
