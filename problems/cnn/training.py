"""Training drivers of the CNN problem: the paper's block-coordinate schedule, levels, layers.

Every driver runs a *schedule*: a list of stages (a mesh level and a number of layers), each
trained for some outer iterations, the next started from the last by a transfer.

* :func:`train_single_level` - one stage on the given images.
* :func:`train_multilevel` - METHOD.md Algorithm 1: restrict the images ``n_levels - 1`` times,
  start on the coarsest mesh, train, prolong the network to the next finer mesh
  (:func:`problems.cnn.transfer.prolong_network`: inverse Galerkin kernels), re-solve the
  classifier there (recorded as the ``"prolonged_start"`` row, before any training on that
  level), continue to the finest mesh.
* :func:`train_time_continuation` - the same in depth: train few layers, refine the layers by
  interpolation in time (:func:`pdecontrol.control.refine_in_time`, ``T`` fixed, ``dt`` shrinks),
  continue (``"time_refined_start"`` rows).
* :func:`train_resolution_consistent` - one parameter set, objective
  ``J_h(x) + w sum_k J_{2^k h}(R_k x)`` (fine loss plus the loss of the Galerkin-restricted
  network on restricted images), built from :class:`pdecontrol.control.SumFunctional` and
  :class:`pdecontrol.control.TransformedFunctional` with
  :func:`problems.cnn.transfer.network_restriction_operator`.

**Outer iteration** (METHOD.md section 4). With the least-squares loss, every stage starts with
the exact classifier solve (``W, c`` on the whole training set,
:class:`problems.cnn.classifier.ClassifierSolver`); an outer iteration is then
``settings.gauss_newton_steps`` sub-sampled Gauss-Newton-CG steps
(:func:`pdecontrol.optimize.gauss_newton_cg` on a :class:`pdecontrol.optimize.RestrictedFunctional`
of the kernels and biases ``K, b, K0, b0``) followed by the classifier solve. This is the paper's
order (solve W, then k GN steps, repeat) with the solve of iteration ``i + 1`` done at the end of
iteration ``i``, so every recorded row has the optimal classifier for its kernels.
With the cross-entropy loss the classifier is not a least-squares block: the Gauss-Newton steps
update all parameters (``W`` and ``c`` included). The resolution-consistent objective offers both
(``classifier="fine_solve"`` or ``"gauss_newton"``, see :func:`train_resolution_consistent`).

**History** (``xarray.Dataset``, dimension ``iteration``: one row per stage start and per outer
iteration): ``stage``, ``outer_iteration`` (0 = stage start), ``phase`` (``"start"``,
``"prolonged_start"``, ``"time_refined_start"``, ``"train"``), ``level`` (coarsenings from the
finest mesh), ``mesh_shape`` (str), ``n_steps``, ``objective`` (full training objective, all
examples), ``training_accuracy``, ``validation_accuracy`` (NaN without validation data; on the
stage's mesh), ``inner_status``, ``cg_iterations`` (sum over the inner run), and cumulative
``wall_time`` (seconds of training, excluding monitoring and checkpoint I/O),
``n_value_evaluations``, ``n_gradient_evaluations``, ``n_gauss_newton_products``,
``n_classifier_solves``, ``convolution_work`` and ``fine_level_work``.

**Work** is an estimate in *fine convolutions*: one ``C x C`` 3x3 convolution of one example on
the finest mesh of the schedule. Per example and per stage of the Runge-Kutta scheme of each
layer, a forward solve costs 1 convolution, a gradient 3 (forward, adjoint state, kernel
gradient), building a Gauss-Newton operator 1 (its forward solve), a Gauss-Newton product 4
(tangent ``K dy + dK y``, adjoint); a convolution on a mesh with ``2^-dk`` of the fine nodes costs
``2^-dk`` (METHOD.md: a coarse convolution costs 4x less in 2D). The classifier solve costs one
forward solve of every training example (the least-squares solve itself is not counted);
monitoring (objective, accuracies) is not counted. ``fine_level_work`` counts only work on the
finest mesh.

**Checkpoints.** With ``checkpoint_dir`` the state (parameters, position in the schedule,
random generator, counters, history) is written after every row to
``checkpoint_dir/training_state.nc`` (a network file of :mod:`problems.cnn.checkpoint`, written
atomically). Calling the same driver with the same data, settings and schedule resumes from it;
the result is identical to an uninterrupted run (same parameters bit for bit, same history apart
from ``wall_time``). A checkpoint of a different run is an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from pdecontrol._validation import check_int
from pdecontrol.control import SumFunctional, TransformedFunctional, refine_in_time
from pdecontrol.mesh import Mesh
from pdecontrol.optimize import RestrictedFunctional, Stopping, gauss_newton_cg
from pdecontrol.optimize.counting import CountingFunctional
from pdecontrol.optimize.history import History
from pdecontrol.transfer import restrict_image

from .checkpoint import read_checkpoint, save_network
from .config import TrainingSettings
from .evaluation import TrainedNetwork, as_labelled_images
from .network import CNNProblem, cnn_functional
from .transfer import network_restriction_operator, prolong_network

__all__ = [
    "TrainingResult",
    "train_single_level",
    "train_multilevel",
    "train_time_continuation",
    "train_resolution_consistent",
    "resolution_consistent_functional",
    "STATE_FILE",
    "CONVOLUTIONS_PER_EXAMPLE",
]

logger = logging.getLogger("problems.cnn.training")

#: Name of the resume state inside ``checkpoint_dir``.
STATE_FILE = "training_state.nc"

#: Convolutions per example, layer and Runge-Kutta stage, by kind of evaluation (the work model).
CONVOLUTIONS_PER_EXAMPLE = {
    "value": 1,
    "gradient": 3,
    "gauss_newton_operator": 1,
    "gauss_newton_product": 4,
    "classifier_solve": 1,
}

_CLASSIFIER_BLOCKS = ("W", "c")
_COUNTERS = (
    "n_value_evaluations",
    "n_gradient_evaluations",
    "n_gauss_newton_products",
    "n_classifier_solves",
    "convolution_work",
    "fine_level_work",
)


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
        ``"completed"`` or ``"stopped_by_callback"``.
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


# ---------------------------------------------------------------------- work accounting
class _Tally:
    """Cumulative evaluation counts and convolution work of a schedule (plain numbers)."""

    def __init__(self, values=None):
        self.values = {name: 0 for name in _COUNTERS}
        self.values["convolution_work"] = 0.0
        self.values["fine_level_work"] = 0.0
        if values:
            self.values.update(values)
        self.paused = False

    def add(self, counter: str | None, work: float, fine: bool):
        if self.paused:
            return
        if counter is not None:
            self.values[counter] += 1
        self.values["convolution_work"] += work
        if fine:
            self.values["fine_level_work"] += work


class _WorkMeter(CountingFunctional):
    """Delegates to a CNN functional and adds its estimated convolution work to a tally."""

    #: Tally counter by kind of evaluation (building a Gauss-Newton operator is work only).
    TALLY_COUNTERS = {
        "value": "n_value_evaluations",
        "gradient": "n_gradient_evaluations",
        "gauss_newton_operator": None,
        "gauss_newton_product": "n_gauss_newton_products",
    }

    def __init__(self, functional, tally: _Tally, fine_size: int):
        super().__init__(functional)
        self.tally = tally
        problem = functional.problem
        self.fine = problem.mesh.size == fine_size
        self.cost = (
            functional.layout.n_steps * len(functional.stepper.b) * problem.mesh.size / fine_size
        )

    def record(self, kind: str, examples) -> None:
        super().record(kind, examples)
        count = self.functional.n_examples if examples is None else len(examples)
        work = CONVOLUTIONS_PER_EXAMPLE[kind] * self.cost * count
        self.tally.add(self.TALLY_COUNTERS[kind], work, self.fine)

    @property
    def problem(self):
        return self.functional.problem

    @property
    def layout(self):
        return self.functional.layout


# ---------------------------------------------------------------------- the objective
def resolution_consistent_functional(fine, coarse_terms, weight: float = 1.0):
    """``J_h(x) + weight * sum_k J_k(R_k x)``: the fine functional plus restricted-network losses.

    Parameters
    ----------
    fine : ControlFunctional (or a wrapper with ``problem``/``layout``) of a CNNProblem
        The fine training functional (with its regularisers).
    coarse_terms : sequence of (levels, functional)
        ``functional`` is the CNN functional on the mesh coarsened ``levels`` times (restricted
        images of the same examples, usually no regularisers); its parameters are
        ``R_k x = network_restriction_operator(fine.problem, n_steps, levels) x``.
    weight : float
        ``>= 0``, the coefficient of every coarse term.

    Returns
    -------
    pdecontrol.control.SumFunctional
        Gradient ``g_h + w sum R_k^T g_k``, Gauss-Newton ``G_h + w sum R_k^T G_k R_k``; the
        inner-product weights are the fine functional's.
    """
    problem, n_steps = fine.problem, fine.layout.n_steps
    terms = [fine]
    for levels, coarse in coarse_terms:
        operator = network_restriction_operator(problem, n_steps, levels)
        terms.append(TransformedFunctional(coarse, operator, weights=fine.weights))
    return SumFunctional(terms, [1.0] + [float(weight)] * (len(terms) - 1))


# ---------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class _Stage:
    level: int  # coarsenings from the finest mesh
    n_steps: int
    outer_iterations: int
    start: str  # phase name of the stage's first row
    consistency_levels: tuple = ()  # extra coarsenings (relative to this stage) in the objective
    consistency_weight: float = 0.0
    classifier_in_gauss_newton: bool = False  # W, c trained with the kernels (no block solve)

    def describe(self) -> dict:
        return {**asdict(self), "consistency_levels": list(self.consistency_levels)}


@dataclass(frozen=True)
class _StageRun:
    """A stage being trained: its mesh, metered objective and classifier solve."""

    index: int  # position in the schedule
    stage: _Stage
    problem: CNNProblem
    fine_functional: object  # regularised CNN functional of the stage's training images
    objective: object  # the metered training objective the GN-CG steps minimise
    validation_functional: object  # None without validation data
    free: np.ndarray | None  # GN-trained parameter indices (block schedule), None: all
    solve_classifier: Callable  # x -> x with (W, c) solved (identity without a solver)


@dataclass(frozen=True)
class _RunOptions:
    """The arguments every driver passes through unchanged (see ``_DOC_COMMON``)."""

    n_classes: int | None
    checkpoint_dir: str | Path | None
    callback: Callable | None
    progress: bool

    def __post_init__(self):
        if self.callback is not None and not callable(self.callback):
            raise TypeError(
                f"callback must be callable(row) -> bool | None, got {type(self.callback).__name__}"
            )


def _check_settings(settings) -> TrainingSettings:
    """``settings``, ``TrainingSettings()`` for ``None``; ``TypeError`` for anything else."""
    settings = TrainingSettings() if settings is None else settings
    if not isinstance(settings, TrainingSettings):
        raise TypeError(f"settings must be TrainingSettings, got {type(settings).__name__}")
    return settings


def _per_stage(values, n_stages: int, default: int, name: str) -> list:
    if values is None:
        return [default] * n_stages
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        return [check_int(values, name, 0)] * n_stages
    values = list(values)
    if len(values) != n_stages:
        raise ValueError(f"{name} must be an int or one value per stage ({n_stages}), got {values}")
    return [check_int(v, f"{name}[{i}]", 0) for i, v in enumerate(values)]


def _fingerprint(
    driver: str, settings: TrainingSettings, stages, images, labels, n_classes, validation, initial
) -> str:
    digest = hashlib.sha256()
    for array in (
        (images, labels)
        + (() if validation is None else validation)
        + (() if initial is None else (initial,))
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    return json.dumps(
        {
            "driver": driver,
            "settings": settings.to_dict(),
            "stages": [s.describe() for s in stages],
            "n_classes": n_classes,
            "images_shape": list(images.shape),
            "data_sha256": digest.hexdigest(),
        },
        sort_keys=True,
    )


class _Schedule:
    """Runs the stages; owns the data pyramid, the random generator, tallies and checkpoints."""

    def __init__(
        self,
        driver: str,
        settings: TrainingSettings,
        stages: list,
        train,
        validation,
        options: _RunOptions,
        *,
        initial=None,
        smoothing_sigma=None,
    ):
        self.settings = settings
        n_classes = options.n_classes
        self.images, self.labels = as_labelled_images(train, "train")
        self.validation = (
            None if validation is None else as_labelled_images(validation, "validation")
        )
        if self.images.ndim not in (3, 4):
            raise ValueError(
                "train images must have shape (N, n, n) or (N, C_in, n, n) (2D images), "
                f"got {self.images.shape}"
            )
        in_channels = 1 if self.images.ndim == 3 else self.images.shape[1]
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
        self.fine_mesh = Mesh(self.images.shape[-2:], extent=1.0)
        deepest = max(s.level + max(s.consistency_levels, default=0) for s in stages)
        factor = 2**deepest
        if any(n % factor for n in self.fine_mesh.shape):
            raise ValueError(
                f"train images of shape {self.fine_mesh.shape} cannot be coarsened "
                f"{deepest} times (every size must be divisible by {factor}); pad or "
                "crop the images, or use fewer levels"
            )
        if self.validation is not None and self.validation[0].shape[1:] != self.images.shape[1:]:
            raise ValueError(
                f"validation images must have the shape of the train images "
                f"{self.images.shape[1:]}, got {self.validation[0].shape[1:]}"
            )
        self.fine_problem = self.settings.make_problem(
            self.fine_mesh, self.n_classes, in_channels=in_channels
        )
        self.stages = stages
        self.smoothing_sigma = smoothing_sigma
        self.initial = initial
        if initial is not None:
            first = self._problem(stages[0].level)
            expected = first.layout(stages[0].n_steps).size
            initial = np.asarray(initial, dtype=np.float64)
            if initial.shape != (expected,):
                raise ValueError(
                    f"initial must be a flat vector of length {expected} for the first "
                    f"stage ({first.mesh!r}, {stages[0].n_steps} layers), got shape "
                    f"{initial.shape}"
                )
            self.initial = first.parameters(initial, "initial").flat.copy()
        self.driver = driver
        self.fingerprint = _fingerprint(
            driver,
            self.settings,
            stages,
            self.images,
            self.labels,
            self.n_classes,
            self.validation,
            self.initial,
        )
        self.checkpoint_path = (
            None if options.checkpoint_dir is None else Path(options.checkpoint_dir) / STATE_FILE
        )
        self.callback = options.callback
        self.progress = options.progress
        self._pyramid = {}

    # ------------------------------------------------------------------ data and problems
    def _problem(self, level: int) -> CNNProblem:
        problem = self.fine_problem
        for _ in range(level):
            problem = problem.coarsen()
        return problem

    def _data(self, level: int):
        if level not in self._pyramid:
            if level == 0:
                images = (self.images, None if self.validation is None else self.validation[0])
            else:
                images = tuple(
                    None if x is None else restrict_image(x, 2, level, self.smoothing_sigma)
                    for x in (self.images, self.validation[0] if self.validation else None)
                )
            self._pyramid[level] = images
        return self._pyramid[level]

    def _functional(self, level: int, n_steps: int, *, regularized=False, validation=False):
        """The CNN functional of the training (or validation) images on mesh ``level``."""
        problem = self._problem(level)
        images = self._data(level)[1 if validation else 0]
        labels = self.validation[1] if validation else self.labels
        regularizers = self.settings.make_regularizers(problem) if regularized else ()
        return cnn_functional(
            problem,
            images,
            labels,
            n_steps,
            final_time=self.settings.time_horizon,
            stepper=self.settings.stepper,
            regularizers=regularizers,
            dtype=self.settings.compute_dtype,
            chunk_size=self.settings.chunk_size,
        )

    # ------------------------------------------------------------------ checkpoints
    def _save(self, x, problem, position, rng, tally, wall_time, history_rows, status):
        if self.checkpoint_path is None:
            return
        self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
        network = TrainedNetwork(problem, x, self.settings)
        state = {
            "fingerprint": self.fingerprint,
            "stage": position[0],
            "outer_iteration": position[1],
            "rng_state": rng.bit_generator.state,
            "tally": tally.values,
            "wall_time": wall_time,
            "status": status,
            "rows": history_rows,
            "stage_parameters": [list(map(float, p)) for p in self._stage_ends],
        }
        save_network(
            self.checkpoint_path,
            network,
            history=_history(history_rows),
            metadata={"training_state": json.dumps(state)},
        )

    def _load(self):
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return None
        checkpoint = read_checkpoint(self.checkpoint_path)
        text = checkpoint.metadata.get("training_state")
        if text is None:
            raise ValueError(
                f"{self.checkpoint_path} is a network file without a training state; "
                "it cannot be resumed (use another checkpoint_dir)"
            )
        state = json.loads(text)
        if state["fingerprint"] != self.fingerprint:
            saved, now = json.loads(state["fingerprint"]), json.loads(self.fingerprint)
            differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ValueError(
                f"{self.checkpoint_path} holds a checkpoint of a different run "
                f"({', '.join(differ)} differ); resume with the same driver, data, "
                "settings and schedule, or use another checkpoint_dir"
            )
        return checkpoint.network, state

    # ------------------------------------------------------------------ monitoring
    def _monitor(self, stage_run: _StageRun, x) -> dict:
        fine_functional, objective = stage_run.fine_functional, stage_run.objective
        validation_functional = stage_run.validation_functional
        tally = self._tally
        tally.paused = True
        try:
            forward = fine_functional.forward(x)
            params = fine_functional.parameters(x)
            value = float(np.mean(forward.losses)) + sum(
                reg.value(params) for reg in fine_functional.regularizers
            )
            if isinstance(objective, SumFunctional):
                value += sum(
                    a * term.value(x)
                    for a, term in zip(objective.coefficients[1:], objective.functionals[1:])
                )
            truth = np.argmax(fine_functional.targets, axis=1)
            row = {
                "objective": value,
                "training_accuracy": float(np.mean(np.argmax(forward.outputs, axis=1) == truth)),
                "validation_accuracy": float("nan"),
            }
            if validation_functional is not None:
                outputs = validation_functional.forward(x).outputs
                row["validation_accuracy"] = float(
                    np.mean(np.argmax(outputs, axis=1) == self.validation[1])
                )
        finally:
            tally.paused = False
        return row

    # ------------------------------------------------------------------ run
    def _prepare(self, index: int, stage: _Stage) -> _StageRun:
        """The metered functionals and the classifier solve of one stage."""
        settings, tally, fine_size = self.settings, self._tally, self.fine_mesh.size
        problem = self._problem(stage.level)
        fine_functional = self._functional(stage.level, stage.n_steps, regularized=True)
        meter = _WorkMeter(fine_functional, tally, fine_size)
        objective = meter
        if stage.consistency_levels:
            coarse = [
                (k, _WorkMeter(self._functional(stage.level + k, stage.n_steps), tally, fine_size))
                for k in stage.consistency_levels
            ]
            objective = resolution_consistent_functional(
                objective, coarse, stage.consistency_weight
            )
        validation_functional = None
        if self.validation is not None:
            validation_functional = self._functional(stage.level, stage.n_steps, validation=True)
        solver = settings.classifier_solver(fine_functional) if settings.exact_classifier else None
        free = None
        if solver is not None and not stage.classifier_in_gauss_newton:
            layout = fine_functional.layout
            classifier = np.r_[
                tuple(
                    np.arange(layout.slices[b].start, layout.slices[b].stop)
                    for b in _CLASSIFIER_BLOCKS
                )
            ]
            free = np.setdiff1d(np.arange(layout.size), classifier)
        solve_cost = (
            CONVOLUTIONS_PER_EXAMPLE["classifier_solve"] * meter.cost * fine_functional.n_examples
        )

        def solve_classifier(x):
            if solver is None:
                return x
            tally.add("n_classifier_solves", solve_cost, meter.fine)
            return solver(x)

        return _StageRun(
            index,
            stage,
            problem,
            fine_functional,
            objective,
            validation_functional,
            free,
            solve_classifier,
        )

    def _outer_iteration(self, stage_run: _StageRun, x, rng):
        """GN-CG steps on the free parameters, then (block schedule) the classifier solve.

        Returns the new flat parameters and the inner-run history columns.
        """
        settings, free, objective = self.settings, stage_run.free, stage_run.objective
        inner_functional = objective if free is None else RestrictedFunctional(objective, free, x)
        batch = settings.batch_size
        batch = None if batch is None or batch >= stage_run.fine_functional.n_examples else batch
        inner = gauss_newton_cg(
            inner_functional,
            x if free is None else x[free],
            stopping=Stopping(maxiter=settings.gauss_newton_steps, grtol=0.0),
            cg_rtol=settings.cg_rtol,
            cg_maxiter=settings.cg_iterations,
            gradient_batch_size=batch,
            gauss_newton_batch_size=batch,
            seed=rng,
        )
        x = x.copy()
        if free is None:
            x = np.array(inner.x)
        else:
            x[free] = inner.x
            x = stage_run.solve_classifier(x)
        extra = {
            "inner_status": str(inner.status),
            "cg_iterations": (
                int(np.nansum(inner.history["cg_iterations"].values))
                if "cg_iterations" in inner.history
                else 0
            ),
        }
        return x, extra

    def run(self) -> TrainingResult:
        rng = np.random.default_rng([self.settings.seed, 1])
        self._tally = _Tally()
        rows, training_time, x, resume_at = [], 0.0, None, (0, -1)
        self._stage_ends = []
        loaded = self._load()
        if loaded is not None:
            network, state = loaded
            x = np.array(network.parameters)
            rng.bit_generator.state = state["rng_state"]
            self._tally = _Tally(state["tally"])
            rows, training_time = state["rows"], state["wall_time"]
            resume_at = (state["stage"], state["outer_iteration"])
            self._stage_ends = [np.array(p) for p in state["stage_parameters"]]
            if state["status"] != "running":
                return self._result(rows, x, state["status"])
            logger.info(
                "resuming %s from %s at stage %d, outer iteration %d",
                self.driver,
                self.checkpoint_path,
                *resume_at,
            )
        total = sum(s.outer_iterations + 1 for s in self.stages)
        status = "completed"
        bar = tqdm(total=total, initial=len(rows), desc=self.driver, disable=not self.progress)
        try:
            for index, stage in enumerate(self.stages):
                if index < resume_at[0]:
                    continue
                stage_run = self._prepare(index, stage)
                first_outer = 0 if index > resume_at[0] else resume_at[1] + 1
                for outer in range(first_outer, stage.outer_iterations + 1):
                    start = time.perf_counter()
                    if outer == 0:
                        x = self._start(stage, index, stage_run.problem, x)
                        x, phase, extra = stage_run.solve_classifier(x), stage.start, {}
                    else:
                        x, extra = self._outer_iteration(stage_run, x, rng)
                        phase = "train"
                    training_time += time.perf_counter() - start
                    self._record(rows, stage_run, outer, phase, x, training_time, extra)
                    if outer == stage.outer_iterations:
                        self._stage_ends.append(x.copy())
                    position = (index, outer)
                    if self._after_row(
                        rows, x, stage_run.problem, position, rng, training_time, bar
                    ):
                        status = "stopped_by_callback"
                        break
                if status != "completed":
                    break
        finally:
            bar.close()
        if status == "completed" and self.checkpoint_path is not None:
            last = self.stages[-1]
            self._save(
                x,
                self._problem(last.level),
                (len(self.stages) - 1, last.outer_iterations),
                rng,
                self._tally,
                rows[-1]["wall_time"],
                rows,
                "completed",
            )
        return self._result(rows, x, status)

    def _start(self, stage: _Stage, index: int, problem: CNNProblem, previous_x):
        settings = self.settings
        if index == 0:
            if self.initial is not None:
                return self.initial.copy()
            return problem.initial_parameters(
                stage.n_steps,
                settings.seed,
                kernel_scale=settings.kernel_scale,
                opening_scale=settings.opening_scale,
            )
        before = self.stages[index - 1]
        x = previous_x
        if before.level > stage.level:
            x = prolong_network(self._problem(before.level), x, before.level - stage.level)
        if before.n_steps != stage.n_steps:
            layout = problem.layout(before.n_steps)
            x = refine_in_time(layout.unflatten(np.array(x)), stage.n_steps).flat
        return np.array(x, dtype=np.float64)

    def _record(self, rows, stage_run: _StageRun, outer, phase, x, wall_time, extra):
        stage = stage_run.stage
        row = {
            "stage": stage_run.index,
            "outer_iteration": outer,
            "phase": phase,
            "level": stage.level,
            "mesh_shape": "x".join(map(str, stage_run.problem.mesh.shape)),
            "n_steps": stage.n_steps,
        }
        row.update(self._monitor(stage_run, x))
        row.update({"inner_status": "", "cg_iterations": 0})
        row.update(extra)
        row.update(self._tally.values)
        row["wall_time"] = wall_time
        rows.append(row)
        logger.info(
            "%s stage %d (%s, %d layers) outer %d: objective %.5e, training %.4f, "
            "validation %.4f",
            self.driver,
            stage_run.index,
            row["mesh_shape"],
            stage.n_steps,
            outer,
            row["objective"],
            row["training_accuracy"],
            row["validation_accuracy"],
        )

    def _after_row(self, rows, x, problem, position, rng, wall_time, bar) -> bool:
        self._save(x, problem, position, rng, self._tally, wall_time, rows, "running")
        bar.update(1)
        if self.callback is None:
            return False
        answer = self.callback(dict(rows[-1]))
        if not (answer is None or isinstance(answer, (bool, np.bool_))):
            raise TypeError(f"callback must return None or a bool, got {type(answer).__name__}")
        return bool(answer)

    def _result(self, rows, x, status) -> TrainingResult:
        ends = list(self._stage_ends)
        networks = []
        for stage, end in zip(self.stages, ends):
            networks.append(TrainedNetwork(self._problem(stage.level), end, self.settings))
        last_stage = self.stages[int(rows[-1]["stage"])] if rows else self.stages[0]
        final = TrainedNetwork(self._problem(last_stage.level), x, self.settings)
        if len(networks) < len(self.stages) and status != "completed":
            networks.append(final)
        history = _history(rows)
        history.attrs.update(
            {
                "driver": self.driver,
                "status": status,
                "settings": self.settings.to_json(),
                "fine_mesh_shape": "x".join(map(str, self.fine_mesh.shape)),
            }
        )
        return TrainingResult(final, tuple(networks), history, status)


def _history(rows) -> xr.Dataset:
    history = History()
    for row in rows:
        history.append(row)
    return history.to_dataset()


# ---------------------------------------------------------------------- drivers
_DOC_COMMON = """
    train : (images, labels) or image-set xarray.Dataset
        Training images ``(N, n, n)`` (or ``(N, C_in, n, n)``) on the unit square and integer
        labels.
    validation : (images, labels) or Dataset, optional
        Validation images of the same resolution (accuracy recorded per row).
    settings : TrainingSettings, optional
        Default ``TrainingSettings()``.
    n_classes : int, optional
        Default: the dataset's ``n_classes`` attribute, else ``max(label) + 1``.
    checkpoint_dir : str or Path, optional
        Write the resume state after every row; resume from it if present.
    callback : callable, optional
        ``callback(row)`` after every row (a dict of the history columns); return ``True`` to stop.
    progress : bool
        Show a tqdm bar.
