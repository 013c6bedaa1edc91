"""Saving and loading trained networks as netCDF files (via xarray).

File layout (written and verified by :func:`pdecontrol.io.write_netcdf` with the format
:data:`FORMAT`, so every group carries the SHA-256 of its contents; root group):

==========  ===============================================================  =====================
variable    dims                                                             meaning
==========  ===============================================================  =====================
``K``       ``(layer, out_channel, in_channel, *kernel)``                    residual kernels
``b``       ``(layer, out_channel)``                                         residual biases
``K0``      ``(out_channel, image_channel, *kernel)``                        opening kernels
``b0``      ``(out_channel,)``                                               opening biases
``W``       ``(class, out_channel, *spatial)``                               classifier (grid fn.)
``c``       ``(class,)``                                                     classifier offsets
==========  ===============================================================  =====================

``spatial`` is ``("x",)``, ``("y", "x")`` or ``("z", "y", "x")`` with the mesh point coordinates;
``kernel`` is ``("kernel_y", "kernel_x")`` etc. (stencil weights, correlation convention) or
``("derivative",)`` (derivative-basis coefficients, coordinate = multi-index name). Attributes:
the mesh (``mesh_shape``, ``mesh_h``, ``mesh_extent``, ``mesh_origin``, ``mesh_centring``;
files without the last are node-centred), ``n_steps``, ``final_time``, ``n_channels``,
``n_classes``, ``in_channels``, ``activation``, ``opening_activation`` (``"none"`` for a
linear opening), ``loss``, ``kernel_basis``, ``reference_spacing``, ``stepper``, ``dtype``,
``settings`` (JSON of :class:`~problems.cnn.config.TrainingSettings`) and ``metadata`` (JSON,
free form). A training history, if given, is stored in the group ``history`` (written with the
network in one go).

Parameters are stored in float64, so save/load is exact. A file holds a network on one mesh;
:func:`load_network` with a ``problem`` on another mesh is an error: load it without ``problem``
and move it with :meth:`~problems.cnn.evaluation.TrainedNetwork.on_mesh` (``restrict`` /
``prolong``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pdecontrol.io import read_netcdf_groups, write_netcdf
from pdecontrol.mesh import Mesh
from pdecontrol.stencils import derivative_basis

from .config import TrainingSettings
from .evaluation import TrainedNetwork, levels_between
from .network import CNNProblem

__all__ = [
    "FORMAT",
    "NetworkFile",
    "save_network",
    "read_network_file",
    "load_network",
    "load_history",
    "network_to_dataset",
    "network_from_dataset",
]

#: Format name of a network file (:func:`pdecontrol.io.write_netcdf`; the layout's version
#: is its last part).
FORMAT = "pdecontrol-cnn-network-2"

_AXES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
_BLOCKS = ("K", "b", "K0", "b0", "W", "c")


@dataclass(frozen=True)
class NetworkFile:
    """Contents of a network file: the network, its history (or None) and the metadata dict."""

    network: TrainedNetwork
    history: xr.Dataset | None
    metadata: dict


def _kernel_dims(problem: CNNProblem) -> tuple:
    if problem.kernel_basis == "derivative":
        return ("derivative",)
    return tuple(f"kernel_{axis}" for axis in _AXES[problem.dim])


def network_to_dataset(network: TrainedNetwork, metadata: dict | None = None) -> xr.Dataset:
    """The network as an ``xarray.Dataset`` in the file layout (see the module docstring)."""
    if not isinstance(network, TrainedNetwork):
        raise TypeError(f"network must be a TrainedNetwork, got {type(network).__name__}")
    problem, blocks = network.problem, network.blocks()
    spatial, kernel = _AXES[problem.dim], _kernel_dims(problem)
    dims = {
        "K": ("layer", "out_channel", "in_channel") + kernel,
        "b": ("layer", "out_channel"),
        "K0": ("out_channel", "image_channel") + kernel,
        "b0": ("out_channel",),
        "W": ("class", "out_channel") + spatial,
        "c": ("class",),
    }
    mesh = problem.mesh
    coords = dict(zip(spatial, mesh.node_coordinates(), strict=True))
    if problem.kernel_basis == "derivative":
        coords["derivative"] = list(derivative_basis(problem.dim).names)
    opening = "none" if problem.opening_activation is None else problem.opening_activation.name
    attrs = {
        "mesh_shape": np.array(mesh.shape, dtype=np.int64),
        "mesh_h": np.array(mesh.h),
        "mesh_extent": np.array(mesh.extent),
        "mesh_origin": np.array(mesh.origin),
        "mesh_centring": mesh.centring,
        "n_steps": network.n_steps,
        "final_time": network.final_time,
        "n_channels": problem.n_channels,
        "n_classes": problem.n_classes,
        "in_channels": problem.in_channels,
        "activation": problem.activation.name,
        "opening_activation": opening,
        "loss": network.settings.loss,
        "kernel_basis": problem.kernel_basis,
        "reference_spacing": np.array(problem.reference_spacing),
        "stepper": network.settings.stepper,
        "dtype": network.settings.dtype,
        "settings": network.settings.to_json(),
        "metadata": json.dumps(metadata or {}, sort_keys=True),
    }
    return xr.Dataset(
        {name: (dims[name], np.array(blocks[name])) for name in _BLOCKS}, coords=coords, attrs=attrs
    )


def save_network(
    path,
    network: TrainedNetwork,
    *,
    history: xr.Dataset | None = None,
    metadata: dict | None = None,
) -> Path:
    """Write ``network`` (and optionally its training ``history``) to a netCDF file.

    Network and history are written in one go, atomically (:func:`pdecontrol.io.write_netcdf`:
    an interrupted save never leaves a half-written file at ``path``), with their SHA-256.
    ``metadata`` is any JSON-serialisable dict. Returns the path.
    """
    path = Path(path)
    if history is not None and not isinstance(history, xr.Dataset):
        raise TypeError(f"history must be an xarray.Dataset or None, got {type(history).__name__}")
    dataset = network_to_dataset(network, metadata)
    write_netcdf(path, dataset, format=FORMAT,
                 groups=None if history is None else {"history": history})
    return path


def network_from_dataset(dataset: xr.Dataset, source: str = "dataset") -> tuple:
    """``(TrainedNetwork, metadata)`` from a Dataset in the file layout; clear errors otherwise."""
    attrs = dataset.attrs
    missing = [name for name in _BLOCKS if name not in dataset]
    required = (
        "mesh_shape",
        "mesh_extent",
        "mesh_origin",
        "n_classes",
        "in_channels",
        "reference_spacing",
        "settings",
        "metadata",
    )
    missing += [f"attribute {name}" for name in required if name not in attrs]
    if missing:
        raise ValueError(f"{source} is a truncated or foreign network file: missing {missing}")
    try:
        settings = TrainingSettings.from_json(attrs["settings"])
        metadata = json.loads(attrs["metadata"])
        mesh = Mesh(
            tuple(int(n) for n in np.atleast_1d(attrs["mesh_shape"])),
            extent=tuple(np.atleast_1d(attrs["mesh_extent"]).tolist()),
            origin=tuple(np.atleast_1d(attrs["mesh_origin"]).tolist()),
            centring=str(attrs.get("mesh_centring", "node")),
        )
        problem = settings.make_problem(
            mesh,
            int(attrs["n_classes"]),
            in_channels=int(attrs["in_channels"]),
            reference_spacing=tuple(np.atleast_1d(attrs["reference_spacing"]).tolist()),
        )
    except (TypeError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{source} has inconsistent network attributes: {error}") from None
    n_steps = int(dataset["K"].shape[0])
    layout = problem.layout(n_steps)
    for name in _BLOCKS:
        if dataset[name].shape != layout.shapes[name]:
            raise ValueError(
                f"{source}: block {name} has shape {dataset[name].shape}, but the network "
                f"described by the attributes needs {layout.shapes[name]}"
            )
    params = layout.from_blocks({name: dataset[name].values for name in _BLOCKS}, source)
    return TrainedNetwork(problem, params.flat, settings), metadata


def read_network_file(path) -> NetworkFile:
    """Network, history and metadata of a file written by :func:`save_network`, verified.

    Raises :class:`pdecontrol.io.CorruptFileError` (a ``ValueError``) naming the file when it is
    damaged, not a network file or inconsistent; ``FileNotFoundError`` when there is none.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no network file at {path}")
    groups = read_netcdf_groups(path, format=FORMAT)
    network, metadata = network_from_dataset(groups["/"], str(path))
    return NetworkFile(network, groups.get("history"), metadata)


