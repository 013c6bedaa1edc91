"""Trained networks and inference across scales.

A :class:`TrainedNetwork` is a :class:`~problems.cnn.network.CNNProblem` (mesh, channels,
activation, basis, loss), a flat parameter vector and the
:class:`~problems.cnn.config.TrainingSettings` that fix the time horizon, stepper and dtype.
It classifies images on its own mesh and moves to coarser or finer meshes with
:mod:`problems.cnn.transfer` (no data used):

* :meth:`TrainedNetwork.restrict` - Galerkin kernels ``R K P`` (or, with
  ``kernel_transfer="rediscretize"``, the same derivative coefficients at the coarse spacing),
  classifier ``W_H = R W_h``, biases kept (the paper's inference across scales);
* :meth:`TrainedNetwork.restrict_classifier_only` - the paper's ablation: ``W`` restricted, the
  fine stencil weights used unchanged on the coarse mesh;
* :meth:`TrainedNetwork.prolong` - the inverse kernel map, ``W_h = P (R P)^-1 W_H`` (a coarse
  network used on finer images);
* :meth:`TrainedNetwork.on_mesh` - whichever of those reaches a given mesh.

``R`` and ``P`` are those of the mesh's centring (:class:`~pdecontrol.mesh.Mesh`).

:func:`evaluate_across_scales` tabulates accuracy by resolution and variant (an
``xarray.Dataset``); :func:`image_pyramid` makes the restricted test sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from pdecontrol._validation import check_int
from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.transfer import restrict_image

from .config import TrainingSettings
from .data.images import spatial_dims
from .network import CNNProblem, cnn_functional, predict
from .transfer import (
    check_kernel_transfer,
    prolong_network,
    restrict_classifier_only,
    restrict_network,
)

__all__ = [
    "TrainedNetwork",
    "VARIANTS",
    "DEFAULT_VARIANTS",
    "evaluate_across_scales",
    "image_pyramid",
    "confusion_matrix",
    "as_labelled_images",
    "image_dim",
    "levels_between",
    "moved_variant",
    "EVALUATION_FORMAT",
]

#: Format name of an :func:`evaluate_across_scales` table written as netCDF
#: (:func:`pdecontrol.io.write_netcdf`).
EVALUATION_FORMAT = "pdecontrol-cnn-evaluation-1"
#: Columns of :func:`evaluate_across_scales`.
VARIANTS = (
    "galerkin",
    "classifier_only",
    "galerkin_refit_classifier",
    "interpolated_input",
    "rediscretized",
    "rediscretized_refit_classifier",
)
#: The columns computed when none are asked for.
DEFAULT_VARIANTS = VARIANTS[:4]
#: Variants that move the whole network: variant -> (kernel transfer, classifier re-solved).
_MOVED_VARIANTS = {
    "galerkin": ("galerkin", False),
    "galerkin_refit_classifier": ("galerkin", True),
    "rediscretized": ("rediscretize", False),
    "rediscretized_refit_classifier": ("rediscretize", True),
}


def moved_variant(kernel_transfer: str, refit: bool = False) -> str:
    """The column of :func:`evaluate_across_scales` that moves the whole network with
    ``kernel_transfer`` (``"galerkin"`` or ``"rediscretize"``), its classifier re-solved if
    ``refit``: e.g. ``"rediscretized"`` for ``("rediscretize", False)``."""
    check_kernel_transfer(kernel_transfer)
    return next(variant for variant, key in _MOVED_VARIANTS.items()
                if key == (kernel_transfer, bool(refit)))


def as_labelled_images(data, name: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` from a pair of arrays or an image-set ``xarray.Dataset``.

    Images keep their dtype (``(N, n, n)`` or ``(N, C_in, n, n)``); labels become int64.
    """
    if isinstance(data, xr.Dataset):
        if "images" not in data or "labels" not in data:
            raise ValueError(
                f"{name} as an xarray.Dataset needs 'images' and 'labels' variables "
                f"(see problems.cnn.data), got {list(data.data_vars)}"
            )
        images = data["images"]
        spatial = spatial_dims(images)
        others = [d for d in images.dims if d not in spatial and d != "example"]
        images = images.transpose("example", *others, *spatial).values
        return images, data["labels"].values.astype(np.int64)
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(
            f"{name} must be an (images, labels) pair or an image-set xarray.Dataset, "
            f"got {type(data).__name__}"
        )
    images, labels = np.asarray(data[0]), np.asarray(data[1])
    if labels.ndim != 1 or images.shape[:1] != labels.shape:
        raise ValueError(
            f"{name}: labels must be 1-D with one entry per image, got images "
            f"{images.shape} and labels {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: labels must be integer class indices, got dtype {labels.dtype}")
    return images, labels.astype(np.int64)


