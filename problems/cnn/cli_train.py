"""``pdecontrol cnn train``: train the CNN and write a run directory (:mod:`problems.cnn.cli`)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from pdecontrol.cli import (
    RunCommand,
    RunFailed,
    UsageError,
    add_setting_options,
    given_fields,
)
from pdecontrol.memory import check_memory

from .cli_settings import (
    MAIN_CONFIG,
    SETTING_OPTIONS,
    TRAIN_DEFAULTS,
    coarse_settings,
    config_settings,
    train_settings,
)
from .cli_shared import (
    DEFAULT_RESOLUTION,
    DEFAULT_SIZES,
    MULTILEVEL_MODES,
    TRANSFER_OPTIONS,
    add_data_options,
    add_transfer_options,
    check_levels,
    load_from_config,
    network_paths,
    transfer_config,
)
from .config import TrainingSettings
from .data.sets import check_resolution, data_dim
from .memory import training_memory
from .report import train_report
from .run_outputs import run_transfers

logger = logging.getLogger(__name__)

#: Training modes and the driver each runs (:mod:`problems.cnn.training`).
MODES = {
    "single": "train_single_level",
    "multilevel": "train_multilevel",
    "time": "train_time_continuation",
    "consistent": "train_resolution_consistent",
}


# ---------------------------------------------------------------------- train
class TrainCommand(RunCommand):
    """``pdecontrol cnn train``: train and write the run directory."""

    name = "train"
    help = "train the CNN and write a run directory"
    description = ("Train the residual CNN on the synthetic set (default) or MNIST and write a "
                   "run directory: config.json, network.nc, history.nc, predictions.nc, "
                   "evaluation.nc, summary.json, figures/*.png.")
    _CONFIG_OPTIONS = ("config", "data", "resolution", "n_train", "n_val", "data_dir", "mode",
                       "levels", "coarse_iterations", "coarse_settings", "consistency_weight",
                       "seed",
                       "initial") + TRANSFER_OPTIONS

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
            "--coarse", nargs="+", default=None, dest="coarse_settings", metavar="NAME=VALUE",
            help="--mode multilevel: optimiser settings of every coarser level, NAME a setting "
                 "option without its dashes, e.g. --coarse classifier-batch=10000 "
                 "gauss-newton-steps=2 (default: as the finest)")
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
        add_transfer_options(group)
        add_data_options(parser, training=True)
        add_setting_options(parser, SETTING_OPTIONS, defaults_from="--config")

    def configure(self, args) -> dict:
        def pick(name):
            value = getattr(args, name)
            return TRAIN_DEFAULTS[name] if value is None else value

        data = pick("data")
        config = {name: pick(name) for name in ("data", "mode", "levels", "consistency_weight")}
        for name, default in zip(("n_train", "n_val"), DEFAULT_SIZES[data], strict=True):
            config[name] = default if getattr(args, name) is None else getattr(args, name)
        config["config"] = MAIN_CONFIG if args.config is None else args.config
        config["seed"] = 0 if args.seed is None else args.seed
        config["initial"] = None if args.initial is None else os.path.abspath(args.initial)
        config["resolution"] = (DEFAULT_RESOLUTION[data] if args.resolution is None
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
        config.update(transfer_config(args, config["mode"]))
        check_levels(config)
        settings = train_settings(args, config_settings(config["config"]))
        if args.coarse_settings is not None:  # stored only when given: older runs resume
            if config["mode"] != "multilevel":
                raise UsageError("--coarse sets the coarser levels of --mode multilevel, not "
                                 f"--mode {config['mode']}")
            config["coarse_settings"] = coarse_settings(args.coarse_settings, settings)
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
        train, validation = load_from_config(config, centring=run_transfers(config)["centring"])
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
    if mode in MULTILEVEL_MODES:
        options["kernel_transfer"] = transfers["kernel_transfer"]
        options["smoothing_sigma"] = transfers["smoothing_sigma"]
    if mode == "multilevel":
        options["n_levels"] = levels
        if config.get("coarse_iterations") is not None:
            options["outer_iterations"] = ([config["coarse_iterations"]] * (levels - 1)
                                           + [settings.outer_iterations])
        if config.get("coarse_settings"):
            options["level_settings"] = [config["coarse_settings"]] * (levels - 1) + [None]
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
    network_path, _ = network_paths(config["initial"])
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


