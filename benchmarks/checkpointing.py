"""Memory/time trade-off of checkpointing in the adjoint sweep.

For one gradient (forward + adjoint sweep) of the linear decay problem with a large state, prints a
markdown table over checkpoint intervals ``k``: states held between sweeps, peak states held,
forward steps recomputed, peak traced memory (tracemalloc, numpy arrays included) and wall time
(best of ``--repeat``).

    python3 benchmarks/checkpointing.py                      # defaults used in docs/framework.md
    python3 benchmarks/checkpointing.py --n-steps 32 --stepper rk4
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from pdecontrol.control import ControlFunctional, integrate
from problems.linear_ode import LinearDecayProblem


def measure(n_steps: int, batch: int, n: int, stepper: str, interval, repeat: int) -> dict:
    rng = np.random.default_rng(0)
    problem = LinearDecayProblem(n)
    layout = problem.layout(n_steps)
    functional = ControlFunctional(problem, layout, rng.standard_normal((batch, n)),
                                   rng.standard_normal((batch, n)), final_time=1.0, stepper=stepper,
                                   checkpoint_every=interval)
    x = layout.random(rng, 0.5).flat
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        functional.value_and_gradient(x)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    functional.value_and_gradient(x)
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    params = layout.unflatten(x)
    trajectory = integrate(problem, stepper, problem.initial_state(functional.data, params.static),
                           params.controls, params.static, final_time=1.0, n_steps=n_steps,
                           checkpoint_every=interval)
    trajectory.adjoint(np.ones_like(trajectory.final_state))
    return {"interval": "all" if interval is None else interval, "stored": trajectory.stored_states,
            "peak": trajectory.peak_states, "recomputed": trajectory.recomputed_steps,
            "peak_mib": peak_bytes / 2 ** 20, "seconds": min(times)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--n", type=int, default=4096, help="state components per example")
    parser.add_argument("--stepper", default="euler")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--intervals", type=int, nargs="*", default=[2, 4, 8, 16, 32, 64])
    args = parser.parse_args(argv)
    state_mib = args.batch * args.n * 8 / 2 ** 20
    print(f"n_steps={args.n_steps}, state {args.batch} x {args.n} float64 = {state_mib:.1f} MiB, "
          f"stepper={args.stepper}; one value_and_gradient per row")
    print("| checkpoint_every | stored states | peak states | recomputed steps "
          "| peak memory (MiB) | time (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for interval in [None] + args.intervals:
        row = measure(args.n_steps, args.batch, args.n, args.stepper, interval, args.repeat)
        print(f"| {row['interval']} | {row['stored']} | {row['peak']} | {row['recomputed']} | "
              f"{row['peak_mib']:.1f} | {row['seconds']:.3f} |")


if __name__ == "__main__":
    main()
