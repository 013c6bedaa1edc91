"""Moving a CNN between resolutions: linear maps on the flat parameter vector.

Between a fine mesh (spacing ``h``) and its coarsening (``H = 2h``), with ``P`` and ``R`` the
transfers of the mesh's centring (:mod:`pdecontrol.transfer`; nodal: d-linear interpolation and
full weighting, cell-centred: injection and cell averaging), ``P = 2^d R^T``:

* **Kernels** (``K`` of every layer and the opening ``K0``, every (out, in) pair), one of
  :data:`KERNEL_TRANSFERS`:

  - ``"galerkin"`` (default): ``K_H = R K_h P``, read off the stencil by
    :func:`pdecontrol.transfer.restrict_stencil` (a fixed ``3^d x 3^d`` map ``G`` of the
    centring); prolongation is its inverse (:func:`pdecontrol.transfer.prolong_stencil`);
  - ``"rediscretize"``: the same derivative coefficients at the new spacing,
    ``K_H = B(H) B(h)^-1 K_h`` (:func:`pdecontrol.stencils.rediscretize`; stencil ->
    coefficients at ``h`` -> stencil at ``H``); prolongation is ``B(h) B(H)^-1``. It does not
    depend on the centring.

  Either way prolong-then-restrict is the identity. In the derivative basis the same maps act on
  the coefficients: ``T = M_H^-1 G M_h`` with ``M`` the problem's ``kernel_matrix`` (for
  rediscretization ``T`` is the identity up to rounding: the block already holds coefficients).
* **Biases** ``b``, ``b0``, ``c``: unchanged (constants in space).
* **Classifier** ``W`` (integral form ``z = h^d <W, y>``): ``W_H = R W_h``. Reason: for a coarse
  state ``y_H`` interpolated to the fine mesh, ``h^d <W_h, P y_H> = h^d <P^T W_h, y_H>
  = h^d 2^d <R W_h, y_H> = H^d <R W_h, y_H>``, so the coarse classifier ``R W_h`` gives the same
  outputs as the fine one on interpolated states. Prolongation must therefore satisfy
  ``R W_h = W_H``; the plain nodal interpolant ``P W_H`` does not (``R P != I``: per axis
  ``tridiag(1/8, 3/4, 1/8)``, a smoothing), so we use the minimum-norm solution
  ``W_h = R^T (R R^T)^-1 W_H = P (R P)^-1 W_H`` (``(R P)^-1`` is a small tridiagonal inverse per
  axis, SPD with spectrum in (1, 2); the identity for cell-centred meshes, where ``R P = I``).
  Then the prolonged network gives exactly the coarse outputs on interpolated states
  (``z_h(P y_H) = z_H(y_H)``) and restrict(prolong(x)) = x.

Several levels are compositions of one-level maps (``levels`` argument).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.sparse.linalg import LinearOperator

from pdecontrol._validation import check_int
from pdecontrol.mesh import MeshHierarchy
from pdecontrol.stencils import rediscretize
from pdecontrol.transfer import (
    prolong,
    prolong_stencil,
    prolongation_matrix,
    restrict,
    restrict_stencil,
    restriction_matrix,
)

from .network import CNNProblem

__all__ = [
    "KERNEL_TRANSFERS",
    "check_kernel_transfer",
    "NetworkTransfer",
    "restrict_network",
    "prolong_network",
    "restrict_classifier_only",
    "network_restriction_operator",
]

#: How kernels move between meshes: Galerkin ``R K P`` or rediscretization (see the module
#: docstring).
KERNEL_TRANSFERS = ("galerkin", "rediscretize")

_KERNEL_BLOCKS = ("K", "K0")
_UNCHANGED_BLOCKS = ("b", "b0", "c")


def check_kernel_transfer(kernel_transfer) -> str:
    """Return ``kernel_transfer`` after checking that it is one of :data:`KERNEL_TRANSFERS`."""
    if not isinstance(kernel_transfer, str) or kernel_transfer not in KERNEL_TRANSFERS:
        raise ValueError(
            f"kernel_transfer must be one of {KERNEL_TRANSFERS}, got {kernel_transfer!r}"
        )
    return kernel_transfer


@lru_cache(maxsize=64)
def _inverse_rp(n_coarse: int, centring: str) -> np.ndarray:
    """``(R P)^-1`` on one axis with ``n_coarse`` points (dense, read-only)."""
    rp = (restriction_matrix((2 * n_coarse,), centring)
          @ prolongation_matrix((n_coarse,), centring)).toarray()
    inverse = np.linalg.inv(rp)
    inverse.setflags(write=False)
    return inverse


def _apply_per_axis(matrices, x: np.ndarray) -> np.ndarray:
    """Apply one matrix per trailing spatial axis of ``x`` (``len(matrices)`` axes)."""
    dim = len(matrices)
    for k, matrix in enumerate(matrices):
        axis = x.ndim - dim + k
        x = np.moveaxis(np.tensordot(matrix, x, axes=(1, axis)), 0, axis)
    return x


def _stencil_maps(kernel_transfer: str, fine, coarse) -> tuple:
    """``(restrict, prolong)``: functions of stencils ``(..., 3, ..., 3)`` between the meshes of
    the problems ``fine`` and ``coarse``."""
    dim, centring = fine.dim, fine.mesh.centring
    if kernel_transfer == "galerkin":
        return (lambda s: restrict_stencil(s, dim, centring),
                lambda s: prolong_stencil(s, dim, centring))
    h, H = fine.mesh.h, coarse.mesh.h
    return lambda s: rediscretize(s, h, H, dim), lambda s: rediscretize(s, H, h, dim)


class NetworkTransfer:
    """One-level transfer of networks between ``fine.mesh`` and the next coarser mesh.

    Parameters
    ----------
    fine : CNNProblem
        The network on the fine mesh (every mesh axis even); its mesh's centring picks ``R``
        and ``P``.
    n_steps : int
        Residual layers (the same on both meshes).
    kernel_transfer : {"galerkin", "rediscretize"}, default "galerkin"
        How kernels move (:data:`KERNEL_TRANSFERS`).

    Attributes
    ----------
    fine, coarse : CNNProblem
    fine_layout, coarse_layout : ParameterLayout
    kernel_restriction, kernel_prolongation : ndarray, shape (3^d, 3^d)
        ``T`` and its inverse acting on one flattened kernel block entry (``G`` and ``G^-1``
        for Galerkin stencils).
    """

    def __init__(self, fine: CNNProblem, n_steps: int, kernel_transfer: str = "galerkin"):
        if not isinstance(fine, CNNProblem):
            raise TypeError(f"fine must be a CNNProblem, got {type(fine).__name__}")
        if not fine.mesh.can_coarsen:
            raise ValueError(
                f"the fine mesh {fine.mesh!r} cannot be coarsened (every axis needs an "
                "even number of nodes >= 2); pad or crop the images"
            )
        self.fine, self.coarse = fine, fine.coarsen()
        self.fine_layout, self.coarse_layout = fine.layout(n_steps), self.coarse.layout(n_steps)
        self.dim, self.centring = fine.dim, fine.mesh.centring
        self.kernel_transfer = check_kernel_transfer(kernel_transfer)
        restrict_stencils, prolong_stencils = _stencil_maps(kernel_transfer, fine, self.coarse)
        taps = 3**self.dim
        # T^T row j = coarse block of the restriction of fine unit block j
        unit = np.eye(taps).reshape((taps,) + fine.kernel_entry_shape)
        restricted = restrict_stencils(fine.block_to_stencils(unit))
        self.kernel_restriction = self.coarse.stencils_to_block(restricted).reshape(taps, taps).T
        unit = np.eye(taps).reshape((taps,) + self.coarse.kernel_entry_shape)
        prolonged = prolong_stencils(self.coarse.block_to_stencils(unit))
        self.kernel_prolongation = fine.stencils_to_block(prolonged).reshape(taps, taps).T
        for matrix in (self.kernel_restriction, self.kernel_prolongation):
            matrix.setflags(write=False)

    # ------------------------------------------------------------------ helpers
    def _map_kernels(self, matrix: np.ndarray, block: np.ndarray, entry_shape: tuple) -> np.ndarray:
        """``matrix`` applied to every flattened kernel entry of ``block``; (..., 3^d)."""
        lead = block.shape[: block.ndim - len(entry_shape)]
        return block.reshape(lead + (3**self.dim,)) @ matrix.T

    def _check(self, x, layout, name):
        problem = self.fine if layout is self.fine_layout else self.coarse
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1 or x.size != layout.size:
            raise ValueError(
                f"{name} has shape {x.shape} but the network on {problem.mesh!r} with "
                f"{layout.n_steps} layers has {layout.size} parameters; check the mesh level and "
                "the number of layers"
            )
        return layout.unflatten(x, name)

    def _assemble(
        self, source, target_layout, kernel_matrix, source_entry, target_entry, classifier
    ):
        out = target_layout.zeros()
        for name in _KERNEL_BLOCKS:
            mapped = self._map_kernels(kernel_matrix, source[name], source_entry)
            out[name][...] = mapped.reshape(out[name].shape)
        for name in _UNCHANGED_BLOCKS:
            out[name][...] = source[name]
        out["W"][...] = classifier(source["W"])
        return out.flat

    # ------------------------------------------------------------------ maps
    def restrict(self, x) -> np.ndarray:
        """Fine parameter vector -> coarse (kernels moved, ``W_H = R W_h``, biases kept)."""
        source = self._check(x, self.fine_layout, "x")
        return self._assemble(
            source,
            self.coarse_layout,
            self.kernel_restriction,
            self.fine.kernel_entry_shape,
            self.coarse.kernel_entry_shape,
            lambda W: restrict(W, self.dim, self.centring),
        )

    def restrict_adjoint(self, v) -> np.ndarray:
        """Euclidean transpose of :meth:`restrict`: coarse (dual) vector -> fine."""
        source = self._check(v, self.coarse_layout, "v")
        return self._assemble(
            source,
            self.fine_layout,
            self.kernel_restriction.T,
            self.coarse.kernel_entry_shape,
            self.fine.kernel_entry_shape,
            lambda W: 2.0**-self.dim * prolong(W, self.dim, self.centring),
        )

    def prolong(self, x) -> np.ndarray:
        """Coarse parameter vector -> fine: inverse kernel map, ``W_h = P (R P)^-1 W_H``."""
        source = self._check(x, self.coarse_layout, "x")
        inverses = [_inverse_rp(n, self.centring) for n in self.coarse.mesh.shape]
        return self._assemble(
            source,
            self.fine_layout,
            self.kernel_prolongation,
            self.coarse.kernel_entry_shape,
            self.fine.kernel_entry_shape,
            lambda W: prolong(_apply_per_axis(inverses, W), self.dim, self.centring),
        )

    def restrict_classifier_only(self, x) -> np.ndarray:
        """The paper's ablation: ``W_H = R W_h``, fine stencil weights used unchanged on ``H``."""
        source = self._check(x, self.fine_layout, "x")
        out = self.coarse_layout.zeros()
        for name in _KERNEL_BLOCKS:
            out[name][...] = self.coarse.stencils_to_block(
                self.fine.block_to_stencils(source[name])
            )
        for name in _UNCHANGED_BLOCKS:
            out[name][...] = source[name]
        out["W"][...] = restrict(source["W"], self.dim, self.centring)
        return out.flat

    def operator(self) -> LinearOperator:
        """:meth:`restrict` as a ``LinearOperator`` (coarse x fine size), exact ``rmatvec``."""
        return LinearOperator(
            (self.coarse_layout.size, self.fine_layout.size),
            matvec=self.restrict,
            rmatvec=self.restrict_adjoint,
            dtype=np.float64,
        )


