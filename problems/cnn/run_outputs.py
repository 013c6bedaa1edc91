"""What ``pdecontrol cnn train`` writes into its run directory, and its figures.

A finished run directory holds, besides ``config.json`` and ``state/`` (:mod:`pdecontrol.cli`):
``network.nc`` (the final network with its mesh spacing and the history,
:mod:`problems.cnn.network_file`), ``history.nc`` (the training history), ``predictions.nc``
(validation labels and predictions at the network's resolution and one coarser, plus one example
image), ``evaluation.nc`` (accuracy by resolution and variant), ``summary.json`` and
``figures/*.png``. Every file is written atomically (:mod:`pdecontrol.io`); the netCDF files carry
the SHA-256 of their contents and the run's stamp (:data:`pdecontrol.cli.RUN_STAMP`, in the network
file's metadata), and :func:`write_run_figures` refuses a file that is damaged or of another run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

import numpy as np
import xarray as xr

from pdecontrol.cli import RUN_STAMP, RunDirectory, UsageError
from pdecontrol.continuation import HISTORY_FORMAT
from pdecontrol.io import make_folder
from pdecontrol.mesh import Mesh

from .data.images import SPATIAL_DIMS
from .evaluation import (
    EVALUATION_FORMAT,
    as_labelled_images,
    evaluate_across_scales,
    image_pyramid,
    moved_variant,
)
from .network_file import read_network_file, save_network

__all__ = [
    "write_run_outputs",
    "write_run_figures",
    "TRANSFER_DEFAULTS",
    "run_transfers",
    "predictions_dataset",
    "stage_summaries",
    "PREDICTIONS_FORMAT",
]

#: Format name of ``predictions.nc``.
PREDICTIONS_FORMAT = "pdecontrol-cnn-predictions-1"

logger = logging.getLogger("problems.cnn.run_outputs")


#: Options of ``pdecontrol cnn train`` that say how images and networks move between levels,
#: with their defaults. A run's ``config.json`` holds one only when it differs from the default,
#: so that run directories written before these options existed still resume, and read (as their
#: network files without ``mesh_centring`` do) as node-centred, Galerkin, no smoothing.
TRANSFER_DEFAULTS = MappingProxyType(
    {"centring": "node", "kernel_transfer": "galerkin", "smoothing_sigma": None})


def run_transfers(config: dict) -> dict:
    """``centring``, ``kernel_transfer`` and ``smoothing_sigma`` of a run configuration (or the
    ``run`` metadata of a network file), defaults (:data:`TRANSFER_DEFAULTS`) filled in."""
    return {name: config.get(name, default) for name, default in TRANSFER_DEFAULTS.items()}


def predictions_dataset(network, validation, coarsest_level: int, *,
                        kernel_transfer: str = "galerkin", smoothing_sigma=None) -> xr.Dataset:
    """Validation predictions of the network at its resolution and restricted ``1..levels``
    (kernels by ``kernel_transfer``; images restricted by the ``R`` of the network's centring
    after Gaussian smoothing ``smoothing_sigma``, :func:`~problems.cnn.evaluation.image_pyramid`),
    with the first validation image (a volume's dims are ``z, y, x``)."""
    images, labels = as_labelled_images(validation, "validation")
    dim = network.problem.dim
    pyramid = image_pyramid((images, labels), coarsest_level, smoothing_sigma=smoothing_sigma,
                            centring=network.mesh.centring, dim=dim)
    resolutions, predicted = [], []
    for level, (level_images, _) in enumerate(pyramid):
        moved = network if level == 0 else network.restrict(level, kernel_transfer)
        resolutions.append(moved.mesh.shape[0])
        predicted.append(moved.classify(level_images))
    kernels = "Galerkin" if kernel_transfer == "galerkin" else "rediscretized"
    return xr.Dataset(
        {
            "labels": ("example", labels),
            "predicted": (("resolution", "example"), np.array(predicted)),
            "example_image": (SPATIAL_DIMS[dim], np.asarray(images[0], dtype=np.float64)),
        },
        coords={"resolution": resolutions},
        attrs={
            "network_resolution": network.mesh.shape[0],
            "meaning": f"validation predictions; coarser rows use the restricted network "
            f"({kernels} kernels, {network.mesh.centring}-centred) on restricted images",
        },
    )


def stage_summaries(history: xr.Dataset) -> list:
    """One dict per stage of a training history (schedule order): its mesh, layers, how it
    started (``phase`` of its first row), validation and training accuracy at its start and end,
    its outer iterations, its wall time (training only) and its work (fine convolutions, a
    coarse mesh's at their fraction) and fine-level work."""
    stages = history["stage"].values
    wall, work = history["wall_time"].values, history["work"].values
    fine_work = history["fine_level_work"].values
    summaries, before = [], 0
    for stage in dict.fromkeys(stages.tolist()):
        rows = np.flatnonzero(stages == stage)
        first, last = int(rows[0]), int(rows[-1])

        def at(name, row):
            return float(history[name].values[row])

        summaries.append({
            "stage": int(stage),
            "mesh_shape": str(history["mesh_shape"].values[first]),
            "n_steps": int(history["n_steps"].values[first]),
            "start_phase": str(history["phase"].values[first]),
            "start_validation_accuracy": at("validation_accuracy", first),
            "final_validation_accuracy": at("validation_accuracy", last),
            "start_training_accuracy": at("training_accuracy", first),
            "final_training_accuracy": at("training_accuracy", last),
            "outer_iterations": int(last - first),
            "wall_time_s": float(wall[last] - (wall[before] if first else 0.0)),
            "work": float(work[last] - (work[before] if first else 0.0)),
            "fine_level_work": float(fine_work[last] - (fine_work[before] if first else 0.0)),
        })
        before = last
    return summaries


def _coarsest_level(mesh: Mesh, config: dict) -> int:
    """How many coarser levels the outputs show: those of the run's hierarchy (``--levels`` of
    ``multilevel`` and ``consistent``), at least 1 if the mesh can be shown one level coarser
    (every axis even and >= 8)."""
    trained = config.get("levels", 1) - 1 if config.get("mode") in ("multilevel",
                                                                       "consistent") else 0
    return max(trained, int(mesh.can_coarsen and all(n >= 8 for n in mesh.shape)))


def write_run_outputs(run_dir: RunDirectory, config: dict, result, validation) -> dict:
    """Write the network, history, predictions, evaluation and figures of a finished training
    ``result`` into ``run_dir``; returns the summary's entries about them."""
    network, history = result.network, result.history
    run = {k: v for k, v in config.items() if k not in ("settings", "pdecontrol")}
    save_network(run_dir / "network.nc", network, history=history,
                 metadata={"run": run, RUN_STAMP: run_dir.stamp()})
    run_dir.write_netcdf("history.nc", history, format=HISTORY_FORMAT)
    coarsest = _coarsest_level(network.mesh, config)
    transfers = run_transfers(config)
    kernel_transfer, sigma = transfers["kernel_transfer"], transfers["smoothing_sigma"]
    predictions = predictions_dataset(network, validation, coarsest,
                                      kernel_transfer=kernel_transfer, smoothing_sigma=sigma)
    run_dir.write_netcdf("predictions.nc", predictions, format=PREDICTIONS_FORMAT)
    moved = moved_variant(kernel_transfer)
    evaluation = evaluate_across_scales(
        network, image_pyramid(validation, coarsest, smoothing_sigma=sigma,
                               centring=network.mesh.centring),
        variants=(moved, "classifier_only", "interpolated_input"))
    run_dir.write_netcdf("evaluation.nc", evaluation, format=EVALUATION_FORMAT)
    figures = write_run_figures(run_dir.path)
    last = history.isel(iteration=-1)
    labels = predictions["labels"].values
    return {
        "network_mesh_shape": list(network.mesh.shape),
        "mesh_spacing": list(network.mesh.h),
        "n_steps": network.n_steps,
        "n_parameters": int(network.parameters.size),
        "final_objective": float(last["objective"]),
        "final_training_accuracy": float(last["training_accuracy"]),
        "final_validation_accuracy": float(last["validation_accuracy"]),
        "validation_accuracy_by_resolution": {
            str(int(r)): float(np.mean(predictions["predicted"].sel(resolution=r).values == labels))
            for r in predictions["resolution"].values
        },
        "initial_validation_accuracy": float(history["validation_accuracy"].values[0]),
        "stages": stage_summaries(history),
        "history_rows": int(history.sizes["iteration"]),
        "training_wall_time_s": float(last["wall_time"]),
        "figures": [str(Path(f).relative_to(run_dir.path)) for f in figures],
    }


def _stencil_groups(network) -> dict:
    """The final 3x3 stencils to draw by group (opening, each layer): of a 3D network their
    middle ``z`` slice (``[..., 1, :, :]``); none of a 1D one."""
    problem, blocks = network.problem, network.blocks()
    if problem.dim == 1:
        return {}

    def planar(stencils):
        return stencils if problem.dim == 2 else stencils[..., 1, :, :]

    groups = {"opening K0": planar(problem.block_to_stencils(np.asarray(blocks["K0"])))}
    kernels = planar(problem.block_to_stencils(np.asarray(blocks["K"])))
    for layer in range(kernels.shape[0]):
        groups[f"layer {layer + 1} K"] = kernels[layer]
    return groups


def write_run_figures(run_dir) -> list:
    """Draw ``figures/*.png`` of a run directory from its files; returns the paths written.

    ``training.png`` (history; level switches marked), ``training_cost.png`` (multilevel runs:
    accuracy against fine-level work and wall time), ``kernels.png`` (final stencils; of a 3D
    network their middle ``z`` slice), ``confusion_<n>.png`` per resolution in
    ``predictions.nc``, ``convolved.png`` (2D only: the example image with the first opening
    kernel, fine vs Galerkin-coarse), ``accuracy.png`` (from ``evaluation.nc``). Files that are
    missing are skipped with a warning; a damaged file (:class:`~pdecontrol.io.CorruptFileError`)
    or one of another run (:class:`UsageError`) is refused before any figure is drawn.
    """
    from .figures import (
        plot_accuracy_against_cost,
        plot_accuracy_by_resolution,
        plot_confusion_matrix,
        plot_convolved_image,
        plot_kernels,
        plot_training_curves,
    )

    run_dir = RunDirectory(run_dir, "cnn", "train")
    network_path = run_dir / "network.nc"
    if not run_dir.path.is_dir() or not network_path.is_file():
        raise UsageError(
            f"{run_dir.path} is not a finished run directory (no network.nc); train first or "
            f"resume the run with pdecontrol cnn train --resume --out {run_dir.path}")
    config = run_dir.load_config()
    with run_dir.reading():
        network_file = read_network_file(network_path)
    run_dir.check_stamp("network.nc", network_file.metadata.get(RUN_STAMP))
    predictions_path, evaluation_path = run_dir / "predictions.nc", run_dir / "evaluation.nc"
    predictions = (run_dir.read_netcdf("predictions.nc", format=PREDICTIONS_FORMAT)
                   if predictions_path.is_file() else None)
    evaluation = (run_dir.read_netcdf("evaluation.nc", format=EVALUATION_FORMAT)
                  if evaluation_path.is_file() else None)
    figures_dir = run_dir / "figures"
    make_folder(figures_dir)
    written = []
    history = network_file.history
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
    problem = network_file.network.problem
    groups = _stencil_groups(network_file.network)
    if groups:
        path = figures_dir / "kernels.png"
        slice_note = ", middle z slice of the 3x3x3 stencils" if problem.dim == 3 else ""
        plot_kernels(groups, title=f"final kernels (stencil weights, correlation{slice_note})",
                     path=path)
        written.append(path)
    else:
        logger.info("no kernels.png: a %dD network's stencils are not drawn", problem.dim)
    if predictions is not None:
        class_names = None
        if config.get("data") in ("synthetic", "volumes"):
            from .data import SYNTHETIC_CLASSES, VOLUME_CLASSES

            names = SYNTHETIC_CLASSES if config["data"] == "synthetic" else VOLUME_CLASSES
            class_names = list(names)[: problem.n_classes]
        for resolution in predictions["resolution"].values:
            moved = ("" if resolution == predictions.attrs["network_resolution"]
                     else ", restricted network")
            path = figures_dir / f"confusion_{int(resolution)}.png"
            plot_confusion_matrix(
                predictions["labels"].values,
                predictions["predicted"].sel(resolution=resolution).values,
                class_names=class_names,
                title=f"validation, {'x'.join([str(int(resolution))] * problem.dim)}{moved}",
                path=path,
            )
            written.append(path)
        if problem.dim != 2:
            logger.info("no convolved.png: the fine/coarse convolution figure is drawn for 2D "
                        "images only")
        elif predictions.sizes["y"] % 2 == 0:
            path = figures_dir / "convolved.png"
            plot_convolved_image(predictions["example_image"].values, groups["opening K0"][0, 0],
                                 centring=network_file.network.mesh.centring,
                                 title="validation image 0, opening kernel 0", path=path)
            written.append(path)
    else:
        logger.warning("%s missing: no confusion matrix or convolution figure", predictions_path)
    if evaluation is not None:
        path = figures_dir / "accuracy.png"
        plot_accuracy_by_resolution(evaluation["accuracy"], path=path)
        written.append(path)
    return written
