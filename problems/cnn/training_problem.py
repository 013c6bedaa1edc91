"""The CNN's training problem for the framework's continuation driver.

:class:`CNNTraining` is a :class:`pdecontrol.continuation.ContinuationProblem`: it supplies
only what is about images and networks (the image pyramid on a
:class:`~pdecontrol.mesh.MeshHierarchy`, the stage objective with its work model, the transfer
of networks between levels and, optionally, their fit after a prolongation, the classifier
solve and the accuracy monitor); the
schedule, the resume state, the work accounting and the history are the framework's. The
drivers of :mod:`problems.cnn.training` build its schedules.
"""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from pdecontrol._validation import check_int
from pdecontrol.continuation import (
    ContinuationProblem,
    Schedule,
    Stage,
    StageSetup,
    run_continuation,
)
from pdecontrol.control import SumFunctional, TransformedFunctional, get_stepper
from pdecontrol.distributed import distribute
from pdecontrol.io import make_folder
from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.ops import blas_threads
from pdecontrol.optimize import Stopping, block_coordinate_descent
from pdecontrol.transfer import restrict_image

from .config import TrainingSettings
from .evaluation import TrainedNetwork, as_labelled_images, image_dim
from .fitted_prolongation import fit_convolutions_per_example, fit_prolonged_kernels
from .network import CNNProblem, cnn_functional
from .transfer import (
    check_kernel_transfer,
    network_restriction_operator,
    prolong_network,
    restrict_network,
)

__all__ = [
    "TrainingResult",
    "CNNTraining",
    "resolution_consistent_functional",
    "STATE_FILE",
    "CONVOLUTIONS_PER_EXAMPLE",
]

#: Name of the resume state inside ``state_dir``.
STATE_FILE = "training_state.npz"

#: Convolutions per example, layer and Runge-Kutta stage, by kind of evaluation (the work model).
CONVOLUTIONS_PER_EXAMPLE = {
    "value": 1,
    "gradient": 3,
    "gauss_newton_operator": 1,
    "gauss_newton_product": 4,
    "classifier_solve": 1,
}


# ---------------------------------------------------------------------- result
@dataclass(frozen=True)
class TrainingResult:
    """What a driver returns.

    Attributes
    ----------
    network : TrainedNetwork
        The final network (finest mesh, final number of layers).
    stage_networks : tuple of TrainedNetwork
        The network at the end of every stage, in schedule order (coarsest / shallowest first).
    history : xarray.Dataset
        One row per stage start and outer iteration (see the module docstring).
    status : str
        ``"completed"``, ``"stopped_by_callback"`` or ``"failed"``.
    """

    network: TrainedNetwork
    stage_networks: tuple
    history: xr.Dataset
    status: str

    @property
    def x(self) -> np.ndarray:
        """Final flat parameters (read-only)."""
        return self.network.parameters

    @property
    def problem(self) -> CNNProblem:
        """The problem of the final network."""
        return self.network.problem

    @property
    def problems(self) -> tuple:
        """The problem of every stage."""
        return tuple(n.problem for n in self.stage_networks)


# ---------------------------------------------------------------------- the objective
def resolution_consistent_functional(fine, coarse_terms, weight: float = 1.0,
                                     kernel_transfer: str = "galerkin"):
    """``J_h(x) + weight * sum_k J_k(R_k x)``: the fine functional plus restricted-network losses.

    Parameters
    ----------
    fine : ControlFunctional of a CNNProblem
        The fine training functional (with its regularisers).
    coarse_terms : sequence of (levels, functional)
        ``functional`` is the CNN functional on the mesh coarsened ``levels`` times (restricted
        images of the same examples, usually no regularisers); its parameters are
        ``R_k x = network_restriction_operator(fine.problem, n_steps, levels,
        kernel_transfer) x``.
    weight : float
        ``>= 0``, the coefficient of every coarse term.
    kernel_transfer : {"galerkin", "rediscretize"}
        How ``R_k`` moves the kernels (:data:`problems.cnn.transfer.KERNEL_TRANSFERS`).

    Returns
    -------
    pdecontrol.control.SumFunctional
        Gradient ``g_h + w sum R_k^T g_k``, Gauss-Newton ``G_h + w sum R_k^T G_k R_k``; the
        inner-product weights are the fine functional's.
    """
    problem, n_steps = fine.problem, fine.layout.n_steps
    terms = [fine]
    for levels, coarse in coarse_terms:
        operator = network_restriction_operator(problem, n_steps, levels, kernel_transfer)
        terms.append(TransformedFunctional(coarse, operator, weights=fine.weights))
    return SumFunctional(terms, [1.0] + [float(weight)] * (len(terms) - 1))