def image_dim(data, dim=None, name: str = "data") -> int:
    """The spatial dimension (2 or 3) of labelled images ``data``.

    An image-set ``xarray.Dataset`` says it (its spatial dims ``y, x`` or ``z, y, x``); for an
    ``(images, labels)`` pair it is ``dim``, default 2 (so ``(N, n, n, n)`` arrays are read as
    2D images with ``n`` channels unless ``dim=3``). ``ValueError`` if ``dim`` is not 2 or 3 or
    contradicts the Dataset.
    """
    if dim is not None and (isinstance(dim, bool) or dim not in (2, 3)):
        raise ValueError(f"dim must be 2 (images) or 3 (volumes), got {dim!r}")
    if isinstance(data, xr.Dataset) and "images" in data:
        found = len(spatial_dims(data["images"]))
        if dim is not None and dim != found:
            raise ValueError(f"{name} holds {found}D images (dims {data['images'].dims}), but "
                             f"dim={dim} was given")
        return found
    return 2 if dim is None else int(dim)


def levels_between(source: Mesh, target: Mesh) -> int:
    """Number of coarsenings from ``source`` to ``target`` (negative: refinements), read off the
    :class:`~pdecontrol.mesh.MeshHierarchy` spanning both.

    Raises ``ValueError`` naming both meshes if ``target`` is not ``source`` coarsened or refined
    a whole number of times (same extent and origin, spacing ratio a power of 2).
    """
    try:
        hierarchy = MeshHierarchy.spanning(source, target)
    except ValueError:
        raise ValueError(
            f"the mesh {target!r} is not reached from {source!r} by coarsening or refining "
            "(halving or doubling every axis, same extent and origin); resample the images "
            "to a mesh of the network's hierarchy"
        ) from None
    return hierarchy.level_of(target) - hierarchy.level_of(source)


