"""Linear solvers: exactness, transposed and batched solves, AMG-CG, the reuse cache, errors."""

import numpy as np
import pytest
import scipy.sparse as sp

from linear_solver_problems import heat_step_matrix, smooth_log_coefficient
from pdecontrol.linear_solvers import (
    SOLVER_NAMES,
    AMGConjugateGradient,
    ConvergenceError,
    FactorizationCache,
    SparseLU,
    matrix_fingerprint,
    solver_by_name,
)

AMG_NAMES = ("amg-sa", "amg-rs")


def heat_step(rng, n=24, contrast=1e4, dt=1e-2, dim=2):
    return heat_step_matrix(smooth_log_coefficient(rng, n, contrast, dim), dt)


def nonsymmetric_matrix(rng, n=60):
    """Diagonally dominant, clearly non-symmetric (convection-like) sparse matrix."""
    A = sp.random_array((n, n), density=0.1, rng=rng, format="csr")
    return sp.csr_array(A + sp.diags_array(np.full(n, 1.0 + abs(A).sum(axis=1).max())))


def dot_product_errors(x, c, b, y):
    """Per column ``|<x, c> - <b, y>|`` for ``x ~ A^-1 b``, ``y ~ A^-T c``."""
    return np.abs(np.sum(x * c, axis=0) - np.sum(b * y, axis=0))


def energy_error(A, x, exact):
    e = x - exact
    return np.sqrt(e @ (A @ e) / (exact @ (A @ exact)))


# ---------------------------------------------------------------- sparse LU
@pytest.mark.parametrize("ordering", ["MMD_AT_PLUS_A", "COLAMD"])
def test_lu_matches_dense_solves_forward_and_transposed(rng, ordering):
    A = nonsymmetric_matrix(rng)
    dense = A.toarray()
    lu = SparseLU(ordering).factorize(A)
    b = rng.standard_normal(60)
    B = rng.standard_normal((60, 5))
    for x, exact in [(lu.solve(b), np.linalg.solve(dense, b)),
                     (lu.solve_transpose(b), np.linalg.solve(dense.T, b)),
                     (lu.solve(B), np.linalg.solve(dense, B)),
                     (lu.solve_transpose(B), np.linalg.solve(dense.T, B))]:
        assert x.shape == exact.shape and x.dtype == np.float64
        assert np.linalg.norm(x - exact) <= 1e-12 * np.linalg.norm(exact)
    assert lu.n_solves == 12 and lu.setup_seconds > 0 and lu.accuracy == 1e-13


def test_lu_dot_product_error_is_below_its_accuracy(rng):
    lu = SparseLU().factorize(nonsymmetric_matrix(rng))
    b, c = rng.standard_normal((2, 60, 8))
    x, y = lu.solve(b), lu.solve_transpose(c)
    error = dot_product_errors(x, c, b, y) / (np.linalg.norm(x, axis=0) * np.linalg.norm(c, axis=0))
    assert np.all(error <= lu.accuracy)


def test_lu_accepts_dense_input_and_reports_a_singular_matrix(rng):
    dense = rng.standard_normal((5, 5)) + 5 * np.eye(5)
    b = rng.standard_normal(5)
    np.testing.assert_allclose(SparseLU(permc_spec="NATURAL").factorize(dense).solve(b),
                               np.linalg.solve(dense, b), rtol=1e-12)
    with pytest.raises(ValueError, match="matrix is singular"):
        SparseLU().factorize(np.ones((3, 3)))


# ---------------------------------------------------------------- AMG-CG
@pytest.mark.parametrize("name", AMG_NAMES)
def test_amg_cg_matches_dense_solve_to_its_tolerance(rng, name):
    A = heat_step(rng)
    B = rng.standard_normal((A.shape[0], 3))
    exact = np.linalg.solve(A.toarray(), B)
    for rtol in (1e-6, 1e-10):
        factorization = solver_by_name(name, rtol=rtol).factorize(A)
        X = factorization.solve(B)
        assert factorization.accuracy == rtol
        for j in range(3):
            assert energy_error(A, X[:, j], exact[:, j]) <= 3 * rtol
            assert np.linalg.norm(X[:, j] - exact[:, j]) <= 10 * rtol * np.linalg.norm(exact[:, j])
            assert factorization.relative_residuals[j] <= rtol


@pytest.mark.parametrize("name", AMG_NAMES)
def test_amg_cg_solves_a_3d_heat_step(rng, name):
    A = heat_step(rng, n=12, dim=3)
    b = rng.standard_normal(A.shape[0])
    x = solver_by_name(name, rtol=1e-10).factorize(A).solve(b)
    assert energy_error(A, x, np.linalg.solve(A.toarray(), b)) <= 3e-10


