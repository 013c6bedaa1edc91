"""Moving a CNN between resolutions: linear maps on the flat parameter vector.

Between a fine mesh (spacing ``h``) and its coarsening (``H = 2h``), with ``P`` d-linear
interpolation and ``R`` full weighting, ``P = 2^d R^T`` (:mod:`pdecontrol.transfer`):

* **Kernels** (``K`` of every layer and the opening ``K0``, every (out, in) pair): Galerkin,
  ``K_H = R K_h P``, read off the stencil by :func:`pdecontrol.transfer.restrict_stencil`
  (a fixed ``3^d x 3^d`` map ``G``); prolongation is its inverse
  (:func:`pdecontrol.transfer.prolong_stencil`), so prolong-then-restrict is the identity.
  In the derivative basis the same maps act on the coefficients: ``T = M_H^-1 G M_h`` with
  ``M`` the problem's ``kernel_matrix``.
* **Biases** ``b``, ``b0``, ``c``: unchanged (constants in space).
* **Classifier** ``W`` (integral form ``z = h^d <W, y>``): ``W_H = R W_h``. Reason: for a coarse
  state ``y_H`` interpolated to the fine mesh, ``h^d <W_h, P y_H> = h^d <P^T W_h, y_H>
  = h^d 2^d <R W_h, y_H> = H^d <R W_h, y_H>``, so the coarse classifier ``R W_h`` gives the same
  outputs as the fine one on interpolated states. Prolongation must therefore satisfy
  ``R W_h = W_H``; the plain interpolant ``P W_H`` does not (``R P != I``: per axis
  ``tridiag(1/8, 3/4, 1/8)``, a smoothing), so we use the minimum-norm solution
  ``W_h = R^T (R R^T)^-1 W_H = P (R P)^-1 W_H`` (``(R P)^-1`` is a small tridiagonal inverse per
  axis, SPD with spectrum in (1, 2)). Then the prolonged network gives exactly the coarse
  outputs on interpolated states (``z_h(P y_H) = z_H(y_H)``) and restrict(prolong(x)) = x.

Several levels are compositions of one-level maps (``levels`` argument).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.sparse.linalg import LinearOperator

from pdecontrol._validation import check_int
from pdecontrol.mesh import MeshHierarchy
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
    "NetworkTransfer",
    "restrict_network",
    "prolong_network",
    "restrict_classifier_only",
    "network_restriction_operator",
]

_KERNEL_BLOCKS = ("K", "K0")
_UNCHANGED_BLOCKS = ("b", "b0", "c")


@lru_cache(maxsize=64)
def _inverse_rp(n_coarse: int) -> np.ndarray:
    """``(R P)^-1`` on one axis with ``n_coarse`` nodes (dense, read-only)."""
    rp = (restriction_matrix((2 * n_coarse,)) @ prolongation_matrix((n_coarse,))).toarray()
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


class NetworkTransfer:
    """One-level transfer of networks between ``fine.mesh`` and the next coarser mesh.

    Parameters
    ----------
    fine : CNNProblem
        The network on the fine mesh (every mesh axis even).
    n_steps : int
        Residual layers (the same on both meshes).

    Attributes
    ----------
    fine, coarse : CNNProblem
    fine_layout, coarse_layout : ParameterLayout
    kernel_restriction : ndarray, shape (3^d, 3^d)
        ``T`` acting on one flattened kernel block entry (``G`` for stencils).
    """

    def __init__(self, fine: CNNProblem, n_steps: int):
        if not isinstance(fine, CNNProblem):
            raise TypeError(f"fine must be a CNNProblem, got {type(fine).__name__}")
        if not fine.mesh.can_coarsen:
            raise ValueError(
                f"the fine mesh {fine.mesh!r} cannot be coarsened (every axis needs an "
                "even number of nodes >= 2); pad or crop the images"
            )
        self.fine, self.coarse = fine, fine.coarsen()
        self.fine_layout, self.coarse_layout = fine.layout(n_steps), self.coarse.layout(n_steps)
        self.dim = fine.dim
        taps = 3**self.dim
        # T^T row j = coarse block of the Galerkin restriction of fine unit block j
        unit = np.eye(taps).reshape((taps,) + fine.kernel_entry_shape)
        restricted = restrict_stencil(fine.block_to_stencils(unit), self.dim)
        self.kernel_restriction = self.coarse.stencils_to_block(restricted).reshape(taps, taps).T
        unit = np.eye(taps).reshape((taps,) + self.coarse.kernel_entry_shape)
        prolonged = prolong_stencil(self.coarse.block_to_stencils(unit), self.dim)
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
        """Fine parameter vector -> coarse (Galerkin kernels, ``W_H = R W_h``, biases kept)."""
        source = self._check(x, self.fine_layout, "x")
        return self._assemble(
            source,
            self.coarse_layout,
            self.kernel_restriction,
            self.fine.kernel_entry_shape,
            self.coarse.kernel_entry_shape,
            lambda W: restrict(W, self.dim),
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
            lambda W: 2.0**-self.dim * prolong(W, self.dim),
        )

    def prolong(self, x) -> np.ndarray:
        """Coarse parameter vector -> fine: inverse Galerkin kernels, ``W_h = P (R P)^-1 W_H``."""
        source = self._check(x, self.coarse_layout, "x")
        inverses = [_inverse_rp(n) for n in self.coarse.mesh.shape]
        return self._assemble(
            source,
            self.fine_layout,
            self.kernel_prolongation,
            self.coarse.kernel_entry_shape,
            self.fine.kernel_entry_shape,
            lambda W: prolong(_apply_per_axis(inverses, W), self.dim),
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
        out["W"][...] = restrict(source["W"], self.dim)
        return out.flat

    def operator(self) -> LinearOperator:
        """:meth:`restrict` as a ``LinearOperator`` (coarse x fine size), exact ``rmatvec``."""
        return LinearOperator(
            (self.coarse_layout.size, self.fine_layout.size),
            matvec=self.restrict,
            rmatvec=self.restrict_adjoint,
            dtype=np.float64,
        )


def _transfers(fine: CNNProblem, n_steps: int, levels: int) -> list:
    """One-level transfers down the hierarchy of ``levels + 1`` meshes from ``fine.mesh``."""
    hierarchy = MeshHierarchy(fine.mesh, check_int(levels, "levels", 1) + 1)
    return [NetworkTransfer(fine.with_mesh(level.mesh), n_steps) for level in hierarchy[:-1]]


def _restrict_levels(restrict, fine: CNNProblem, x, levels: int) -> np.ndarray:
    """Apply ``restrict(transfer, x)`` (a ``NetworkTransfer`` method) ``levels`` times."""
    for transfer in _transfers(fine, fine.n_steps_of(x), levels):
        x = restrict(transfer, x)
    return x


def restrict_network(fine: CNNProblem, x, levels: int = 1) -> np.ndarray:
    """Restrict the network ``x`` of ``fine`` ``levels`` times (mesh spacing ``2^levels h``)."""
    return _restrict_levels(NetworkTransfer.restrict, fine, x, levels)


def prolong_network(coarse: CNNProblem, x, levels: int = 1) -> np.ndarray:
    """Prolong the network ``x`` of ``coarse`` ``levels`` times (mesh spacing ``2^-levels H``)."""
    n_steps = coarse.n_steps_of(x)
    hierarchy = MeshHierarchy.from_coarsest(coarse.mesh, check_int(levels, "levels", 1) + 1)
    fine = coarse.with_mesh(hierarchy[0].mesh)
    for transfer in reversed(_transfers(fine, n_steps, levels)):
        x = transfer.prolong(x)
    return x


def restrict_classifier_only(fine: CNNProblem, x, levels: int = 1) -> np.ndarray:
    """Restrict only ``W`` (``levels`` times); stencil weights and biases are kept as they are."""
    return _restrict_levels(NetworkTransfer.restrict_classifier_only, fine, x, levels)


def network_restriction_operator(fine: CNNProblem, n_steps: int, levels: int = 1) -> LinearOperator:
    """``restrict_network`` over ``levels`` as a ``LinearOperator`` with exact adjoint.

    Use it with :class:`pdecontrol.control.TransformedFunctional` to train fine parameters
    through a coarse functional (resolution-consistent training).
    """
    transfers = _transfers(fine, n_steps, levels)

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
