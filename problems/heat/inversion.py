"""Recovering the log-diffusivity of the heat equation from noisy temperatures: the inversion.

A synthetic truth ``m_true(x)`` (a smooth bump of higher and one of lower diffusivity) drives the
heat equation of :mod:`problems.heat.problem` on the finest mesh; its temperatures at the
observation times, with Gaussian noise of standard deviation ``noise * max |u|``, are the data:
the whole field or the values at sensors (the interior nodes of the coarsest mesh, so every level
sees the same sensors). :class:`HeatInversion` is a
:class:`pdecontrol.continuation.ContinuationProblem`: on every level of its mesh hierarchy the
objective is

    J(m) = 1/E sum_e 1/2 sum_k sum_i w_i (u_e(t_k)_i - d_e,k,i)^2
           + gamma/2 int |grad m|^2 dx + beta/2 int m^2 dx,

``w = h^d / sigma^2`` for field data (a discrete L2 norm: the same misfit at every resolution;
coarse levels fit the data restricted by full weighting) and ``1 / sigma^2`` at sensors, ``E``
experiments (initial temperatures: zero, then Gaussian bumps; all heated by the same source).
The field moves between levels with the boundary-respecting field transfers. Gauss-Newton-CG
(Eisenstat-Walker forcing, Armijo) is preconditioned by the inverse of the regularisation's
Hessian ``(gamma K + beta M)^-1`` (factorized once per level), so CG works in the norm of the
prior and its iteration counts do not grow with the mesh.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from pdecontrol.continuation import ContinuationProblem, Schedule, Stage, StageSetup
from pdecontrol.control import ControlFunctional, GradientPenalty, LeastSquaresLoss, Tikhonov
from pdecontrol.control.implicit import ThetaMethod
from pdecontrol.distributed import distribute, on_shards
from pdecontrol.linear_solvers import SOLVER_NAMES, SparseLU, solver_by_name
from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.optimize import Stopping, gauss_newton_cg

from .problem import HeatEquation

__all__ = ["HeatSettings", "HeatInversion", "true_log_diffusivity", "HEAT_COST",
           "OBSERVATIONS", "MAX_MAGNITUDE"]

#: Implicit steps (one solve with the step matrix) per example and time step, by evaluation kind:
#: a forward solve; forward and adjoint; the operator's forward solve; tangent and adjoint.
HEAT_COST = {"value": 1, "gradient": 2, "gauss_newton_operator": 1, "gauss_newton_product": 2}
#: What is observed.
OBSERVATIONS = ("field", "sensors")
#: Largest ``final_time``, ``source``, ``gamma`` and ``beta`` of :class:`HeatSettings`.
MAX_MAGNITUDE = 1e6


@dataclass(frozen=True)
class HeatSettings:
    """Everything that defines a heat inversion run (frozen, validated).

    Parameters
    ----------
    dim : int
        2 (unit square) or 3 (unit cube).
    resolution : int
        Nodes per axis of the finest mesh (divisible by ``2**(levels - 1)``).
    levels : int
        Meshes of the hierarchy; the run goes coarse to fine through all of them.
    final_time : float
        ``T``.
    n_steps : int
        Time steps (the same on every level); every observation time must be a multiple of
        ``T / n_steps``.
    observation_times : tuple of float
        When the temperature is observed.
    n_experiments : int
        Initial temperatures: zero, then Gaussian bumps (at most 4).
    source : float
        Uniform heat source ``q``.
    observations : {"field", "sensors"}
        The whole temperature field, or the interior nodes of the coarsest mesh.
    noise : float
        Noise standard deviation relative to the largest observed temperature.
    gamma, beta : float
        Weights of the H1 seminorm and of the L2 norm of ``m``.
    theta : float
        1 backward Euler, 0.5 Crank-Nicolson.
    solver : {"splu", "amg-sa", "amg-rs"}
        Linear solver of the time steps; ``solver_rtol`` is the AMG-CG tolerance.
    gn_iterations, grtol, cg_maxiter : int, float, int
        Gauss-Newton iterations per level at most, relative gradient reduction that ends the
        finest level, CG iterations per Gauss-Newton step at most.
    coarse_grtol : float
        Relative gradient reduction that ends a coarse level (its solution is only a start).
    forcing_max : float
        Cap of the Eisenstat-Walker forcing term (0.1: 6 Gauss-Newton iterations against 8-9
        with 0.5 on the default problem at 32x32 and 64x64, docs/heat.md).
    seed : int
        Seeds the noise.

    Notes
    -----
    ``final_time``, ``source``, ``gamma`` and ``beta`` are at most :data:`MAX_MAGNITUDE` and
    ``noise`` at most 1 (100% of the largest temperature): beyond, values overflow (``source``
    or ``noise`` ``1e300``: ``OverflowError``) or one term decides alone.
    """

    dim: int = 2
    resolution: int = 64
    levels: int = 2
    final_time: float = 0.1
    n_steps: int = 16
    observation_times: tuple = (0.025, 0.05, 0.075, 0.1)
    n_experiments: int = 3
    source: float = 10.0
    observations: str = "field"
    noise: float = 0.01
    gamma: float = 0.01
    beta: float = 1e-4
    theta: float = 1.0
    solver: str = "splu"
    solver_rtol: float = 1e-10
    gn_iterations: int = 30
    grtol: float = 1e-6
    coarse_grtol: float = 1e-3
    cg_maxiter: int = 100
    forcing_max: float = 0.1
    seed: int = 0

    def __post_init__(self):
        def need(condition, message):
            if not condition:
                raise ValueError(f"HeatSettings.{message}")

        need(self.dim in (2, 3), f"dim must be 2 or 3, got {self.dim!r}")
        for name in ("resolution", "levels", "n_steps", "n_experiments", "gn_iterations",
                     "cg_maxiter"):
            value = getattr(self, name)
            need(isinstance(value, (int, np.integer)) and not isinstance(value, bool)
                 and value >= 1, f"{name} must be an integer >= 1, got {value!r}")
        need(self.resolution % 2 ** (self.levels - 1) == 0
             and self.resolution // 2 ** (self.levels - 1) >= 4,
             f"resolution {self.resolution} must be divisible by 2**(levels - 1) = "
             f"{2 ** (self.levels - 1)} with at least 4 nodes per axis on the coarsest level")
        need(self.n_experiments <= 5, f"n_experiments must be at most 5, got {self.n_experiments}")
        object.__setattr__(self, "observation_times",
                           tuple(float(t) for t in self.observation_times))
        for name in ("final_time", "noise", "gamma", "solver_rtol", "grtol", "coarse_grtol",
                     "forcing_max"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and np.isfinite(value) and value > 0,
                 f"{name} must be a finite number > 0, got {value!r}")
        for name in ("beta", "source"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and np.isfinite(value) and value >= 0,
                 f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("final_time", "source", "gamma", "beta"):
            need(getattr(self, name) <= MAX_MAGNITUDE,
                 f"{name} must be <= {MAX_MAGNITUDE:g}, got {getattr(self, name)!r}")
        need(self.noise <= 1, f"noise must be <= 1 (100% of the largest temperature), got "
             f"{self.noise!r}")
        need(0.0 < self.theta <= 1.0, f"theta must lie in (0, 1], got {self.theta!r}")
        need(self.observations in OBSERVATIONS,
             f"observations must be one of {OBSERVATIONS}, got {self.observations!r}")
        need(self.solver in SOLVER_NAMES,
             f"solver must be one of {SOLVER_NAMES}, got {self.solver!r}")
        need(max(self.solver_rtol, self.grtol, self.coarse_grtol, self.forcing_max) < 1,
             "solver_rtol, grtol, coarse_grtol and forcing_max must be below 1")
        need(all(0 < t <= self.final_time for t in self.observation_times)
             and list(self.observation_times) == sorted(set(self.observation_times)),
             f"observation_times must increase within (0, final_time], got "
             f"{self.observation_times}")

    def replace(self, **changes) -> HeatSettings:
        """A copy with some fields changed (validated)."""
        values = asdict(self)
        values.update(changes)
        return HeatSettings(**values)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["observation_times"] = list(self.observation_times)
        return values

    def linear_solver(self):
        """The linear solver of the time steps."""
        if self.solver == "splu":
            return SparseLU()
        return solver_by_name(self.solver, rtol=self.solver_rtol)


def true_log_diffusivity(points) -> np.ndarray:
    """The synthetic truth at points ``(dim, ...)`` (coordinates first): a bump of diffusivity
    ``e`` times the background at (0.35, 0.65, ...), one of ``e**-0.8`` at (0.7, 0.3, ...)."""
    points = np.asarray(points, dtype=np.float64)
    dim = points.shape[0]
    centres = [np.array([0.35, 0.65, 0.5][:dim]), np.array([0.7, 0.3, 0.5][:dim])]
    m = np.zeros(points.shape[1:])
    for amplitude, centre, width in ((1.0, centres[0], 0.12), (-0.8, centres[1], 0.1)):
        distance2 = sum((points[k] - centre[k]) ** 2 for k in range(dim))
        m += amplitude * np.exp(-distance2 / (2 * width**2))
    return m


def _initial_temperatures(mesh: Mesh, n_experiments: int) -> np.ndarray:
    """``(E, *mesh.shape)``: zero, then bumps of height 1 at four points."""
    grid = np.stack(mesh.meshgrid())
    centres = [(0.3, 0.3, 0.5), (0.7, 0.7, 0.5), (0.3, 0.7, 0.5), (0.7, 0.3, 0.5)]
    states = [np.zeros(mesh.shape)]
    for centre in centres[: n_experiments - 1]:
        distance2 = sum((grid[k] - centre[k]) ** 2 for k in range(mesh.dim))
        states.append(np.exp(-distance2 / (2 * 0.1**2)))
    return np.stack(states)


def _solve_counts(functional: ControlFunctional) -> tuple:
    """``(factorization setups, solves, solver iterations)`` of a functional's stepper (on a
    worker, of its copy of the stepper)."""
    stepper = functional.stepper
    return stepper.cache.setups, stepper.solves, stepper.solver_iterations


def _stiffness(mesh: Mesh) -> sp.csr_matrix:
    """``K`` with ``m^T K m = h^d sum_axes |D_k m / h_k|^2`` (differences inside the grid)."""
    dim, blocks = mesh.dim, []
    for k in range(dim):
        n = mesh.shape[k]
        difference = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1],
                              shape=(n - 1, n)) / mesh.h[k]
        factors = [sp.identity(mesh.shape[j]) if j != k else difference for j in range(dim)]
        operator = factors[0]
        for factor in factors[1:]:
            operator = sp.kron(operator, factor)
        blocks.append(operator)
    stack = sp.vstack(blocks).tocsr()
    return (mesh.cell_volume * (stack.T @ stack)).tocsr()


class HeatInversion(ContinuationProblem):
    """The inversion on the hierarchy of ``settings.levels`` meshes (see the module docstring)."""

    field_blocks = ("m",)
    work_unit = "fine-mesh implicit steps"

    def __init__(self, settings: HeatSettings):
        if not isinstance(settings, HeatSettings):
            raise TypeError(f"settings must be HeatSettings, got {type(settings).__name__}")
        self.settings = settings
        fine = Mesh((settings.resolution,) * settings.dim, extent=1.0)
        self.hierarchy = MeshHierarchy(fine, settings.levels)
        self.initial_states = _initial_temperatures(fine, settings.n_experiments)
        clean = self._simulate(fine, self.truth(0))
        scale = float(np.max(np.abs(clean)))
        self.sigma = settings.noise * scale
        rng = np.random.default_rng(settings.seed)
        self.data = clean + self.sigma * rng.standard_normal(clean.shape)  # (E, K, *fine.shape)
        self.data *= self._equation(0).operator.unknowns
        self._preconditioners = {}
        self.functionals = []  # every stage objective, for solver statistics

    # ------------------------------------------------------------------ levels
    def truth(self, level: int) -> np.ndarray:
        """``m_true`` at the nodes of ``level``."""
        return true_log_diffusivity(np.stack(self.hierarchy[level].mesh.meshgrid()))

    def _sensors(self, level: int) -> np.ndarray:
        """Flat indices on ``level`` of the interior nodes of the coarsest mesh."""
        coarsest = len(self.hierarchy) - 1
        stride = 2 ** (coarsest - level)
        shape = self.hierarchy[level].mesh.shape
        axes = [np.arange(stride, n, stride) for n in shape]
        grid = np.meshgrid(*axes, indexing="ij")
        return np.ravel_multi_index(tuple(g.ravel() for g in grid), shape)

    def _equation(self, level: int, loss=None) -> HeatEquation:
        mesh = self.hierarchy[level].mesh
        sensors = self._sensors(level) if self.settings.observations == "sensors" else None
        return HeatEquation(mesh, source=np.full(mesh.shape, self.settings.source),
                            sensors=sensors, loss=loss)

    def _stepper(self) -> ThetaMethod:
        return ThetaMethod(self.settings.theta, self.settings.linear_solver())

    def solver_statistics(self) -> dict:
        """Linear solves of the stage objectives so far: factorization set-ups, right-hand sides
        solved and (iterative solvers) iterations per right-hand side; on a Dask cluster, added
        up over the shards' steppers (each counting since its shard was last built)."""
        rows = [counts for f in self.functionals for counts in on_shards(f, _solve_counts)]
        setups, solves, iterations = (int(c) for c in np.sum(rows, axis=0, dtype=np.int64)
                                      ) if rows else (0, 0, 0)
        iterative = self.settings.solver != "splu"
        return {"solver": self.settings.solver,
                "setups": setups,
                "solves": solves,
                "iterations_per_solve": iterations / solves if iterative and solves else None}

    def _simulate(self, mesh: Mesh, m: np.ndarray) -> np.ndarray:
        """Temperatures ``(E, K, *mesh.shape)`` at the observation times for ``m``."""
        settings = self.settings
        equation = HeatEquation(mesh, source=np.full(mesh.shape, settings.source))
        functional = ControlFunctional(
            equation, equation.layout(settings.n_steps), self.initial_states,
            np.zeros((settings.n_experiments, equation.sensors.size
                      * len(settings.observation_times))),
            final_time=settings.final_time, stepper=self._stepper(),
            observation_times=settings.observation_times)
        outputs = functional.forward(m.reshape(-1), final_states=False).outputs
        fields = np.zeros((settings.n_experiments, len(settings.observation_times), mesh.size))
        fields[:, :, equation.sensors] = outputs.reshape(settings.n_experiments,
                                                         len(settings.observation_times), -1)
        return fields.reshape((settings.n_experiments, len(settings.observation_times))
                              + mesh.shape)

    def targets(self, level: int) -> np.ndarray:
        """The data seen on ``level``, ``(E, K * n_observed)``: the field restricted to the level
        at its unknown nodes, or the sensor values (the same on every level)."""
        experiments, times = self.data.shape[:2]
        if self.settings.observations == "sensors":
            observed = self.data.reshape(experiments, times, -1)[:, :, self._sensors(0)]
        else:
            data = self.data if level == 0 else self.hierarchy.restrict(self.data, to_level=level)
            observed = data.reshape(experiments, times, -1)[:, :, self._equation(level).sensors]
        return observed.reshape(experiments, -1)

    def functional(self, level: int) -> ControlFunctional:
        """The objective on ``level`` (see the module docstring); on the current Dask client's
        workers inside :func:`pdecontrol.distributed.using`."""
        settings = self.settings
        mesh = self.hierarchy[level].mesh
        weight = (mesh.cell_volume if settings.observations == "field" else 1.0) / self.sigma**2
        equation = self._equation(level, loss=LeastSquaresLoss(weight))
        layout = equation.layout(settings.n_steps)
        stepper = self._stepper()
        regularizers = [GradientPenalty("m", settings.gamma, mesh.h)]
        if settings.beta > 0:
            regularizers.append(Tikhonov("m", settings.beta))
        functional = distribute(ControlFunctional(
            equation, layout, self.initial_states if level == 0 else
            self.hierarchy.restrict(self.initial_states, to_level=level), self.targets(level),
            final_time=settings.final_time, stepper=stepper,
            regularizers=regularizers, observation_times=settings.observation_times))
        self.functionals.append(functional)
        return functional

    def preconditioner(self, level: int):
        """``g -> (gamma K + beta M)^-1 g``: the inverse Hessian of the regularisation on
        ``level`` (sparse LU, built once), as the CG preconditioner of Gauss-Newton."""
        if level not in self._preconditioners:
            mesh = self.hierarchy[level].mesh
            settings = self.settings
            matrix = settings.gamma * _stiffness(mesh) + (settings.beta or 1e-8 * settings.gamma) \
                * mesh.cell_volume * sp.identity(mesh.size, format="csr")
            factorization = SparseLU().factorize(matrix)
            self._preconditioners[level] = factorization.solve
        return self._preconditioners[level]

    # ------------------------------------------------------------------ the framework's hooks
    def layout(self, stage: Stage):
        return self._equation(stage.level).layout(stage.n_steps)

    def initial_point(self, stage: Stage) -> np.ndarray:
        return np.zeros(self.hierarchy[stage.level].mesh.size)

    def setup(self, stage: Stage, work) -> StageSetup:
        functional = self.functional(stage.level)
        work.watch(functional, {kind: cost * stage.n_steps for kind, cost in HEAT_COST.items()},
                   stage.level)
        truth = self.truth(stage.level).reshape(-1)
        volume = self.hierarchy[stage.level].mesh.cell_volume
        truth_norm = np.sqrt(volume * np.sum(truth**2))

        def monitor(x):
            params = functional.parameters(x)
            regularization = sum(r.value(params) for r in functional.regularizers)
            return {"relative_error": float(np.sqrt(volume * np.sum((x - truth) ** 2))
                                            / truth_norm),
                    "regularization": float(regularization)}

        return StageSetup(functional, solver_options={"preconditioner":
                                                      self.preconditioner(stage.level)},
                          monitor=monitor)

    def describe(self) -> dict:
        digest = hashlib.sha256(np.ascontiguousarray(self.data).tobytes()).hexdigest()
        return {"problem": "heat inversion", "settings": self.settings.to_dict(),
                "data_sha256": digest}

    def schedule(self, *, gtol: float = 0.0) -> Schedule:
        """Coarse to fine through every level: Gauss-Newton-CG with Eisenstat-Walker forcing
        until the gradient falls by ``coarse_grtol`` (coarse levels) or ``grtol`` (the finest;
        or to ``gtol`` there), or ``gn_iterations``."""
        settings = self.settings
        stage = Stage(n_steps=settings.n_steps, solver=gauss_newton_cg,
                      stopping=Stopping(maxiter=settings.gn_iterations, grtol=settings.grtol,
                                        gtol=gtol),
                      options={"cg_rtol": "eisenstat-walker", "forcing_max": settings.forcing_max,
                               "cg_maxiter": settings.cg_maxiter})
        coarse = stage.replace(stopping=Stopping(maxiter=settings.gn_iterations,
                                                 grtol=settings.coarse_grtol))
        levels = len(self.hierarchy)
        return Schedule([coarse.replace(level=level) for level in range(levels - 1, 0, -1)]
                        + [stage.replace(level=0)])