def _transfers(fine: CNNProblem, n_steps: int, levels: int, kernel_transfer: str) -> list:
    """One-level transfers down the hierarchy of ``levels + 1`` meshes from ``fine.mesh``."""
    hierarchy = MeshHierarchy(fine.mesh, check_int(levels, "levels", 1) + 1)
    return [NetworkTransfer(fine.with_mesh(level.mesh), n_steps, kernel_transfer)
            for level in hierarchy[:-1]]


def _restrict_levels(restrict, fine: CNNProblem, x, levels: int,
                     kernel_transfer: str = "galerkin") -> np.ndarray:
    """Apply ``restrict(transfer, x)`` (a ``NetworkTransfer`` method) ``levels`` times."""
    for transfer in _transfers(fine, fine.n_steps_of(x), levels, kernel_transfer):
        x = restrict(transfer, x)
    return x


def restrict_network(
    fine: CNNProblem, x, levels: int = 1, kernel_transfer: str = "galerkin"
) -> np.ndarray:
    """Restrict the network ``x`` of ``fine`` ``levels`` times (mesh spacing ``2^levels h``),
    kernels by ``kernel_transfer`` (:data:`KERNEL_TRANSFERS`)."""
    return _restrict_levels(NetworkTransfer.restrict, fine, x, levels, kernel_transfer)


