"""The figures of a ``pdecontrol cnn paper`` output directory, redrawn from its files alone.

:func:`write_paper_figures` reads the files of :data:`PAPER_FIGURE_SOURCES` (no data, no
training); :func:`restricted_predictions` makes the one of them that is not a history or a
network (the restricted fine network's predictions on coarse validation images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pdecontrol.continuation import HISTORY_FORMAT
from pdecontrol.io import make_folder, read_netcdf

from .evaluation import EVALUATION_FORMAT, image_pyramid
from .figures import (
    plot_accuracy_against_cost,
    plot_accuracy_by_resolution,
    plot_confusion_matrix,
    plot_convolved_image,
    plot_kernels,
    plot_training_curves,
)

__all__ = [
    "PAPER_FIGURE_SOURCES",
    "RESTRICTED_PREDICTIONS_FORMAT",
    "restricted_predictions",
    "write_paper_figures",
]


#: Files of a paper output directory that :func:`write_paper_figures` reads.
PAPER_FIGURE_SOURCES = (
    "history_fine.nc",
    "history_multilevel.nc",
    "network_fine.nc",
    "evaluation.nc",
    "predictions_restricted.nc",
)
#: Format name of ``predictions_restricted.nc`` (:func:`restricted_predictions`).
RESTRICTED_PREDICTIONS_FORMAT = "pdecontrol-cnn-restricted-predictions-1"


def restricted_predictions(fine_network, val_set, *, kernel_transfer: str = "galerkin",
                           smoothing_sigma=None) -> xr.Dataset:
    """Labels and predictions of the restricted fine network (kernels by ``kernel_transfer``) on
    the 14x14 validation images (restricted by the ``R`` of the network's centring after
    smoothing ``smoothing_sigma``), and validation image 0 (what the confusion-matrix and
    convolution figures need)."""
    val_images, val_labels = val_set
    coarse_images = image_pyramid(val_set, 1, smoothing_sigma=smoothing_sigma,
                                  centring=fine_network.mesh.centring)[1][0]
    predicted = fine_network.restrict(1, kernel_transfer).classify(coarse_images)
    kernels = "Galerkin" if kernel_transfer == "galerkin" else "rediscretized"
    return xr.Dataset(
        {
            "labels": ("example", np.asarray(val_labels, dtype=np.int64)),
            "predicted": ("example", np.asarray(predicted, dtype=np.int64)),
            "example_image": (("y", "x"), np.asarray(val_images[0], dtype=np.float64)),
        },
        attrs={
            "description": f"fine-only network restricted to the coarse mesh ({kernels}), on "
            "the restricted validation images",
            "kernels": kernels,
            "coarse_shape": "x".join(map(str, coarse_images.shape[-2:])),
            "example_label": int(val_labels[0]),
        },
    )


def write_paper_figures(out) -> list:
    """(Re)draw ``figures/*.png`` of a :func:`reproduce_paper` output directory from its files.

    Needs the files of :data:`PAPER_FIGURE_SOURCES` (no data, no training); returns the paths.
    ``training.png`` (objective and validation accuracy per outer iteration, fine-only vs
    multilevel, switch marked), ``training_cost.png`` (validation accuracy against fine-level work
    and wall time, fine-only's final accuracy as the target line),
    ``confusion_restricted_14.png``, ``convolved.png`` (validation image 0 with the first learned
    opening kernel, fine vs Galerkin-coarse), ``kernels.png``,
    ``accuracy.png`` (by resolution and variant, the paper's numbers as ticks).
    """
    from .network_file import read_network_file
    from .paper import PAPER_RESULTS

    out = Path(out)
    missing = [name for name in PAPER_FIGURE_SOURCES if not (out / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{out} is not a finished `pdecontrol cnn paper` directory: "
            f"missing {', '.join(missing)}; "
            "run (or resume) the job with `pdecontrol cnn paper --out` this directory"
        )
    histories = {"fine only": read_netcdf(out / "history_fine.nc", format=HISTORY_FORMAT),
                 "multilevel": read_netcdf(out / "history_multilevel.nc", format=HISTORY_FORMAT)}
    predictions = read_netcdf(out / "predictions_restricted.nc",
                              format=RESTRICTED_PREDICTIONS_FORMAT)
    network = read_network_file(out / "network_fine.nc").network
    accuracy = read_netcdf(out / "evaluation.nc", format=EVALUATION_FORMAT)["accuracy"]
    directory = out / "figures"
    make_folder(directory)
    paths = {
        name: directory / f"{name}.png"
        for name in (
            "training",
            "training_cost",
            "confusion_restricted_14",
            "convolved",
            "kernels",
            "accuracy",
        )
    }
    plot_training_curves(
        histories,
        level_variable="mesh_shape",
        title="MNIST: fine-only vs multilevel",
        path=paths["training"],
    )
    fine_final = float(histories["fine only"]["validation_accuracy"].values[-1])
    plot_accuracy_against_cost(
        histories,
        target=fine_final,
        level_variable="mesh_shape",
        title="MNIST: cost of reaching fine-only's final accuracy",
        path=paths["training_cost"],
    )
    plot_confusion_matrix(
        predictions["labels"].values,
        predictions["predicted"].values,
        title=f"fine-trained network restricted to {predictions.attrs['coarse_shape']} "
        f"({predictions.attrs.get('kernels', 'Galerkin')})",
        path=paths["confusion_restricted_14"],
    )
    problem, blocks = network.problem, network.blocks()
    opening = problem.block_to_stencils(np.asarray(blocks["K0"]))
    kernels = problem.block_to_stencils(np.asarray(blocks["K"]))
    plot_convolved_image(
        predictions["example_image"].values,
        opening[0, 0],
        centring=network.mesh.centring,
        title=f"digit {predictions.attrs['example_label']}, learned opening kernel 0",
        path=paths["convolved"],
    )
    groups = {"opening K0": opening}
    groups.update({f"layer {k + 1} K": kernels[k] for k in range(kernels.shape[0])})
    plot_kernels(groups, title="fine-only network: learned kernels", path=paths["kernels"])
    moved = "galerkin" if "galerkin" in accuracy["variant"].values else "rediscretized"
    reference = {
        (28, moved): PAPER_RESULTS["fine_only"]["accuracy"][1],
        (14, moved): PAPER_RESULTS["restricted"]["accuracy"],
        (14, "classifier_only"): PAPER_RESULTS["classifier_only"]["accuracy"],
    }
    plot_accuracy_by_resolution(
        accuracy,
        reference=reference,
        title="fine-only network by resolution (bars) vs the paper (ticks)",
        path=paths["accuracy"],
    )
    return list(paths.values())
