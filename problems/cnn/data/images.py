"""Labelled image sets as :class:`xarray.Dataset` s carrying their mesh, and splits of them.

Layout of every image set of the CNN problem (MNIST, the synthetic patterns, ...):

* ``images``: dims ``("example", "y", "x")``, floating point (float32 by default), one square
  ``n x n`` image per example; a volume set (:mod:`problems.cnn.data.volumes`) has dims
  ``("example", "z", "y", "x")``, one ``n x n x n`` volume per example;
* ``labels``: dim ``"example"``, int64 class index in ``0 .. n_classes - 1``;
* coordinates ``y`` and ``x`` (and ``z``): node coordinates ``i * h`` (``h = extent / n``,
  physical units, domain ``[0, extent)``; node-centred, grid functions zero outside), and
  ``example``: the index of each example in the set it was drawn from (kept by
  :func:`train_validation_split`);
* attrs: ``h``, ``extent``, ``n_classes``, ``class_names`` (list of str) and ``source`` (str).

Row ``y`` index ``i`` is image row ``i`` (top row first, as stored in the files).
"""
from __future__ import annotations

import numpy as np
import xarray as xr

from pdecontrol._validation import as_float_array, check_finite, check_int, check_positive
from pdecontrol.mesh import Mesh

__all__ = [
    "images_dataset",
    "to_numpy",
    "train_validation_split",
    "plot_examples",
    "SPATIAL_DIMS",
    "spatial_dims",
]

#: Names of the spatial dims of an image set by its dimension (slowest axis first).
SPATIAL_DIMS = {2: ("y", "x"), 3: ("z", "y", "x")}


def _check_float_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(
            f"dtype must be a floating-point type such as float32 or float64, got {dtype}"
        )
    return dtype


def images_dataset(images, labels, *, class_names, source: str, dtype=np.float32,
                   extent: float = 1.0, example=None, attrs=None) -> xr.Dataset:
    """Wrap images and labels into the labelled :class:`xarray.Dataset` described above.

    Parameters
    ----------
    images : array_like, shape (n_examples, n, n) or (n_examples, n, n, n)
        Square images or cubic volumes, real and finite.
    labels : array_like of int, shape (n_examples,)
        Class indices in ``0 .. len(class_names) - 1``.
    class_names : sequence of str
        One name per class; its length is ``n_classes``.
    source : str
        Where the images come from (stored in ``attrs["source"]``).
    dtype : floating dtype
        dtype of the ``images`` variable (default float32).
    extent : float
        Physical side length of the image domain ``[0, extent)^d``.
    example : array_like of int, shape (n_examples,), optional
        Example indices (default ``0 .. n_examples - 1``).
    attrs : dict, optional
        Further attributes (e.g. the seed of a synthetic set).

    Raises
    ------
    ValueError
        If the images are not square ``(n_examples, n, n)`` or cubic ``(n_examples, n, n, n)``,
        contain NaN/inf, or the labels do
        not match the images in number or fall outside ``0 .. n_classes - 1``.
    TypeError
        If ``labels`` is not an integer array or ``dtype`` not a floating type.
    """
    dtype = _check_float_dtype(dtype)
    images = as_float_array(images, "images", dtype=dtype)
    if (images.ndim - 1 not in SPATIAL_DIMS
            or len(set(images.shape[1:])) != 1 or images.shape[0] == 0):
        raise ValueError(
            f"images must have shape (n_examples, n, n) with n_examples >= 1 and square n x n "
            f"images, or (n_examples, n, n, n) for volumes, got {images.shape}"
        )
    check_finite(images, "images")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}")
    if labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), one label per image, got "
            f"{labels.shape}: the image and label sets do not match (mislabelled data)"
        )
    class_names = [str(name) for name in class_names]
    n_classes = len(class_names)
    if n_classes < 1:
        raise ValueError("class_names must name at least one class")
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1} (n_classes={n_classes}); {int(bad.sum())} "
            f"label(s) outside, e.g. {labels[bad][:5].tolist()} (mislabelled data)"
        )
    extent = check_positive(extent, "extent")
    n = images.shape[1]
    example = np.arange(images.shape[0]) if example is None else np.asarray(example, dtype=np.int64)
    spatial = SPATIAL_DIMS[images.ndim - 1]
    nodes = Mesh(images.shape[1:], extent=extent).node_coordinates()
    return xr.Dataset(
        {
            "images": (("example",) + spatial, images),
            "labels": ("example", labels.astype(np.int64)),
        },
        coords={"example": example, **dict(zip(spatial, nodes, strict=True))},
        attrs={
            "h": extent / n,
            "extent": extent,
            "n_classes": n_classes,
            "class_names": class_names,
            "source": source,
            **(attrs or {}),
        },
    )


def _check_dataset(dataset, name: str = "dataset") -> xr.Dataset:
    if not isinstance(dataset, xr.Dataset):
        raise TypeError(f"{name} must be an xarray.Dataset, got {type(dataset).__name__}")
    missing = {"images", "labels"} - set(dataset.variables)
    if missing:
        raise ValueError(
            f"{name} lacks variable(s) {sorted(missing)}; build it with images_dataset, "
            "load_mnist or make_synthetic"
        )
    return dataset


