"""Regular meshes in 1D/2D/3D, node- or cell-centred, and multilevel hierarchies of them.

Convention: on an axis with ``n`` points, spacing ``h = extent / n``; each point owns one cell
of width ``h``, the domain is ``[origin, origin + extent)`` and grid functions are zero outside
it. Coarsening halves ``n`` and doubles ``h`` with the same origin and extent. The centring
(:data:`~pdecontrol.transfer.CENTRINGS`) says where the values sit and so which transfers
(:mod:`pdecontrol.transfer`) move them between levels:

* ``"node"`` (default): point ``i`` at ``origin + i * h``; coarse node ``j`` sits on fine node
  ``2j``; d-linear interpolation and full weighting.
* ``"cell"``: point ``i`` at the cell centre ``origin + (i + 1/2) * h``; coarse cell ``J`` is the
  union of fine cells ``2J`` and ``2J + 1``; piecewise-constant injection and cell averaging.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._validation import as_float_array
from .transfer import (
    prolong,
    prolong_field,
    prolongation_matrix,
    restrict,
    restrict_field,
    restriction_matrix,
)
from .transfer._shapes import as_grid_shape, check_centring, check_coarsenable, spatial_shape

__all__ = ["Mesh", "Level", "MeshHierarchy"]

#: The one-level transfers of :class:`MeshHierarchy`: name -> (function, goes coarser, reverse).
_TRANSFERS = {
    "restrict": (restrict, True, "prolong"),
    "prolong": (prolong, False, "restrict"),
    "restrict_field": (restrict_field, True, "prolong_field"),
    "prolong_field": (prolong_field, False, "restrict_field"),
}


def _per_axis(value, dim: int, name: str, positive: bool) -> tuple[float, ...]:
    """A scalar or a length-``dim`` sequence of finite reals as a tuple of floats."""
    entries = (value,) * dim if isinstance(value, numbers.Real) else tuple(np.ravel(value))
    if len(entries) != dim:
        raise ValueError(
            f"{name} must be a scalar or have {dim} entries (one per axis), got {value!r}"
        )
    for axis, entry in enumerate(entries):
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Real):
            raise TypeError(f"{name}[{axis}] must be a real number, got {entry!r}")
        if not np.isfinite(entry) or (positive and entry <= 0):
            requirement = "a finite number > 0" if positive else "finite"
            raise ValueError(f"{name}[{axis}] must be {requirement}, got {entry!r}")
    return tuple(float(entry) for entry in entries)


class Mesh:
    """A regular mesh, node- or cell-centred.

    Parameters
    ----------
    shape : int or tuple of int
        Points (nodes or cells) per axis, 1 to 3 axes (an int means 1D).
    extent : float or tuple of float, default 1.0
        Domain length per axis (> 0).
    origin : float or tuple of float, default 0.0
        Left end of the domain per axis (the coordinate of node 0 on a nodal mesh).
    centring : {"node", "cell"}, default "node"
        Where grid values sit, and so the family of grid transfers between levels.

    Examples
    --------
    >>> mesh = Mesh((28, 28))
    >>> mesh.h
    (0.03571428571428571, 0.03571428571428571)
    >>> mesh.coarsen().coarsen()
    Mesh(shape=(7, 7), extent=(1.0, 1.0), origin=(0.0, 0.0))
    >>> mesh.coarsen().coarsen().can_coarsen
    False
    >>> Mesh(4, centring="cell").node_coordinates()
    (array([0.125, 0.375, 0.625, 0.875]),)
    """

    def __init__(self, shape, extent=1.0, origin=0.0, centring: str = "node"):
        self._shape = as_grid_shape(shape, "shape")
        self._extent = _per_axis(extent, self.dim, "extent", positive=True)
        self._origin = _per_axis(origin, self.dim, "origin", positive=False)
        self._centring = check_centring(centring)

    # ------------------------------------------------------------------ geometry
    @property
    def shape(self) -> tuple[int, ...]:
        """Points (nodes or cells) per axis."""
        return self._shape

    @property
    def centring(self) -> str:
        """``"node"`` or ``"cell"``: where values sit and which transfers move them."""
        return self._centring

    @property
    def dim(self) -> int:
        """Spatial dimension (1, 2 or 3)."""
        return len(self._shape)

    @property
    def extent(self) -> tuple[float, ...]:
        """Domain length per axis."""
        return self._extent

    @property
    def origin(self) -> tuple[float, ...]:
        """Left end of the domain per axis."""
        return self._origin

    @property
    def h(self) -> tuple[float, ...]:
        """Mesh spacing per axis, ``extent / n``."""
        return tuple(e / n for e, n in zip(self._extent, self._shape, strict=True))

    @property
    def cell_volume(self) -> float:
        """``prod(h)``: the node weight of the discrete L2 inner product ``h**d sum(u v)``."""
        return float(np.prod(self.h))

    @property
    def size(self) -> int:
        """Total number of points."""
        return int(np.prod(self._shape))

    def node_coordinates(self) -> tuple[np.ndarray, ...]:
        """Per axis, the 1-D array of point coordinates: ``origin + h * arange(n)`` (nodes) or
        ``origin + h * (arange(n) + 1/2)`` (cell centres)."""
        shift = 0.5 if self._centring == "cell" else 0.0
        return tuple(o + h * (np.arange(n) + shift)
                     for o, h, n in zip(self._origin, self.h, self._shape, strict=True))

    def meshgrid(self) -> tuple[np.ndarray, ...]:
        """Point coordinates as ``dim`` arrays of shape :attr:`shape` ('ij' indexing)."""
        return tuple(np.meshgrid(*self.node_coordinates(), indexing="ij"))

    # ------------------------------------------------------------------ coarsening
    @property
    def can_coarsen(self) -> bool:
        """Whether every axis has an even number of points >= 2."""
        return all(n >= 2 and n % 2 == 0 for n in self._shape)

    @property
    def max_levels(self) -> int:
        """Levels of the deepest hierarchy starting at this mesh (1 if it cannot coarsen)."""
        levels, mesh = 1, self
        while mesh.can_coarsen:
            levels, mesh = levels + 1, mesh.coarsen()
        return levels

    def coarsen(self) -> Mesh:
        """The mesh with half the points per axis (``h`` doubled, same origin, extent and
        centring)."""
        check_coarsenable(self._shape, f"Mesh with shape {self._shape}")
        return Mesh(tuple(n // 2 for n in self._shape), self._extent, self._origin,
                    self._centring)

    def refine(self) -> Mesh:
        """The mesh with twice the points per axis (``h`` halved, same origin, extent and
        centring)."""
        return Mesh(tuple(2 * n for n in self._shape), self._extent, self._origin,
                    self._centring)

    # ------------------------------------------------------------------ protocol
    def _key(self) -> tuple:
        return (self._shape, self._extent, self._origin, self._centring)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Mesh):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        centring = "" if self._centring == "node" else f", centring={self._centring!r}"
        return (f"Mesh(shape={self._shape}, extent={self._extent}, origin={self._origin}"
                f"{centring})")


@dataclass(frozen=True, eq=False)
class Level:
    """One level of a :class:`MeshHierarchy`.

    Attributes
    ----------
    mesh : Mesh
    P : scipy.sparse.csr_matrix or None
        Prolongation from the next coarser level (of ``mesh.centring``), shape
        ``(mesh.size, coarse.size)``; ``None`` on the coarsest level.
    R : scipy.sparse.csr_matrix or None
        Restriction to the next coarser level, ``R = 2**-d P.T``; ``None`` on the coarsest level.
    """

    mesh: Mesh
    P: sp.csr_matrix | None = None
    R: sp.csr_matrix | None = None


class MeshHierarchy:
    """A list of meshes, finest first, each twice as fine as the next, with their transfers.

    In the spirit of pyamg's ``MultilevelSolver``: ``levels[0]`` is the finest mesh; every level
    but the coarsest holds ``P`` (from the next coarser level) and ``R`` (to it). ``restrict`` and
    ``prolong`` move grid functions (zero outside the grid) across several levels,
    ``restrict_field`` and ``prolong_field`` parameter fields (extended by constants). All of
    them are the transfers of the mesh's centring (:attr:`centring`).

    Parameters
    ----------
    mesh : Mesh
        The finest mesh.
    n_levels : int
        Number of levels (>= 1); at most ``mesh.max_levels``.

    Examples
    --------
    >>> hierarchy = MeshHierarchy(Mesh((28, 28)), 3)
    >>> [level.mesh.shape for level in hierarchy]
    [(28, 28), (14, 14), (7, 7)]
    >>> hierarchy.restrict(np.ones((5, 8, 28, 28)), to_level=2).shape
    (5, 8, 7, 7)
    """

    def __init__(self, mesh: Mesh, n_levels: int):
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        if isinstance(n_levels, bool) or not isinstance(n_levels, numbers.Integral) or n_levels < 1:
            raise ValueError(f"n_levels must be an int >= 1, got {n_levels!r}")
        if n_levels > mesh.max_levels:
            raise ValueError(
                f"n_levels={n_levels} is too many for {mesh!r}: it coarsens to at most "
                f"{mesh.max_levels} level(s) (coarsening needs an even number of nodes >= 2 on "
                "every axis); use fewer levels, or pad or crop the mesh to a size divisible by "
                f"2**{n_levels - 1}"
            )
        meshes = [mesh]
        for _ in range(n_levels - 1):
            meshes.append(meshes[-1].coarsen())
        self.levels = [
            Level(fine, prolongation_matrix(coarse.shape, mesh.centring),
                  restriction_matrix(fine.shape, mesh.centring))
            for fine, coarse in zip(meshes[:-1], meshes[1:], strict=True)
        ] + [Level(meshes[-1])]

    @classmethod
    def from_coarsest(cls, mesh: Mesh, n_levels: int) -> MeshHierarchy:
        """The hierarchy of ``n_levels`` meshes whose coarsest is ``mesh`` (finest: ``mesh``
        refined ``n_levels - 1`` times)."""
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        if isinstance(n_levels, bool) or not isinstance(n_levels, numbers.Integral) or n_levels < 1:
            raise ValueError(f"n_levels must be an int >= 1, got {n_levels!r}")
        finest = mesh
        for _ in range(n_levels - 1):
            finest = finest.refine()
        return cls(finest, n_levels)

    @classmethod
    def spanning(cls, *meshes: Mesh) -> MeshHierarchy:
        """The smallest hierarchy that has every mesh given as a level (its finest is the finest
        of them). ``ValueError`` naming them if one is not another coarsened a whole number of
        times (halving every axis; same extent, origin and centring)."""
        if not meshes or not all(isinstance(m, Mesh) for m in meshes):
            raise TypeError("spanning takes one or more pdecontrol.mesh.Mesh objects")
        finest = max(meshes, key=lambda m: m.size)
        smallest = min(m.size for m in meshes)
        n_levels, mesh = 1, finest
        while mesh.size > smallest and mesh.can_coarsen:
            n_levels, mesh = n_levels + 1, mesh.coarsen()
        hierarchy = cls(finest, n_levels)
        for mesh in meshes:
            hierarchy.level_of(mesh)
        return hierarchy

    def __len__(self) -> int:
        return len(self.levels)

    def __getitem__(self, index):
        return self.levels[index]

    def __iter__(self):
        return iter(self.levels)

    def __repr__(self) -> str:
        lines = [f"MeshHierarchy with {len(self)} level(s):"]
        for number, level in enumerate(self.levels):
            lines.append(f"  level {number}: shape={level.mesh.shape}, h={level.mesh.h}")
        return "\n".join(lines)

    @property
    def dim(self) -> int:
        """Spatial dimension of every mesh in the hierarchy."""
        return self.levels[0].mesh.dim

    @property
    def centring(self) -> str:
        """Centring of every mesh in the hierarchy (``"node"`` or ``"cell"``)."""
        return self.levels[0].mesh.centring

    @property
    def meshes(self) -> list:
        """The meshes, finest first."""
        return [level.mesh for level in self.levels]

    def relative_size(self, level: int) -> float:
        """Nodes of ``level`` over nodes of the finest mesh (``2**-(d * level)``): the cost of a
        grid operation on that level in fine-level units, as pyamg counts cycle complexity."""
        level = self._check_level(level, "level")
        return self.levels[level].mesh.size / self.levels[0].mesh.size

    def level_of(self, mesh: Mesh) -> int:
        """The level whose mesh is ``mesh``; ``ValueError`` naming the meshes if none is."""
        for number, level in enumerate(self.levels):
            if level.mesh == mesh:
                return number
        raise ValueError(
            f"{mesh!r} is not a mesh of this hierarchy (meshes "
            f"{[m.shape for m in self.meshes]} from {self.levels[0].mesh!r}); coarsen or refine "
            "the data to one of them"
        )

    def _check_level(self, level, name: str) -> int:
        if isinstance(level, bool) or not isinstance(level, numbers.Integral):
            raise TypeError(f"{name} must be an int level number, got {level!r}")
        if not 0 <= level < len(self):
            raise ValueError(f"{name} must be in [0, {len(self)}) for this hierarchy, got {level}")
        return int(level)

    def _check_input(self, x, level: int) -> np.ndarray:
        x = as_float_array(x, "x")
        expected = self.levels[level].mesh.shape
        if spatial_shape(x, self.dim, "x") != expected:
            raise ValueError(
                f"x must end in the spatial shape {expected} of level {level}, got shape {x.shape}"
            )
        return x

    def _transfer(self, name: str, x, to_level, from_level) -> np.ndarray:
        """Apply the one-level transfer ``name`` (a key of ``_TRANSFERS``) level by level."""
        once, coarser, reverse = _TRANSFERS[name]
        from_level = self._check_level(from_level, "from_level")
        to_level = self._check_level(to_level, "to_level")
        if (to_level < from_level) if coarser else (to_level > from_level):
            way, relation, other = (
                ("coarser", ">=", "finer") if coarser else ("finer", "<=", "coarser")
            )
            raise ValueError(
                f"{name} goes to {way} levels: need to_level {relation} from_level, got "
                f"to_level={to_level}, from_level={from_level}; use {reverse} to go {other}"
            )
        x = self._check_input(x, from_level)
        for _ in range(abs(to_level - from_level)):
            x = once(x, self.dim, self.centring)
        return x

    def restrict(self, x, to_level: int, from_level: int = 0) -> np.ndarray:
        """Apply ``R`` ``to_level - from_level`` times to a batch ``(..., *spatial)``.

        Same as chaining the levels' ``R`` matrices, computed matrix-free (dtype preserved).
        """
        return self._transfer("restrict", x, to_level, from_level)

    def prolong(self, x, to_level: int, from_level: int) -> np.ndarray:
        """Apply ``P`` ``from_level - to_level`` times to a batch ``(..., *spatial)``.

        Same as chaining the levels' ``P`` matrices, computed matrix-free (dtype preserved).
        """
        return self._transfer("prolong", x, to_level, from_level)

    def restrict_field(self, x, to_level: int, from_level: int = 0) -> np.ndarray:
        """:meth:`restrict` for parameter fields: :func:`~pdecontrol.transfer.restrict_field`
        (restriction of the constant-extended field) ``to_level - from_level`` times."""
        return self._transfer("restrict_field", x, to_level, from_level)

    def prolong_field(self, x, to_level: int, from_level: int) -> np.ndarray:
        """:meth:`prolong` for parameter fields: :func:`~pdecontrol.transfer.prolong_field`
        (prolongation with constant extension) ``from_level - to_level`` times."""
        return self._transfer("prolong_field", x, to_level, from_level)
