"""Training / validation image sets of the CNN problem at a chosen resolution."""

from __future__ import annotations

from pathlib import Path

from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.transfer import restrict_image

from .images import images_dataset, train_validation_split
from .mnist import load_mnist
from .synthetic import draw_synthetic
from .volumes import draw_volumes

__all__ = ["load_image_sets", "MNIST_RESOLUTION", "check_resolution", "DATA_SETS", "data_dim"]

#: MNIST image size.
MNIST_RESOLUTION = 28
#: The image sets of :func:`load_image_sets` and the dimension of each (2: images, 3: volumes).
DATA_SETS = {"synthetic": 2, "mnist": 2, "volumes": 3}


def data_dim(data: str) -> int:
    """The dimension of the image set ``data`` (:data:`DATA_SETS`; ``ValueError`` if unknown)."""
    if data not in DATA_SETS:
        raise ValueError(f"--data must be one of {', '.join(DATA_SETS)}, got {data!r}")
    return DATA_SETS[data]


def check_resolution(resolution: int, name: str = "--resolution") -> int:
    """``resolution`` if it is at least 4 (the smallest image a 3x3 network can use)."""
    if resolution < 4:
        raise ValueError(f"{name} must be >= 4, got {resolution}")
    return resolution


def load_image_sets(data: str, resolution: int, n_train: int, n_val: int, *, seed: int = 0,
                    data_dir=None, centring: str = "node") -> tuple:
    """``(train, validation)`` image-set Datasets at ``resolution`` (``n x n``; volumes
    ``n x n x n``).

    ``data="synthetic"``: ``n_train + n_val`` examples of :func:`problems.cnn.data.draw_synthetic`
    (``seed``) rendered at ``resolution`` (any ``n >= 4``); ``data="volumes"``: the same with
    :func:`problems.cnn.data.draw_volumes`. ``data="mnist"``: the 60,000 MNIST training images
    from ``data_dir`` (else ``$PDECONTROL_DATA_DIR``), restricted to ``resolution`` = 28, 14 or
    7 by the ``R`` of ``centring`` (full weighting for ``"node"``, 2x2 averaging for ``"cell"``:
    :func:`pdecontrol.transfer.restrict_image`). All are then split at random
    (:func:`problems.cnn.data.train_validation_split`, ``seed``), as the paper's 40,000 / 20,000.
    Bad arguments raise ``ValueError`` naming the command-line option.
    """
    data_dim(data)
    resolution = check_resolution(resolution)
    if n_train < 1 or n_val < 1:
        raise ValueError(f"--n-train and --n-val must be >= 1, got {n_train} and {n_val}")
    if data == "synthetic":
        dataset = draw_synthetic(n_train + n_val, seed).render(resolution)
    elif data == "volumes":
        dataset = draw_volumes(n_train + n_val, seed).render(resolution)
    else:  # mnist
        mnist = MeshHierarchy(Mesh((MNIST_RESOLUTION,) * 2), 3)
        try:
            levels = mnist.level_of(Mesh((resolution,) * 2))
        except ValueError:
            raise ValueError(f"--resolution {resolution} is not reachable from the 28x28 MNIST "
                             "images by halving; use 28, 14 or 7") from None
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(
                f"--data-dir {data_dir} is not a directory; point it at the folder "
                "holding the four MNIST IDX files (or set PDECONTROL_DATA_DIR)"
            )
        dataset = load_mnist("train", data_dir)
        if n_train + n_val > dataset.sizes["example"]:
            raise ValueError(
                f"--n-train + --n-val = {n_train + n_val} exceeds the "
                f"{dataset.sizes['example']} MNIST training images"
            )
        if levels:
            images = restrict_image(dataset["images"].values, 2, levels, centring=centring)
            dataset = images_dataset(
                images,
                dataset["labels"].values,
                class_names=list(dataset.attrs["class_names"]),
                source=f"{dataset.attrs['source']} restricted {levels}x ({centring}-centred)",
            )
    return train_validation_split(dataset, n_train, n_val, seed)
