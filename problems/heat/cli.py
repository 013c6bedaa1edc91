"""The heat inversion's commands: ``pdecontrol heat invert`` and ``pdecontrol heat plot``.

``invert`` builds the synthetic truth and data (:class:`~problems.heat.inversion.HeatSettings`,
every field an option), runs the coarse-to-fine Gauss-Newton-CG inversion through
:func:`pdecontrol.continuation.run_continuation` (resumable: ``--resume``) and writes a run
directory: ``config.json``, ``state/``, ``history.nc`` (one row per Gauss-Newton iteration of
every level), ``fields.nc`` (true and recovered ``m`` on every level), ``summary.json``
(relative error, iterations per level, work, linear solves) and ``figures/*.png``.
``plot RUN_DIR`` redraws the figures from the files (refused when one is damaged or of another
run: both netCDF files carry their SHA-256 and the run's stamp). Registered as the entry point
``heat``.
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from pdecontrol.cli import (
    Command,
    ProblemCommands,
    RunCommand,
    RunDirectory,
    RunFailed,
    SettingOption,
    UsageError,
    add_setting_options,
    given_fields,
    settings_from_args,
)
from pdecontrol.continuation import HISTORY_FORMAT, run_continuation
from pdecontrol.io import make_folder
from pdecontrol.linear_solvers import SOLVER_NAMES
from pdecontrol.memory import check_memory

from .inversion import OBSERVATIONS, HeatInversion, HeatSettings
from .memory import inversion_memory

__all__ = ["COMMANDS", "SETTING_OPTIONS", "write_figures", "FIELDS_FORMAT"]

_AXES = ("x", "y", "z")
#: Format name of ``fields.nc``.
FIELDS_FORMAT = "pdecontrol-heat-fields-1"


def _times(text: str) -> tuple:
    """Comma-separated observation times."""
    return tuple(float(t) for t in text.split(","))


_times.__name__ = "TIMES"

#: The options of :class:`~problems.heat.inversion.HeatSettings`.
SETTING_OPTIONS = (
    SettingOption("--dim", "dim", int, "spatial dimension (2: unit square, 3: unit cube)",
                  "problem", choices=(2, 3)),
    SettingOption("--resolution", "resolution", int, "nodes per axis of the finest mesh",
                  "problem"),
    SettingOption("--levels", "levels", int, "meshes of the hierarchy (coarse to fine)",
                  "problem"),
    SettingOption("--final-time", "final_time", float, "time horizon T", "problem"),
    SettingOption("--steps", "n_steps", int, "time steps (on every level)", "problem"),
    SettingOption("--times", "observation_times", _times,
                  "observation times, comma-separated multiples of T / steps", "problem"),
    SettingOption("--experiments", "n_experiments", int,
                  "initial temperatures (zero, then bumps; at most 5)", "problem"),
    SettingOption("--source", "source", float, "uniform heat source q", "problem"),
    SettingOption("--observations", "observations", str,
                  "the whole field or the interior nodes of the coarsest mesh", "data",
                  choices=OBSERVATIONS),
    SettingOption("--noise", "noise", float,
                  "noise standard deviation relative to the largest temperature", "data"),
    SettingOption("--seed", "seed", int, "seed of the noise", "data"),
    SettingOption("--gamma", "gamma", float, "weight of the H1 seminorm of m", "inversion"),
    SettingOption("--beta", "beta", float, "weight of the L2 norm of m", "inversion"),
    SettingOption("--theta", "theta", float, "1 backward Euler, 0.5 Crank-Nicolson",
                  "inversion"),
    SettingOption("--solver", "solver", str, "linear solver of the time steps", "inversion",
                  choices=SOLVER_NAMES),
    SettingOption("--solver-rtol", "solver_rtol", float, "AMG-CG tolerance", "inversion"),
    SettingOption("--gn-iterations", "gn_iterations", int,
                  "Gauss-Newton iterations per level at most", "inversion"),
    SettingOption("--grtol", "grtol", float,
                  "relative gradient reduction that ends a level", "inversion"),
    SettingOption("--cg-maxiter", "cg_maxiter", int, "CG iterations per Gauss-Newton step",
                  "inversion"),
    SettingOption("--forcing-max", "forcing_max", float,
                  "cap of the Eisenstat-Walker forcing term", "inversion"),
)


def _fields(problem: HeatInversion, result) -> xr.Dataset:
    """True and recovered ``m`` of every stage's level (the final one is the finest)."""
    variables, coords = {}, {}
    schedule = problem.schedule()
    for index, x in enumerate(result.stage_x):
        level = schedule[index].level
        mesh = problem.hierarchy[level].mesh
        dims = tuple(f"{axis}{level}" for axis in _AXES[: mesh.dim])
        for dim, values in zip(dims, mesh.node_coordinates(), strict=True):
            coords[dim] = values
        shape = "x".join(map(str, mesh.shape))
        variables[f"m_level{level}"] = (dims, np.reshape(x, mesh.shape),
                                        {"mesh_shape": shape, "stage": index})
        variables[f"m_true_level{level}"] = (dims, problem.truth(level), {"mesh_shape": shape})
    return xr.Dataset(variables, coords=coords,
                      attrs={"finest_level": 0, "sigma": problem.sigma})


def _level_table(history: xr.Dataset) -> dict:
    """Per stage: mesh, Gauss-Newton iterations, CG iterations, last gradient norm and error."""
    table = {}
    for stage in np.unique(history["stage"].values):
        rows = history.isel(iteration=np.flatnonzero(history["stage"].values == stage))
        table[str(rows["mesh_shape"].values[0])] = {
            "gauss_newton_iterations": int(rows["stage_iteration"].values[-1]),
            "cg_iterations": int(np.nansum(rows["cg_iterations"].values)),
            "gradient_norm": [float(rows["gradient_norm"].values[0]),
                              float(rows["gradient_norm"].values[-1])],
            "relative_error": float(rows["relative_error"].values[-1]),
        }
    return table


