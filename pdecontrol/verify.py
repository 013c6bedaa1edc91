"""Derivative verification: Taylor tests, dot-product (adjoint) tests, Gauss-Newton operator tests.

Every check returns a result object with a ``passed`` flag and a readable ``repr``; nothing only
prints. The checks never modify their inputs: the point ``x`` is copied and handed on read-only,
so a verification leaves a functional exactly where it found it.

* :func:`taylor_test` - ``|J(x + eps dx) - J(x) - eps g.dx|`` must fall as ``eps**2``.
* :func:`taylor_test_map` - the same for a vector-valued map and its tangent (norm of the
  remainder).
* :func:`adjoint_test` - ``<A u, w> = <u, A^T w>`` to a relative error (float64: < 1e-10).
* :func:`gauss_newton_test` - symmetry and positive semi-definiteness of ``G(x)``.
* :func:`verify_problem` - all of the above for a :class:`~pdecontrol.control.ControlFunctional`,
  including the derivative pairs its :class:`~pdecontrol.control.ControlProblem` supplies.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_float_array, check_finite
from .functional import ReducedFunctional

__all__ = ["TaylorResult", "AdjointResult", "GaussNewtonResult", "VerificationReport",
           "taylor_test", "taylor_test_map", "adjoint_test", "gauss_newton_test", "verify_problem"]

_DEFAULT_EPS = 1e-2 * 0.5 ** np.arange(6)


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class TaylorResult:
    """Outcome of a Taylor test.

    ``orders[k] = log(r[k+1] / r[k]) / log(eps[k+1] / eps[k])`` for consecutive remainders above
    ``noise_floor`` (NaN otherwise). Passed when every measured order is within ``tolerance`` of
    ``expected_order``, or when every remainder is at rounding level (exact linearisation).
    """

    eps: np.ndarray
    remainders: np.ndarray
    orders: np.ndarray
    expected_order: float
    tolerance: float
    noise_floor: float
    passed: bool
    name: str = "taylor"

    def __repr__(self) -> str:
        lines = [f"TaylorResult({self.name!r}, passed={self.passed}, expected order "
                 f"{self.expected_order:g} +- {self.tolerance:g}, "
                 f"noise floor {self.noise_floor:.1e})",
                 "         eps    remainder   order"]
        for k, (e, r) in enumerate(zip(self.eps, self.remainders, strict=True)):
            order = f"{self.orders[k - 1]:7.3f}" if k else "       "
            lines.append(f"  {e:10.3e}   {r:10.3e} {order}")
        return "\n".join(lines)


@dataclass(frozen=True)
class AdjointResult:
    """Outcome of a dot-product test: worst relative error
    ``|<Au,w> - <u,A^T w>| / max(|.|,|.|)``."""

    relative_error: float
    tolerance: float
    passed: bool
    name: str = "adjoint"

    def __repr__(self) -> str:
        return (f"AdjointResult({self.name!r}, passed={self.passed}, relative error "
                f"{self.relative_error:.2e} (tolerance {self.tolerance:.0e}))")


@dataclass(frozen=True)
class GaussNewtonResult:
    """Outcome of :func:`gauss_newton_test`.

    ``symmetry_error``: worst ``|u.Gw - w.Gu| / max(|u.Gw|, |w.Gu|)``;
    ``min_curvature``: smallest ``v.Gv / (|v| |Gv|)`` (>= -tolerance for PSD).
    """

    symmetry_error: float
    min_curvature: float
    tolerance: float
    passed: bool
    name: str = "gauss-newton"

    def __repr__(self) -> str:
        return (f"GaussNewtonResult({self.name!r}, passed={self.passed}, symmetry error "
                f"{self.symmetry_error:.2e}, min curvature {self.min_curvature:.3e})")


@dataclass(frozen=True)
class VerificationReport:
    """All checks of :func:`verify_problem`, by name; ``passed`` if every one passed."""

    results: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results.values())

    @property
    def failed(self) -> list[str]:
        """Names of the checks that failed."""
        return [name for name, r in self.results.items() if not r.passed]

    def __repr__(self) -> str:
        body = "\n".join(
            f"  {name}: {'ok' if r.passed else 'FAILED'}  {r!r}".replace("\n", "\n    ")
            for name, r in self.results.items())
        return f"VerificationReport(passed={self.passed})\n{body}"


# ---------------------------------------------------------------------- helpers
def _rng(rng):
    return np.random.default_rng(0) if rng is None else rng


def _frozen_copy(x, name: str) -> np.ndarray:
    x = np.array(check_finite(as_float_array(x, name, dtype=np.float64), name), copy=True)
    x.flags.writeable = False
    return x


def _eps_sequence(eps) -> np.ndarray:
    eps = _DEFAULT_EPS if eps is None else np.asarray(eps, dtype=np.float64)
    if eps.ndim != 1 or eps.size < 2 or np.any(eps <= 0) or np.any(np.diff(eps) >= 0):
        raise ValueError("eps must be a decreasing sequence of at least 2 positive steps, "
                         f"got {eps}")
    return eps


def _taylor_result(eps, remainders, noise_floor, expected_order, tolerance, name) -> TaylorResult:
    remainders = np.asarray(remainders, dtype=np.float64)
    measurable = remainders > noise_floor
    orders = np.full(eps.size - 1, np.nan)
    both = measurable[1:] & measurable[:-1]
    orders[both] = (np.log(remainders[1:][both] / remainders[:-1][both])
                    / np.log(eps[1:][both] / eps[:-1][both]))
    if not np.any(measurable):
        passed = True
    else:
        measured = orders[both]
        passed = bool(measured.size > 0 and np.all(np.abs(measured - expected_order) <= tolerance))
    return TaylorResult(eps, remainders, orders, float(expected_order), float(tolerance),
                        float(noise_floor), passed, name)


# ---------------------------------------------------------------------- tests
def _noise_floor(scale: float, noise: float) -> float:
    """Remainders below ``max(100 eps_machine, noise) * scale`` are rounding or solver error."""
    return max(100 * np.finfo(np.float64).eps, float(noise)) * max(scale, np.finfo(np.float64).tiny)


def taylor_test(functional: ReducedFunctional, x, dx=None, *, examples=None, eps=None, rng=None,
                tolerance: float = 0.1, noise: float = 0.0, name: str = "taylor") -> TaylorResult:
    """Second-order Taylor test of a reduced functional's gradient.

    Parameters
    ----------
    functional : ReducedFunctional
    x : ndarray, shape (size,)
        The point (not modified).
    dx : ndarray, shape (size,), optional
        Direction; default a standard normal vector from ``rng``.
    examples : index array, optional
        Example subset passed to the functional.
    eps : decreasing sequence, optional
        Step lengths (default ``1e-2 * 2**-k``, k = 0..5).
    rng : numpy.random.Generator, optional
        Default ``default_rng(0)``.
    tolerance : float
        Allowed deviation of the observed order from 2.
    noise : float
        Relative accuracy of the evaluations (e.g. the tolerance of an iterative linear solve
        inside them): remainders below ``noise * |J|`` are not used to measure the order.
    """
    if not isinstance(functional, ReducedFunctional):
        raise TypeError(f"functional must be a ReducedFunctional, got {type(functional).__name__}")
    x = _frozen_copy(functional.check_parameters(x), "x")
    dx = _rng(rng).standard_normal(x.size) if dx is None else _frozen_copy(dx, "dx")
    if dx.shape != x.shape:
        raise ValueError(f"dx must have the shape of x {x.shape}, got {dx.shape}")
    eps = _eps_sequence(eps)
    value, gradient = functional.value_and_gradient(x, examples)
    slope = float(np.dot(gradient, dx))
    remainders = [abs(functional.value(x + e * dx, examples) - value - e * slope) for e in eps]
    return _taylor_result(eps, remainders, _noise_floor(abs(value), noise), 2.0, tolerance, name)


def taylor_test_map(function, tangent, x, dx=None, *, eps=None, rng=None, tolerance: float = 0.1,
                    noise: float = 0.0, name: str = "taylor") -> TaylorResult:
    """Taylor test of a vector-valued map ``F`` and its tangent:
    ``||F(x+eps dx) - F(x) - eps F'(x)dx||``.

    ``function(x)`` and ``tangent(dx)`` (the derivative at the fixed point ``x``) return arrays
    of one common shape; ``x`` and ``dx`` are flat float64 vectors. ``noise``: relative accuracy
    of the evaluations, as in :func:`taylor_test`.
    """
    x = _frozen_copy(x, "x")
    dx = _rng(rng).standard_normal(x.size) if dx is None else _frozen_copy(dx, "dx")
    eps = _eps_sequence(eps)
    base = np.asarray(function(x), dtype=np.float64)
    derivative = np.asarray(tangent(dx), dtype=np.float64)
    remainders = [np.linalg.norm(np.asarray(function(x + e * dx), dtype=np.float64) - base
                                 - e * derivative) for e in eps]
    return _taylor_result(eps, remainders, _noise_floor(np.linalg.norm(base), noise), 2.0,
                          tolerance, name)


def adjoint_test(apply, apply_transpose, shape_in, shape_out, *, rng=None, n_trials: int = 3,
                 tolerance: float = 1e-10, name: str = "adjoint") -> AdjointResult:
    """Dot-product test ``<A u, w> = <u, A^T w>`` with random float64 ``u`` and ``w``.

    ``apply`` maps arrays of ``shape_in`` to ``shape_out``; ``apply_transpose`` the reverse.
    """
    rng = _rng(rng)
    shape_in, shape_out = tuple(np.atleast_1d(shape_in)), tuple(np.atleast_1d(shape_out))
    worst = 0.0
    for _ in range(n_trials):
        u = rng.standard_normal(shape_in)
        w = rng.standard_normal(shape_out)
        au = np.asarray(apply(u))
        if au.shape != w.shape:
            raise ValueError(f"{name}: apply returned shape {au.shape}, "
                             f"expected shape_out {w.shape}")
        atw = np.asarray(apply_transpose(w))
        if atw.shape != u.shape:
            raise ValueError(f"{name}: apply_transpose returned shape {atw.shape}, "
                             f"expected shape_in {u.shape}")
        lhs = float(np.vdot(au.ravel(), w.ravel()))
        rhs = float(np.vdot(u.ravel(), atw.ravel()))
        scale = max(abs(lhs), abs(rhs), np.finfo(np.float64).tiny)
        worst = max(worst, abs(lhs - rhs) / scale)
    return AdjointResult(worst, tolerance, bool(worst < tolerance), name)


def gauss_newton_test(functional: ReducedFunctional, x, *, examples=None, rng=None,
                      n_vectors: int = 3, tolerance: float = 1e-10,
                      name: str = "gauss-newton") -> GaussNewtonResult:
    """Check that ``G = functional.gauss_newton_operator(x)`` is symmetric and PSD on random
    vectors."""
    x = _frozen_copy(functional.check_parameters(x), "x")
    rng = _rng(rng)
    operator = functional.gauss_newton_operator(x, examples)
    vectors = [rng.standard_normal(x.size) for _ in range(n_vectors)]
    products = [operator.matvec(v) for v in vectors]
    symmetry, curvature = 0.0, np.inf
    for i, (v, gv) in enumerate(zip(vectors, products, strict=True)):
        norm = np.linalg.norm(v) * np.linalg.norm(gv)
        curvature = min(curvature, float(np.dot(v, gv)) / norm if norm > 0 else 0.0)
        for w, gw in zip(vectors[i + 1:], products[i + 1:], strict=True):
            a, b = float(np.dot(w, gv)), float(np.dot(v, gw))
            symmetry = max(symmetry, abs(a - b) / max(abs(a), abs(b), np.finfo(np.float64).tiny))
    passed = bool(symmetry < tolerance and curvature >= -tolerance)
    return GaussNewtonResult(symmetry, curvature, tolerance, passed, name)


# ---------------------------------------------------------------------- control problems
class _Packing:
    """Flat float64 vector <-> tuple of (array or dict of arrays) with fixed shapes."""

    def __init__(self, *parts):
        self.parts = parts  # each: a shape tuple, or a dict name -> shape
        self.size = sum(self._part_size(p) for p in parts)

    @staticmethod
    def _part_size(part):
        if isinstance(part, dict):
            return sum(int(np.prod(s)) for s in part.values())
        return int(np.prod(part))

    def unpack(self, flat):
        out, start = [], 0
        for part in self.parts:
            if isinstance(part, dict):
                block = {}
                for name, shape in part.items():
                    stop = start + int(np.prod(shape))
                    block[name] = flat[start:stop].reshape(shape)
                    start = stop
                out.append(block)
            else:
                stop = start + int(np.prod(part))
                out.append(flat[start:stop].reshape(part))
                start = stop
        return out

    def pack(self, *values):
        chunks = []
        for part, value in zip(self.parts, values, strict=True):
            if isinstance(part, dict):
                value = value or {}
                for name, shape in part.items():
                    block = value.get(name)
                    chunks.append(np.zeros(int(np.prod(shape))) if block is None
                                  else np.asarray(block, dtype=np.float64).reshape(-1))
            else:
                chunks.append(np.asarray(value, dtype=np.float64).reshape(-1))
        return np.concatenate(chunks) if chunks else np.zeros(0)


def _pair_checks(label, function, tangent, adjoint, packing_in, shape_out, x_in, rng, tolerance,
                 eps, results):
    """Dot-product test of (tangent, adjoint) and Taylor test of tangent for one problem map."""
    results[f"{label} adjoint"] = adjoint_test(tangent, adjoint, (packing_in.size,), shape_out,
                                               rng=rng, name=f"{label} tangent vs adjoint")
    results[f"{label} taylor"] = taylor_test_map(function, tangent, x_in, rng=rng, eps=eps,
                                                 tolerance=tolerance, name=f"{label} tangent")


#: Smallest tolerance of the dot-product and Gauss-Newton symmetry checks (exact solves).
EXACT_TOLERANCE = 1e-10


def _jacobian_check(problem, y, control, static, t, rng) -> AdjointResult:
    """``rhs_jacobian`` against the problem's tangent in ``y`` and the affine form
    ``f(y) = f(0) + L y``: the larger relative mismatch (as an :class:`AdjointResult`)."""
    jacobian = problem.rhs_jacobian(control, static, t)
    dy = rng.standard_normal(y.shape)
    flat = lambda a: np.asarray(a, dtype=np.float64).reshape(y.shape[0], -1)  # noqa: E731
    product = np.asarray(jacobian @ flat(dy).T).T
    zero_c = {k: np.zeros_like(v) for k, v in control.items()}
    zero_s = {k: np.zeros_like(v) for k, v in static.items()}
    tangent = flat(problem.rhs_tangent(y, control, static, t, dy, zero_c, zero_s,
                                       cache=problem.linearize(y, control, static, t)[1]))
    affine = flat(problem.rhs(y, control, static, t)) - flat(
        problem.rhs(np.zeros_like(y), control, static, t))
    linear_part = np.asarray(jacobian @ flat(y).T).T
    errors = [np.linalg.norm(product - tangent) / max(np.linalg.norm(tangent), 1e-300),
              np.linalg.norm(affine - linear_part) / max(np.linalg.norm(affine), 1e-300)]
    worst = float(max(errors))
    return AdjointResult(worst, EXACT_TOLERANCE, bool(worst < EXACT_TOLERANCE),
                         "rhs_jacobian vs rhs_tangent and f(y) - f(0)")


def _euler_step_check(problem, y, control, static, t, dt) -> AdjointResult:
    """An overridden ``euler_step`` against ``y + dt rhs(y)`` combined the default way (as
    the linearised sweeps combine it): the larger relative mismatch in float32 and float64,
    which must be 0 (bit for bit), as an :class:`AdjointResult`."""
    from .control.problem import ControlProblem

    errors = []
    for dtype in (np.float32, np.float64):
        ys = y.astype(dtype)
        cs = {k: np.asarray(v, dtype=dtype) for k, v in control.items()}
        ss = {k: np.asarray(v, dtype=dtype) for k, v in static.items()}
        fused = np.asarray(problem.euler_step(ys, cs, ss, t, dt), dtype=np.float64)
        default = np.asarray(ControlProblem.euler_step(problem, ys, cs, ss, t, dt),
                             dtype=np.float64)
        errors.append(np.linalg.norm(fused - default) / max(np.linalg.norm(default), 1e-300))
    worst = float(max(errors))
    return AdjointResult(worst, 0.0, bool(worst == 0.0),
                         "euler_step vs y + dt rhs(y), float32 and float64")


def verify_problem(functional, x, *, examples=None, rng=None, tolerance: float = 0.1,
                   eps=None, solve_accuracy: float = 0.0) -> VerificationReport:
    """Verify a :class:`~pdecontrol.control.ControlFunctional` and its problem's derivatives at
    ``x``.

    Runs, in float64: dot-product and Taylor tests of the problem's initial-state, right-hand
    side (at the initial state, controls of the middle step) and output derivative pairs, for a
    problem with ``rhs_jacobian`` (implicit steppers) its agreement with ``rhs_tangent`` and the
    affine form ``f(y) = f(0) + L y``, for a problem that overrides ``euler_step`` its equality,
    bit for bit, with ``y + dt rhs(y)`` in float32 and float64, the Taylor test of the reduced
    functional and the Gauss-Newton symmetry/PSD test. The functional and ``x`` are not
    modified.

    Parameters
    ----------
    functional : ControlFunctional
    x : ndarray, shape (size,)
    examples : index array, optional
        Examples to evaluate on (default: all).
    rng : numpy.random.Generator, optional
    tolerance : float
        Allowed deviation of Taylor orders from 2.
    eps : decreasing sequence, optional
        Step lengths of every Taylor test (default ``1e-2 * 2**-k``, k = 0..5). Strongly
        nonlinear problems (saturated activations, large parameters) need smaller steps before
        the remainder enters its asymptotic ``eps**2`` regime.
    solve_accuracy : float
        Relative accuracy of linear solves inside the time steps (an iterative solver's
        tolerance, e.g. ``stepper.accuracy`` of an implicit stepper; 0 for exact solves). The
        reduced functional's checks allow for it: its Taylor remainders below
        ``10 solve_accuracy |J|`` are not measured, and its Gauss-Newton symmetry check
        tolerates ``max(1e-10, 100 solve_accuracy)``. The problem's own pairs (no solves) are
        checked to 1e-10 regardless.
    """
    from .control.functional import ControlFunctional
    from .control.problem import ControlProblem

    if not isinstance(functional, ControlFunctional):
        raise TypeError(f"functional must be a ControlFunctional, got {type(functional).__name__}")
    rng = _rng(rng)
    x = _frozen_copy(functional.check_parameters(x), "x")
    problem, layout = functional.problem, functional.layout
    params = layout.unflatten(x)
    static = {k: np.asarray(v, dtype=np.float64) for k, v in params.static.items()}
    step = layout.n_steps // 2
    control = {k: np.asarray(v[step], dtype=np.float64) for k, v in params.controls.items()}
    t = step * functional.final_time / layout.n_steps
    idx = functional.check_examples(examples)
    data = np.asarray(functional.data if idx is None else functional.data[idx], dtype=np.float64)
    y0 = np.asarray(problem.initial_state(data, static), dtype=np.float64)
    z = np.asarray(problem.output(y0, static), dtype=np.float64)
    results = {}

    static_pack = _Packing(layout.static_shapes)
    if static_pack.size:
        _pair_checks(
            "initial state",
            lambda s: problem.initial_state(data, static_pack.unpack(s)[0]),
            lambda ds: problem.initial_state_tangent(data, static, static_pack.unpack(ds)[0]),
            lambda yb: static_pack.pack(problem.initial_state_adjoint(data, static, yb)),
            static_pack, y0.shape, static_pack.pack(static), rng, tolerance, eps, results)

    rhs_pack = _Packing(y0.shape, layout.control_shapes, layout.static_shapes)

    def rhs_at(v):
        y, c, s = rhs_pack.unpack(v)
        return problem.rhs(y, c, s, t)

    def rhs_tangent(v):
        dy, dc, ds = rhs_pack.unpack(v)
        return problem.rhs_tangent(y0, control, static, t, dy, dc, ds,
                                   cache=problem.linearize(y0, control, static, t)[1])

    def rhs_adjoint(f_bar):
        cache = problem.linearize(y0, control, static, t)[1]
        return rhs_pack.pack(*problem.rhs_adjoint(y0, control, static, t, f_bar, cache=cache))

    _pair_checks("rhs", rhs_at, rhs_tangent, rhs_adjoint, rhs_pack, y0.shape,
                 rhs_pack.pack(y0, control, static), rng, tolerance, eps, results)
    if type(problem).rhs_jacobian is not ControlProblem.rhs_jacobian:
        results["rhs jacobian"] = _jacobian_check(problem, y0, control, static, t, rng)
    if type(problem).euler_step is not ControlProblem.euler_step:
        results["euler step"] = _euler_step_check(problem, y0, control, static, t,
                                                  functional.final_time / layout.n_steps)

    output_pack = _Packing(y0.shape, layout.static_shapes)

    def output_at(v):
        y, s = output_pack.unpack(v)
        return problem.output(y, s)

    def output_tangent(v):
        dy, ds = output_pack.unpack(v)
        return problem.output_tangent(y0, static, dy, ds)

    _pair_checks("output", output_at, output_tangent,
                 lambda zb: output_pack.pack(*problem.output_adjoint(y0, static, zb)),
                 output_pack, z.shape, output_pack.pack(y0, static), rng, tolerance, eps, results)

    solve_accuracy = float(solve_accuracy)
    if not (np.isfinite(solve_accuracy) and 0 <= solve_accuracy < 1):
        raise ValueError(f"solve_accuracy must be a number in [0, 1), got {solve_accuracy}")
    results["functional taylor"] = taylor_test(functional, x, examples=examples, rng=rng, eps=eps,
                                               tolerance=tolerance, noise=10 * solve_accuracy,
                                               name="reduced functional")
    results["gauss-newton"] = gauss_newton_test(
        functional, x, examples=examples, rng=rng,
        tolerance=max(EXACT_TOLERANCE, 100 * solve_accuracy))
    return VerificationReport(results)