@dataclass(frozen=True, eq=False)
class TrainedNetwork:
    """A network on one mesh: problem, flat parameters and the settings it runs with.

    Parameters
    ----------
    problem : CNNProblem
        Mesh, channels, classes, activation, kernel basis, loss.
    parameters : ndarray, shape (problem.layout(n_steps).size,)
        Flat float64 vector (copied, read-only). ``n_steps`` is read from its length.
    settings : TrainingSettings
        Time horizon ``T`` (:attr:`TrainingSettings.time_horizon`), stepper, compute dtype and
        chunk size used to run the network; the network fields (channels, activation, basis,
        loss) must agree with ``problem``.
    """

    problem: CNNProblem
    parameters: np.ndarray
    settings: TrainingSettings

    def __post_init__(self):
        if not isinstance(self.problem, CNNProblem):
            raise TypeError(f"problem must be a CNNProblem, got {type(self.problem).__name__}")
        if not isinstance(self.settings, TrainingSettings):
            raise TypeError(
                f"settings must be TrainingSettings, got {type(self.settings).__name__}"
            )
        problem, settings = self.problem, self.settings
        mismatched = [
            (name, mine, theirs)
            for name, mine, theirs in (
                ("n_channels", problem.n_channels, settings.n_channels),
                ("activation", problem.activation.name, settings.activation),
                (
                    "opening_activation",
                    None if problem.opening_activation is None else problem.opening_activation.name,
                    settings.opening_activation,
                ),
                ("kernel_basis", problem.kernel_basis, settings.kernel_basis),
                ("loss", type(problem.loss), type(settings.make_loss())),
            )
            if mine != theirs
        ]
        if mismatched:
            raise ValueError(
                "problem and settings disagree on "
                + ", ".join(f"{name} ({mine!r} vs {theirs!r})" for name, mine, theirs in mismatched)
            )
        parameters = np.array(
            problem.parameters(self.parameters, "parameters").flat, dtype=np.float64
        )
        parameters.setflags(write=False)
        object.__setattr__(self, "parameters", parameters)

    # ------------------------------------------------------------------ description
    @property
    def mesh(self) -> Mesh:
        """The mesh the network runs on."""
        return self.problem.mesh

    @property
    def n_steps(self) -> int:
        """Residual layers."""
        return self.problem.n_steps_of(self.parameters)

    @property
    def final_time(self) -> float:
        """``T`` (``dt = T / n_steps``)."""
        return self.settings.time_horizon

    def blocks(self):
        """Read-only structured view (:class:`~pdecontrol.control.Parameters`) of the parameters."""
        return self.problem.layout(self.n_steps).unflatten(self.parameters)

    def __repr__(self) -> str:
        return (
            f"TrainedNetwork(mesh={self.mesh!r}, n_steps={self.n_steps}, "
            f"n_channels={self.problem.n_channels}, n_classes={self.problem.n_classes}, "
            f"final_time={self.final_time}, stepper={self.settings.stepper!r})"
        )

    # ------------------------------------------------------------------ running
    def functional(self, images, labels, *, regularized: bool = False):
        """The :class:`~pdecontrol.control.ControlFunctional` of this network on labelled images
        (with the settings' regularisers if ``regularized``)."""
        regularizers = self.settings.make_regularizers(self.problem) if regularized else ()
        return cnn_functional(
            self.problem,
            images,
            labels,
            self.n_steps,
            final_time=self.final_time,
            stepper=self.settings.stepper,
            regularizers=regularizers,
            dtype=self.settings.compute_dtype,
            chunk_size=self.settings.chunk_size,
        )

    def predict(self, images, *, batch_size: int = 1000) -> np.ndarray:
        """Class scores ``(N, n_classes)`` (float64) of images on :attr:`mesh`."""
        images = self.problem.check_images(images)
        labels = np.zeros(images.shape[0], dtype=np.int64)
        return predict(self.functional(images, labels), self.parameters, batch_size=batch_size)

    def classify(self, images, *, batch_size: int = 1000) -> np.ndarray:
        """Predicted classes ``(N,)`` (int64)."""
        return np.argmax(self.predict(images, batch_size=batch_size), axis=1)

    def accuracy(self, images, labels, *, batch_size: int = 1000) -> float:
        """Fraction of ``images`` classified as ``labels``."""
        truth = np.argmax(self.problem.one_hot(labels), axis=1)
        predicted = self.classify(images, batch_size=batch_size)
        if predicted.shape != truth.shape:
            raise ValueError(
                f"labels must have one entry per image: {predicted.size} images, "
                f"{truth.size} labels"
            )
        return float(np.mean(predicted == truth))

    # ------------------------------------------------------------------ moving between meshes
    def _moved(self, mesh: Mesh, parameters) -> TrainedNetwork:
        return TrainedNetwork(self.problem.with_mesh(mesh), parameters, self.settings)

    def _coarse_mesh(self, levels: int) -> Mesh:
        return MeshHierarchy(self.mesh, check_int(levels, "levels", 1) + 1)[levels].mesh

    def restrict(self, levels: int = 1, kernel_transfer: str = "galerkin") -> TrainedNetwork:
        """The network restricted to the mesh coarsened ``levels`` times (kernels by
        ``kernel_transfer``: ``"galerkin"`` or ``"rediscretize"``)."""
        mesh = self._coarse_mesh(levels)
        return self._moved(
            mesh, restrict_network(self.problem, self.parameters, levels, kernel_transfer))

    def restrict_classifier_only(self, levels: int = 1) -> TrainedNetwork:
        """The ablation: only ``W`` restricted, stencil weights and biases as on the fine mesh."""
        mesh = self._coarse_mesh(levels)
        return self._moved(mesh, restrict_classifier_only(self.problem, self.parameters, levels))

    def prolong(self, levels: int = 1, kernel_transfer: str = "galerkin") -> TrainedNetwork:
        """The network prolonged (inverse kernel map of ``kernel_transfer``) to the mesh refined
        ``levels`` times."""
        mesh = MeshHierarchy.from_coarsest(self.mesh, check_int(levels, "levels", 1) + 1)[0].mesh
        return self._moved(
            mesh, prolong_network(self.problem, self.parameters, levels, kernel_transfer))

    def on_mesh(self, mesh: Mesh, kernel_transfer: str = "galerkin") -> TrainedNetwork:
        """This network moved to ``mesh`` (restricted or prolonged, kernels by
        ``kernel_transfer``; itself on the same mesh)."""
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        check_kernel_transfer(kernel_transfer)
        levels = levels_between(self.mesh, mesh)
        if levels == 0:
            return self
        if levels > 0:
            return self.restrict(levels, kernel_transfer)
        return self.prolong(-levels, kernel_transfer)

    def refit_classifier(self, images, labels) -> TrainedNetwork:
        """The same kernels with ``(W, c)`` re-solved (least squares, the settings' Tikhonov) on
        labelled images of this mesh. Needs ``loss="least_squares"``."""
        solver = self.settings.classifier_solver(self.functional(images, labels, regularized=True))
        return self._moved(self.mesh, solver(self.parameters))


