"""What the CNN's commands (:mod:`problems.cnn.cli`) share: the data options and loading a
run's images, the transfer options, the configuration checks of multilevel runs, network paths.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pdecontrol.cli import UsageError
from pdecontrol.mesh import Mesh

from .cli_settings import TRAIN_DEFAULTS
from .data.sets import DATA_SETS, MNIST_RESOLUTION, data_dim, load_image_sets
from .run_outputs import TRANSFER_DEFAULTS

#: Default ``--resolution`` per image set.
DEFAULT_RESOLUTION = {"synthetic": 32, "mnist": MNIST_RESOLUTION, "volumes": 32}
#: Default ``(--n-train, --n-val)`` per image set: the main job's for the synthetic sets; the
#: paper's MNIST split.
DEFAULT_SIZES = {"synthetic": (TRAIN_DEFAULTS["n_train"], TRAIN_DEFAULTS["n_val"]),
                 "mnist": (40_000, 20_000),
                 "volumes": (TRAIN_DEFAULTS["n_train"], TRAIN_DEFAULTS["n_val"])}


# ---------------------------------------------------------------------- data
def load_from_config(config: dict, resolution=None, *, centring: str = "node") -> tuple:
    """The ``(train, validation)`` image sets of a run configuration (its data, sizes, seed and
    data directory), at ``resolution`` (default the run's), restricted with ``centring``."""
    return load_image_sets(config["data"], config["resolution"] if resolution is None
                           else resolution, config["n_train"], config["n_val"],
                           seed=config["seed"], data_dir=config["data_dir"], centring=centring)


# ---------------------------------------------------------------------- transfers
#: Options (config names) of how images and networks move between levels
#: (:data:`problems.cnn.run_outputs.TRANSFER_DEFAULTS`).
TRANSFER_OPTIONS = ("centring", "kernel_transfer", "smoothing_sigma")
# the modes whose training moves networks and images between levels
MULTILEVEL_MODES = ("multilevel", "consistent")


def add_transfer_options(group):
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


def transfer_config(args, mode: str) -> dict:
    """The transfer options of a run configuration (only those not at their default, see
    :data:`~problems.cnn.run_outputs.TRANSFER_DEFAULTS`); one-line errors for options that do
    not apply to ``mode`` or bad values."""
    sigma = args.smoothing_sigma
    if sigma is not None and not (np.isfinite(sigma) and sigma > 0):
        raise UsageError(f"--smoothing-sigma must be a positive number of pixels, got {sigma}")
    for option, name in (("--kernel-transfer", "kernel_transfer"),
                         ("--smoothing-sigma", "smoothing_sigma")):
        if getattr(args, name) is not None and mode not in MULTILEVEL_MODES:
            raise UsageError(
                f"{option} applies to --mode multilevel or consistent (training that moves "
                f"networks and images between levels), not --mode {mode}")
    return {name: getattr(args, name) for name in TRANSFER_OPTIONS
            if getattr(args, name) not in (None, TRANSFER_DEFAULTS[name])}


def check_levels(config: dict):
    """One-line error when the images of a multilevel or consistent run cannot be coarsened
    ``levels - 1`` times (every coarsening halves an even size)."""
    if config["mode"] not in MULTILEVEL_MODES:
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


def add_data_options(parser, *, training: bool):
    """``--data``, ``--n-train``, ``--n-val``, ``--data-dir`` (and ``--resolution`` when
    ``training``) in a group of ``parser``; returns the group."""
    group = parser.add_argument_group("data")

    def default(name):
        if not training:
            return ""
        if name == "data":
            return f" (default {TRAIN_DEFAULTS[name]})"
        index = ("n_train", "n_val").index(name)
        return " (default " + ", ".join(f"{sizes[index]} {data}" for data, sizes in
                                        DEFAULT_SIZES.items()) + ")"

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


def network_paths(network) -> tuple:
    """``(network file, run directory)`` of a run directory or a network file."""
    path = Path(network)
    if path.is_dir():
        return path / "network.nc", path
    return path, path.parent