"""


def train_single_level(
    train,
    validation=None,
    settings=None,
    *,
    n_classes=None,
    initial=None,
    checkpoint_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """Train on the given resolution only: classifier solve, then outer iterations.

    Parameters
    ----------{common}
    initial : ndarray, optional
        Flat starting parameters (default: seeded random kernels, zero biases).
    """
    settings = _check_settings(settings)
    stages = [_Stage(0, settings.n_steps, settings.outer_iterations, "start")]
    options = _RunOptions(n_classes, checkpoint_dir, callback, progress)
    return _Schedule(
        "train_single_level", settings, stages, train, validation, options, initial=initial
    ).run()


def train_multilevel(
    train,
    validation=None,
    settings=None,
    *,
    n_levels: int = 2,
    outer_iterations=None,
    smoothing_sigma=None,
    n_classes=None,
    checkpoint_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """METHOD.md Algorithm 1: coarsest mesh first, prolong the network, re-solve W, continue.

    Parameters
    ----------{common}
    n_levels : int
        Meshes in the hierarchy (``n_levels - 1`` coarsenings of the images); 1 is single-level.
    outer_iterations : int or sequence of int, optional
        Outer iterations per level, coarsest first (default ``settings.outer_iterations``);
        0 records the stage's start only (e.g. the prolonged start without fine training).
    smoothing_sigma : float, optional
        Gaussian pre-smoothing of the images before each restriction (pixels of the finer mesh;
        :func:`pdecontrol.transfer.restrict_image`).
    """
    settings = _check_settings(settings)
    n_levels = check_int(n_levels, "n_levels", 1)
    counts = _per_stage(outer_iterations, n_levels, settings.outer_iterations, "outer_iterations")
    stages = [
        _Stage(
            level,
            settings.n_steps,
            count,
            "start" if level == n_levels - 1 else "prolonged_start",
        )
        for level, count in zip(range(n_levels - 1, -1, -1), counts)
    ]
    options = _RunOptions(n_classes, checkpoint_dir, callback, progress)
    return _Schedule(
        "train_multilevel",
        settings,
        stages,
        train,
        validation,
        options,
        smoothing_sigma=smoothing_sigma,
    ).run()


def train_time_continuation(
    train,
    validation=None,
    settings=None,
    *,
    layer_schedule=None,
    outer_iterations=None,
    n_classes=None,
    checkpoint_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """Train few layers, refine in time (interpolated controls, same ``T``), continue.

    Parameters
    ----------{common}
    layer_schedule : sequence of int, optional
        Increasing numbers of layers ending at ``settings.n_steps`` (default: halvings of
        ``settings.n_steps`` while even, e.g. ``(1, 2, 4)`` for 4 layers).
    outer_iterations : int or sequence of int, optional
        Outer iterations per stage (default ``settings.outer_iterations``; 0: start row only).
    """
    settings = _check_settings(settings)
    if layer_schedule is None:
        schedule, n = [settings.n_steps], settings.n_steps
        while n % 2 == 0:
            n //= 2
            schedule.insert(0, n)
    else:
        schedule = [check_int(n, f"layer_schedule[{i}]", 1) for i, n in enumerate(layer_schedule)]
    if (
        not schedule
        or schedule[-1] != settings.n_steps
        or any(a >= b for a, b in zip(schedule, schedule[1:]))
    ):
        raise ValueError(
            f"layer_schedule must increase strictly and end at settings.n_steps = "
            f"{settings.n_steps}, got {schedule}"
        )
    counts = _per_stage(
        outer_iterations, len(schedule), settings.outer_iterations, "outer_iterations"
    )
    stages = [
        _Stage(0, n, count, "start" if i == 0 else "time_refined_start")
        for i, (n, count) in enumerate(zip(schedule, counts))
    ]
    options = _RunOptions(n_classes, checkpoint_dir, callback, progress)
    return _Schedule("train_time_continuation", settings, stages, train, validation, options).run()


def train_resolution_consistent(
    train,
    validation=None,
    settings=None,
    *,
    consistency_levels=(1,),
    consistency_weight: float = 1.0,
    classifier: str = "fine_solve",
    smoothing_sigma=None,
    n_classes=None,
    initial=None,
    checkpoint_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """One network valid at several resolutions: fine loss + weight * restricted-network losses.

    The objective is :func:`resolution_consistent_functional` (regularisers on the fine term
    only); the kernels and biases take ``settings.gauss_newton_steps`` sub-sampled GN-CG steps
    on it per outer iteration. ``W`` enters every coarse term as ``R W``, so the exact
    classifier solve of the fine term alone does not minimise the objective in ``W``; two
    choices (``classifier``):

    * ``"fine_solve"`` (default): the block schedule as in the other drivers, ``(W, c)`` solved
      exactly on the *fine* term (the fine loss decides the classifier; the kernels learn to
      make ``R W`` work on the coarse levels). A block-coordinate method on two slightly
      different objectives: the recorded objective may rise after a block solve.
    * ``"gauss_newton"``: ``(W, c)`` solved on the fine term once at the start, then trained
      with the kernels by the GN-CG steps on the full objective (a true descent method on it,
      but ``W`` moves only as far as a few CG iterations take it).

    Parameters
    ----------{common}
    consistency_levels : sequence of int
        Coarsenings (>= 1, distinct) whose restricted-network loss is added.
    consistency_weight : float
        Coefficient ``>= 0`` of every coarse term.
    classifier : {"fine_solve", "gauss_newton"}
        How ``(W, c)`` is trained (see above). Ignored with the cross-entropy loss (always GN).
    smoothing_sigma : float, optional
        Gaussian pre-smoothing when restricting the images.
    initial : ndarray, optional
        Flat starting parameters on the fine mesh.
    """
    settings = _check_settings(settings)
    levels = tuple(
        check_int(k, f"consistency_levels[{i}]", 1) for i, k in enumerate(consistency_levels)
    )
    if not levels or len(set(levels)) != len(levels):
        raise ValueError(
            f"consistency_levels must be distinct integers >= 1, got {consistency_levels}"
        )
    weight = float(consistency_weight)
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"consistency_weight must be finite and >= 0, got {consistency_weight}")
    if classifier not in ("fine_solve", "gauss_newton"):
        raise ValueError(f"classifier must be 'fine_solve' or 'gauss_newton', got {classifier!r}")
    stages = [
        _Stage(
            0,
            settings.n_steps,
            settings.outer_iterations,
            "start",
            levels,
            weight,
            classifier == "gauss_newton",
        )
    ]
    options = _RunOptions(n_classes, checkpoint_dir, callback, progress)
    return _Schedule(
        "train_resolution_consistent",
        settings,
        stages,
        train,
        validation,
        options,
        initial=initial,
        smoothing_sigma=smoothing_sigma,
    ).run()


for _driver in (
    train_single_level,
    train_multilevel,
    train_time_continuation,
    train_resolution_consistent,
):
    _driver.__doc__ = _driver.__doc__.replace("{common}", _DOC_COMMON.rstrip())