def test_amg_cg_columns_are_independent_solves_and_transpose_is_solve(rng):
    A = heat_step(rng, n=16)
    B = rng.standard_normal((A.shape[0], 4))
    solver = AMGConjugateGradient(rtol=1e-9)
    together = solver.factorize(A).solve(B)
    one_by_one = np.column_stack([solver.factorize(A).solve(B[:, j]) for j in range(4)])
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(solver.factorize(A).solve_transpose(B), together)


@pytest.mark.parametrize("name", AMG_NAMES)
def test_amg_setup_is_reproducible_and_leaves_numpy_global_random_state_alone(rng, name):
    A = heat_step(rng, n=16)
    b = rng.standard_normal(A.shape[0])
    np.random.seed(5)
    expected_draw = np.random.rand()
    np.random.seed(5)
    first = solver_by_name(name).factorize(A).solve(b)
    assert np.random.rand() == expected_draw
    np.testing.assert_array_equal(solver_by_name(name).factorize(A).solve(b), first)


def test_amg_cg_records_iterations_vcycles_and_hierarchy(rng):
    A = heat_step(rng)
    factorization = AMGConjugateGradient(method="sa", rtol=1e-8).factorize(A)
    factorization.solve(rng.standard_normal((A.shape[0], 2)))
    factorization.solve_transpose(rng.standard_normal(A.shape[0]))
    assert len(factorization.iterations) == len(factorization.relative_residuals) == 3
    assert all(3 <= k <= 20 for k in factorization.iterations)
    assert factorization.vcycles == sum(factorization.iterations) + 3
    assert factorization.levels >= 2 and 1.0 < factorization.operator_complexity < 3.0
    assert factorization.cycle_complexity > factorization.operator_complexity
    assert factorization.n_solves == 3 and factorization.solve_seconds > 0


def test_amg_cg_zero_right_hand_side_and_empty_batch(rng):
    A = heat_step(rng, n=8)
    factorization = AMGConjugateGradient().factorize(A)
    np.testing.assert_array_equal(factorization.solve(np.zeros(64)), np.zeros(64))
    assert factorization.iterations == [0]
    assert factorization.solve(np.zeros((64, 0))).shape == (64, 0)


def test_amg_cg_raises_when_maxiter_is_reached(rng):
    A = heat_step(rng)
    factorization = AMGConjugateGradient(rtol=1e-12, maxiter=2).factorize(A)
    with pytest.raises(ConvergenceError, match=r"did not reach rtol=1e-12 in maxiter=2 iterations"):
        factorization.solve(rng.standard_normal(A.shape[0]))


def test_amg_cg_raises_on_an_indefinite_matrix_with_a_positive_diagonal():
    # symmetric, diagonal > 0, eigenvalues 3 and -1: passes the set-up checks, fails in CG
    A = sp.csr_array(np.kron(np.eye(20), [[1.0, 2.0], [2.0, 1.0]]))
    factorization = AMGConjugateGradient(method="rs").factorize(A)
    with pytest.raises(ConvergenceError, match="not positive definite"):
        factorization.solve(np.tile([1.0, -1.0], 20))


@pytest.mark.parametrize("name", AMG_NAMES)
def test_amg_cg_refuses_non_symmetric_and_non_positive_diagonal(rng, name):
    with pytest.raises(ValueError, match=r"must be symmetric for AMG-CG.*'splu'"):
        solver_by_name(name).factorize(nonsymmetric_matrix(rng))
    with pytest.raises(ValueError, match=r"1 diagonal entries are <= 0"):
        solver_by_name(name).factorize(sp.diags_array([1.0, 2.0, -1.0]))


