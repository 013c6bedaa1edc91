"""A tiny problem's Gauss-Newton-CG solve with Numba's default thread count vs one thread.

Problem: :class:`problems.linear_ode.LinearDecayProblem` with ``--states`` components,
``--examples`` examples (state ``(8, 32)`` by default), ``--steps`` forward-Euler steps on
``[0, 1]``; :class:`pdecontrol.control.ControlFunctional`; ``gauss_newton_cg`` with exactly
``--iterations`` outer and ``--cg-maxiter`` CG iterations (all tolerances 0). Every step calls
:func:`pdecontrol.ops.add_scaled` once per sweep, so the time is dominated by per-step overhead.

Each solve runs in its own subprocess (the Numba thread count is fixed at import), after one
untimed warm-up solve in that process; the two settings alternate, ``--repeats`` times each,
while ``--load`` busy-looping Python processes run (started and stopped by this script).
Prints the medians (min-max) and the ratio default / one thread.

    python3 benchmarks/small_problem_threads.py              # 2 busy processes
    python3 benchmarks/small_problem_threads.py --load 0     # idle machine
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def solve_time(args) -> float:
    """Seconds of one timed GN-CG solve (after a warm-up solve), in this process."""
    from pdecontrol.control import ControlFunctional
    from pdecontrol.optimize import Stopping, gauss_newton_cg
    from problems.linear_ode import LinearDecayProblem

    rng = np.random.default_rng(0)
    problem = LinearDecayProblem(args.states)
    layout = problem.layout(args.steps)
    data = rng.standard_normal((args.examples, args.states))
    targets = 0.5 * rng.standard_normal((args.examples, args.states))
    functional = ControlFunctional(problem, layout, data, targets, final_time=1.0)
    x0 = layout.random(rng, 0.3).flat
    options = dict(stopping=Stopping(maxiter=args.iterations, gtol=0.0, grtol=0.0, ftol=0.0),
                   cg_rtol=1e-30, cg_maxiter=args.cg_maxiter)
    gauss_newton_cg(functional, x0, **options)
    start = time.perf_counter()
    result = gauss_newton_cg(functional, x0, **options)
    elapsed = time.perf_counter() - start
    if result.nit != args.iterations:
        raise RuntimeError(f"solve stopped after {result.nit} of {args.iterations} iterations")
    return elapsed


def run_child(args, threads: int | None) -> float:
    """One :func:`solve_time` in a fresh interpreter; ``threads=None``: Numba's default."""
    env = dict(os.environ)
    env.pop("NUMBA_NUM_THREADS", None)
    if threads is not None:
        env["NUMBA_NUM_THREADS"] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--child", "--states", str(args.states),
               "--examples", str(args.examples), "--steps", str(args.steps),
               "--iterations", str(args.iterations), "--cg-maxiter", str(args.cg_maxiter)]
    output = subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout
    return float(output.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=2, help="busy-looping processes (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="solves per setting (default 5)")
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=3, help="Gauss-Newton iterations")
    parser.add_argument("--cg-maxiter", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{solve_time(args):.6f}")
        return

    import numba

    settings = {f"default ({numba.config.NUMBA_NUM_THREADS} threads)": None, "1 thread": 1}
    times = {name: [] for name in settings}
    run_child(args, None)  # fills the Numba cache before anything is timed
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        for _ in range(args.repeats):
            for name, threads in settings.items():
                times[name].append(run_child(args, threads))
    finally:
        for process in load:
            process.kill()
            process.wait()

    print(f"LinearDecayProblem: state ({args.examples}, {args.states}), {args.steps} Euler steps, "
          f"GN-CG {args.iterations} x {args.cg_maxiter} CG iterations; {args.load} busy "
          f"processes on {os.cpu_count()} cores; {args.repeats} solves per setting, alternating")
    print(f"{'setting':<22} {'median s':>9} {'min s':>8} {'max s':>8}")
    for name, values in times.items():
        print(f"{name:<22} {np.median(values):9.3f} {min(values):8.3f} {max(values):8.3f}")
    default, single = (np.median(values) for values in times.values())
    print(f"ratio default / 1 thread: {default / single:.2f}")


if __name__ == "__main__":
    main()
