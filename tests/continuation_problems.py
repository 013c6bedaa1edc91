"""A small non-CNN problem for the continuation driver: 1D diffusion with a distributed control.

``dy/dt = nu y_xx + theta(t, x)`` on a nodal mesh of ``[0, 1)`` (zero outside), ``y(0) = data``,
output ``y(T)``; the control ``theta`` is a grid function per time step (block weight ``h``, so
inner products are discrete L2). Each example is an initial state and its target final state.
"""

import numpy as np

from pdecontrol.continuation import ContinuationProblem, StageSetup
from pdecontrol.control import ControlFunctional, ControlProblem, ParameterLayout, Tikhonov
from pdecontrol.mesh import Mesh, MeshHierarchy


def second_difference(y: np.ndarray, h: float) -> np.ndarray:
    """``(y[i-1] - 2 y[i] + y[i+1]) / h**2`` along the last axis, zero outside (symmetric)."""
    padded = np.pad(y, [(0, 0)] * (y.ndim - 1) + [(1, 1)])
    return (padded[..., :-2] - 2.0 * y + padded[..., 2:]) / h**2


class ControlledDiffusion(ControlProblem):
    """``f(y, theta) = nu y_xx + theta`` on ``mesh``."""

    def __init__(self, mesh: Mesh, nu: float):
        super().__init__()
        self.mesh, self.nu = mesh, nu

    def rhs(self, y, control, static, t):
        return self.nu * second_difference(y, self.mesh.h[0]) + control["theta"]

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return self.nu * second_difference(dy, self.mesh.h[0]) + dcontrol["theta"]

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        return self.nu * second_difference(f_bar, self.mesh.h[0]), {"theta": f_bar.sum(axis=0)}, {}


#: Cost of one example's evaluation in right-hand sides per step (forward; forward + adjoint;
#: the operator's forward; tangent + adjoint).
DIFFUSION_COST = {"value": 1, "gradient": 2, "gauss_newton_operator": 1, "gauss_newton_product": 2}


class DiffusionControl(ContinuationProblem):
    """The diffusion problem on a two-level hierarchy, for :func:`run_continuation`."""

    grid_blocks = ("theta",)
    work_unit = "fine right-hand sides"

    def __init__(self, n_fine=16, n_examples=6, nu=0.01, final_time=0.5, alpha=1e-3, seed=0):
        if not nu > 0:
            raise ValueError(f"nu must be > 0, got {nu}")
        rng = np.random.default_rng(seed)
        self.hierarchy = MeshHierarchy(Mesh(n_fine), 2)
        x = self.hierarchy[0].mesh.node_coordinates()[0]
        self.data = np.stack([np.sin(np.pi * (k + 1) * x) for k in range(n_examples)])
        self.targets = 0.5 * self.data + 0.1 * rng.standard_normal(self.data.shape)
        self.nu, self.final_time, self.alpha = nu, final_time, alpha

    def layout(self, stage):
        mesh = self.hierarchy[stage.level].mesh
        return ParameterLayout(stage.n_steps, controls={"theta": mesh.shape},
                               block_weights={"theta": mesh.cell_volume})

    def functional(self, stage):
        level = stage.level
        mesh = self.hierarchy[level].mesh
        data = self.hierarchy.restrict(self.data, to_level=level)
        targets = self.hierarchy.restrict(self.targets, to_level=level)
        return ControlFunctional(ControlledDiffusion(mesh, self.nu), self.layout(stage), data,
                                 targets, final_time=self.final_time,
                                 regularizers=[Tikhonov("theta", self.alpha)])

    def setup(self, stage, work):
        functional = self.functional(stage)
        work.watch(functional, {k: v * stage.n_steps for k, v in DIFFUSION_COST.items()},
                   stage.level)
        truth = np.zeros(functional.size)
        return StageSetup(functional, monitor=lambda x: {
            "distance_from_zero": float(np.linalg.norm(x - truth))})

    def initial_point(self, stage):
        return self.layout(stage).zeros().flat

    def describe(self):
        return {"problem": "diffusion control", "n_fine": self.hierarchy[0].mesh.shape[0],
                "nu": self.nu, "final_time": self.final_time, "alpha": self.alpha,
                "data": float(self.data.sum()), "targets": float(self.targets.sum())}
