"""Implicit theta-methods with exact discrete tangent and adjoint steps (transposed solves).

For problems whose right-hand side is affine in the state, ``f(y) = L y + g`` with ``L`` and
``g`` depending on the parameters and the time (e.g. ``f(u) = -A(m) u + q``: the heat equation,
``A`` a diffusion operator), one step of length ``dt`` from ``t_j`` is

    (I - theta dt L_{j+1}) y_{j+1} = y_j + (1 - theta) dt f(y_j, t_j) + theta dt g_{j+1},

``theta = 1`` backward Euler, ``1/2`` Crank-Nicolson, ``0`` forward Euler (no solve); controls
are those of step ``j`` throughout. The problem supplies ``L`` as a sparse matrix
(:meth:`~pdecontrol.control.ControlProblem.rhs_jacobian`, on one example's flattened state) and
its usual ``rhs`` / ``rhs_tangent`` / ``rhs_adjoint``; ``g_{j+1} = f(0, t_{j+1})``. With
``S = I - theta dt L`` the tangent step is

    S dy_{j+1} = dy_j + (1 - theta) dt f'(y_j)[dy_j, dp] + theta dt f'(y_{j+1})[0, dp],

and the adjoint step its transpose: ``z = S^-T y_bar_{j+1}``, ``y_bar_j = z + (1 - theta) dt
f_y(y_j)^T z`` and the parameter cotangents ``(1 - theta) dt f_p(y_j)^T z + theta dt
f_p(y_{j+1})^T z`` (``rhs_adjoint``). Every solve goes through a pluggable
:mod:`pdecontrol.linear_solvers` solver; a :class:`~pdecontrol.linear_solvers.FactorizationCache`
reuses one factorization (or AMG hierarchy) for every step and sweep with the same ``S``, e.g. all
steps of a run and all Gauss-Newton products at one parameter value. With an iterative solver
the derivatives are exact to its tolerance (:attr:`ThetaMethod.accuracy`; pass it to
:func:`pdecontrol.verify.verify_problem` as ``solve_accuracy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..linear_solvers import FactorizationCache, SparseLU, solver_by_name
from ._accumulate import accumulate
from .problem import ControlProblem

__all__ = ["ThetaMethod", "backward_euler", "crank_nicolson"]


@dataclass(frozen=True)
class _ThetaStep:
    """The linearisation of one step: both end states, the step matrix's factorization and the
    problem's caches at both ends (``None`` where the scheme does not use that end)."""

    y: np.ndarray
    y_next: np.ndarray
    factorization: object
    cache: object
    cache_next: object


