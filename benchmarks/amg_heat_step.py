"""AMG-preconditioned CG versus sparse LU on an implicit heat step with a high-contrast coefficient.

``A = I + dt A(m)``, ``A(m) = -div(exp(m) grad)`` (:class:`pdecontrol.diffusion.DiffusionOperator`
on ``n^2`` grids, ``n^3`` with ``--dim 3``; zero Dirichlet boundary;
``tests/linear_solver_problems.py``), ``m`` smooth
random with ``exp(max m - min m) = contrast``. ``--steps`` backward-Euler steps of
``du/dt = div(exp(m) grad u) + 1`` from ``u0 = sin(pi x) sin(2 pi y) [sin(pi z)]`` share one
set-up: step 1 starts CG from zero, later steps are warm-started from the previous solution.
Prints, per grid, contrast and solver: set-up seconds, pyamg operator complexity and levels,
CG iterations to ``rtol`` (relative residual in the V-cycle norm) at step 1 and at the last
step, solve seconds of both, and the relative 2-norm difference of step 1 from SuperLU's.
SuperLU rows give set-up (factorization) and solve seconds. Wall times are the best of
``--repeat`` fresh set-ups (the machine may be shared); everything else is deterministic.

    PYTHONPATH=tests python3 benchmarks/amg_heat_step.py                    # the docs table
    PYTHONPATH=tests python3 benchmarks/amg_heat_step.py --sizes 64 128 --steps 10
    PYTHONPATH=tests python3 benchmarks/amg_heat_step.py --dim 3 --sizes 16 32 48
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from linear_solver_problems import heat_step_matrix, smooth_log_coefficient
from pdecontrol.linear_solvers import AMGConjugateGradient, SparseLU


def initial_state(n: int, dim: int) -> np.ndarray:
    """``sin(pi x) sin(2 pi y) [sin(pi z)]`` on the interior nodes, flattened (C order)."""
    x = np.arange(1, n + 1) / (n + 1)
    modes = [np.sin(np.pi * x), np.sin(2 * np.pi * x), np.sin(np.pi * x)][:dim]
    return np.einsum(",".join("ijk"[:dim]) + "->" + "ijk"[:dim], *modes).reshape(-1)


def timed_steps(factorization, u0, source, dt, steps):
    """Backward-Euler steps ``u <- A^-1 (u + dt q)``; returns the states and solve seconds."""
    states, seconds, u = [], [], u0
    for _ in range(steps):
        start = time.perf_counter()
        u = factorization.solve(u + dt * source)
        seconds.append(time.perf_counter() - start)
        states.append(u)
    return states, np.array(seconds)


def best_of(repeat, solver, A, u0, source, dt, steps):
    """``steps`` steps after a fresh set-up, ``repeat`` times: the last factorization and
    states, the least set-up seconds and the least seconds of each step."""
    setup, seconds = np.inf, np.full(steps, np.inf)
    for _ in range(repeat):
        factorization = solver.factorize(A)
        states, run_seconds = timed_steps(factorization, u0, source, dt, steps)
        setup, seconds = min(setup, factorization.setup_seconds), np.minimum(seconds, run_seconds)
    return factorization, states, setup, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512],
                        help="grid points per axis")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--contrasts", type=float, nargs="+", default=[1e2, 1e4, 1e7])
    parser.add_argument("--dt", type=float, default=1e-2, help="time step (unit square)")
    parser.add_argument("--rtol", type=float, default=1e-8)
    parser.add_argument("--steps", type=int, default=2,
                        help="time steps; iterations are shown for step 1 (cold) and the last")
    parser.add_argument("--repeat", type=int, default=3, help="timings: best of this many")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"{args.dim}D, dt = {args.dt:g}, rtol = {args.rtol:g}, {args.steps} steps, one set-up "
          f"per matrix, times best of {args.repeat}\n")
    print(f"| n | contrast | solver | set-up s | op. complexity | levels | iterations step 1 "
          f"| iterations step {args.steps} (warm) | solve s step 1 | solve s step {args.steps} "
          f"| diff vs LU |")
    print("| --- " * 11 + "|")
    for n in args.sizes:
        u0 = initial_state(n, args.dim)
        source = np.ones_like(u0)
        for contrast in args.contrasts:
            m = smooth_log_coefficient(np.random.default_rng(args.seed), n, contrast, args.dim)
            A = heat_step_matrix(m, args.dt)
            _, (exact,), lu_setup, lu_seconds = best_of(args.repeat, SparseLU(), A, u0, source,
                                                        args.dt, 1)
            for method in ("sa", "rs"):
                solver = AMGConjugateGradient(method=method, rtol=args.rtol, maxiter=200,
                                              warm_start=True)
                amg, states, setup, seconds = best_of(args.repeat, solver, A, u0, source,
                                                      args.dt, args.steps)
                difference = np.linalg.norm(states[0] - exact) / np.linalg.norm(exact)
                print(f"| {n} | {contrast:.0e} | amg-{method} | {setup:.3f} "
                      f"| {amg.operator_complexity:.2f} | {amg.levels} | {amg.iterations[0]} "
                      f"| {amg.iterations[-1]} | {seconds[0]:.3f} | {seconds[-1]:.3f} "
                      f"| {difference:.1e} |", flush=True)
            print(f"| {n} | {contrast:.0e} | splu | {lu_setup:.3f} | | | | "
                  f"| {lu_seconds[0]:.3f} | | |", flush=True)


if __name__ == "__main__":
    main()
