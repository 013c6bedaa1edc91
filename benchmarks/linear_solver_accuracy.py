"""Accuracy of the linear solvers against ``rtol``, on an implicit heat step.

``A = I + dt A(m)`` with ``A(m) = -div(exp(m) grad)``
(:class:`pdecontrol.diffusion.DiffusionOperator`, ``n^2`` grid, zero Dirichlet boundary;
``tests/linear_solver_problems.py``) and a smooth random ``m`` with
``exp(max m - min m) = contrast``. For ``k`` standard-normal right-hand sides ``b`` and ``c``,
``x ~ A^-1 b`` by ``solve`` and ``y ~ A^-T c`` by ``solve_transpose``, prints per solver and
``rtol`` (worst over the columns):

* ``iterations``: mean CG iterations per column (AMG-CG);
* ``solve 2-norm``, ``solve energy``: ``|x - x*| / |x*|`` and ``|x - x*|_A / |x*|_A``;
* ``dot / |x|_A|y|_A``: ``|<x, c> - <b, y>| / (|x*|_A |y*|_A)``, the scale-free dot-product error;
* ``dot relative``: ``|<x, c> - <b, y>| / max(|<x, c>|, |<b, y>|)``, what
  ``pdecontrol.verify.adjoint_test`` reports (inflated when the dot product is small by chance).

The reference ``x*`` is SuperLU refined by three steps of iterative refinement with residuals
in long double, so the LU row shows SuperLU's own error.

Then a Taylor test through solves with a changing matrix: ``J(p) = |(I + p A(m))^-1 b|^2 / 2``,
``dJ/dp = -<A^-T x, A(m) x>`` (one solve and one transposed solve), every evaluation a new
set-up; prints ``|J(p + eps) - J(p) - eps dJ/dp| / |J|`` for decreasing ``eps`` at ``p = dt``
and the range of CG iterations over the evaluations.

    PYTHONPATH=tests python3 benchmarks/linear_solver_accuracy.py              # docs table
    PYTHONPATH=tests python3 benchmarks/linear_solver_accuracy.py --n 64 --contrast 1e4
"""
from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse as sp

from linear_solver_problems import diffusion_matrix, heat_step_matrix, smooth_log_coefficient
from pdecontrol.linear_solvers import SparseLU, solver_by_name


def long_double_residual(A, x, b):
    """``b - A x`` with products and sums in long double (returned as float64)."""
    data = A.data.astype(np.longdouble)[:, None]
    products = data * x.astype(np.longdouble)[A.indices]
    return (b - np.add.reduceat(products, A.indptr[:-1], axis=0)).astype(np.float64)


def refined_solution(A, b, steps=3):
    lu = SparseLU().factorize(A)
    x = lu.solve(b)
    for _ in range(steps):
        x = x + lu.solve(long_double_residual(A, x, b))
    return x


def column_dot(u, v):
    return np.sum(u * v, axis=0)


def taylor_remainders(solver, A0, b, p, eps):
    """Relative Taylor remainders of ``J(p) = |(I + p A0)^-1 b|^2 / 2`` and the CG iterations."""
    identity = sp.identity(A0.shape[0], format="csr")
    iterations = []

    def solve(q, gradient=False):
        factorization = solver.factorize(identity + q * A0)
        x = factorization.solve(b)
        value = 0.5 * x @ x
        if gradient:
            value = value, -factorization.solve_transpose(x) @ (A0 @ x)
        iterations.extend(getattr(factorization, "iterations", []))
        return value

    value, slope = solve(p, gradient=True)
    remainders = [abs(solve(p + e) - value - e * slope) / abs(value) for e in eps]
    return remainders, iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=128, help="grid points per axis")
    parser.add_argument("--contrast", type=float, nargs="+", default=[1e4, 1e7])
    parser.add_argument("--dt", type=float, default=1e-2, help="time step")
    parser.add_argument("--columns", type=int, default=16, help="right-hand sides")
    parser.add_argument("--rtol", type=float, nargs="+", default=[1e-6, 1e-8, 1e-10, 1e-12])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"n = {args.n} ({args.n ** 2} unknowns), dt = {args.dt:g}, {args.columns} columns\n")
    print("| contrast | solver | rtol | iterations | solve 2-norm | solve energy "
          "| dot / abs(x)_A abs(y)_A | dot relative |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for contrast in args.contrast:
        rng = np.random.default_rng(args.seed)
        A = heat_step_matrix(smooth_log_coefficient(rng, args.n, contrast), args.dt)
        b, c = rng.standard_normal((2, A.shape[0], args.columns))
        exact_x, exact_y = refined_solution(A, b), refined_solution(A.T.tocsr(), c)
        energy_x = np.sqrt(column_dot(exact_x, A @ exact_x))
        energy_y = np.sqrt(column_dot(exact_y, A @ exact_y))
        runs = [("splu", None)] + [(name, rtol) for name in ("amg-sa", "amg-rs")
                                   for rtol in args.rtol]
        for name, rtol in runs:
            options = {} if rtol is None else {"rtol": rtol}
            factorization = solver_by_name(name, **options).factorize(A)
            x, y = factorization.solve(b), factorization.solve_transpose(c)
            error = x - exact_x
            two_norm = np.linalg.norm(error, axis=0) / np.linalg.norm(exact_x, axis=0)
            energy = np.sqrt(column_dot(error, A @ error)) / energy_x
            lhs, rhs = column_dot(x, c), column_dot(b, y)
            dot_scaled = np.abs(lhs - rhs) / (energy_x * energy_y)
            dot_relative = np.abs(lhs - rhs) / np.maximum(np.abs(lhs), np.abs(rhs))
            iterations = ("-" if rtol is None else f"{np.mean(factorization.iterations):.1f}")
            print(f"| {contrast:.0e} | {name} | {'-' if rtol is None else f'{rtol:.0e}'} "
                  f"| {iterations} | {two_norm.max():.1e} | {energy.max():.1e} "
                  f"| {dot_scaled.max():.1e} | {dot_relative.max():.1e} |")

    rng = np.random.default_rng(args.seed)
    A0 = diffusion_matrix(smooth_log_coefficient(rng, args.n, args.contrast[0]))
    b = rng.standard_normal(A0.shape[0])
    eps = args.dt * 0.5 ** np.arange(0, 40, 4)
    print(f"\nTaylor remainders / abs(J), contrast {args.contrast[0]:.0e}, p = {args.dt:g}\n")
    print("| solver | rtol | CG iterations | " + " | ".join(f"eps {e:.0e}" for e in eps) + " |")
    print("| --- " * (3 + eps.size) + "|")
    for name, rtol in [("splu", None), ("amg-sa", args.rtol[0]), ("amg-rs", args.rtol[0])]:
        solver = solver_by_name(name, **({} if rtol is None else {"rtol": rtol}))
        remainders, iterations = taylor_remainders(solver, A0, b, args.dt, eps)
        counts = f"{min(iterations)}-{max(iterations)}" if iterations else "-"
        print(f"| {name} | {'-' if rtol is None else f'{rtol:.0e}'} | {counts} | "
              + " | ".join(f"{r:.0e}" for r in remainders) + " |")


if __name__ == "__main__":
    main()
