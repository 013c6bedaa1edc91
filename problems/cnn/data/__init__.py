"""Image sets of the CNN problem: MNIST (IDX files), resolution-free synthetic patterns and
resolution-free synthetic volumes (3D).

Every image set is an :class:`xarray.Dataset` with ``images`` ``(example, y, x)`` on the nodes
``i / n`` of the unit square (volumes: ``(example, z, y, x)`` on the unit cube), int64
``labels`` and the mesh spacing in its attrs; see :mod:`problems.cnn.data.images` for the
layout and ``docs/data.md`` for the conventions.
"""
from .idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    IDXError,
    parse_idx,
    read_idx,
    read_idx_bytes,
    write_idx,
)
from .images import (
    images_dataset,
    plot_examples,
    to_numpy,
    train_validation_split,
)
from .mnist import (
    MNIST_BASE_URL,
    MNIST_SHA256,
    ChecksumError,
    load_idx_pair,
    load_mnist,
    mnist_data_dir,
)
from .sets import DATA_SETS, MNIST_RESOLUTION, load_image_sets
from .synthetic import (
    EDGE_WIDTH,
    SYNTHETIC_CLASSES,
    SyntheticExamples,
    draw_synthetic,
    make_synthetic,
)
from .volumes import VOLUME_CLASSES, SyntheticVolumes, draw_volumes, make_volumes

__all__ = [
    "load_image_sets",
    "DATA_SETS",
    "MNIST_RESOLUTION",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "IDXError",
    "parse_idx",
    "read_idx",
    "read_idx_bytes",
    "write_idx",
    "images_dataset",
    "plot_examples",
    "to_numpy",
    "train_validation_split",
    "MNIST_BASE_URL",
    "MNIST_SHA256",
    "ChecksumError",
    "load_idx_pair",
    "load_mnist",
    "mnist_data_dir",
    "EDGE_WIDTH",
    "SYNTHETIC_CLASSES",
    "SyntheticExamples",
    "draw_synthetic",
    "make_synthetic",
    "VOLUME_CLASSES",
    "SyntheticVolumes",
    "draw_volumes",
    "make_volumes",
]
