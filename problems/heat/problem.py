"""The heat equation with a log-diffusivity: the state equation of the inversion.

    du/dt = div(exp(m) grad u) + q  on the unit square (cube), u = 0 on its boundary,
    u(0) = u0 (one initial temperature per experiment),

discretised in space by :class:`pdecontrol.diffusion.DiffusionOperator` (nodal finite volumes;
boundary nodes held at zero) and in time by an implicit
:class:`~pdecontrol.control.implicit.ThetaMethod`: ``f(u) = -A(m) u + q`` is affine in ``u`` with
``df/du = -A(m)``. The log-diffusivity ``m`` is the one (static) parameter block, a field on the
mesh with the cell volume as inner-product weight. Outputs are the observed temperatures:
the whole field (every unknown node) or the values at sensor nodes.
"""

from __future__ import annotations

import hashlib

import numpy as np

from pdecontrol.control import ControlProblem, LeastSquaresLoss, ParameterLayout
from pdecontrol.diffusion import DiffusionOperator
from pdecontrol.mesh import Mesh

__all__ = ["HeatEquation"]


class HeatEquation(ControlProblem):
    """``du/dt = -A(m) u + q`` on ``mesh`` with the temperatures at ``sensors`` as outputs.

    Parameters
    ----------
    mesh : Mesh
        Nodal mesh of the unit box (``extent`` 1): nodes with an index 0 are on the boundary.
    source : ndarray, optional
        ``q`` of the mesh shape (default 0); boundary values are ignored.
    sensors : ndarray of int, optional
        Flat (C-order) indices of the observed nodes; default every unknown node (the field).
    loss : LeastSquaresLoss, optional
        The misfit, e.g. weighted by ``h**d / sigma**2`` per output (default unit weights).
    """

    def __init__(self, mesh: Mesh, *, source=None, sensors=None, loss=None):
        super().__init__(LeastSquaresLoss() if loss is None else loss)
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        self.mesh = mesh
        self.operator = DiffusionOperator(mesh)
        unknowns = self.operator.unknowns
        source = np.zeros(mesh.shape) if source is None else np.asarray(source, dtype=np.float64)
        if source.shape != mesh.shape:
            raise ValueError(f"source must have the mesh shape {mesh.shape}, got {source.shape}")
        self.source = np.where(unknowns, source, 0.0)
        self.source.flags.writeable = False
        if sensors is None:
            sensors = np.flatnonzero(unknowns)
        sensors = np.asarray(sensors, dtype=np.int64)
        if sensors.ndim != 1 or sensors.size == 0 or np.unique(sensors).size != sensors.size:
            raise ValueError("sensors must be distinct flat node indices (a non-empty 1-D array)")
        if not np.all(unknowns.reshape(-1)[sensors]):
            raise ValueError("sensors must be unknown nodes (every index >= 1): the boundary "
                             "temperature is zero by construction")
        self.sensors = sensors
        self._matrices = {}

    def __repr__(self) -> str:
        return (f"HeatEquation(mesh={self.mesh!r}, sensors={self.sensors.size}, "
                f"loss={self.loss!r})")

    def layout(self, n_steps: int) -> ParameterLayout:
        """One static block ``m`` (mesh shape, weight ``h**d``); no controls."""
        return ParameterLayout(n_steps, controls={}, static={"m": self.mesh.shape},
                               block_weights={"m": self.mesh.cell_volume})

    # ------------------------------------------------------------------ the operator
    def _matrix(self, m: np.ndarray):
        """``A(m)`` (CSR), kept for the last few distinct ``m`` (every step and sweep of an
        evaluation uses the same one)."""
        m = np.ascontiguousarray(m, dtype=np.float64)
        key = hashlib.blake2b(m.tobytes(), digest_size=16).hexdigest()
        matrix = self._matrices.get(key)
        if matrix is None:
            if len(self._matrices) >= 4:
                self._matrices.pop(next(iter(self._matrices)))
            matrix = self._matrices[key] = self.operator.matrix(m)
        return matrix

    def _apply(self, m, u):
        """``A(m) u`` for a batch ``u`` (sparse product)."""
        flat = u.reshape(u.shape[0], -1)
        return np.asarray((self._matrix(m) @ flat.T).T, dtype=u.dtype).reshape(u.shape)

    # ------------------------------------------------------------------ right-hand side
    def rhs(self, y, control, static, t):
        return np.asarray(self.source, dtype=y.dtype) - self._apply(static["m"], y)

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        m = static["m"]
        out = -self._apply(m, dy)
        dm = dstatic.get("m")
        if dm is not None:
            out -= np.asarray(self.operator.derivative(m, y, dm), dtype=y.dtype)
        return out

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        m = static["m"]
        m_bar = -self.operator.derivative_adjoint(m, y, f_bar)
        return -self._apply(m, f_bar), {}, {"m": m_bar}

    def rhs_jacobian(self, control, static, t):
        return -self._matrix(static["m"])

    # ------------------------------------------------------------------ initial state, output
    def initial_state(self, data, static):
        return data * self.operator.unknowns

    def output(self, y_final, static):
        return y_final.reshape(y_final.shape[0], -1)[:, self.sensors]

    def output_tangent(self, y_final, static, dy_final, dstatic):
        return dy_final.reshape(dy_final.shape[0], -1)[:, self.sensors]

    def output_adjoint(self, y_final, static, z_bar):
        y_bar = np.zeros((y_final.shape[0], self.mesh.size), dtype=np.result_type(z_bar, y_final))
        y_bar[:, self.sensors] = z_bar
        return y_bar.reshape(y_final.shape), {}
