"""The CNN's commands: ``pdecontrol cnn train | evaluate | paper | plot``.

* ``train``: train the CNN (``--mode single|multilevel|time|consistent``) on the embedded
  synthetic set (default, no download), the embedded synthetic volumes (3D) or MNIST, and write
  a run directory
  (:mod:`problems.cnn.run_outputs`);
* ``evaluate NETWORK --resolution N``: accuracy of a trained network moved to another
  resolution (restricted, classifier-only, re-solved, prolonged, interpolated input);
* ``paper``: the MNIST experiments of Haber, Ruthotto & Holtham (section 5), next to their numbers;
* ``plot RUN_DIR``: redraw the figures of a run directory (``train`` or ``paper``).

Registered with the framework's command line (:mod:`pdecontrol.cli`) as the entry point
``cnn`` of the group ``pdecontrol.problems``; the framework owns run directories, resume, logging
and exit statuses, this module only the CNN's options and what its commands do.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from pdecontrol.cli import (
    Command,
    ProblemCommands,
    RunCommand,
    RunFailed,
    UsageError,
    add_setting_options,
    given_fields,
)
from pdecontrol.io import make_folder, remove_partial_files, write_json, write_netcdf
from pdecontrol.memory import check_memory
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict_image

from .cli_settings import (
    MAIN_CONFIG,
    SETTING_OPTIONS,
    TRAIN_DEFAULTS,
    config_settings,
    paper_settings,
    train_settings,
)
from .config import TrainingSettings
from .data.sets import DATA_SETS, MNIST_RESOLUTION, check_resolution, data_dim, load_image_sets
from .memory import evaluation_memory, training_memory
from .report import train_report
from .run_outputs import TRANSFER_DEFAULTS, run_transfers

__all__ = [
    "COMMANDS",
    "TRAIN_DEFAULTS",
    "MODES",
    "CLI_VARIANTS",
    "SETTING_OPTIONS",
    "train_settings",
    "paper_settings",
    "train_report",
]

#: Training modes and the driver each runs (:mod:`problems.cnn.training`).
MODES = {
    "single": "train_single_level",
    "multilevel": "train_multilevel",
    "time": "train_time_continuation",
    "consistent": "train_resolution_consistent",
}
#: Evaluation variants of the command line and the column of
#: :func:`problems.cnn.evaluation.evaluate_across_scales` each reads.
CLI_VARIANTS = {
    "restricted": "galerkin",
    "prolonged": "galerkin",
    "native": "galerkin",
    "classifier-only": "classifier_only",
    "resolved": "galerkin_refit_classifier",
    "interpolated": "interpolated_input",
    "rediscretized": "rediscretized",
    "rediscretized-resolved": "rediscretized_refit_classifier",
}
# Variants that re-solve ``(W, c)`` on the training images (they need them loaded).
_REFIT_VARIANTS = frozenset({"resolved", "rediscretized-resolved"})
# Variants run only when named with ``--variant`` (or when the run trained with rediscretized
# transfers); they apply to coarser and finer meshes.
_OPT_IN_VARIANTS = frozenset({"rediscretized", "rediscretized-resolved"})
logger = logging.getLogger("problems.cnn.cli")

_DEFAULT_RESOLUTION = {"synthetic": 32, "mnist": MNIST_RESOLUTION, "volumes": 32}
#: Default ``(--n-train, --n-val)`` per image set: the main job's for the synthetic sets; the
#: paper's MNIST split.
_DEFAULT_SIZES = {"synthetic": (TRAIN_DEFAULTS["n_train"], TRAIN_DEFAULTS["n_val"]),
                  "mnist": (40_000, 20_000),
                  "volumes": (TRAIN_DEFAULTS["n_train"], TRAIN_DEFAULTS["n_val"])}
# ---------------------------------------------------------------------- data
def _load_from_config(config: dict, resolution=None, *, centring: str = "node") -> tuple:
    return load_image_sets(config["data"], config["resolution"] if resolution is None
                           else resolution, config["n_train"], config["n_val"],
                           seed=config["seed"], data_dir=config["data_dir"], centring=centring)


# ---------------------------------------------------------------------- transfers
#: Options (config names) of how images and networks move between levels
#: (:data:`problems.cnn.run_outputs.TRANSFER_DEFAULTS`).
_TRANSFER_OPTIONS = ("centring", "kernel_transfer", "smoothing_sigma")
# the modes whose training moves networks and images between levels
_MULTILEVEL_MODES = ("multilevel", "consistent")


def _add_transfer_options(group):
    """``--centring``, ``--kernel-transfer``, ``--smoothing-sigma`` (train and paper)."""
    group.add_argument(
        "--centring", choices=("node", "cell"), default=None,
        help="centring of the meshes: node (full weighting / bilinear, coarse node j on fine "
             "node 2j) or cell (2x2 averaging / piecewise constant); decides how images and the "
             "network are restricted in training, evaluation and figures (default node)")
    group.add_argument(
        "--kernel-transfer", choices=("galerkin", "rediscretize"), default=None,
        help="how kernels move between meshes: Galerkin R K P, or the same derivative "
             "coefficients rediscretized at the new spacing (default galerkin)")
    group.add_argument(
        "--smoothing-sigma", type=float, default=None, metavar="S",
        help="Gaussian smoothing of the images (standard deviation S pixels of the finer mesh) "
             "before each restriction: the paper's image pyramid (default: none)")


def _transfer_config(args, mode: str) -> dict:
    """The transfer options of a run configuration (only those not at their default, see
    :data:`~problems.cnn.run_outputs.TRANSFER_DEFAULTS`); one-line errors for options that do
    not apply to ``mode`` or bad values."""
    sigma = args.smoothing_sigma
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise UsageError(f"--smoothing-sigma must be a positive number of pixels, got {sigma}")
    for option, name in (("--kernel-transfer", "kernel_transfer"),
                         ("--smoothing-sigma", "smoothing_sigma")):
        if getattr(args, name) is not None and mode not in _MULTILEVEL_MODES:
            raise UsageError(
                f"{option} applies to --mode multilevel or consistent (training that moves "
                f"networks and images between levels), not --mode {mode}")
    return {name: getattr(args, name) for name in _TRANSFER_OPTIONS
            if getattr(args, name) not in (None, TRANSFER_DEFAULTS[name])}


def _check_levels(config: dict):
    """One-line error when the images of a multilevel or consistent run cannot be coarsened
    ``levels - 1`` times (every coarsening halves an even size)."""
    if config["mode"] not in _MULTILEVEL_MODES:
        return
    resolution, levels = config["resolution"], config["levels"]
    dim = data_dim(config["data"])
    mesh = Mesh((resolution,) * dim)
    if levels > mesh.max_levels:
        sizes = [resolution]
        while sizes[-1] % 2 == 0 and sizes[-1] > 1:
            sizes.append(sizes[-1] // 2)
        shape, last = ("x".join([str(n)] * dim) for n in (resolution, sizes[-1]))
        raise UsageError(
            f"--levels {levels}: {shape} {'volumes' if dim == 3 else 'images'} cannot be "
            f"coarsened {levels - 1} times (halving stops at {last}: "
            f"{' -> '.join(map(str, sizes))}); use fewer levels (--levels {mesh.max_levels} or "
            f"less) or a resolution divisible by 2**{levels - 1}")


def _add_data_options(parser, *, training: bool):
    group = parser.add_argument_group("data")

    def default(name):
        if not training:
            return ""
        if name == "data":
            return f" (default {TRAIN_DEFAULTS[name]})"
        index = ("n_train", "n_val").index(name)
        return " (default " + ", ".join(f"{sizes[index]} {data}" for data, sizes in
                                        _DEFAULT_SIZES.items()) + ")"

    group.add_argument("--data", choices=tuple(DATA_SETS), default=None,
                       help="image set: the embedded synthetic patterns (no download), MNIST, "
                            "or the embedded synthetic volumes (3D, n x n x n voxels, ten shape "
                            "classes; no download)" + default("data"))
    if training:
        group.add_argument("--resolution", type=int, default=None,
                           help="finest image resolution n (n x n, volumes n x n x n; default "
                                "32 synthetic and volumes, 28 MNIST); with --levels L of "
                                "--mode multilevel or consistent, n must be divisible by "
                                "2^(L-1)")
    group.add_argument("--n-train", type=int, default=None,
                       help="training images" + default("n_train"))
    group.add_argument("--n-val", type=int, default=None,
                       help="validation images" + default("n_val"))
    group.add_argument("--data-dir", default=None,
                       help="directory of the MNIST IDX files (default $PDECONTROL_DATA_DIR)")
    return group


def _network_paths(network) -> tuple:
    path = Path(network)
    if path.is_dir():
        return path / "network.nc", path
    return path, path.parent


# ---------------------------------------------------------------------- train
class TrainCommand(RunCommand):
    """``pdecontrol cnn train``: train and write the run directory."""

    name = "train"
    help = "train the CNN and write a run directory"
    description = ("Train the residual CNN on the synthetic set (default) or MNIST and write a "
                   "run directory: config.json, network.nc, history.nc, predictions.nc, "
                   "evaluation.nc, summary.json, figures/*.png.")
    _CONFIG_OPTIONS = ("config", "data", "resolution", "n_train", "n_val", "data_dir", "mode",
                       "levels", "coarse_iterations", "consistency_weight", "seed",
                       "initial") + _TRANSFER_OPTIONS

    def add_arguments(self, parser):
        from .paper import PAPER_CONFIGS

        group = parser.add_argument_group("training")
        group.add_argument(
            "--config", choices=(MAIN_CONFIG, *PAPER_CONFIGS), default=None,
            help="network and schedule: main (the main job), paper, strong or fast (the "
                 "fastest schedule measured on MNIST, docs/speed.md); the setting options "
                 "change single fields (default main)")
        group.add_argument(
            "--mode", choices=tuple(MODES), default=None,
            help="single level, multilevel (coarse to fine, Algorithm 1), time (layer "
                 "continuation) or consistent (fine + restricted-network loss) "
                 f"(default {TRAIN_DEFAULTS['mode']})")
        group.add_argument(
            "--levels", type=int, default=None,
            help="meshes in the hierarchy: multilevel trains on levels-1 coarsenings first; "
                 "consistent adds the losses of levels-1 restricted networks "
                 f"(default {TRAIN_DEFAULTS['levels']})")
        group.add_argument(
            "--coarse-iterations", type=int, default=None, metavar="N",
            help="--mode multilevel: outer iterations of every coarser level (default: as the "
                 "finest, --outer-iterations)")
        group.add_argument(
            "--consistency-weight", type=float, default=None,
            help="weight of the restricted-network losses (--mode consistent, "
                 f"default {TRAIN_DEFAULTS['consistency_weight']})")
        group.add_argument("--seed", type=int, default=None,
                           help="seed of the data split, initial kernels and sub-samples "
                                "(default 0)")
        group.add_argument(
            "--initial", default=None, metavar="NETWORK",
            help="start from a trained network (a run directory or a network .nc, e.g. "
                 "network_multilevel.nc of pdecontrol cnn paper) instead of random kernels; "
                 "--mode single or consistent; its mesh, channels, layers, activation and kernel "
                 "basis must be this run's")
        _add_transfer_options(group)
        _add_data_options(parser, training=True)
        add_setting_options(parser, SETTING_OPTIONS, defaults_from="--config")

    def configure(self, args) -> dict:
        def pick(name):
            value = getattr(args, name)
            return TRAIN_DEFAULTS[name] if value is None else value

        data = pick("data")
        config = {name: pick(name) for name in ("data", "mode", "levels", "consistency_weight")}
        for name, default in zip(("n_train", "n_val"), _DEFAULT_SIZES[data], strict=True):
            config[name] = default if getattr(args, name) is None else getattr(args, name)
        config["config"] = MAIN_CONFIG if args.config is None else args.config
        config["seed"] = 0 if args.seed is None else args.seed
        config["initial"] = None if args.initial is None else os.path.abspath(args.initial)
        config["resolution"] = (_DEFAULT_RESOLUTION[data] if args.resolution is None
                                else check_resolution(args.resolution))
        config["data_dir"] = (args.data_dir if args.data_dir is not None
                              else os.environ.get("PDECONTROL_DATA_DIR") if data == "mnist"
                              else None)
        if config["levels"] < 1:
            raise UsageError(f"--levels must be >= 1, got {config['levels']}")
        config["coarse_iterations"] = args.coarse_iterations
        if args.coarse_iterations is not None:
            if config["mode"] != "multilevel":
                raise UsageError("--coarse-iterations sets the coarser levels of --mode "
                                 f"multilevel, not --mode {config['mode']}")
            if args.coarse_iterations < 0:
                raise UsageError(
                    f"--coarse-iterations must be >= 0, got {args.coarse_iterations}")
        config.update(_transfer_config(args, config["mode"]))
        _check_levels(config)
        settings = train_settings(args, config_settings(config["config"]))
        if config["mode"] == "time":
            from .training import halving_layers

            halving_layers(settings.n_steps, "--layers")
        config["settings"] = settings.to_dict()
        return config

    def given_options(self, args) -> list:
        given = [name for name in self._CONFIG_OPTIONS if getattr(args, name, None) is not None]
        return given + list(given_fields(args, SETTING_OPTIONS))

    def execute(self, config, run_dir, args) -> int:
        start = time.perf_counter()
        settings = TrainingSettings.from_dict(config["settings"])
        levels = range(1, config["levels"]) if config["mode"] == "consistent" else ()
        check_memory(training_memory(settings, resolution=config["resolution"],
                                     n_train=config["n_train"], n_val=config["n_val"],
                                     dim=data_dim(config["data"]), consistency_levels=levels),
                     what="this run")
        initial = _initial_parameters(config)
        train, validation = _load_from_config(config, centring=run_transfers(config)["centring"])
        run_dir.start(config, args.argv)
        result = _train(config, train, validation, run_dir.state_dir, args.quiet == 0, initial)
        if result.status == "failed" or not np.isfinite(result.history["objective"].values[-1]):
            raise RunFailed(_failure(result.history))
        train_time = time.perf_counter() - start
        from .run_outputs import write_run_outputs

        summary = {"mode": config["mode"], "driver": MODES[config["mode"]],
                   "status": result.status, "data": config["data"],
                   "resolution": config["resolution"], "n_train": config["n_train"],
                   "n_val": config["n_val"]}
        summary.update(write_run_outputs(run_dir, config, result, validation))
        summary["command_wall_time_s"] = time.perf_counter() - start
        summary["load_and_train_wall_time_s"] = train_time
        summary["files"] = sorted(
            str(p.relative_to(run_dir.path)) for p in run_dir.path.rglob("*")
            if p.is_file() and p.parent.name != "state") + ["summary.json"]
        run_dir.write_json("summary.json", summary)
        print("\n".join(train_report(config, summary, run_dir.path)))
        return 0


def _failure(history) -> str:
    """The one-line report of a run that stopped on (or ended with) non-finite values, naming
    the options that make values overflow."""
    last = history.isel(iteration=-1)
    objective = float(last["objective"])
    reason = (f"the objective is {objective}" if not np.isfinite(objective)
              else json.loads(history.attrs["stage_results"])[-1]["message"])
    return (f"training failed at stage {int(last['stage'])} ({last['mesh_shape'].item()}, "
            f"{int(last['n_steps'])} layers): {reason}; values overflowed: lower --final-time, "
            "--kernel-scale, --opening-scale or the regularisation weights, or use --dtype "
            "float64 (start a new run)")


def _train(config: dict, train, validation, state_dir: Path, progress: bool, initial=None):
    from . import training

    settings = TrainingSettings.from_dict(config["settings"])
    driver = getattr(training, MODES[config["mode"]])
    options = {"state_dir": state_dir, "progress": progress}
    mode, levels = config["mode"], config["levels"]
    if initial is not None:
        options["initial"] = initial
    transfers = run_transfers(config)
    options["centring"] = transfers["centring"]
    if mode in _MULTILEVEL_MODES:
        options["kernel_transfer"] = transfers["kernel_transfer"]
        options["smoothing_sigma"] = transfers["smoothing_sigma"]
    if mode == "multilevel":
        options["n_levels"] = levels
        if config.get("coarse_iterations") is not None:
            options["outer_iterations"] = ([config["coarse_iterations"]] * (levels - 1)
                                           + [settings.outer_iterations])
    elif mode == "consistent":
        if levels < 2:
            raise UsageError("--mode consistent needs --levels >= 2 (the fine mesh and at least "
                             "one restricted one)")
        options["consistency_levels"] = tuple(range(1, levels))
        options["consistency_weight"] = config["consistency_weight"]
    elif levels != TRAIN_DEFAULTS["levels"] and levels != 1:
        logger.warning("--levels %d is ignored by --mode %s", levels, mode)
    return driver(train, validation, settings, **options)


def _initial_parameters(config: dict):
    """Flat parameters of the ``--initial`` network of a train configuration (None without one),
    checked against its mode, settings and resolution."""
    from .network_file import read_network_file

    if config.get("initial") is None:
        return None
    if config["mode"] not in ("single", "consistent"):
        raise UsageError(
            f"--initial starts --mode single or consistent, not --mode {config['mode']}; "
            "multilevel and time continuation build their own start")
    settings = TrainingSettings.from_dict(config["settings"])
    resolution = config["resolution"]
    network_path, _ = _network_paths(config["initial"])
    if not network_path.is_file():
        raise UsageError(
            f"--initial: no network file at {network_path}; give a run directory or a network .nc")
    network = read_network_file(network_path).network
    shape = "x".join(map(str, network.mesh.shape))
    if network.mesh.shape != (resolution,) * network.problem.dim:
        raise UsageError(
            f"--initial {network_path} is a network on {shape}, this run trains at "
            f"{resolution}x{resolution}; train at its resolution, or move it first with "
            "pdecontrol cnn evaluate (restrict / prolong)")
    problem = settings.make_problem(network.mesh, network.problem.n_classes)
    differ = [
        f"{name} ({theirs} in the network file, {mine} here)"
        for name, theirs, mine in (
            ("n_channels", network.problem.n_channels, problem.n_channels),
            ("n_steps", network.n_steps, settings.n_steps),
            ("activation", network.problem.activation.name, problem.activation.name),
            ("kernel_basis", network.problem.kernel_basis, problem.kernel_basis),
            ("loss", type(network.problem.loss).__name__, type(problem.loss).__name__),
        )
        if theirs != mine
    ]
    if differ:
        raise UsageError(
            f"--initial {network_path} does not fit this run: {', '.join(differ)}; pass the "
            "network options of the run that wrote it (--channels, --layers, ...)")
    return np.array(network.parameters)


# ---------------------------------------------------------------------- evaluate
class EvaluateCommand(Command):
    """``pdecontrol cnn evaluate NETWORK --resolution N``."""

    name = "evaluate"
    help = "accuracy of a trained network at any resolution"
    description = ("Move a trained network to another resolution (Galerkin restriction or "
                   "prolongation) and measure its accuracy on the validation images of its run "
                   "at that resolution. Prints a table; writes evaluation_<n>.json and .nc.")

    def add_arguments(self, parser):
        parser.add_argument("network", metavar="NETWORK", help="a run directory or its network.nc")
        parser.add_argument("--resolution", type=int, required=True,
                            help="image resolution n to evaluate at (the network's n times a "
                                 "power of 2)")
        parser.add_argument(
            "--variant", action="append", choices=tuple(CLI_VARIANTS), default=None,
            help="repeatable; restricted/prolonged: Galerkin kernels, W moved, no data; "
                 "classifier-only: only W restricted; resolved: kernels moved, W re-solved on "
                 "the training images at n; interpolated: coarse images interpolated to the "
                 "network's mesh; rediscretized, rediscretized-resolved: as restricted/prolonged "
                 "and resolved with rediscretized kernels (only when named, or when the "
                 "network's run trained with --kernel-transfer rediscretize). Default: all "
                 "others that apply")
        group = _add_data_options(parser, training=False)
        group.description = "default: the data of the network's run"
        parser.add_argument("--out", default=None,
                            help="output directory (default: the run directory of the "
                                 "network file)")

    def run(self, args) -> int:
        from .evaluation import (
            EVALUATION_FORMAT,
            as_labelled_images,
            evaluate_across_scales,
            levels_between,
        )
        from .network_file import read_network_file

        network_path, run_dir = _network_paths(args.network)
        if not network_path.is_file():
            raise UsageError(
                f"no network file at {network_path}; give a run directory or its network.nc")
        network_file = read_network_file(network_path)
        network = network_file.network
        run = dict(network_file.metadata.get("run", {}))
        for key, value in (("data", args.data), ("n_train", args.n_train),
                           ("n_val", args.n_val), ("data_dir", args.data_dir)):
            if value is not None:
                run[key] = value
        missing = [k for k in ("data", "n_train", "n_val", "seed") if k not in run]
        if missing:
            raise UsageError(f"{network_path} does not record its data ({missing}); give "
                             "--data, --n-train and --n-val")
        run.setdefault("data_dir", None)
        resolution = check_resolution(args.resolution)
        network_resolution = network.mesh.shape[0]
        check_memory(evaluation_memory(network.settings, resolution=resolution,
                                       network_resolution=network_resolution,
                                       n_train=run["n_train"], n_val=run["n_val"],
                                       refit=args.variant is None
                                       or not _REFIT_VARIANTS.isdisjoint(args.variant),
                                       n_classes=network.problem.n_classes,
                                       dim=network.problem.dim),
                     what=f"evaluating at {resolution}x{resolution}")
        centring = network.mesh.centring
        target = Mesh((resolution,) * network.problem.dim, extent=network.mesh.extent,
                      origin=network.mesh.origin, centring=centring)
        try:
            levels = levels_between(network.mesh, target)
        except ValueError:
            raise UsageError(
                f"--resolution {resolution} is not on the mesh hierarchy of the network "
                f"({'x'.join(map(str, network.mesh.shape))}): use its size times or divided by "
                "a power of 2") from None
        applicable = ({"restricted", "classifier-only", "resolved", "interpolated"} if levels > 0
                      else {"prolonged", "resolved"} if levels < 0 else {"native", "resolved"})
        if levels:
            applicable |= _OPT_IN_VARIANTS
        requested = args.variant or sorted(applicable - {"resolved"} - _OPT_IN_VARIANTS) + [
            "resolved"]
        if (args.variant is None and levels
                and run_transfers(run)["kernel_transfer"] == "rediscretize"):
            # a network trained with rediscretized transfers: show them too
            requested += ["rediscretized", "rediscretized-resolved"]
        wrong = [v for v in requested if v not in applicable]
        if wrong:
            raise UsageError(
                f"--variant {wrong[0]} does not apply at {resolution}x{resolution} for a network "
                f"on {'x'.join(map(str, network.mesh.shape))}; use one of {sorted(applicable)}")
        needs_refit = not _REFIT_VARIANTS.isdisjoint(requested)
        # images at the finer of the two resolutions, restricted to the coarser (as in training)
        source_resolution = max(network_resolution, resolution)
        if run["data"] == "mnist" and source_resolution > MNIST_RESOLUTION:
            raise UsageError(
                f"MNIST images are 28x28: --resolution {resolution} cannot be evaluated")
        train, validation = _load_from_config(run, source_resolution, centring=centring)
        dim = network.problem.dim
        down = levels_between(Mesh((source_resolution,) * dim), Mesh((resolution,) * dim))
        sigma = run_transfers(run)["smoothing_sigma"]

        def at_resolution(dataset):
            # restricted as in the network's training: its centring's R, its smoothing
            images, labels = as_labelled_images(dataset)
            return (restrict_image(images, dim, down, sigma, centring) if down else images,
                    labels)

        columns = sorted({CLI_VARIANTS[v] for v in requested})
        table = evaluate_across_scales(
            network, [at_resolution(validation)],
            refit_sets=[at_resolution(train)] if needs_refit else None, variants=columns)
        accuracy = {v: float(table["accuracy"].sel(resolution=resolution,
                                                   variant=CLI_VARIANTS[v]))
                    for v in requested}
        out = Path(args.out) if args.out is not None else run_dir
        make_folder(out)
        renamed = table.assign_coords(variant=[
            next(v for v in requested if CLI_VARIANTS[v] == c) for c in table["variant"].values])
        renamed.attrs.update({"network": str(network_path), "data": run["data"],
                              "n_validation": int(validation.sizes["example"])})
        write_netcdf(out / f"evaluation_{resolution}.nc", renamed, format=EVALUATION_FORMAT)
        result = {
            "network": str(network_path),
            "network_resolution": network_resolution,
            "centring": centring,
            "smoothing_sigma": sigma,
            "resolution": resolution,
            "levels": levels,
            "data": run["data"],
            "n_validation": int(validation.sizes["example"]),
            "n_refit": int(train.sizes["example"]) if needs_refit else 0,
            "accuracy": accuracy,
        }
        write_json(out / f"evaluation_{resolution}.json", result)
        print(f"network {network_resolution}x{network_resolution} ({centring}-centred) "
              f"evaluated at {resolution}x{resolution} on {result['n_validation']} validation "
              f"images ({run['data']})")
        print(f"{'variant':<16} {'accuracy':>9}")
        for variant, value in accuracy.items():
            print(f"{variant:<16} {100 * value:>8.2f}%")
        print(f"written: {out / f'evaluation_{resolution}.json'}, "
              f"{out / f'evaluation_{resolution}.nc'}")
        return 0


# ---------------------------------------------------------------------- paper
class PaperCommand(Command):
    """``pdecontrol cnn paper``: the paper's MNIST experiments (:mod:`problems.cnn.paper`)."""

    name = "paper"
    help = "reproduce the MNIST experiments of the paper (section 5)"
    description = ("MNIST 28x28 and 14x14, 40,000 / 20,000 split: fine-only vs multilevel "
                   "training, restricted-network inference and the W-only ablation, the "
                   "prolonged start. Writes paper_table.md (every number of the paper next to "
                   "ours), results.json, histories and figures into --out.")

    def add_arguments(self, parser):
        from .paper import CONSISTENT_STARTS, PAPER_CONFIGS

        parser.add_argument(
            "--config", choices=tuple(PAPER_CONFIGS), default="paper",
            help="network and schedule: 'paper' (random-kernel start near the paper's 83%%, the "
                 "paper's schedule) or 'strong' (wider, high-order penalty, smaller Gauss-Newton "
                 "batches); the network, regularisation and schedule options below override it")
        parser.add_argument("--data-dir", default=None,
                            help="directory of the MNIST IDX files (default "
                                 "$PDECONTROL_DATA_DIR)")
        parser.add_argument("--n-train", type=int, default=40_000,
                            help="training images (default 40000)")
        parser.add_argument("--n-val", type=int, default=20_000,
                            help="validation images (default 20000)")
        parser.add_argument("--consistent", action="store_true",
                            help="also train the resolution-consistent network (fine + coarse "
                                 "loss)")
        parser.add_argument("--consistency-weight", type=float, default=1.0,
                            help="weight of the 14x14 loss in --consistent training "
                                 "(default 1.0)")
        parser.add_argument("--consistent-from", choices=CONSISTENT_STARTS, default="random",
                            help="--consistent training starts from random kernels (default) or "
                                 "continues from the final multilevel network")
        parser.add_argument("--consistent-iterations", type=int, default=None,
                            help="outer iterations of --consistent training (default: "
                                 "--outer-iterations)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the split and the kernels")
        parser.add_argument("--out", default=None,
                            help="output directory (default runs/paper-<config>)")
        _add_transfer_options(parser.add_argument_group(
            "transfers", "how the 14x14 images and the networks are moved between meshes"))
        add_setting_options(parser, SETTING_OPTIONS, defaults_from="--config")

    def run(self, args) -> int:
        from .paper import reproduce_paper

        settings, config_name = paper_settings(args)
        transfers = run_transfers(_transfer_config(args, "multilevel"))
        if args.consistent_iterations is not None and args.consistent_iterations < 1:
            raise UsageError(
                f"--consistent-iterations must be >= 1, got {args.consistent_iterations}")
        out = Path(args.out) if args.out is not None else Path("runs") / f"paper-{args.config}"
        check_memory(training_memory(settings, resolution=MNIST_RESOLUTION, n_train=args.n_train,
                                     n_val=args.n_val), what="this paper job")
        if out.is_dir():  # a rerun continues: drop what a killed run was writing
            remove_partial_files(out)
        train, validation = load_image_sets("mnist", MNIST_RESOLUTION, args.n_train, args.n_val,
                                            seed=args.seed, data_dir=args.data_dir)
        report = reproduce_paper(
            train, validation, settings, out, config_name=config_name,
            consistent=args.consistent, consistency_weight=args.consistency_weight,
            consistent_start=args.consistent_from,
            consistent_iterations=args.consistent_iterations, progress=args.quiet == 0,
            **transfers)
        print(f"written: {report['table']}")
        print(Path(report["table"]).read_text())
        return 0