# ---------------------------------------------------------------------- evaluation tables
def image_pyramid(data, levels: int, *, smoothing_sigma=None, centring: str = "node",
                  dim=None) -> list:
    """``[(images, labels)]`` at the given resolution and ``levels`` coarsenings of it.

    Images are restricted with :func:`pdecontrol.transfer.restrict_image` (``R`` of
    ``centring``: full weighting or cell averaging, optional Gaussian pre-smoothing in pixels of
    each level); labels are shared. ``dim``: the spatial dimension (:func:`image_dim`: read off
    an image-set Dataset, default 2 for arrays).
    """
    dim = image_dim(data, dim)
    images, labels = as_labelled_images(data)
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 0:
        raise ValueError(f"levels must be an integer >= 0, got {levels!r}")
    pyramid = [(images, labels)]
    for level in range(1, int(levels) + 1):
        pyramid.append((restrict_image(images, dim, level, smoothing_sigma, centring), labels))
    return pyramid


def _image_mesh(images, reference: Mesh) -> Mesh:
    shape = np.shape(images)[-reference.dim :]
    return Mesh(shape, extent=reference.extent, origin=reference.origin,
                centring=reference.centring)


def _interpolated(images, mesh: Mesh, levels: int) -> np.ndarray:
    """``images`` on ``mesh`` interpolated to the mesh ``levels`` times finer."""
    hierarchy = MeshHierarchy.from_coarsest(mesh, levels + 1)
    return hierarchy.prolong(images, to_level=0, from_level=levels)