def prolong_network(
    coarse: CNNProblem, x, levels: int = 1, kernel_transfer: str = "galerkin"
) -> np.ndarray:
    """Prolong the network ``x`` of ``coarse`` ``levels`` times (mesh spacing ``2^-levels H``),
    kernels by the inverse of ``kernel_transfer`` (:data:`KERNEL_TRANSFERS`)."""
    n_steps = coarse.n_steps_of(x)
    hierarchy = MeshHierarchy.from_coarsest(coarse.mesh, check_int(levels, "levels", 1) + 1)
    fine = coarse.with_mesh(hierarchy[0].mesh)
    for transfer in reversed(_transfers(fine, n_steps, levels, kernel_transfer)):
        x = transfer.prolong(x)
    return x


def restrict_classifier_only(fine: CNNProblem, x, levels: int = 1) -> np.ndarray:
    """Restrict only ``W`` (``levels`` times); stencil weights and biases are kept as they are."""
    return _restrict_levels(NetworkTransfer.restrict_classifier_only, fine, x, levels)


def network_restriction_operator(
    fine: CNNProblem, n_steps: int, levels: int = 1, kernel_transfer: str = "galerkin"
) -> LinearOperator:
    """``restrict_network`` over ``levels`` as a ``LinearOperator`` with exact adjoint.

    Use it with :class:`pdecontrol.control.TransformedFunctional` to train fine parameters
    through a coarse functional (resolution-consistent training).
    """
    transfers = _transfers(fine, n_steps, levels, kernel_transfer)

    def matvec(x):
        for transfer in transfers:
            x = transfer.restrict(np.ravel(x))
        return x

    def rmatvec(v):
        for transfer in reversed(transfers):
            v = transfer.restrict_adjoint(np.ravel(v))
        return v

    return LinearOperator(
        (transfers[-1].coarse_layout.size, transfers[0].fine_layout.size),
        matvec=matvec,
        rmatvec=rmatvec,
        dtype=np.float64,
    )