class ThetaMethod:
    """The theta-method for right-hand sides affine in the state (see the module docstring).

    Parameters
    ----------
    theta : float
        In ``[0, 1]``: 1 backward Euler (first order, L-stable), 1/2 Crank-Nicolson (second
        order), 0 forward Euler.
    linear_solver : LinearSolver or str, optional
        A :mod:`pdecontrol.linear_solvers` solver or its name (``"splu"``, ``"amg-sa"``,
        ``"amg-rs"``); default sparse LU. The step matrix ``I - theta dt L`` must suit it (AMG-CG:
        symmetric positive definite, e.g. ``L = -A`` with ``A`` symmetric positive
        semi-definite).
    cache_capacity : int
        Factorizations kept for reuse (distinct step matrices).

    Attributes
    ----------
    cache : FactorizationCache
        Its ``setups`` count the factorizations / AMG hierarchies built.
    solves, solver_iterations : int
        Right-hand sides solved so far, and the iterations they took (iterative solvers).
    """

    n_stages = 1

    def __init__(self, theta: float, linear_solver=None, *, cache_capacity: int = 4,
                 name: str | None = None):
        theta = float(theta)
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must lie in [0, 1] (1 backward Euler, 0.5 Crank-Nicolson), "
                             f"got {theta}")
        if linear_solver is None:
            linear_solver = SparseLU()
        elif isinstance(linear_solver, str):
            linear_solver = solver_by_name(linear_solver)
        self.theta = theta
        self.linear_solver = linear_solver
        self.cache = FactorizationCache(linear_solver, capacity=cache_capacity)
        self.name = name or f"theta-method (theta = {theta:g}, {linear_solver.name})"
        self._accuracy = 0.0
        self.solves = 0
        self.solver_iterations = 0

    def __repr__(self) -> str:
        return f"ThetaMethod(theta={self.theta:g}, linear_solver={self.linear_solver!r})"

    def __getstate__(self) -> dict:
        """Pickled (e.g. to a worker process) without its factorizations and counts: a copy
        starts with an empty cache of the same solver and capacity."""
        state = dict(self.__dict__)
        state["cache"] = FactorizationCache(self.linear_solver, capacity=self.cache.capacity)
        state.update(_accuracy=0.0, solves=0, solver_iterations=0)
        return state

    @property
    def iterations_per_solve(self) -> float | None:
        """Mean iterations of an iterative solver per right-hand side so far (``None`` for a
        direct solver or before any solve)."""
        if not self.solves or not hasattr(self.linear_solver, "rtol"):
            return None
        return self.solver_iterations / self.solves

    @property
    def accuracy(self) -> float:
        """Relative accuracy of the solves so far (the largest of the factorizations used; 0
        before the first step): ``solve_accuracy`` for verification."""
        return self._accuracy

    # ------------------------------------------------------------------ pieces
    def _factorization(self, problem, control, static, t_next: float, dt: float):
        if self.theta == 0.0:
            return None
        jacobian = problem.rhs_jacobian(control, static, t_next)
        if not sp.issparse(jacobian):
            raise TypeError(f"{type(problem).__name__}.rhs_jacobian must return a scipy.sparse "
                            f"matrix, got {type(jacobian).__name__}")
        n = jacobian.shape[0]
        step_matrix = sp.identity(n, format="csr") - (self.theta * dt) * sp.csr_array(jacobian)
        factorization = self.cache.factorize(step_matrix)
        self._accuracy = max(self._accuracy, float(factorization.accuracy))
        return factorization

    def _solve(self, factorization, r: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``S^-1 r`` (or ``S^-T r``) for a batch ``r`` of shape ``(batch, *state_shape)``."""
        if factorization is None:
            return r
        columns = np.asarray(r, dtype=np.float64).reshape(r.shape[0], -1).T
        if columns.shape[0] != factorization.shape[0]:
            raise ValueError(f"rhs_jacobian is {factorization.shape[0]}x{factorization.shape[0]}, "
                             f"but a state has {columns.shape[0]} entries per example")
        solve = factorization.solve_transpose if transpose else factorization.solve
        counts = getattr(factorization, "iterations", None)
        before = 0 if counts is None else len(counts)
        solution = solve(columns)
        self.solves += columns.shape[1]
        if counts is not None:
            self.solver_iterations += int(sum(counts[before:]))
        out = np.ascontiguousarray(solution.T).reshape(r.shape).astype(r.dtype, copy=False)
        out.flags.writeable = False
        return out

    # ------------------------------------------------------------------ the stepper protocol
    def linearize(self, problem: ControlProblem, y, control, static, t: float, dt: float):
        """Take the step and keep what its tangent and adjoint need (a ``_ThetaStep``)."""
        theta = self.theta
        factorization = self._factorization(problem, control, static, t + dt, dt)
        r = np.array(y, dtype=y.dtype)
        cache = None
        if theta < 1.0:
            f, cache = problem.linearize(y, control, static, t)
            r += (1.0 - theta) * dt * np.asarray(f, dtype=y.dtype)
        if theta > 0.0:
            g = problem.rhs(np.zeros_like(y), control, static, t + dt)
            r += theta * dt * np.asarray(g, dtype=y.dtype)
        y_next = self._solve(factorization, r)
        cache_next = problem.linearize(y_next, control, static, t + dt)[1] if theta > 0 else None
        return _ThetaStep(y, y_next, factorization, cache, cache_next)

    def step(self, problem: ControlProblem, y, control, static, t: float, dt: float):
        """One step ``y_j -> y_{j+1}``."""
        return self.linearize(problem, y, control, static, t, dt).y_next

    def next_state(self, linearization: _ThetaStep, y, dt: float):
        return linearization.y_next

    def compact(self, linearization: _ThetaStep) -> _ThetaStep:
        return linearization

    def step_tangent(self, problem, linearization: _ThetaStep, control, static, t, dt, dy,
                     dcontrol, dstatic):
        """``dy_{j+1}`` from ``dy_j`` and the parameter directions (one solve)."""
        theta, step = self.theta, linearization
        r = np.array(dy, dtype=dy.dtype)
        if theta < 1.0:
            r += (1.0 - theta) * dt * np.asarray(problem.rhs_tangent(
                step.y, control, static, t, dy, dcontrol, dstatic, cache=step.cache), dy.dtype)
        if theta > 0.0:
            r += theta * dt * np.asarray(problem.rhs_tangent(
                step.y_next, control, static, t + dt, np.zeros_like(dy), dcontrol, dstatic,
                cache=step.cache_next), dy.dtype)
        return self._solve(step.factorization, r)

    def step_adjoint(self, problem, linearization: _ThetaStep, control, static, t, dt, y_bar,
                     control_bar: dict, static_bar: dict):
        """Transpose of :meth:`step_tangent`: returns ``y_bar_j``, adds into the two dicts."""
        theta, step = self.theta, linearization
        z = self._solve(step.factorization, np.asarray(y_bar), transpose=True)
        y_prev_bar = np.array(z)
        if theta < 1.0:
            part, c_bar, s_bar = problem.rhs_adjoint(step.y, control, static, t,
                                                     (1.0 - theta) * dt * z, cache=step.cache)
            y_prev_bar += np.asarray(part, dtype=y_prev_bar.dtype)
            accumulate(control_bar, c_bar)
            accumulate(static_bar, s_bar)
        if theta > 0.0:
            _, c_bar, s_bar = problem.rhs_adjoint(step.y_next, control, static, t + dt,
                                                  theta * dt * z, cache=step.cache_next)
            accumulate(control_bar, c_bar)
            accumulate(static_bar, s_bar)
        return y_prev_bar


def backward_euler(linear_solver=None) -> ThetaMethod:
    """:class:`ThetaMethod` with ``theta = 1``."""
    return ThetaMethod(1.0, linear_solver, name="backward Euler")


def crank_nicolson(linear_solver=None) -> ThetaMethod:
    """:class:`ThetaMethod` with ``theta = 1/2``."""
    return ThetaMethod(0.5, linear_solver, name="Crank-Nicolson")