def evaluate_across_scales(
    network: TrainedNetwork, test_sets, *, refit_sets=None, variants=None, batch_size: int = 1000
) -> xr.Dataset:
    """Accuracy of ``network`` moved to the resolution of each test set, by variant.

    Parameters
    ----------
    network : TrainedNetwork
    test_sets : sequence of (images, labels) or image-set Datasets
        One per resolution, each on a mesh of the network's hierarchy (coarser, equal or finer;
        same extent as the network's mesh), e.g. :func:`image_pyramid` output.
    refit_sets : sequence, optional
        Labelled *training* images, one per test set (same resolutions), for the variants
        ending in ``"_refit_classifier"``; without them those variants are NaN.
    variants : sequence of str, optional
        Subset of :data:`VARIANTS` (default :data:`DEFAULT_VARIANTS`, the first four):

        * ``"galerkin"`` - :meth:`TrainedNetwork.on_mesh` (restricted or prolonged), no data used;
        * ``"classifier_only"`` - coarser meshes only: ``W`` restricted, fine stencils unchanged;
        * ``"galerkin_refit_classifier"`` - Galerkin kernels, ``(W, c)`` re-solved on the refit set;
        * ``"interpolated_input"`` - coarser meshes only: the images interpolated (``P``) to the
          network's mesh and classified by the network itself;
        * ``"rediscretized"``, ``"rediscretized_refit_classifier"`` - the first and third with
          rediscretized kernels (``kernel_transfer="rediscretize"``).

    Returns
    -------
    xarray.Dataset
        ``accuracy`` with dims ``(resolution, variant)`` (NaN where a variant does not apply);
        coords ``resolution`` (nodes on the first axis), ``mesh_shape`` (str), ``levels``
        (coarsenings from the network's mesh; negative = finer), ``n_examples``.
    """
    if not isinstance(network, TrainedNetwork):
        raise TypeError(f"network must be a TrainedNetwork, got {type(network).__name__}")
    variants = DEFAULT_VARIANTS if variants is None else tuple(variants)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {variants}")
    test_sets = [as_labelled_images(s, f"test_sets[{i}]") for i, s in enumerate(test_sets)]
    if not test_sets:
        raise ValueError("test_sets must hold at least one (images, labels) set")
    if refit_sets is not None:
        refit_sets = [as_labelled_images(s, f"refit_sets[{i}]") for i, s in enumerate(refit_sets)]
        if len(refit_sets) != len(test_sets):
            raise ValueError(
                f"refit_sets must have one set per test set: {len(test_sets)} test "
                f"sets, {len(refit_sets)} refit sets"
            )
    accuracy = np.full((len(test_sets), len(variants)), np.nan)
    meshes, levels = [], []
    for row, (images, labels) in enumerate(test_sets):
        mesh = _image_mesh(images, network.mesh)
        level = levels_between(network.mesh, mesh)
        meshes.append(mesh)
        levels.append(level)
        if refit_sets is not None and _image_mesh(refit_sets[row][0], network.mesh) != mesh:
            raise ValueError(
                f"refit_sets[{row}] is on {_image_mesh(refit_sets[row][0], network.mesh)!r} "
                f"but test_sets[{row}] on {mesh!r}; give both at the same resolution"
            )
        moved = {}  # kernel transfer -> the network on ``mesh``
        for column, variant in enumerate(variants):
            if variant in _MOVED_VARIANTS:
                kernel_transfer, refit = _MOVED_VARIANTS[variant]
                if refit and refit_sets is None:
                    continue
                if kernel_transfer not in moved:
                    moved[kernel_transfer] = network.on_mesh(mesh, kernel_transfer)
                candidate = moved[kernel_transfer]
                if refit:
                    candidate = candidate.refit_classifier(*refit_sets[row])
                value = candidate.accuracy(images, labels, batch_size=batch_size)
            elif variant == "classifier_only" and level > 0:
                value = network.restrict_classifier_only(level).accuracy(
                    images, labels, batch_size=batch_size
                )
            elif variant == "interpolated_input" and level > 0:
                value = network.accuracy(
                    _interpolated(images, mesh, level), labels, batch_size=batch_size
                )
            else:
                continue
            accuracy[row, column] = value
    return xr.Dataset(
        {"accuracy": (("resolution", "variant"), accuracy)},
        coords={
            "resolution": [m.shape[0] for m in meshes],
            "variant": list(variants),
            "mesh_shape": ("resolution", ["x".join(map(str, m.shape)) for m in meshes]),
            "levels": ("resolution", levels),
            "n_examples": ("resolution", [len(s[1]) for s in test_sets]),
        },
        attrs={
            "network_mesh_shape": "x".join(map(str, network.mesh.shape)),
            "network_n_steps": network.n_steps,
        },
    )


def confusion_matrix(network: TrainedNetwork, images, labels) -> xr.DataArray:
    """Counts ``(true, predicted)`` of ``network`` on labelled images of its mesh (int64)."""
    truth = np.argmax(network.problem.one_hot(labels), axis=1)
    predicted = network.classify(images)
    n = network.problem.n_classes
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (truth, predicted), 1)
    return xr.DataArray(
        counts,
        dims=("true", "predicted"),
        coords={"true": np.arange(n), "predicted": np.arange(n)},
        name="count",
    )
