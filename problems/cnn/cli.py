"""The ``pdecontrol`` command: train, evaluate, reproduce the paper, plot.

Subcommands (``pdecontrol SUBCOMMAND --help`` for every option):

* ``train``: train the CNN (``--mode single|multilevel|time|consistent``) on the embedded
  synthetic set (default, no download) or MNIST, and write a run directory;
* ``evaluate CHECKPOINT --resolution N``: accuracy of a trained network moved to another
  resolution (restricted, classifier-only, re-solved, prolonged, interpolated input);
* ``paper``: the MNIST experiments of Haber, Ruthotto & Holtham (section 5), next to their numbers;
* ``plot RUN_DIR``: redraw the figures of a run directory (``train`` or ``paper``).

A **run directory** holds ``config.json`` (the command's settings, written first),
``network.nc`` (the final network with its mesh spacing and the history,
:mod:`problems.cnn.checkpoint`), ``history.nc`` (the training history, netCDF),
``predictions.nc`` (validation labels and predictions at the network's resolution and one
coarser, plus one example image), ``evaluation.nc`` (accuracy by resolution and variant),
``summary.json`` and ``figures/*.png``; ``state/`` holds the resume state while training runs.

At start-up the command keeps freed memory in the process
(:func:`pdecontrol.memory.retain_freed_memory`: large batches are not page-faulted in again for
every allocation); ``PDECONTROL_RETAIN_MEMORY=0`` turns this off.

Errors in the input (missing data, a bad resolution, a checkpoint of another mesh, ...) are one
line on stderr and exit status 2; ``-v`` shows the traceback. Progress goes to stderr (tqdm bars
and ``logging``); only results (tables, paths) go to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
import time
from pathlib import Path
from types import MappingProxyType

import numpy as np
import xarray as xr

from pdecontrol import __version__
from pdecontrol.memory import retain_freed_memory
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict_image

__all__ = [
    "main",
    "build_parser",
    "load_image_sets",
    "write_run_figures",
    "EXIT_USAGE",
    "TRAIN_DEFAULTS",
    "MODES",
    "CLI_VARIANTS",
]

logger = logging.getLogger("problems.cnn.cli")

#: Exit status of a bad input (argparse uses the same for bad options).
EXIT_USAGE = 2
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
}
#: MNIST image size.
MNIST_RESOLUTION = 28

#: Defaults of ``pdecontrol train`` that differ from :class:`TrainingSettings` (a few minutes on
#: 2 cores: 8 channels, 2 layers, 16x16 -> 32x32, 3 outer iterations per level, batch 1000).
TRAIN_DEFAULTS = MappingProxyType(
    {
        "data": "synthetic",
        "n_train": 2000,
        "n_val": 1000,
        "mode": "multilevel",
        "levels": 2,
        "consistency_weight": 1.0,
        "settings": MappingProxyType(
            {"n_channels": 8, "outer_iterations": 3, "batch_size": 1000, "high_order_penalty": 1e-2}
        ),
    }
)
_DEFAULT_RESOLUTION = {"synthetic": 32, "mnist": MNIST_RESOLUTION}

# (flag, TrainingSettings field, type, help); choices are read from the settings' validation
_SETTING_OPTIONS = (
    ("network", "--channels", "n_channels", int, "channels C of the residual layers"),
    ("network", "--layers", "n_steps", int, "residual layers (time steps)"),
    ("network", "--final-time", "final_time", float, "time horizon T"),
    ("network", "--activation", "activation", str, "activation of the residual layers"),
    (
        "network",
        "--opening-activation",
        "opening_activation",
        str,
        "activation after the opening convolution (none: linear, as the paper)",
    ),
    (
        "network",
        "--kernel-basis",
        "kernel_basis",
        str,
        "kernel parameters: stencil weights or derivative-basis coefficients",
    ),
    ("network", "--loss", "loss", str, "least_squares (the paper) or softmax_cross_entropy"),
    ("network", "--stepper", "stepper", str, "time integrator (euler: the ResNet)"),
    ("network", "--dtype", "dtype", str, "compute dtype"),
    (
        "network",
        "--kernel-scale",
        "kernel_scale",
        float,
        "scale of the random initial residual kernels",
    ),
    (
        "network",
        "--opening-scale",
        "opening_scale",
        float,
        "scale of the random initial opening kernels",
    ),
    (
        "regularisation",
        "--high-order-penalty",
        "high_order_penalty",
        float,
        "weight of the penalty on high-order derivative parts of the kernels",
    ),
    (
        "regularisation",
        "--high-order-min-order",
        "high_order_min_order",
        int,
        "lowest derivative order penalised",
    ),
    (
        "regularisation",
        "--time-smoothness",
        "time_smoothness",
        float,
        "weight of the smoothness-in-time penalty on K and b",
    ),
    (
        "regularisation",
        "--classifier-tikhonov",
        "classifier_tikhonov",
        float,
        "ridge weight on the classifier W",
    ),
    (
        "schedule",
        "--outer-iterations",
        "outer_iterations",
        int,
        "outer iterations per level or layer stage (classifier solve + Gauss-Newton steps)",
    ),
    (
        "schedule",
        "--gauss-newton-steps",
        "gauss_newton_steps",
        int,
        "sub-sampled Gauss-Newton-CG steps per outer iteration",
    ),
    ("schedule", "--cg-iterations", "cg_iterations", int, "CG iterations per Gauss-Newton step"),
    ("schedule", "--cg-rtol", "cg_rtol", float, "relative CG residual that ends a step early"),
    (
        "schedule",
        "--batch",
        "batch_size",
        int,
        "examples per Gauss-Newton step (the paper: 10000); 0 uses all",
    ),
    (
        "schedule",
        "--chunk-size",
        "chunk_size",
        int,
        "examples per forward solve (bounds memory); 0 = all",
    ),
)


class UsageError(ValueError):
    """A bad command-line input: reported as one line on stderr, exit status 2."""


# ---------------------------------------------------------------------- data
def _check_resolution(resolution: int, name: str = "--resolution") -> int:
    if resolution < 4:
        raise UsageError(f"{name} must be >= 4, got {resolution}")
    return resolution


def load_image_sets(
    data: str, resolution: int, n_train: int, n_val: int, *, seed: int = 0, data_dir=None
) -> tuple:
    """``(train, validation)`` image-set Datasets at ``resolution`` (``n x n``).

    ``data="synthetic"``: ``n_train + n_val`` examples of :func:`problems.cnn.data.draw_synthetic`
    (``seed``) rendered at ``resolution`` (any ``n >= 4``). ``data="mnist"``: the 60,000 MNIST
    training images from ``data_dir`` (else ``$PDECONTROL_DATA_DIR``), restricted by full
    weighting to ``resolution`` = 28, 14 or 7. Both are then split at random
    (:func:`problems.cnn.data.train_validation_split`, ``seed``), as the paper's 40,000 / 20,000.
    """
    from .data import draw_synthetic, images_dataset, load_mnist, train_validation_split

    resolution = _check_resolution(resolution)
    if n_train < 1 or n_val < 1:
        raise UsageError(f"--n-train and --n-val must be >= 1, got {n_train} and {n_val}")
    if data == "synthetic":
        dataset = draw_synthetic(n_train + n_val, seed).render(resolution)
    elif data == "mnist":
        levels = 0
        while (
            MNIST_RESOLUTION // 2**levels > resolution and MNIST_RESOLUTION % 2 ** (levels + 1) == 0
        ):
            levels += 1
        if MNIST_RESOLUTION // 2**levels != resolution:
            raise UsageError(
                f"--resolution {resolution} is not reachable from the 28x28 MNIST "
                "images by halving; use 28, 14 or 7"
            )
        if data_dir is not None and not Path(data_dir).is_dir():
            raise UsageError(
                f"--data-dir {data_dir} is not a directory; point it at the folder "
                "holding the four MNIST IDX files (or set PDECONTROL_DATA_DIR)"
            )
        dataset = load_mnist("train", data_dir)
        if n_train + n_val > dataset.sizes["example"]:
            raise UsageError(
                f"--n-train + --n-val = {n_train + n_val} exceeds the "
                f"{dataset.sizes['example']} MNIST training images"
            )
        if levels:
            images = restrict_image(dataset["images"].values, 2, levels)
            dataset = images_dataset(
                images,
                dataset["labels"].values,
                class_names=list(dataset.attrs["class_names"]),
                source=f"{dataset.attrs['source']} restricted {levels}x",
            )
    else:
        raise UsageError(f"--data must be synthetic or mnist, got {data!r}")
    return train_validation_split(dataset, n_train, n_val, seed)


def _data_settings(config: dict, resolution=None) -> dict:
    keys = ("data", "n_train", "n_val", "seed", "data_dir")
    values = {key: config[key] for key in keys}
    values["resolution"] = config["resolution"] if resolution is None else resolution
    return values


def _load_from_config(config: dict, resolution=None) -> tuple:
    values = _data_settings(config, resolution)
    return load_image_sets(
        values["data"],
        values["resolution"],
        values["n_train"],
        values["n_val"],
        seed=values["seed"],
        data_dir=values["data_dir"],
    )


# ---------------------------------------------------------------------- settings
#: What ``--batch 0`` and ``--chunk-size 0`` parse to: all examples (``None`` in the settings;
#: ``None`` itself means "option not given").
_ALL_EXAMPLES = "all"


def _parse_setting(field: str, kind, text: str):
    if field in ("batch_size", "chunk_size") and text == "0":
        return _ALL_EXAMPLES
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None


def _settings_from(args, base: dict):
    from .config import TrainingSettings

    values = dict(base)
    for _, _, field, _, _ in _SETTING_OPTIONS:
        given = getattr(args, field, None)
        if given is not None:
            unset = given == _ALL_EXAMPLES or (field == "opening_activation" and given == "none")
            values[field] = None if unset else given
    values["seed"] = args.seed if args.seed is not None else values.get("seed", 0)
    try:
        return TrainingSettings(**values)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error).replace("TrainingSettings.", "setting ")) from None


# ---------------------------------------------------------------------- parser
def _add_common(parser, *, top: bool = False):
    default = 0 if top else argparse.SUPPRESS
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="more logging (-v: INFO and tracebacks, -vv: DEBUG)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="less output: no progress bars, warnings only",
    )


def _add_data_options(parser, *, resolution_help: str | None):
    group = parser.add_argument_group("data")
    training = resolution_help is not None

    def default(name):
        return f" (default {TRAIN_DEFAULTS[name]})" if training else ""

    group.add_argument(
        "--data",
        choices=("synthetic", "mnist"),
        default=None,
        help="image set: the embedded synthetic patterns (no download) or MNIST" + default("data"),
    )
    if resolution_help is not None:
        group.add_argument("--resolution", type=int, default=None, help=resolution_help)
    group.add_argument(
        "--n-train", type=int, default=None, help="training images" + default("n_train")
    )
    group.add_argument(
        "--n-val", type=int, default=None, help="validation images" + default("n_val")
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="directory of the MNIST IDX files (default $PDECONTROL_DATA_DIR)",
    )
    return group


def _setting_choices() -> dict:
    from .config import LOSSES
    from .network import KERNEL_BASES

    activations = ("tanh", "relu", "smooth_relu")
    return {
        "activation": activations,
        "opening_activation": ("none",) + activations,
        "kernel_basis": KERNEL_BASES,
        "loss": tuple(LOSSES),
        "stepper": ("euler", "midpoint", "rk4"),
        "dtype": ("float32", "float64"),
    }


def _add_setting_options(parser, defaults, *, defaults_from: str | None = None):
    """One option per :data:`_SETTING_OPTIONS` row; help shows the value in ``defaults``
    (TrainingSettings), or says it comes from ``defaults_from`` (e.g. ``"--config"``)."""
    groups, choices = {}, _setting_choices()
    for group_name, flag, field, kind, text in _SETTING_OPTIONS:
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        if defaults_from is not None:
            shown = f"that of {defaults_from}"
        else:
            default = getattr(defaults, field)
            shown = (
                {
                    "final_time": "the number of layers",
                    "chunk_size": "all",
                    "opening_activation": "none",
                }.get(field, default)
                if default is None
                else default
            )
        groups[group_name].add_argument(
            flag,
            dest=field,
            default=None,
            choices=choices.get(field),
            metavar=None if field in choices else kind.__name__.upper(),
            type=lambda value, field=field, kind=kind: _parse_setting(field, kind, value),
            help=f"{text} (default {shown})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``pdecontrol`` argument parser (subcommands train, evaluate, paper, plot)."""
    from .config import TrainingSettings
    from .paper import CONSISTENT_STARTS, PAPER_CONFIGS

    train_defaults = TrainingSettings(**TRAIN_DEFAULTS["settings"])
    parser = argparse.ArgumentParser(
        prog="pdecontrol",
        description="Multiscale CNN training as PDE-constrained optimal control "
        "(Haber, Ruthotto & Holtham, arXiv 1703.02009).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    train = commands.add_parser(
        "train",
        help="train the CNN and write a run directory",
        description="Train the residual CNN on the synthetic set (default) or MNIST and write a "
        "run directory: config.json, network.nc, history.nc, predictions.nc, "
        "evaluation.nc, summary.json, figures/*.png.",
    )
    _add_common(train)
    group = train.add_argument_group("training")
    group.add_argument(
        "--mode",
        choices=tuple(MODES),
        default=None,
        help="single level, multilevel (coarse to fine, Algorithm 1), time "
        "(layer continuation) or consistent (fine + restricted-network loss) "
        f"(default {TRAIN_DEFAULTS['mode']})",
    )
    group.add_argument(
        "--levels",
        type=int,
        default=None,
        help="meshes in the hierarchy: multilevel trains on levels-1 coarsenings "
        "first; consistent adds the losses of levels-1 restricted networks "
        f"(default {TRAIN_DEFAULTS['levels']})",
    )
    group.add_argument(
        "--consistency-weight",
        type=float,
        default=None,
        help="weight of the restricted-network losses (--mode consistent, "
        f"default {TRAIN_DEFAULTS['consistency_weight']})",
    )
    group.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the data split, initial kernels and sub-samples (default 0)",
    )
    group.add_argument(
        "--initial",
        default=None,
        metavar="CHECKPOINT",
        help="start from a trained network (a run directory or a network .nc, e.g. "
        "network_multilevel.nc of pdecontrol paper) instead of random kernels; --mode single "
        "or consistent; its mesh, channels, layers, activation and kernel basis must be this "
        "run's",
    )
    _add_data_options(
        train,
        resolution_help="finest image resolution n (n x n; default 32 " "synthetic, 28 MNIST)",
    )
    _add_setting_options(train, train_defaults)
    output = train.add_argument_group("output")
    output.add_argument(
        "--out", default=None, help="run directory (default runs/<--name or timestamp>)"
    )
    output.add_argument("--name", default=None, help="name of the run directory under runs/")
    output.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out with its saved configuration",
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="accuracy of a trained network at any resolution",
        description="Move a trained network to another resolution (Galerkin restriction or "
        "prolongation) and measure its accuracy on the validation images of its run "
        "at that resolution. Prints a table; writes evaluation_<n>.json and .nc.",
    )
    _add_common(evaluate)
    evaluate.add_argument("checkpoint", help="a run directory or its network.nc")
    evaluate.add_argument(
        "--resolution",
        type=int,
        required=True,
        help="image resolution n to evaluate at (the network's n times a power of 2)",
    )
    evaluate.add_argument(
        "--variant",
        action="append",
        choices=tuple(CLI_VARIANTS),
        default=None,
        help="repeatable; restricted/prolonged: Galerkin kernels, W moved, no "
        "data; classifier-only: only W restricted; resolved: kernels moved, "
        "W re-solved on the training images at n; interpolated: coarse "
        "images interpolated to the network's mesh. Default: all that apply",
    )
    group = _add_data_options(evaluate, resolution_help=None)
    group.description = "default: the data of the checkpoint's run"
    evaluate.add_argument(
        "--out",
        default=None,
        help="output directory (default: the run directory of the checkpoint)",
    )

    paper = commands.add_parser(
        "paper",
        help="reproduce the MNIST experiments of the paper (section 5)",
        description="MNIST 28x28 and 14x14, 40,000 / 20,000 split: fine-only vs multilevel "
        "training, restricted-network inference and the W-only ablation, the "
        "prolonged start. Writes paper_table.md (every number of the paper next to "
        "ours), results.json, histories and figures into --out.",
    )
    _add_common(paper)
    paper.add_argument(
        "--config",
        choices=tuple(PAPER_CONFIGS),
        default="paper",
        help="network and schedule: 'paper' (random-kernel start near the paper's 83%%, the "
        "paper's schedule) or 'strong' (wider, high-order penalty, smaller Gauss-Newton "
        "batches); the network, regularisation and schedule options below override it",
    )
    paper.add_argument(
        "--data-dir",
        default=None,
        help="directory of the MNIST IDX files (default $PDECONTROL_DATA_DIR)",
    )
    paper.add_argument(
        "--n-train", type=int, default=40_000, help="training images (default 40000)"
    )
    paper.add_argument(
        "--n-val", type=int, default=20_000, help="validation images (default 20000)"
    )
    paper.add_argument(
        "--consistent",
        action="store_true",
        help="also train the resolution-consistent network (fine + coarse loss)",
    )
    paper.add_argument(
        "--consistency-weight",
        type=float,
        default=1.0,
        help="weight of the 14x14 loss in --consistent training (default 1.0)",
    )
    paper.add_argument(
        "--consistent-from",
        choices=CONSISTENT_STARTS,
        default="random",
        help="--consistent training starts from random kernels (default) or continues from "
        "the final multilevel network",
    )
    paper.add_argument(
        "--consistent-iterations",
        type=int,
        default=None,
        help="outer iterations of --consistent training (default: --outer-iterations)",
    )
    paper.add_argument("--seed", type=int, default=0, help="seed of the split and the kernels")
    paper.add_argument("--out", default=None, help="output directory (default runs/paper-<config>)")
    _add_setting_options(paper, None, defaults_from="--config")

    plot = commands.add_parser(
        "plot",
        help="redraw the figures of a run directory",
        description="Redraw figures/*.png of a run directory from its files "
        "(no training, no data).",
    )
    _add_common(plot)
    plot.add_argument(
        "run_dir", help="a run directory of pdecontrol train, or an output directory of paper"
    )
    return parser