def write_figures(run_dir) -> list:
    """Draw ``figures/fields.png``, ``convergence.png`` and ``iterations.png`` of a run
    directory from ``history.nc`` and ``fields.nc``; returns the paths."""
    from .figures import plot_convergence, plot_fields, plot_iterations

    run_dir = RunDirectory(run_dir, "heat", "invert")
    missing = [name for name in ("history.nc", "fields.nc") if not (run_dir / name).is_file()]
    if missing:
        raise UsageError(f"{run_dir.path} is not a finished heat run directory (missing "
                         f"{', '.join(missing)}); run or resume pdecontrol heat invert there")
    run_dir.load_config()
    history = run_dir.read_netcdf("history.nc", format=HISTORY_FORMAT)
    fields = run_dir.read_netcdf("fields.nc", format=FIELDS_FORMAT)
    figures = make_folder(run_dir / "figures")
    paths = [figures / name for name in ("fields.png", "convergence.png", "iterations.png")]
    error = float(history["relative_error"].values[-1])
    plot_fields(fields["m_true_level0"].values, fields["m_level0"].values,
                title=f"log-diffusivity on {fields['m_level0'].attrs['mesh_shape']}: relative "
                      f"error {100 * error:.1f}%", path=paths[0])
    plot_convergence(history, title="Gauss-Newton-CG, coarse to fine", path=paths[1])
    table = _level_table(history)
    plot_iterations(list(table), [v["gauss_newton_iterations"] for v in table.values()],
                    [v["cg_iterations"] for v in table.values()],
                    title="iterations per level", path=paths[2])
    return paths


class InvertCommand(RunCommand):
    """``pdecontrol heat invert``."""

    name = "invert"
    help = "recover the log-diffusivity of the heat equation from noisy temperatures"
    description = ("Synthetic truth and noisy data on the finest mesh, then Gauss-Newton-CG "
                   "(Eisenstat-Walker, Armijo, prior-preconditioned) coarse to fine through the "
                   "mesh hierarchy. Writes config.json, history.nc, fields.nc, summary.json and "
                   "figures/*.png.")

    def add_arguments(self, parser):
        add_setting_options(parser, SETTING_OPTIONS, HeatSettings())

    def configure(self, args) -> dict:
        settings = settings_from_args(args, SETTING_OPTIONS, HeatSettings().to_dict(),
                                      HeatSettings)
        return {"settings": settings.to_dict()}

    def given_options(self, args) -> list:
        return list(given_fields(args, SETTING_OPTIONS))

    def execute(self, config, run_dir, args) -> int:
        start = time.perf_counter()
        settings = HeatSettings(**config["settings"])
        check_memory(inversion_memory(settings), what="this inversion")
        problem = HeatInversion(settings)
        run_dir.start(config, args.argv)
        make_folder(run_dir.state_dir)
        result = run_continuation(problem, problem.schedule(), seed=settings.seed,
                                  state_file=run_dir.state_dir / "run.npz",
                                  progress=args.quiet == 0)
        history = result.history
        if result.status == "failed":
            stage = result.stage_results[-1]
            raise RunFailed(
                f"the inversion stopped at stage {result.stage} "
                f"({history['mesh_shape'].values[-1]}): {stage['message']}; values overflowed: "
                "lower --source, --final-time, --gamma or --beta (start a new run)")
        run_dir.write_netcdf("history.nc", history, format=HISTORY_FORMAT)
        run_dir.write_netcdf("fields.nc", _fields(problem, result), format=FIELDS_FORMAT)
        figures = write_figures(run_dir.path)
        last = history.isel(iteration=-1)
        summary = {
            "status": result.status,
            "relative_error": float(last["relative_error"]),
            "levels": _level_table(history),
            "work": float(last["work"]),
            "fine_level_work": float(last["fine_level_work"]),
            "work_unit": history["work"].attrs.get("units"),
            "linear_solves": problem.solver_statistics(),
            "sigma": problem.sigma,
            "training_wall_time_s": float(last["wall_time"]),
            "command_wall_time_s": time.perf_counter() - start,
            "figures": [str(p.relative_to(run_dir.path)) for p in figures],
        }
        run_dir.write_json("summary.json", summary)
        print(f"run directory: {run_dir.path}")
        print(f"relative error of m {100 * summary['relative_error']:.2f}% on the finest mesh; "
              + ", ".join(f"{mesh}: {level['gauss_newton_iterations']} GN / "
                          f"{level['cg_iterations']} CG" for mesh, level in
                          summary["levels"].items()))
        return 0


class PlotCommand(Command):
    """``pdecontrol heat plot RUN_DIR``."""

    name = "plot"
    help = "redraw the figures of a heat inversion run directory"

    def add_arguments(self, parser):
        parser.add_argument("run_dir", help="a run directory of pdecontrol heat invert")

    def run(self, args) -> int:
        for path in write_figures(args.run_dir):
            print(path)
        return 0


#: The heat inversion's entry in the ``pdecontrol`` command line (entry point ``heat``).
COMMANDS = ProblemCommands(
    "heat",
    "coefficient inversion in the heat equation (log-diffusivity from noisy temperatures, "
    "implicit steps, Gauss-Newton-CG, mesh continuation)",
    (InvertCommand(), PlotCommand()),
)