def load_history(path) -> xr.Dataset | None:
    """The training history stored with a network, or ``None`` if the file has none."""
    return read_network_file(path).history


def load_network(path, problem: CNNProblem | None = None) -> TrainedNetwork:
    """Load a network; with ``problem``, check that the file was saved for that problem.

    Raises ``ValueError`` if ``problem`` differs (another mesh: the message names both meshes
    and how to move the network; other channels, classes, activation, basis or loss), or if the
    file is corrupt or not a network file; ``FileNotFoundError`` if there is no file.
    """
    network = read_network_file(path).network
    if problem is None:
        return network
    if not isinstance(problem, CNNProblem):
        raise TypeError(f"problem must be a CNNProblem, got {type(problem).__name__}")
    saved = network.problem
    if problem.mesh != saved.mesh:
        try:
            levels = levels_between(saved.mesh, problem.mesh)
            how = (
                f"load_network(path).restrict({levels})"
                if levels > 0
                else f"load_network(path).prolong({-levels})"
            )
        except ValueError:
            how = "no restriction or prolongation reaches it; retrain on that mesh"
        raise ValueError(
            f"{path} holds a network on {saved.mesh!r}, but the problem is on "
            f"{problem.mesh!r}; load it without problem= and move it with "
            f".on_mesh(mesh) ({how})"
        )
    if repr(problem) != repr(saved):
        raise ValueError(
            f"{path} holds the network {saved!r}, which differs from the problem " f"{problem!r}"
        )
    return network