def test_warm_start_gives_the_cold_answer_to_tolerance_and_saves_iterations(rng):
    A = heat_step(rng)
    n = A.shape[0]
    b = rng.standard_normal(n)
    rtol = 1e-8
    cold = AMGConjugateGradient(rtol=rtol).factorize(A)
    warm = AMGConjugateGradient(rtol=rtol, warm_start=True).factorize(A)
    exact = np.linalg.solve(A.toarray(), b)
    x_cold, x_warm = cold.solve(b), warm.solve(b)
    np.testing.assert_array_equal(x_cold, x_warm)  # first solve: nothing to start from
    # a nearby right-hand side (a later time step): fewer iterations, same tolerance
    b2 = b + 1e-3 * rng.standard_normal(n)
    exact2 = np.linalg.solve(A.toarray(), b2)
    x_cold2, x_warm2 = cold.solve(b2), warm.solve(b2)
    assert warm.iterations[1] < cold.iterations[1]
    assert energy_error(A, x_warm2, exact2) <= 3 * rtol
    assert energy_error(A, x_warm2, x_cold2) <= 3 * rtol * 2
    assert warm.relative_residuals[1] <= rtol
    assert warm.vcycles == warm.iterations[0] + 1 + warm.iterations[1] + 2
    # the same right-hand side again: the guess already meets rtol
    np.testing.assert_array_equal(warm.solve(b2), x_warm2)
    assert warm.iterations[2] == 0
    exact_guess = AMGConjugateGradient(warm_start=True).factorize(sp.identity(n, format="csr"))
    exact_guess.solve(b)
    np.testing.assert_array_equal(exact_guess.solve(b), b)  # zero residual: no iteration
    # a guess worse than zero is not used; a new batch shape starts cold
    x_far = warm.solve(-1e3 * b2)
    assert energy_error(A, x_far, -1e3 * exact2) <= 3 * rtol
    assert warm.solve(np.column_stack([b, b])).shape == (n, 2)
    assert energy_error(A, x_cold, exact) <= 3 * rtol


def test_inexact_solve_dot_product_error_is_below_its_accuracy_in_the_energy_scale(rng):
    # |<A^-1 b, c> - <b, A^-T c>| <= 2 accuracy |x|_A |y|_A (docs/linear_solvers.md, "Accuracy")
    A = heat_step(rng, n=32)
    b, c = rng.standard_normal((2, A.shape[0], 8))
    exact_x, exact_y = np.linalg.solve(A.toarray(), b), np.linalg.solve(A.toarray(), c)
    energy = np.sqrt(np.sum(b * exact_x, axis=0) * np.sum(c * exact_y, axis=0))
    for rtol in (1e-6, 1e-9):
        factorization = AMGConjugateGradient(rtol=rtol).factorize(A)
        error = dot_product_errors(factorization.solve(b), c, b, factorization.solve_transpose(c))
        assert np.all(error <= 2 * factorization.accuracy * energy)
        assert np.all(error > 1e-4 * rtol * energy)  # an inexact solve, not an exact one