# ---------------------------------------------------------------------- the problem
def _digest(*arrays) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _check_level_settings(level_settings, settings: TrainingSettings, n_levels: int) -> dict:
    """``{level: changes}`` without empty entries, each level on the hierarchy and each set of
    changes valid (:meth:`TrainingSettings.on_level`)."""
    if level_settings is None:
        return {}
    if not isinstance(level_settings, Mapping):
        raise TypeError(f"level_settings must map levels (0 the finest) to setting changes, "
                        f"got {type(level_settings).__name__}")
    checked = {}
    for level, changes in level_settings.items():
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) \
                or not 0 <= level < n_levels:
            raise ValueError(f"level_settings: level {level!r} is not on the hierarchy of "
                             f"{n_levels} levels (0 the finest to {n_levels - 1})")
        on_level = settings.on_level(changes, f"level_settings[{level}]")
        if changes:  # the validated values (Python numbers: the description is JSON)
            checked[int(level)] = {name: getattr(on_level, name) for name in changes}
    return checked


class CNNTraining(ContinuationProblem):
    """The CNN's training problem on an image pyramid, for the continuation driver.

    Parameters
    ----------
    settings : TrainingSettings
    train, validation : (images, labels) or image-set Dataset
        Training images ``(N, n, n)`` or ``(N, C_in, n, n)`` on the unit square (volumes:
        ``(N, n, n, n)`` or ``(N, C_in, n, n, n)`` on the unit cube); validation images of the
        same resolution (or ``None``).
    dim : {2, 3}, optional
        Spatial dimension of the images: read off an image-set Dataset (its ``z, y, x`` dims),
        default 2 for arrays (:func:`~problems.cnn.evaluation.image_dim`).
    n_classes : int, optional
        Default: the dataset's ``n_classes`` attribute, else ``max(label) + 1``.
    n_levels : int
        Meshes of the hierarchy (every stage level and every consistency level must be on it).
    smoothing_sigma : float, optional
        Gaussian pre-smoothing of the images before each restriction (pixels of the finer mesh).
    consistency_levels : tuple of int
        Coarsenings (relative to a stage's level) whose restricted-network loss is added to the
        stage objective, with coefficient ``consistency_weight``.
    classifier_in_gauss_newton : bool
        Train ``(W, c)`` with the kernels even with the least-squares loss (solved once at the
        start of every stage).
    centring : {"node", "cell"}
        Centring of the meshes (:class:`~pdecontrol.mesh.Mesh`): which ``R`` restricts the
        images and moves ``W``, and which Galerkin map moves the kernels.
    kernel_transfer : {"galerkin", "rediscretize"}
        How networks move between levels (:data:`problems.cnn.transfer.KERNEL_TRANSFERS`).
    level_settings : mapping of int to mapping, optional
        ``{level: {field: value}}``: on ``level`` (0 the finest) the stages run with these
        :data:`~problems.cnn.config.LEVEL_FIELDS` of ``settings`` changed
        (:meth:`~problems.cnn.config.TrainingSettings.on_level`; :meth:`settings_at`).
    """

    work_unit = "fine convolutions"

    def __init__(self, settings: TrainingSettings, train, validation=None, *, n_classes=None,
                 n_levels: int = 1, smoothing_sigma=None, consistency_levels=(),
                 consistency_weight: float = 0.0, classifier_in_gauss_newton: bool = False,
                 centring: str = "node", kernel_transfer: str = "galerkin", dim=None,
                 level_settings=None):
        self.settings = settings
        self.dim = image_dim(train, dim, "train")
        self.kernel_transfer = check_kernel_transfer(kernel_transfer)
        self.images, self.labels = as_labelled_images(train, "train")
        self.validation = (
            None if validation is None else as_labelled_images(validation, "validation")
        )
        if self.images.ndim not in (self.dim + 1, self.dim + 2):
            spatial = ", ".join(["n"] * self.dim)
            raise ValueError(
                f"train images must have shape (N, {spatial}) or (N, C_in, {spatial}) "
                f"({self.dim}D images), got {self.images.shape}"
            )
        in_channels = 1 if self.images.ndim == self.dim + 1 else self.images.shape[1]
        labels = self.labels if self.validation is None else np.r_[self.labels, self.validation[1]]
        if n_classes is None:
            n_classes = (
                int(train.attrs["n_classes"])
                if isinstance(train, xr.Dataset) and "n_classes" in train.attrs
                else int(labels.max()) + 1
            )
        self.n_classes = check_int(n_classes, "n_classes", 2)
        if labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(
                f"labels must lie in [0, n_classes={self.n_classes}), got range "
                f"[{labels.min()}, {labels.max()}]"
            )
        fine_mesh = Mesh(self.images.shape[-self.dim:], extent=1.0, centring=centring)
        n_levels = check_int(n_levels, "n_levels", 1)
        factor = 2 ** (n_levels - 1)
        if any(n % factor for n in fine_mesh.shape):
            raise ValueError(
                f"train images of shape {fine_mesh.shape} cannot be coarsened "
                f"{n_levels - 1} times (every size must be divisible by {factor}); pad or "
                "crop the images, or use fewer levels"
            )
        if self.validation is not None and self.validation[0].shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"validation images must have the shape of the train images "
                f"{self.images.shape[1:]}, got {self.validation[0].shape[1:]}"
            )
        self.hierarchy = MeshHierarchy(fine_mesh, n_levels)
        self.level_settings = _check_level_settings(level_settings, settings, n_levels)
        self.fine_problem = settings.make_problem(fine_mesh, self.n_classes,
                                                  in_channels=in_channels)
        self.smoothing_sigma = smoothing_sigma
        self.consistency_levels = tuple(consistency_levels)
        self.consistency_weight = float(consistency_weight)
        self.classifier_in_gauss_newton = bool(classifier_in_gauss_newton)
        self._problems, self._pyramid = {}, {}

    # ------------------------------------------------------------------ levels
    def settings_at(self, level: int) -> TrainingSettings:
        """The settings of the stages on ``level``: :attr:`settings` with the level's
        ``level_settings`` changes."""
        return self.settings.on_level(self.level_settings.get(level))

    def _level_changes(self) -> dict:
        """``level_settings`` as a JSON document: ``{"level": {field: value}}``."""
        return {str(level): dict(changes) for level, changes in sorted(self.level_settings.items())}

    def network_problem(self, level: int) -> CNNProblem:
        """The network on level ``level`` of the hierarchy (reference spacing of the finest)."""
        if level not in self._problems:
            self._problems[level] = self.fine_problem.with_mesh(self.hierarchy[level].mesh)
        return self._problems[level]

    def level_images(self, level: int) -> tuple:
        """``(train images, validation images or None)`` restricted to ``level``."""
        if level not in self._pyramid:
            sets = (self.images, None if self.validation is None else self.validation[0])
            if level:
                sets = tuple(None if images is None else
                             restrict_image(images, self.dim, level, self.smoothing_sigma,
                                            self.hierarchy.centring)
                             for images in sets)
            self._pyramid[level] = sets
        return self._pyramid[level]

    def functional(self, level: int, n_steps: int, *, regularized=False, validation=False):
        """The CNN functional of the training (or validation) images on ``level`` (on the
        current Dask client's workers inside :func:`pdecontrol.distributed.using`)."""
        problem = self.network_problem(level)
        images = self.level_images(level)[1 if validation else 0]
        labels = self.validation[1] if validation else self.labels
        settings = self.settings
        return distribute(cnn_functional(
            problem, images, labels, n_steps, final_time=settings.time_horizon,
            stepper=settings.stepper,
            regularizers=settings.make_regularizers(problem) if regularized else (),
            dtype=settings.compute_dtype, chunk_size=settings.chunk_size))

    # ------------------------------------------------------------------ the framework's hooks
    def layout(self, stage: Stage):
        return self.network_problem(stage.level).layout(stage.n_steps)

    def initial_point(self, stage: Stage) -> np.ndarray:
        settings = self.settings
        return self.network_problem(stage.level).initial_parameters(
            stage.n_steps, settings.seed, kernel_scale=settings.kernel_scale,
            opening_scale=settings.opening_scale)

    def transfer_in_space(self, x, stage: Stage, level: int) -> np.ndarray:
        """:func:`~problems.cnn.transfer.prolong_network` to a finer level,
        :func:`~problems.cnn.transfer.restrict_network` to a coarser one (the kernel transfer
        of this problem)."""
        problem = self.network_problem(stage.level)
        if level < stage.level:
            return prolong_network(problem, x, stage.level - level, self.kernel_transfer)
        return restrict_network(problem, x, level - stage.level, self.kernel_transfer)

    def fit_transferred(self, x, source_x, source: Stage, target: Stage, work) -> np.ndarray:
        """After a move to a finer level (same layers), with
        ``settings.prolongation_fit_examples = k > 0``:
        the kernels of ``x`` fitted to reproduce the network ``source_x``
        (:func:`~problems.cnn.fitted_prolongation.fit_prolonged_kernels`) on ``k`` training
        examples drawn with the settings' seed, ridge ``settings.prolongation_fit_ridge``. Work:
        :func:`~problems.cnn.fitted_prolongation.fit_convolutions_per_example` convolutions per
        example and layer on the target level, one per example and layer on the source level.
        Otherwise ``x`` unchanged.
        """
        settings = self.settings
        if (not settings.prolongation_fit_examples or target.level >= source.level
                or target.n_steps != source.n_steps):
            return x
        images = self.level_images(target.level)[0]
        count = min(settings.prolongation_fit_examples, len(images))
        rng = np.random.default_rng([settings.seed, source.level, target.level])
        chosen = np.sort(rng.choice(len(images), count, replace=False))
        layers = target.n_steps
        work.charge(count * layers * fit_convolutions_per_example(self.dim), target.level)
        work.charge(count * layers, source.level)
        return fit_prolonged_kernels(
            self.network_problem(source.level), source_x, self.network_problem(target.level), x,
            self.level_images(source.level)[0][chosen], images[chosen],
            lambda states: self.hierarchy.prolong(states, to_level=target.level,
                                                  from_level=source.level),
            final_time=settings.time_horizon, ridge=settings.prolongation_fit_ridge)

    def _cost(self, n_steps: int) -> dict:
        """Convolutions of one example through ``n_steps`` layers, by evaluation kind."""
        per_example = n_steps * get_stepper(self.settings.stepper).n_stages
        return {kind: count * per_example for kind, count in CONVOLUTIONS_PER_EXAMPLE.items()
                if kind != "classifier_solve"}

    def setup(self, stage: Stage, work) -> StageSetup:
        level, n_steps = stage.level, stage.n_steps
        settings = self.settings_at(level)
        fine = self.functional(level, n_steps, regularized=True)
        cost = self._cost(n_steps)
        work.watch(fine, cost, level)
        work.declare("n_classifier_solves")
        coarse = [(k, work.watch(self.functional(level + k, n_steps), cost, level + k))
                  for k in self.consistency_levels]
        objective = (fine if not coarse else
                     resolution_consistent_functional(fine, coarse, self.consistency_weight,
                                                      self.kernel_transfer))
        validation = (None if self.validation is None else
                      self.functional(level, n_steps, validation=True))
        solver = settings.classifier_solver(fine) if settings.classifier_block else None
        fitted = min(settings.classifier_batch_size or fine.n_examples, fine.n_examples)
        solve_cost = CONVOLUTIONS_PER_EXAMPLE["classifier_solve"] * cost["value"] * fitted

        def solve_classifier(x, **options):  # work: the forward solves of its features
            work.charge(solve_cost, level, count="n_classifier_solves")
            return solver(x, **options)

        def start_classifier(x):  # a random or prolonged network: the classifier is far off
            steps = settings.classifier_start_newton_steps
            return solve_classifier(x) if steps is None else solve_classifier(x, newton_steps=steps)

        options = {}
        if solver is not None and not self.classifier_in_gauss_newton:
            free = np.setdiff1d(np.arange(fine.size), solver.indices)
            options = {"solve_block": solve_classifier, "free_indices": free}

        def monitor(x):
            forward = fine.forward(x, final_states=False)
            params = fine.parameters(x)
            value = float(np.mean(forward.losses)) + sum(
                reg.value(params) for reg in fine.regularizers)
            if isinstance(objective, SumFunctional):
                value += sum(a * term.value(x) for a, term in
                             zip(objective.coefficients[1:], objective.functionals[1:],
                                 strict=True))
            truth = np.argmax(fine.targets, axis=1)
            row = {
                "objective": value,
                "training_accuracy": float(np.mean(np.argmax(forward.outputs, axis=1) == truth)),
                "validation_accuracy": float("nan"),
            }
            if validation is not None:
                outputs = validation.forward(x, final_states=False).outputs
                row["validation_accuracy"] = float(
                    np.mean(np.argmax(outputs, axis=1) == self.validation[1]))
            return row

        return StageSetup(objective, solver_options=options,
                          start=None if solver is None else start_classifier, monitor=monitor)

    def describe(self) -> dict:
        validation = () if self.validation is None else self.validation
        settings = self.settings.to_dict()
        # settings that came after runs were written are named only when on (the fit's ridge
        # does nothing without the fit), so that the states of earlier runs still resume
        if not settings["prolongation_fit_examples"]:
            del settings["prolongation_fit_examples"], settings["prolongation_fit_ridge"]
        if settings["classifier_curvature_batch_size"] is None:
            del settings["classifier_curvature_batch_size"]
        description = {
            "problem": "cnn",
            "settings": settings,
            "n_classes": self.n_classes,
            "images_shape": list(self.images.shape),
            "data_sha256": _digest(self.images, self.labels, *validation),
            "n_levels": len(self.hierarchy),
            "smoothing_sigma": self.smoothing_sigma,
            "consistency_levels": list(self.consistency_levels),
            "consistency_weight": self.consistency_weight,
            "classifier_in_gauss_newton": self.classifier_in_gauss_newton,
        }
        # named only when not the default, so that the states of earlier runs still resume
        if self.level_settings:
            description["level_settings"] = self._level_changes()
        for key, value, default in (("dim", self.dim, 2),
                                    ("centring", self.hierarchy.centring, "node"),
                                    ("kernel_transfer", self.kernel_transfer, "galerkin")):
            if value != default:
                description[key] = value
        return description

    # ------------------------------------------------------------------ stages
    def stage(self, level: int, n_steps: int, outer_iterations: int) -> Stage:
        """A stage of ``outer_iterations`` block-coordinate outer iterations (see the module
        docstring) on ``level`` with ``n_steps`` layers (the level's :meth:`settings_at`)."""
        settings = self.settings_at(level)
        batch = settings.batch_size
        batch = None if batch is None or batch >= self.labels.size else batch
        gauss_newton_batch = settings.gauss_newton_batch_size
        if gauss_newton_batch is None or gauss_newton_batch >= min(batch or self.labels.size,
                                                                   self.labels.size):
            gauss_newton_batch = batch
        return Stage(
            level=level, n_steps=n_steps, solver=block_coordinate_descent,
            stopping=Stopping(maxiter=outer_iterations, grtol=0.0),
            options={
                "order": "solve_last",
                "outer_evaluation": None,
                "inner_stopping": Stopping(maxiter=settings.gauss_newton_steps, grtol=0.0),
                "inner_options": {"cg_rtol": settings.cg_rtol,
                                  "cg_maxiter": settings.cg_iterations,
                                  "gradient_batch_size": batch,
                                  "gauss_newton_batch_size": gauss_newton_batch},
            })

    def train(self, schedule: Schedule, driver: str, *, initial=None, state_dir=None,
              callback=None, progress=False) -> TrainingResult:
        """Run ``schedule`` from ``initial`` (flat parameters of the first stage, default random
        kernels); see :class:`TrainingResult`."""
        settings = self.settings
        first = schedule[0]
        if initial is not None:
            expected = self.layout(first).size
            initial = np.asarray(initial, dtype=np.float64)
            if initial.shape != (expected,):
                raise ValueError(
                    f"initial must be a flat vector of length {expected} for the first stage "
                    f"({self.network_problem(first.level).mesh!r}, {first.n_steps} layers), got "
                    f"shape {initial.shape}")
            initial = self.network_problem(first.level).parameters(initial, "initial").flat
        state_file = None
        if state_dir is not None:
            make_folder(state_dir)
            state_file = Path(state_dir) / STATE_FILE
        with blas_threads(1):  # BLAS's spinning threads would slow the kernels between products
            result = run_continuation(self, schedule, x0=initial, seed=[settings.seed, 1],
                                      state_file=state_file, callback=callback,
                                      progress=progress)

        def network(stage_index, x):
            return TrainedNetwork(self.network_problem(schedule[stage_index].level), x, settings)

        history = result.history
        history.attrs.update({
            "driver": driver,
            "settings": settings.to_json(),
            "fine_mesh_shape": "x".join(map(str, self.hierarchy[0].mesh.shape)),
        })
        if self.level_settings:  # JSON: {"level": {field: value}}, 0 the finest
            history.attrs["level_settings"] = json.dumps(self._level_changes(), sort_keys=True)
        return TrainingResult(
            network(result.stage, result.x),
            tuple(network(i, x) for i, x in enumerate(result.stage_x)),
            history, result.status)
