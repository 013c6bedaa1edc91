"""The variable-coefficient diffusion operator ``-div(exp(m) grad u)`` with Dirichlet boundaries.

Boundary convention (node-centred :class:`~pdecontrol.mesh.Mesh`, ``n`` nodes per axis, node ``i``
at ``origin + i h``): the state ``u`` is zero on the whole boundary of the box
``[origin, origin + extent]``. Nodes with an index 0 on some axis lie on the near faces and are
held at zero; the virtual node ``i = n`` lies on the far face and is zero by the "zero outside"
convention of the package. The unknowns are the ``prod(n_k - 1)`` nodes with every index >= 1;
state arrays keep the full mesh shape with the boundary nodes present. The same holds on every
level of a :class:`~pdecontrol.mesh.MeshHierarchy` (coarsening keeps node 0 and the virtual node),
so every level discretises the same domain.

The log-coefficient ``m`` lives on all nodes (boundary included). The coefficient of the face
between nodes ``i`` and ``i + 1`` along an axis is the arithmetic mean of ``exp(m)`` at the two
nodes, with the constant extension ``m[n] = m[n - 1]`` at the far face.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._validation import as_float_array, check_finite
from .assembly import variable_stencil_matrix
from .mesh import Mesh
from .transfer._shapes import spatial_shape

__all__ = ["DiffusionOperator"]


def _leading(x: np.ndarray, axis: int) -> np.ndarray:
    """View of ``x`` with ``axis`` moved to the front (writes go through to ``x``)."""
    return np.moveaxis(x, axis, 0)


def _difference(u: np.ndarray, axis: int) -> np.ndarray:
    """``g[i] = u[i] - u[i + 1]`` along ``axis``, with the virtual node ``u[n] = 0``."""
    g = u.copy()
    _leading(g, axis)[:-1] -= _leading(u, axis)[1:]
    return g


def _face_mean(e: np.ndarray, axis: int) -> np.ndarray:
    """``(e[i] + e[i + 1]) / 2`` for the faces ``i + 1/2``, ``i = 0..n-1``; ``e[n] = e[n - 1]``."""
    out = e.copy()
    _leading(out, axis)[:-1] += _leading(e, axis)[1:]
    _leading(out, axis)[-1] += _leading(e, axis)[-1]
    return 0.5 * out


def _face_mean_transpose(w: np.ndarray, axis: int) -> np.ndarray:
    """Transpose of :func:`_face_mean`: face values ``w`` back to the nodes."""
    out = w.copy()
    _leading(out, axis)[1:] += _leading(w, axis)[:-1]
    _leading(out, axis)[-1] += _leading(w, axis)[-1]
    return 0.5 * out


def _from_previous(face: np.ndarray, axis: int, start: int) -> np.ndarray:
    """``out[i] = face[i - 1]`` along ``axis`` for ``i >= start``, zero below."""
    out = np.zeros_like(face)
    _leading(out, axis)[start:] = _leading(face, axis)[start - 1 : -1]
    return out


class DiffusionOperator:
    """``A(m) u = -div(exp(m) grad u)`` on a mesh, zero Dirichlet values on the box boundary.

    Finite-volume ``2d+1``-point stencil: at every unknown node ``i``,
    ``(A u)_i = sum_k h_k**-2 [c_{i+1/2} (u_i - u_{i+1}) + c_{i-1/2} (u_i - u_{i-1})]`` along
    each axis ``k``, with face coefficients ``c`` the mean of ``exp(m)`` at the two end nodes
    (``m[n] = m[n-1]`` at the far face) and ``u = 0`` at boundary and virtual nodes (see the
    module docstring). Units: ``A u`` approximates the pointwise value of ``-div(exp(m) grad u)``
    (``h**-2`` scaling, no ``h**d`` cell volume), so ``A u = f`` discretises the PDE with ``f``
    sampled at the nodes, and ``mesh.cell_volume * <u, A u>`` approximates the energy
    ``integral exp(m) |grad u|**2``. ``A`` is symmetric positive semi-definite: its rows and
    columns of boundary nodes are zero, it is positive definite on the unknowns, and
    ``I + c A`` is SPD for ``c > 0``.

    Shapes: ``m`` and ``dm`` have the mesh shape; states ``u``, ``v`` have shape
    ``(*batch, *mesh.shape)`` (any leading axes). Values of ``u`` at boundary nodes are ignored
    and come out zero.

    Parameters
    ----------
    mesh : Mesh

    Examples
    --------
    >>> operator = DiffusionOperator(Mesh(4))      # nodes x = 0, 1/4, 1/2, 3/4; u(0) = u(1) = 0
    >>> operator.matrix(np.zeros(4)).toarray()
    array([[  0.,   0.,   0.,   0.],
           [  0.,  32., -16.,   0.],
           [  0., -16.,  32., -16.],
           [  0.,   0., -16.,  32.]])
    """

    def __init__(self, mesh: Mesh):
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        self._mesh = mesh
        unknowns = np.zeros(mesh.shape, dtype=bool)
        unknowns[(slice(1, None),) * mesh.dim] = True
        unknowns.flags.writeable = False
        self._unknowns = unknowns
        self._inverse_h2 = tuple(1.0 / h**2 for h in mesh.h)

    @property
    def mesh(self) -> Mesh:
        """The mesh the operator acts on."""
        return self._mesh

    @property
    def unknowns(self) -> np.ndarray:
        """Read-only bool array of the mesh shape: True at the nodes with every index >= 1."""
        return self._unknowns

    def __repr__(self) -> str:
        return f"DiffusionOperator({self._mesh!r})"

    # ------------------------------------------------------------------ validation
    def _field(self, m, name: str) -> np.ndarray:
        m = check_finite(as_float_array(m, name), name)
        if m.shape != self._mesh.shape:
            raise ValueError(
                f"{name} must have the mesh shape {self._mesh.shape} (one value per node), "
                f"got shape {m.shape}"
            )
        return m

    def _state(self, u, name: str) -> np.ndarray:
        u = check_finite(as_float_array(u, name), name)
        if spatial_shape(u, self._mesh.dim, name) != self._mesh.shape:
            raise ValueError(
                f"{name} must have shape (*batch, *{self._mesh.shape}) (the mesh shape last), "
                f"got shape {u.shape}"
            )
        return u

    # ------------------------------------------------------------------ internals
    def _faces(self, e: np.ndarray) -> list:
        """Face coefficients over ``h_k**2`` per axis, from nodal values ``e`` (linear in ``e``)."""
        return [_face_mean(e, k) * self._inverse_h2[k] for k in range(self._mesh.dim)]

    def _apply_faces(self, faces: list, u: np.ndarray) -> np.ndarray:
        """``sum_k`` (flux out through face ``i+1/2``) - (flux in through face ``i-1/2``)."""
        u = u * self._unknowns
        out = np.zeros_like(u, dtype=np.result_type(u, faces[0]))
        for k, face in enumerate(faces):
            axis = u.ndim - self._mesh.dim + k
            flux = face * _difference(u, axis)
            out += flux
            _leading(out, axis)[1:] -= _leading(flux, axis)[:-1]
        out *= self._unknowns
        return out

    # ------------------------------------------------------------------ public
    def matrix(self, m) -> sp.csr_matrix:
        """``A(m)`` as CSR, shape ``(N, N)``, ``N = mesh.size``, C-order node numbering.

        Symmetric (exactly), positive semi-definite; rows and columns of boundary nodes are zero
        and not stored.
        """
        m = self._field(m, "m")
        dim = self._mesh.dim
        faces = self._faces(np.exp(m))
        offsets = [np.zeros(dim, dtype=int)]
        weights = [sum(face + _from_previous(face, k, start=1) for k, face in enumerate(faces))]
        for k, face in enumerate(faces):
            unit = np.eye(dim, dtype=int)[k]
            offsets += [unit, -unit]
            # Node i - e_k is an unknown only if its index on axis k is >= 1, i.e. i_k >= 2.
            weights += [-face, -_from_previous(face, k, start=2)]
        weights = np.stack(weights) * self._unknowns
        return variable_stencil_matrix(np.array(offsets), weights, self._mesh.shape)

    def apply(self, m, u) -> np.ndarray:
        """``A(m) u`` matrix-free; ``u`` of shape ``(*batch, *mesh.shape)``, same shape out."""
        m = self._field(m, "m")
        return self._apply_faces(self._faces(np.exp(m)), self._state(u, "u"))

    def derivative(self, m, u, dm) -> np.ndarray:
        """``(dA/dm [dm]) u``: the derivative of ``m -> A(m) u`` in direction ``dm``.

        ``u`` of shape ``(*batch, *mesh.shape)``, ``dm`` of the mesh shape; shape of ``u`` out.
        """
        m, dm = self._field(m, "m"), self._field(dm, "dm")
        return self._apply_faces(self._faces(np.exp(m) * dm), self._state(u, "u"))

    def derivative_adjoint(self, m, u, v) -> np.ndarray:
        """Gradient in ``m`` of ``sum_batch <v, A(m) u>``: the transpose of :meth:`derivative`.

        ``u`` and ``v`` of one shape ``(*batch, *mesh.shape)``; returns the mesh shape (summed
        over the batch).
        """
        m = self._field(m, "m")
        u, v = self._state(u, "u"), self._state(v, "v")
        if u.shape != v.shape:
            raise ValueError(f"v must have the shape of u {u.shape}, got {v.shape}")
        u, v = u * self._unknowns, v * self._unknowns
        dim = self._mesh.dim
        batch_axes = tuple(range(u.ndim - dim))
        gradient = np.zeros(self._mesh.shape, dtype=np.result_type(m, u, v))
        for k in range(dim):
            axis = u.ndim - dim + k
            products = np.sum(_difference(u, axis) * _difference(v, axis), axis=batch_axes)
            gradient += self._inverse_h2[k] * _face_mean_transpose(products, k)
        return np.exp(m) * gradient