# ---------------------------------------------------------------- registry
def test_solver_by_name_builds_each_solver_and_round_trips():
    assert SOLVER_NAMES == ("splu", "amg-sa", "amg-rs")
    for name in SOLVER_NAMES:
        assert solver_by_name(name).name == name
    solver = solver_by_name("amg-rs", rtol=1e-6, maxiter=7, warm_start=True)
    assert solver == AMGConjugateGradient(method="rs", rtol=1e-6, maxiter=7, warm_start=True)
    assert solver_by_name("splu", permc_spec="COLAMD") == SparseLU("COLAMD")


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: solver_by_name("cholmod"), ValueError, "solver must be one of splu, amg-sa"),
        (lambda: solver_by_name("splu", rtol=1e-8), TypeError,
         "solver 'splu' has no option.s. rtol; its options are permc_spec"),
        (lambda: solver_by_name("amg-sa", method="rs"), TypeError, "has no option.s. method"),
        (lambda: AMGConjugateGradient(method="ml"), ValueError, "method must be 'sa' or 'rs'"),
        (lambda: AMGConjugateGradient(rtol=1.0), ValueError, r"rtol must be a finite number in"),
        (lambda: AMGConjugateGradient(maxiter=0), ValueError, "maxiter must be >= 1"),
        (lambda: AMGConjugateGradient(warm_start=1), TypeError, "warm_start must be True or False"),
        (lambda: SparseLU("AMD"), ValueError, "permc_spec must be one of"),
    ],
)
def test_bad_options_fail_with_one_line_messages(call, error, message):
    with pytest.raises(error, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("name", SOLVER_NAMES)
@pytest.mark.parametrize(
    "matrix, error, message",
    [
        (sp.random_array((4, 5), density=0.5, rng=0), ValueError,
         r"matrix must be square and non-empty, got shape \(4, 5\)"),
        (np.zeros((0, 0)), ValueError, "must be square and non-empty"),
        (np.ones(3), ValueError, r"matrix must be a 2-D matrix, got shape \(3,\)"),
        (sp.diags_array([1.0, np.nan, 1.0]), ValueError, r"matrix contains 1 non-finite value"),
        (sp.diags_array([1.0 + 1j, 1.0]), TypeError, "matrix must be real"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "matrix must be a numeric array"),
    ],
)
def test_bad_matrices_fail_with_one_line_messages(name, matrix, error, message):
    with pytest.raises(error, match=message) as info:
        solver_by_name(name).factorize(matrix)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", SOLVER_NAMES)
@pytest.mark.parametrize(
    "b, error, message",
    [
        (np.ones(5), ValueError, r"b must have shape \(4,\) or \(4, k\) to match the 4x4 matrix, "
                                 r"got \(5,\)"),
        (np.ones((4, 2, 1)), ValueError, r"got \(4, 2, 1\)"),
        (np.array([1.0, np.inf, 0.0, 1.0]), ValueError, r"b contains 1 non-finite value"),
        (np.ones(4) * 1j, TypeError, "b must be real"),
    ],
)
def test_bad_right_hand_sides_fail_with_one_line_messages(name, b, error, message):
    factorization = solver_by_name(name).factorize(sp.diags_array([2.0, 3.0, 4.0, 5.0]))
    with pytest.raises(error, match=message) as info:
        factorization.solve(b)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", SOLVER_NAMES)
def test_factorization_is_independent_of_the_callers_arrays(rng, name):
    A = heat_step(rng, n=8)
    b = rng.standard_normal(64)
    factorization = solver_by_name(name).factorize(A)
    before = factorization.solve(b)
    A.data *= 2.0  # a stepper reassembling into the same arrays
    np.testing.assert_array_equal(factorization.solve(b), before)


def test_integer_and_float32_inputs_give_float64_solutions():
    factorization = SparseLU().factorize(np.diag([2, 4]))
    assert factorization.solve(np.array([2, 4])).dtype == np.float64
    x = factorization.solve_transpose(np.array([[2.0], [4.0]], dtype=np.float32))
    assert x.dtype == np.float64 and x.shape == (2, 1)


# ---------------------------------------------------------------- cache
class CountingSolver:
    """Wraps a solver and counts its set-ups."""

    def __init__(self, solver):
        self.solver, self.setups = solver, 0

    def factorize(self, matrix):
        self.setups += 1
        return self.solver.factorize(matrix)


def test_cache_reuses_the_factorization_of_the_same_matrix(rng):
    A = heat_step(rng, n=16)
    counting = CountingSolver(AMGConjugateGradient())
    cache = FactorizationCache(counting, capacity=2)
    first = cache.factorize(A)
    for same in (A.copy(), A.tocsc(), A.toarray(), sp.coo_array(A)):
        assert cache.factorize(same) is first
    assert counting.setups == cache.setups == 1 and cache.hits == 4 and len(cache) == 1
    changed = A.copy()
    changed.data[7] = np.nextafter(changed.data[7], np.inf)
    assert cache.factorize(changed) is not first
    assert counting.setups == cache.setups == 2


def test_cache_drops_the_least_recently_used_beyond_capacity(rng):
    matrices = [heat_step(rng, n=8, dt=dt) for dt in (1e-3, 1e-2, 1e-1)]
    cache = FactorizationCache(SparseLU(), capacity=2)
    a, b = cache.factorize(matrices[0]), cache.factorize(matrices[1])
    assert cache.factorize(matrices[0]) is a       # a is now the most recently used
    cache.factorize(matrices[2])                   # evicts b
    assert len(cache) == 2 and cache.setups == 3
    assert cache.factorize(matrices[0]) is a
    assert cache.factorize(matrices[1]) is not b and cache.setups == 4
    cache.clear()
    assert len(cache) == 0 and "setups=4" in repr(cache)


def test_cache_input_checks():
    with pytest.raises(TypeError, match="solver must have a factorize.matrix. method"):
        FactorizationCache("splu")
    with pytest.raises(ValueError, match="capacity must be >= 1"):
        FactorizationCache(SparseLU(), capacity=0)


def test_fingerprint_is_exact_and_does_not_modify_its_input():
    unsorted = sp.csr_array((np.array([2.0, 1.0, 3.0]), np.array([1, 0, 1]),
                             np.array([0, 2, 3])), shape=(2, 2))
    unsorted.has_sorted_indices = False
    indices = unsorted.indices.copy()
    dense = np.array([[1.0, 2.0], [0.0, 3.0]])
    assert matrix_fingerprint(unsorted) == matrix_fingerprint(dense)
    np.testing.assert_array_equal(unsorted.indices, indices)
    nudged = dense.copy()
    nudged[1, 1] = np.nextafter(3.0, 4.0)
    assert matrix_fingerprint(dense) != matrix_fingerprint(nudged)
    assert matrix_fingerprint(dense) != matrix_fingerprint(dense.T)
    assert len(matrix_fingerprint(dense)) == 32
