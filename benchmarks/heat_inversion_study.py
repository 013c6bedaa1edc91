"""The heat-equation inversion's numbers for docs/heat.md: recovery against noise, mesh
independence of Gauss-Newton-CG, the fine-level work saved by mesh continuation, AMG-CG
iterations per solve, and a 3D run.

    python3 benchmarks/heat_inversion_study.py noise        # relative error at 5%, 1%, 0.2% noise
    python3 benchmarks/heat_inversion_study.py mesh         # GN / CG iterations at 32, 64, 128
    python3 benchmarks/heat_inversion_study.py forcing --sizes 32 64   # forcing cap 0.5 vs 0.1
    python3 benchmarks/heat_inversion_study.py continuation # 32 -> 64 -> 128 vs 128 alone
    python3 benchmarks/heat_inversion_study.py amg          # AMG-CG iterations per solve
    python3 benchmarks/heat_inversion_study.py 3d           # 16^3 -> 32^3

Every run uses the defaults of ``problems.heat.HeatSettings`` (2D, 3 experiments, 16 backward
Euler steps to T = 0.1, full-field observations at 4 times, 1% noise, gamma = 0.01) unless the
table says otherwise. Prints its figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pdecontrol.continuation import Schedule, run_continuation
from problems.heat import HeatInversion, HeatSettings


def _run(settings: HeatSettings, *, levels=None, gtol: float = 0.0):
    """Run the inversion (all levels, or only ``levels`` of the hierarchy, coarse first)."""
    problem = HeatInversion(settings)
    schedule = problem.schedule(gtol=gtol)
    if levels is not None:
        schedule = Schedule([stage for stage in schedule if stage.level in levels])
    start = time.perf_counter()
    result = run_continuation(problem, schedule)
    return problem, result, time.perf_counter() - start


def _stage_rows(history, stage):
    return history.isel(iteration=np.flatnonzero(history["stage"].values == stage))


def noise(args):
    print("| noise | relative error of m | GN iterations | CG iterations | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for level in (0.05, 0.01, 0.002):
        settings = HeatSettings(resolution=args.resolution, levels=1, noise=level)
        _, result, seconds = _run(settings)
        history = result.history
        print(f"| {100 * level:g}% | {100 * history['relative_error'].values[-1]:.2f}% | "
              f"{int(history['stage_iteration'].values[-1])} | "
              f"{int(np.nansum(history['cg_iterations'].values))} | {seconds:.0f} |", flush=True)


def mesh(args):
    print("| mesh | GN iterations to grtol 1e-6 | CG iterations | CG per GN | relative error "
          "| wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        settings = HeatSettings(resolution=n, levels=1)
        _, result, seconds = _run(settings)
        history = result.history
        gn = int(history["stage_iteration"].values[-1])
        cg = int(np.nansum(history["cg_iterations"].values))
        print(f"| {n}x{n} | {gn} | {cg} | {cg / gn:.0f} | "
              f"{100 * history['relative_error'].values[-1]:.2f}% | {seconds:.0f} |", flush=True)


def forcing(args):
    print("| mesh | forcing_max | GN iterations | CG iterations |")
    print("| --- | --- | --- | --- |")
    for n in args.sizes:
        for cap in (0.5, 0.1):
            _, result, _ = _run(HeatSettings(resolution=n, levels=1, forcing_max=cap))
            history = result.history
            print(f"| {n}x{n} | {cap:g} | {int(history['stage_iteration'].values[-1])} | "
                  f"{int(np.nansum(history['cg_iterations'].values))} |", flush=True)


def continuation(args):
    n = args.sizes[-1]
    levels = len(args.sizes)
    settings = HeatSettings(resolution=n, levels=levels)
    # the common target: the fine gradient reduced by grtol from its value at m = 0
    problem = HeatInversion(settings)
    g0 = problem.functional(0).dual_norm(problem.functional(0).gradient(np.zeros(n * n)))
    gtol = settings.grtol * g0
    print(f"target: fine-level gradient norm <= {gtol:.3e} (grtol {settings.grtol:g} of "
          f"{g0:.3e} at m = 0 on {n}x{n})\n")
    print("| run | GN iterations per level (coarse first) | CG per level | fine-level work "
          "| total work | wall s | relative error |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = {}
    runs = (("fine only", (0,)),
            (f"{levels} levels, coarse levels to grtol {settings.coarse_grtol:g}",
             tuple(range(levels))))
    for name, chosen in runs:
        relaxed = settings.replace(grtol=1e-12)  # the finest level stops on gtol only
        _, result, seconds = _run(relaxed, levels=chosen, gtol=gtol)
        history = result.history
        gn, cg = [], []
        for stage in np.unique(history["stage"].values):
            rows_of = _stage_rows(history, stage)
            gn.append(int(rows_of["stage_iteration"].values[-1]))
            cg.append(int(np.nansum(rows_of["cg_iterations"].values)))
        last = history.isel(iteration=-1)
        rows[name] = (float(last["fine_level_work"]), seconds)
        print(f"| {name} | {gn} | {cg} | {float(last['fine_level_work']):.4g} | "
              f"{float(last['work']):.4g} | {seconds:.0f} | "
              f"{100 * float(last['relative_error']):.2f}% |", flush=True)
    (fine_work, fine_seconds), (work, seconds) = rows.values()
    print(f"\nfine-level work, continuation / fine only: {work / fine_work:.2f}; wall time "
          f"{seconds / fine_seconds:.2f}")


def amg(args):
    print("| mesh | solver | GN iterations | CG iterations | solver iterations per solve | "
          "set-ups | relative error | wall s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for n in args.sizes:
        for solver in ("splu", "amg-sa", "amg-rs"):
            settings = HeatSettings(resolution=n, levels=1, solver=solver, solver_rtol=1e-8)
            problem, result, seconds = _run(settings)
            history = result.history
            stats = problem.solver_statistics()
            per_solve = stats["iterations_per_solve"]
            print(f"| {n}x{n} | {solver} | {int(history['stage_iteration'].values[-1])} | "
                  f"{int(np.nansum(history['cg_iterations'].values))} | "
                  f"{'-' if per_solve is None else f'{per_solve:.1f}'} | {stats['setups']} | "
                  f"{100 * history['relative_error'].values[-1]:.2f}% | {seconds:.0f} |",
                  flush=True)


def three_d(args):
    settings = HeatSettings(dim=3, resolution=args.resolution_3d, levels=2, solver=args.solver_3d,
                            solver_rtol=1e-8)
    problem, result, seconds = _run(settings)
    history = result.history
    print("| mesh | GN iterations | CG iterations | relative error |")
    print("| --- | --- | --- | --- |")
    for stage in np.unique(history["stage"].values):
        rows = _stage_rows(history, stage)
        print(f"| {rows['mesh_shape'].values[0]} | {int(rows['stage_iteration'].values[-1])} | "
              f"{int(np.nansum(rows['cg_iterations'].values))} | "
              f"{100 * rows['relative_error'].values[-1]:.2f}% |")
    stats = problem.solver_statistics()
    per_solve = stats["iterations_per_solve"]
    print(f"\n{settings.solver}: {stats['solves']} solves"
          + ("" if per_solve is None else f", {per_solve:.1f} iterations per solve")
          + f", {stats['setups']} set-ups; {seconds:.0f} s")


STUDIES = {"noise": noise, "mesh": mesh, "forcing": forcing, "continuation": continuation,
           "amg": amg, "3d": three_d}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", choices=tuple(STUDIES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128],
                        help="meshes (nodes per axis) of 'mesh', 'continuation' and 'amg'")
    parser.add_argument("--resolution", type=int, default=64, help="mesh of 'noise'")
    parser.add_argument("--resolution-3d", type=int, default=32, help="finest mesh of '3d'")
    parser.add_argument("--solver-3d", default="splu", help="linear solver of '3d'")
    args = parser.parse_args(argv)
    STUDIES[args.study](args)


if __name__ == "__main__":
    main()