# ---------------------------------------------------------------------- plot
class PlotCommand(Command):
    """``pdecontrol cnn plot RUN_DIR``: a ``train`` run directory, or a ``paper`` output
    directory (recognised by its ``paper_table.md``)."""

    name = "plot"
    help = "redraw the figures of a run directory"
    description = ("Redraw figures/*.png of a run directory from its files (no training, no "
                   "data).")

    def add_arguments(self, parser):
        parser.add_argument("run_dir", help="a run directory of pdecontrol cnn train, or an "
                                            "output directory of pdecontrol cnn paper")

    def run(self, args) -> int:
        run_dir = Path(args.run_dir)
        if (run_dir / "paper_table.md").is_file():
            from .paper import write_paper_figures

            try:
                paths = write_paper_figures(run_dir)
            except FileNotFoundError as error:
                raise UsageError(str(error)) from None
        else:
            from .run_outputs import write_run_figures

            paths = write_run_figures(run_dir)
        for path in paths:
            print(path)
        return 0


#: The CNN's entry in the ``pdecontrol`` command line (entry point ``cnn``).
COMMANDS = ProblemCommands(
    "cnn",
    "the multiscale CNN (Haber, Ruthotto & Holtham, arXiv 1703.02009): train, evaluate across "
    "resolutions, reproduce the paper's MNIST experiments, plot",
    (TrainCommand(), EvaluateCommand(), PaperCommand(), PlotCommand()),
)