# ---------------------------------------------------------------------- logging
def _configure_logging(verbosity: int) -> None:
    """``verbosity`` = (number of -v) - (number of -q): < 0 warnings only; 0 INFO of the CNN
    drivers (one line per history row); 1 INFO everywhere (optimiser runs too); >= 2 DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(
        logging.WARNING if verbosity < 0 else logging.INFO if verbosity < 2 else logging.DEBUG
    )
    logging.getLogger("pdecontrol").setLevel(logging.WARNING if verbosity < 1 else logging.NOTSET)


# ---------------------------------------------------------------------- run directory
def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_json(path: Path, values: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(values, indent=2, sort_keys=True, default=_json_default) + "\n")
    os.replace(temporary, path)


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{path} not found: is {path.parent} a run directory of pdecontrol " f"train? ({what})"
        ) from None
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{path} is not valid JSON ({error}); the run directory is damaged"
        ) from None


def _run_directory(args) -> Path:
    if args.out is not None:
        return Path(args.out)
    name = args.name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / name


def _train_config(args) -> dict:
    """The full configuration of a train command (defaults filled in), as stored in config.json."""

    def pick(name):
        value = getattr(args, name)
        return TRAIN_DEFAULTS[name] if value is None else value

    data = pick("data")
    config = {
        name: pick(name)
        for name in ("data", "n_train", "n_val", "mode", "levels", "consistency_weight")
    }
    config["seed"] = 0 if args.seed is None else args.seed
    config["initial"] = None if args.initial is None else os.path.abspath(args.initial)
    config["resolution"] = (
        _DEFAULT_RESOLUTION[data] if args.resolution is None else _check_resolution(args.resolution)
    )
    config["data_dir"] = (
        args.data_dir
        if args.data_dir is not None
        else os.environ.get("PDECONTROL_DATA_DIR") if data == "mnist" else None
    )
    if config["levels"] < 1:
        raise UsageError(f"--levels must be >= 1, got {config['levels']}")
    config["settings"] = _settings_from(args, TRAIN_DEFAULTS["settings"]).to_dict()
    config["version"] = __version__
    return config


def _given_train_options(args) -> list:
    names = [
        "data",
        "resolution",
        "n_train",
        "n_val",
        "data_dir",
        "mode",
        "levels",
        "consistency_weight",
        "seed",
        "initial",
    ] + [field for _, _, field, _, _ in _SETTING_OPTIONS]
    return [name for name in names if getattr(args, name, None) is not None]


# ---------------------------------------------------------------------- train
def _train(config: dict, train, validation, run_dir: Path, progress: bool, initial=None):
    from . import training
    from .config import TrainingSettings

    settings = TrainingSettings.from_dict(config["settings"])
    driver = getattr(training, MODES[config["mode"]])
    options = {"state_dir": run_dir / "state", "progress": progress}
    mode, levels = config["mode"], config["levels"]
    if initial is not None:
        options["initial"] = initial
    if mode == "multilevel":
        options["n_levels"] = levels
    elif mode == "consistent":
        if levels < 2:
            raise UsageError(
                "--mode consistent needs --levels >= 2 (the fine mesh and at least "
                "one restricted one)"
            )
        options["consistency_levels"] = tuple(range(1, levels))
        options["consistency_weight"] = config["consistency_weight"]
    elif levels != TRAIN_DEFAULTS["levels"] and levels != 1:
        logger.warning("--levels %d is ignored by --mode %s", levels, mode)
    return driver(train, validation, settings, **options)


def _initial_parameters(config: dict):
    """Flat parameters of the ``--initial`` network of a train configuration (None without one),
    checked against its mode, settings and resolution."""
    from .checkpoint import read_checkpoint
    from .config import TrainingSettings

    if config.get("initial") is None:
        return None
    if config["mode"] not in ("single", "consistent"):
        raise UsageError(
            f"--initial starts --mode single or consistent, not --mode {config['mode']}; "
            "multilevel and time continuation build their own start"
        )
    settings = TrainingSettings.from_dict(config["settings"])
    resolution = config["resolution"]
    network_path, _ = _checkpoint_paths(config["initial"])
    if not network_path.is_file():
        raise UsageError(
            f"--initial: no network file at {network_path}; give a run directory or a network .nc"
        )
    network = read_checkpoint(network_path).network
    shape = "x".join(map(str, network.mesh.shape))
    if network.mesh.shape != (resolution,) * network.problem.dim:
        raise UsageError(
            f"--initial {network_path} is a network on {shape}, this run trains at "
            f"{resolution}x{resolution}; train at its resolution, or move it first with "
            "pdecontrol evaluate (restrict / prolong)"
        )
    problem = settings.make_problem(network.mesh, network.problem.n_classes)
    differ = [
        f"{name} ({theirs} in the checkpoint, {mine} here)"
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
            "network options of the run that wrote it (--channels, --layers, ...)"
        )
    return np.array(network.parameters)


def _predictions(network, validation, coarsest_level: int) -> xr.Dataset:
    """Validation predictions of the network at its resolution and restricted ``1..levels``."""
    from .evaluation import as_labelled_images

    images, labels = as_labelled_images(validation, "validation")
    resolutions, predicted = [], []
    for level in range(coarsest_level + 1):
        moved = network if level == 0 else network.restrict(level)
        level_images = images if level == 0 else restrict_image(images, 2, level)
        resolutions.append(moved.mesh.shape[0])
        predicted.append(moved.classify(level_images))
    return xr.Dataset(
        {
            "labels": ("example", labels),
            "predicted": (("resolution", "example"), np.array(predicted)),
            "example_image": (("y", "x"), np.asarray(images[0], dtype=np.float64)),
        },
        coords={"resolution": resolutions},
        attrs={
            "network_resolution": network.mesh.shape[0],
            "meaning": "validation predictions; coarser rows use the Galerkin-restricted network "
            "on restricted images",
        },
    )


def _coarsest_level(mesh: Mesh) -> int:
    level, shape = 0, mesh.shape
    while level < 1 and all(n % 2 == 0 and n >= 8 for n in shape):
        level, shape = level + 1, tuple(n // 2 for n in shape)
    return level


def command_train(args) -> int:
    """``pdecontrol train``: train and write the run directory."""
    from .checkpoint import save_network
    from .evaluation import evaluate_across_scales, image_pyramid

    run_dir = _run_directory(args)
    config_path = run_dir / "config.json"
    if args.resume:
        if args.out is None and args.name is None:
            raise UsageError("--resume needs --out RUN_DIR (or --name) of the run to continue")
        config = _read_json(config_path, "nothing to resume")
        requested = _train_config(args)
        changed = [
            name
            for name in _given_train_options(args)
            if requested.get(name, requested["settings"].get(name))
            != config.get(name, config["settings"].get(name))
        ]
        if changed:
            raise UsageError(
                f"--resume continues {run_dir} with its saved configuration; "
                f"drop the changed option(s) {changed} or start a new run"
            )
        logger.info("resuming the run in %s", run_dir)
    else:
        config = _train_config(args)
        if config_path.exists():
            raise UsageError(
                f"{run_dir} already holds a run; continue it with --resume or choose "
                "another --out/--name"
            )
    initial = _initial_parameters(config)
    if not args.resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        config["command"] = (
            " ".join(["pdecontrol"] + sys.argv[1:])
            if args.argv is None
            else " ".join(["pdecontrol"] + list(args.argv))
        )
        _write_json(config_path, config)
    progress = args.quiet == 0
    start = time.perf_counter()
    train, validation = _load_from_config(config)
    logger.info(
        "data: %s, %d training / %d validation images at %dx%d",
        config["data"],
        train.sizes["example"],
        validation.sizes["example"],
        config["resolution"],
        config["resolution"],
    )
    result = _train(config, train, validation, run_dir, progress, initial)
    train_time = time.perf_counter() - start
    network = result.network
    history = result.history
    save_network(
        run_dir / "network.nc",
        network,
        history=history,
        metadata={"run": {k: v for k, v in config.items() if k != "settings"}},
    )
    history.to_netcdf(run_dir / "history.nc", engine="netcdf4")
    coarsest = _coarsest_level(network.mesh)
    predictions = _predictions(network, validation, coarsest)
    predictions.to_netcdf(run_dir / "predictions.nc", engine="netcdf4")
    evaluation = evaluate_across_scales(
        network,
        image_pyramid(validation, coarsest),
        variants=("galerkin", "classifier_only", "interpolated_input"),
    )
    evaluation.to_netcdf(run_dir / "evaluation.nc", engine="netcdf4")
    figures = write_run_figures(run_dir)
    last = history.isel(iteration=-1)
    summary = {
        "mode": config["mode"],
        "driver": MODES[config["mode"]],
        "status": result.status,
        "data": config["data"],
        "resolution": config["resolution"],
        "n_train": config["n_train"],
        "n_val": config["n_val"],
        "network_mesh_shape": list(network.mesh.shape),
        "mesh_spacing": list(network.mesh.h),
        "n_steps": network.n_steps,
        "n_parameters": int(network.parameters.size),
        "final_objective": float(last["objective"]),
        "final_training_accuracy": float(last["training_accuracy"]),
        "final_validation_accuracy": float(last["validation_accuracy"]),
        "validation_accuracy_by_resolution": {
            str(int(r)): float(
                predictions["predicted"]
                .sel(resolution=r)
                .values.__eq__(predictions["labels"].values)
                .mean()
            )
            for r in predictions["resolution"].values
        },
        "history_rows": int(history.sizes["iteration"]),
        "training_wall_time_s": float(last["wall_time"]),
        "command_wall_time_s": time.perf_counter() - start,
        "load_and_train_wall_time_s": train_time,
        "files": sorted(
            str(p.relative_to(run_dir))
            for p in run_dir.rglob("*")
            if p.is_file() and p.parent.name != "state"
        )
        + ["summary.json"],
        "figures": [str(Path(f).relative_to(run_dir)) for f in figures],
    }
    _write_json(run_dir / "summary.json", summary)
    print(f"run directory: {run_dir}")
    print(
        f"validation accuracy {100 * summary['final_validation_accuracy']:.1f}% on "
        f"{'x'.join(map(str, network.mesh.shape))}, objective {summary['final_objective']:.4g}, "
        f"{summary['command_wall_time_s']:.0f} s"
    )
    return 0


# ---------------------------------------------------------------------- figures of a run
def _stencil_groups(network) -> dict:
    problem, blocks = network.problem, network.blocks()
    if problem.dim != 2:
        return {}
    groups = {"opening K0": problem.block_to_stencils(np.asarray(blocks["K0"]))}
    kernels = problem.block_to_stencils(np.asarray(blocks["K"]))
    for layer in range(kernels.shape[0]):
        groups[f"layer {layer + 1} K"] = kernels[layer]
    return groups


def write_run_figures(run_dir) -> list:
    """Draw ``figures/*.png`` of a run directory from its files; returns the paths written.

    ``training.png`` (history; level switches marked), ``training_cost.png`` (multilevel runs:
    accuracy against fine-level work and wall time), ``kernels.png`` (final stencils),
    ``confusion_<n>.png`` per resolution in ``predictions.nc``, ``convolved.png`` (the example
    image with the first opening kernel, fine vs Galerkin-coarse), ``accuracy.png`` (from
    ``evaluation.nc``). Files that are missing are skipped with a warning.
    """
    from .checkpoint import read_checkpoint
    from .figures import (
        plot_accuracy_against_cost,
        plot_accuracy_by_resolution,
        plot_confusion_matrix,
        plot_convolved_image,
        plot_kernels,
        plot_training_curves,
    )

    run_dir = Path(run_dir)
    network_path = run_dir / "network.nc"
    if not run_dir.is_dir() or not network_path.is_file():
        raise UsageError(
            f"{run_dir} is not a finished run directory (no network.nc); train first "
            "or resume the run with pdecontrol train --resume --out "
            f"{run_dir}"
        )
    checkpoint = read_checkpoint(network_path)
    config = _read_json(run_dir / "config.json", "written by pdecontrol train")
    figures_dir = run_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    written = []
    history = checkpoint.history
    if history is not None:
        level_variable = "n_steps" if config.get("mode") == "time" else "mesh_shape"
        label = f"{config.get('mode', 'run')} ({config.get('data', '')})"
        path = figures_dir / "training.png"
        plot_training_curves({label: history}, level_variable=level_variable, path=path)
        written.append(path)
        if config.get("mode") == "multilevel":
            path = figures_dir / "training_cost.png"
            plot_accuracy_against_cost({label: history}, level_variable=level_variable, path=path)
            written.append(path)
    groups = _stencil_groups(checkpoint.network)
    if groups:
        path = figures_dir / "kernels.png"
        plot_kernels(groups, title="final kernels (stencil weights, correlation)", path=path)
        written.append(path)
    predictions_path = run_dir / "predictions.nc"
    if predictions_path.is_file():
        with xr.open_dataset(predictions_path, engine="netcdf4") as predictions:
            predictions = predictions.load()
        names = checkpoint.network.problem.n_classes
        class_names = None
        if config.get("data") == "synthetic":
            from .data import SYNTHETIC_CLASSES

            class_names = list(SYNTHETIC_CLASSES)[:names]
        for resolution in predictions["resolution"].values:
            moved = (
                ""
                if resolution == predictions.attrs["network_resolution"]
                else ", restricted network"
            )
            path = figures_dir / f"confusion_{int(resolution)}.png"
            plot_confusion_matrix(
                predictions["labels"].values,
                predictions["predicted"].sel(resolution=resolution).values,
                class_names=class_names,
                title=f"validation, {int(resolution)}x{int(resolution)}{moved}",
                path=path,
            )
            written.append(path)
        if groups and predictions.sizes["y"] % 2 == 0:
            path = figures_dir / "convolved.png"
            plot_convolved_image(
                predictions["example_image"].values,
                groups["opening K0"][0, 0],
                title="validation image 0, opening kernel 0",
                path=path,
            )
            written.append(path)
    else:
        logger.warning("%s missing: no confusion matrix or convolution figure", predictions_path)
    evaluation_path = run_dir / "evaluation.nc"
    if evaluation_path.is_file():
        with xr.open_dataset(evaluation_path, engine="netcdf4") as evaluation:
            accuracy = evaluation["accuracy"].load()
        path = figures_dir / "accuracy.png"
        plot_accuracy_by_resolution(accuracy, path=path)
        written.append(path)
    return written


def command_plot(args) -> int:
    """``pdecontrol plot RUN_DIR``: a ``train`` run directory, or a ``paper`` output directory
    (recognised by its ``paper_table.md``)."""
    run_dir = Path(args.run_dir)
    if (run_dir / "paper_table.md").is_file():
        from .paper import write_paper_figures

        try:
            paths = write_paper_figures(run_dir)
        except FileNotFoundError as error:
            raise UsageError(str(error)) from None
    else:
        paths = write_run_figures(run_dir)
    for path in paths:
        print(path)
    return 0


# ---------------------------------------------------------------------- evaluate
def _checkpoint_paths(checkpoint) -> tuple:
    path = Path(checkpoint)
    if path.is_dir():
        return path / "network.nc", path
    return path, path.parent


def command_evaluate(args) -> int:
    """``pdecontrol evaluate CHECKPOINT --resolution N``."""
    from .checkpoint import read_checkpoint
    from .evaluation import evaluate_across_scales, levels_between

    network_path, run_dir = _checkpoint_paths(args.checkpoint)
    if not network_path.is_file():
        raise UsageError(
            f"no network file at {network_path}; give a run directory or its network.nc"
        )
    checkpoint = read_checkpoint(network_path)
    network = checkpoint.network
    run = dict(checkpoint.metadata.get("run", {}))
    resolution = _check_resolution(args.resolution)
    target = Mesh(
        (resolution,) * network.problem.dim, extent=network.mesh.extent, origin=network.mesh.origin
    )
    try:
        levels = levels_between(network.mesh, target)
    except ValueError:
        raise UsageError(
            f"--resolution {resolution} is not on the mesh hierarchy of the network "
            f"({'x'.join(map(str, network.mesh.shape))}): use its size times or "
            "divided by a power of 2"
        ) from None
    applicable = (
        {"restricted", "classifier-only", "resolved", "interpolated"}
        if levels > 0
        else {"prolonged", "resolved"} if levels < 0 else {"native", "resolved"}
    )
    requested = args.variant or sorted(applicable - {"resolved"}) + ["resolved"]
    wrong = [v for v in requested if v not in applicable]
    if wrong:
        raise UsageError(
            f"--variant {wrong[0]} does not apply at {resolution}x{resolution} for a "
            f"network on {'x'.join(map(str, network.mesh.shape))}; use one of "
            f"{sorted(applicable)}"
        )
    for key, value in (
        ("data", args.data),
        ("n_train", args.n_train),
        ("n_val", args.n_val),
        ("data_dir", args.data_dir),
    ):
        if value is not None:
            run[key] = value
    missing = [k for k in ("data", "n_train", "n_val", "seed") if k not in run]
    if missing:
        raise UsageError(
            f"{network_path} does not record its data ({missing}); give --data, "
            "--n-train and --n-val"
        )
    run.setdefault("data_dir", None)
    network_resolution = network.mesh.shape[0]
    # images at the finer of the two resolutions, restricted to the coarser (as in training)
    source_resolution = max(network_resolution, resolution)
    if run["data"] == "mnist" and source_resolution > MNIST_RESOLUTION:
        raise UsageError(f"MNIST images are 28x28: --resolution {resolution} cannot be evaluated")
    train, validation = _load_from_config(run, source_resolution)
    down = levels_between(Mesh((source_resolution,) * 2), Mesh((resolution,) * 2))

    def at_resolution(dataset):
        images = dataset["images"].values
        return (restrict_image(images, 2, down) if down else images, dataset["labels"].values)

    needs_refit = "resolved" in requested
    columns = sorted({CLI_VARIANTS[v] for v in requested})
    table = evaluate_across_scales(
        network,
        [at_resolution(validation)],
        refit_sets=[at_resolution(train)] if needs_refit else None,
        variants=columns,
    )
    names = {v: CLI_VARIANTS[v] for v in requested}
    accuracy = {
        v: float(table["accuracy"].sel(resolution=resolution, variant=column))
        for v, column in names.items()
    }
    out = Path(args.out) if args.out is not None else run_dir
    out.mkdir(parents=True, exist_ok=True)
    renamed = table.assign_coords(
        variant=[
            next(v for v in requested if CLI_VARIANTS[v] == c) for c in table["variant"].values
        ]
    )
    renamed.attrs.update(
        {
            "checkpoint": str(network_path),
            "data": run["data"],
            "n_validation": int(validation.sizes["example"]),
        }
    )
    renamed.to_netcdf(out / f"evaluation_{resolution}.nc", engine="netcdf4")
    result = {
        "checkpoint": str(network_path),
        "network_resolution": network_resolution,
        "resolution": resolution,
        "levels": levels,
        "data": run["data"],
        "n_validation": int(validation.sizes["example"]),
        "n_refit": int(train.sizes["example"]) if needs_refit else 0,
        "accuracy": accuracy,
    }
    _write_json(out / f"evaluation_{resolution}.json", result)
    print(
        f"network {network_resolution}x{network_resolution} evaluated at {resolution}x{resolution} "
        f"on {result['n_validation']} validation images ({run['data']})"
    )
    print(f"{'variant':<16} {'accuracy':>9}")
    for variant, value in accuracy.items():
        print(f"{variant:<16} {100 * value:>8.2f}%")
    print(
        f"written: {out / f'evaluation_{resolution}.json'}, {out / f'evaluation_{resolution}.nc'}"
    )
    return 0


# ---------------------------------------------------------------------- paper
def _paper_settings(args):
    """``(settings, config_name)`` of ``pdecontrol paper``: the ``--config`` with the options
    given on the command line applied; the name lists every setting changed from the config."""
    from .paper import PAPER_CONFIGS

    base = PAPER_CONFIGS[args.config].to_dict()
    settings = _settings_from(args, base)
    changed = [
        f"{field}={value}"
        for field, value in settings.to_dict().items()
        if field != "seed" and value != base[field]
    ]
    return settings, args.config + (f" with {', '.join(changed)}" if changed else "")


def command_paper(args) -> int:
    """``pdecontrol paper``: the paper's MNIST experiments (see :mod:`problems.cnn.paper`)."""
    from .paper import reproduce_paper

    settings, config_name = _paper_settings(args)
    if args.consistent_iterations is not None and args.consistent_iterations < 1:
        raise UsageError(f"--consistent-iterations must be >= 1, got {args.consistent_iterations}")
    out = Path(args.out) if args.out is not None else Path("runs") / f"paper-{args.config}"
    train, validation = load_image_sets(
        "mnist", MNIST_RESOLUTION, args.n_train, args.n_val, seed=args.seed, data_dir=args.data_dir
    )
    report = reproduce_paper(
        train,
        validation,
        settings,
        out,
        config_name=config_name,
        consistent=args.consistent,
        consistency_weight=args.consistency_weight,
        consistent_start=args.consistent_from,
        consistent_iterations=args.consistent_iterations,
        progress=args.quiet == 0,
    )
    print(f"written: {report['table']}")
    print(Path(report["table"]).read_text())
    return 0


# ---------------------------------------------------------------------- entry point
_COMMANDS = {
    "train": command_train,
    "evaluate": command_evaluate,
    "paper": command_paper,
    "plot": command_plot,
}


def main(argv=None) -> int:
    """Run the ``pdecontrol`` command line; returns the exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    verbosity = args.verbose - args.quiet
    _configure_logging(verbosity)
    if os.environ.get("PDECONTROL_RETAIN_MEMORY", "1") != "0":
        retain_freed_memory()
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("pdecontrol: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, TypeError, OSError) as error:
        if args.verbose:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"pdecontrol {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