def spatial_dims(images: xr.DataArray) -> tuple:
    """The spatial dims of an image-set variable, slowest first: ``("y", "x")`` for images,
    ``("z", "y", "x")`` for volumes (those of ``"z", "y", "x"`` it has); their number is the
    dimension of the set."""
    return tuple(d for d in SPATIAL_DIMS[3] if d in images.dims)


def to_numpy(dataset: xr.Dataset, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: ndarrays of shapes ``(n_examples, n, n)`` (volumes:
    ``(n_examples, n, n, n)``) and ``(n_examples,)``.

    ``images`` keeps its dtype unless ``dtype`` is given; ``labels`` is int64.
    """
    dataset = _check_dataset(dataset)
    images = dataset["images"]
    images = images.transpose("example", *spatial_dims(images)).values
    if dtype is not None:
        images = images.astype(_check_float_dtype(dtype), copy=False)
    return images, dataset["labels"].values.astype(np.int64, copy=False)


def train_validation_split(dataset: xr.Dataset, n_train: int, n_val: int, seed: int
                           ) -> tuple[xr.Dataset, xr.Dataset]:
    """Draw disjoint training and validation subsets at random, reproducibly from ``seed``.

    As in the paper (40,000 training and 20,000 validation images drawn from the 60,000 MNIST
    training images): a random permutation of the examples from
    ``numpy.random.default_rng(seed)``; its first ``n_train`` entries form the training set, the
    next ``n_val`` the validation set. Each subset keeps the original order of the examples
    and their ``example`` coordinate (the index into ``dataset``).

    Raises
    ------
    ValueError
        If ``n_train < 1``, ``n_val < 0`` or ``n_train + n_val`` exceeds the number of examples.
    """
    dataset = _check_dataset(dataset)
    n_train = check_int(n_train, "n_train", 1)
    n_val = check_int(n_val, "n_val", 0)
    seed = check_int(seed, "seed", 0)
    n_examples = dataset.sizes["example"]
    if n_train + n_val > n_examples:
        raise ValueError(
            f"n_train + n_val = {n_train} + {n_val} = {n_train + n_val} exceeds the "
            f"{n_examples} examples of the dataset; ask for fewer"
        )
    order = np.random.default_rng(seed).permutation(n_examples)
    train = np.sort(order[:n_train])
    val = np.sort(order[n_train:n_train + n_val])
    split_attrs = {"split_seed": seed}
    return (dataset.isel(example=train).assign_attrs(split="train", **split_attrs),
            dataset.isel(example=val).assign_attrs(split="validation", **split_attrs))


def plot_examples(*datasets: xr.Dataset, n_per_class: int = 4, cmap: str = "gray"):
    """Draw a grid of examples per class: one row per class, ``n_per_class`` examples per row.

    Volumes (:mod:`problems.cnn.data.volumes`) are shown by their middle ``z`` slice. With
    several datasets holding the same examples (e.g. one synthetic seed rendered at two
    resolutions), each example is drawn once per dataset in adjacent columns, so the
    resolutions can be compared side by side. Uses the Agg canvas (no display, no pyplot state).

    Parameters
    ----------
    *datasets : xarray.Dataset
        One or more image sets with identical ``labels``.
    n_per_class : int
        Examples shown per class (the first ones of each class).
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with ``figure.savefig(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not datasets:
        raise TypeError("plot_examples needs at least one dataset")
    datasets = [_check_dataset(ds, f"datasets[{i}]") for i, ds in enumerate(datasets)]
    n_per_class = check_int(n_per_class, "n_per_class", 1)
    labels = datasets[0]["labels"].values
    for i, ds in enumerate(datasets[1:], start=1):
        if not np.array_equal(ds["labels"].values, labels):
            raise ValueError(
                f"datasets[{i}] holds other examples than datasets[0] (labels differ); pass "
                "renderings of the same examples, e.g. one seed at several resolutions"
            )
    names = datasets[0].attrs.get("class_names") or [str(c) for c in range(int(labels.max()) + 1)]
    columns = n_per_class * len(datasets)
    figure = Figure(figsize=(0.9 * columns, 0.9 * len(names)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(names), columns, squeeze=False)
    for row, name in enumerate(names):
        chosen = np.flatnonzero(labels == row)[:n_per_class]
        for slot in range(n_per_class):
            for k, ds in enumerate(datasets):
                ax = axes[row, slot * len(datasets) + k]
                ax.set_xticks([])
                ax.set_yticks([])
                if slot < len(chosen):
                    image = ds["images"].isel(example=int(chosen[slot]))
                    if "z" in image.dims:  # a volume: its middle z-slice
                        image = image.isel(z=image.sizes["z"] // 2)
                    image = image.transpose("y", "x").values
                    ax.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
                if row == 0:
                    sizes = [str(ds.sizes[d]) for d in spatial_dims(ds["images"])[::-1]]
                    ax.set_title("x".join(sizes), fontsize=7)
        axes[row, 0].set_ylabel(name, fontsize=7)
    return figure
