"""Settings of CNN training: one frozen, validated dataclass (safe to share between runs).

:class:`TrainingSettings` holds everything that defines a training run apart from the data and the
choice of driver (:mod:`problems.cnn.training`): the network (channels, layers, final time,
activation, kernel basis, loss, stepper), the regularisation weights, the optimiser schedule
(outer iterations, Gauss-Newton steps per outer iteration, CG iterations and tolerance,
sub-sample size), the seed and the compute dtype. It round-trips through JSON
(:meth:`TrainingSettings.to_json` / :meth:`TrainingSettings.from_json`), which is how network files
store it.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pdecontrol._validation import check_int
from pdecontrol.control import LeastSquaresLoss, SoftmaxCrossEntropyLoss
from pdecontrol.control.timestepping import get_stepper
from pdecontrol.mesh import Mesh
from pdecontrol.ops import get_activation

from .classifier import ClassifierSolver
from .logistic_classifier import LogisticClassifierSolver
from .network import KERNEL_BASES, CNNProblem
from .regularization import classifier_tikhonov, high_order_kernel_penalty, time_smoothness

__all__ = ["TrainingSettings", "LEVEL_FIELDS", "LOSSES", "MAX_MAGNITUDE"]

#: Loss names accepted by :attr:`TrainingSettings.loss`.
LOSSES = {"least_squares": LeastSquaresLoss, "softmax_cross_entropy": SoftmaxCrossEntropyLoss}
#: Largest ``final_time``, kernel scales and regularisation weights: the misfit is of order 1
#: per example and states grow by at most ``final_time`` through the layers, so larger values
#: only let one term decide alone or overflow the float32 states (``final_time = 1e300``:
#: infinite states; a weight of ``1e300``: objective ``6.5e301``).
MAX_MAGNITUDE = 1e3
#: Fields of :class:`TrainingSettings` that may differ between the levels of a multilevel run
#: (:meth:`TrainingSettings.on_level`): what one outer iteration does, not the network, its
#: regularisation, the run's seed or the transfers between levels.
LEVEL_FIELDS = (
    "gauss_newton_steps", "cg_iterations", "cg_rtol", "batch_size", "gauss_newton_batch_size",
    "classifier_rtol", "classifier_batch_size", "classifier_curvature_batch_size",
    "classifier_newton_steps", "classifier_start_newton_steps",
)


def _real(value, name: str, *, positive: bool = False, maximum: float = np.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"TrainingSettings.{name} must be a real number, got {type(value).__name__}"
        )
    value = float(value)
    if not np.isfinite(value) or value < 0 or (positive and value == 0) or value > maximum:
        bound = "> 0" if positive else ">= 0"
        limit = "" if maximum == np.inf else f" and <= {maximum:g}"
        raise ValueError(f"TrainingSettings.{name} must be finite, {bound}{limit}, got {value:g}")
    return value


@dataclass(frozen=True)
class TrainingSettings:
    """Network, regularisation and optimiser settings of a training run (immutable).

    Parameters
    ----------
    n_channels : int
        ``C``, channels of the residual layers.
    n_steps : int
        Residual layers (time steps). Time continuation starts from fewer (see
        :func:`problems.cnn.training.train_time_continuation`) and ends at this number.
    final_time : float or None
        ``T``; ``None`` means ``T = n_steps`` (``dt = 1`` at ``n_steps`` layers, the plain ResNet).
        At most :data:`MAX_MAGNITUDE`, as the kernel scales and the three regularisation weights.
    activation : {"tanh", "relu", "smooth_relu"}
        ``sigma`` of the residual layers.
    opening_activation : {None, "tanh", "relu", "smooth_relu"}
        Activation after the opening convolution (``None``: linear opening).
    kernel_basis : {"stencil", "derivative"}
        Parameterisation of the kernels (:class:`problems.cnn.network.CNNProblem`).
    loss : {"least_squares", "softmax_cross_entropy"}
        Least squares on one-hot labels (the paper) allows the exact classifier solve; with
        cross-entropy the classifier is trained by Gauss-Newton with the kernels.
    stepper : {"euler", "midpoint", "rk4"}
        Time integrator (forward Euler is the ResNet).
    high_order_penalty : float
        Weight of :func:`problems.cnn.regularization.high_order_kernel_penalty` (derivative
        coefficients of order ``>= high_order_min_order`` in units of the finest spacing).
    high_order_min_order : int
        Lowest derivative order penalised (1 .. 2 * dim).
    time_smoothness : float
        Weight of :func:`problems.cnn.regularization.time_smoothness` on ``K`` and ``b``.
    classifier_tikhonov : float
        Weight of ``alpha/2 int |W|^2 dx`` (the ridge weight of the classifier solve).
    classifier_rtol : float
        Relative residual of the classifier's CG solve (used only when no direct solve of
        :class:`~problems.cnn.classifier.ClassifierSolver` applies).
    outer_iterations : int
        Outer iterations per stage (level or layer count) of the schedule.
    gauss_newton_steps : int
        Sub-sampled Gauss-Newton-CG steps on kernels and biases per outer iteration.
    cg_iterations : int
        CG iterations per Gauss-Newton step (at most).
    cg_rtol : float
        Relative CG residual at which a Gauss-Newton step stops early, in (0, 1).
    batch_size : int or None
        Examples drawn (without replacement) per Gauss-Newton step for the gradient, the
        Gauss-Newton products and the line search (the paper: 10,000); ``None`` uses all.
    gauss_newton_batch_size : int or None
        Examples of the Gauss-Newton products, drawn from the gradient's batch (``None``: the
        whole batch, as the paper); a product costs about 4/3 of a gradient per example, so a
        smaller curvature batch buys more CG iterations.
    classifier_batch_size : int or None
        Examples the classifier block is fitted on, drawn afresh at every solve
        (:func:`problems.cnn.classifier.sample_examples`); ``None``: all training examples.
    classifier_curvature_batch_size : int or None
        With the cross-entropy block solve (``classifier_newton_steps > 0``): examples of its
        Hessian products, drawn at every solve from the examples it fits (a sub-sampled Newton
        method, as :attr:`gauss_newton_batch_size` for the kernels); ``None``: all of them.
    classifier_newton_steps : int
        With the cross-entropy loss: ``0`` trains ``(W, c)`` by the Gauss-Newton steps with the
        kernels; ``k > 0`` solves the classifier block approximately instead, by ``k`` Newton-CG
        steps of :class:`problems.cnn.logistic_classifier.LogisticClassifierSolver` (at most
        :attr:`cg_iterations` CG iterations each) before the kernels' steps, as the exact solve
        of least squares. Ignored with least squares (solved exactly).
    classifier_start_newton_steps : int or None
        Newton-CG steps of the classifier solve at a stage's start, where the classifier is far
        from fitted to the network (random kernels, or a network just prolonged from a coarser
        mesh); ``None``: :attr:`classifier_newton_steps`. Cross-entropy block solve only.
    prolongation_fit_examples : int
        ``k > 0``: after every move to a finer mesh the prolonged network's kernels are fitted,
        layer by layer, on ``k`` training examples so that its pre-activations reproduce the
        coarse network's, interpolated
        (:func:`problems.cnn.fitted_prolongation.fit_prolonged_kernels`, charged as work);
        ``0``: the kernel transfer alone. Forward Euler (``stepper="euler"``) only.
    prolongation_fit_ridge : float
        Ridge weight of that fit towards the kernel transfer's kernels (against the mean square
        pre-activation misfit per point).
    seed : int
        Seeds the initial kernels and the sub-samples (one generator for the whole schedule).
    dtype : {"float32", "float64"}
        Compute dtype of states (float32 for speed; float64 for derivative tests).
    kernel_scale : float
        Scale of the random initial residual kernels (:meth:`CNNProblem.initial_parameters`):
        larger scales make the initial features more nonlinear (tanh away from its linear part).
    opening_scale : float
        Scale of the random initial opening kernels (:meth:`CNNProblem.initial_parameters`).
    chunk_size : int or None
        Examples processed at a time inside a functional (bounds memory); ``None``: all at once.
    """

    n_channels: int = 8
    n_steps: int = 2
    final_time: float | None = None
    activation: str = "tanh"
    opening_activation: str | None = None
    kernel_basis: str = "stencil"
    loss: str = "least_squares"
    stepper: str = "euler"
    high_order_penalty: float = 0.0
    high_order_min_order: int = 1
    time_smoothness: float = 0.0
    classifier_tikhonov: float = 1e-3
    classifier_rtol: float = 1e-6
    outer_iterations: int = 10
    gauss_newton_steps: int = 2
    cg_iterations: int = 10
    cg_rtol: float = 1e-2
    batch_size: int | None = 10_000
    gauss_newton_batch_size: int | None = None
    classifier_batch_size: int | None = None
    classifier_curvature_batch_size: int | None = None
    classifier_newton_steps: int = 0
    classifier_start_newton_steps: int | None = None
    prolongation_fit_examples: int = 0
    prolongation_fit_ridge: float = 1e-3
    seed: int = 0
    dtype: str = "float32"
    kernel_scale: float = 1.0
    opening_scale: float = 1.0
    chunk_size: int | None = None

    def __post_init__(self):
        # numbers are stored as Python int and float (numpy scalars too), so that the settings
        # always serialise (to_json)
        def store(name, value):
            object.__setattr__(self, name, value)

        minimums = {"seed": 0, "classifier_newton_steps": 0, "prolongation_fit_examples": 0}
        for name in ("n_channels", "n_steps", "outer_iterations", "gauss_newton_steps",
                     "cg_iterations", "high_order_min_order", "seed", "classifier_newton_steps",
                     "prolongation_fit_examples"):
            store(name, check_int(getattr(self, name), f"TrainingSettings.{name}",
                                  minimums.get(name, 1)))
        for name in ("batch_size", "chunk_size", "gauss_newton_batch_size",
                     "classifier_batch_size", "classifier_curvature_batch_size",
                     "classifier_start_newton_steps"):
            if getattr(self, name) is not None:
                store(name, check_int(getattr(self, name), f"TrainingSettings.{name}", 1))
        if self.final_time is not None:
            store("final_time", _real(self.final_time, "final_time", positive=True,
                                      maximum=MAX_MAGNITUDE))
        for name in ("high_order_penalty", "time_smoothness", "classifier_tikhonov",
                     "prolongation_fit_ridge"):
            store(name, _real(getattr(self, name), name, maximum=MAX_MAGNITUDE))
        for name in ("kernel_scale", "opening_scale"):
            store(name, _real(getattr(self, name), name, positive=True, maximum=MAX_MAGNITUDE))
        for name in ("cg_rtol", "classifier_rtol"):
            store(name, _real(getattr(self, name), name, positive=True))
            if getattr(self, name) >= 1:
                raise ValueError(
                    f"TrainingSettings.{name} must lie in (0, 1), got {getattr(self, name)}"
                )
        for name in ("activation", "opening_activation"):
            value = getattr(self, name)
            if value is None and name == "opening_activation":
                continue
            if not isinstance(value, str):
                raise TypeError(
                    f"TrainingSettings.{name} must be an activation name (str), "
                    f"got {type(value).__name__}"
                )
            try:
                get_activation(value)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"TrainingSettings.{name}: {error}") from None
        if self.kernel_basis not in KERNEL_BASES:
            raise ValueError(
                f"TrainingSettings.kernel_basis must be one of {KERNEL_BASES}, "
                f"got {self.kernel_basis!r}"
            )
        if self.loss not in LOSSES:
            raise ValueError(
                f"TrainingSettings.loss must be one of {sorted(LOSSES)}, got {self.loss!r}"
            )
        newton_solve = self.loss == "softmax_cross_entropy" and self.classifier_newton_steps > 0
        for name in ("classifier_start_newton_steps", "classifier_curvature_batch_size"):
            if getattr(self, name) is not None and not newton_solve:
                raise ValueError(
                    f"TrainingSettings.{name} applies to the cross-entropy's Newton-CG "
                    "classifier solve (classifier_newton_steps > 0); leave it None"
                )
        if not isinstance(self.stepper, str):
            raise TypeError(
                f"TrainingSettings.stepper must be a stepper name (str), "
                f"got {type(self.stepper).__name__}"
            )
        try:
            get_stepper(self.stepper)
        except ValueError as error:
            raise ValueError(f"TrainingSettings.stepper: {error}") from None
        if self.prolongation_fit_examples and self.stepper != "euler":
            raise ValueError(
                "TrainingSettings.prolongation_fit_examples fits forward Euler layers only "
                f"(stepper='euler'), got stepper={self.stepper!r}; set it to 0"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(
                f"TrainingSettings.dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        if self.high_order_min_order > 6:
            raise ValueError(
                "TrainingSettings.high_order_min_order must be <= 2 * dim (at most 6), "
                f"got {self.high_order_min_order}"
            )

    # ------------------------------------------------------------------ derived
    @property
    def compute_dtype(self) -> np.dtype:
        """:attr:`dtype` as a numpy dtype."""
        return np.dtype(self.dtype)

    @property
    def exact_classifier(self) -> bool:
        """Whether ``(W, c)`` is solved exactly (least squares), not trained by Gauss-Newton."""
        return self.loss == "least_squares"

    @property
    def classifier_block(self) -> bool:
        """Whether ``(W, c)`` is a block solved apart from the kernels (exactly for least
        squares, by Newton-CG for the cross-entropy with ``classifier_newton_steps > 0``)."""
        return self.exact_classifier or self.classifier_newton_steps > 0

    def make_loss(self):
        """A new loss object of :attr:`loss`."""
        return LOSSES[self.loss]()

    @property
    def time_horizon(self) -> float:
        """``T``: :attr:`final_time`, else :attr:`n_steps` (fixed for the whole schedule, also
        while time continuation trains fewer layers with a larger ``dt``)."""
        return float(self.n_steps) if self.final_time is None else float(self.final_time)

    def make_problem(
        self, mesh: Mesh, n_classes: int, *, in_channels: int = 1, reference_spacing=None
    ) -> CNNProblem:
        """The :class:`CNNProblem` of these settings on ``mesh`` (``reference_spacing``: the
        finest spacing of a hierarchy; default ``mesh.h``)."""
        return CNNProblem(
            mesh,
            self.n_channels,
            n_classes,
            in_channels=in_channels,
            activation=self.activation,
            opening_activation=self.opening_activation,
            kernel_basis=self.kernel_basis,
            reference_spacing=reference_spacing,
            loss=self.make_loss(),
        )

    def make_regularizers(self, problem: CNNProblem) -> list:
        """The regularisers of the training objective of ``problem`` (zero weights omitted):
        high-order kernel penalty (units of ``problem.reference_spacing``), time smoothness of
        ``K`` and ``b`` over ``[0, T]``, Tikhonov on ``W``."""
        regularizers = []
        if self.high_order_penalty > 0:
            regularizers += high_order_kernel_penalty(
                problem, self.high_order_penalty, min_order=self.high_order_min_order
            )
        if self.time_smoothness > 0:
            regularizers += time_smoothness(self.time_smoothness, self.time_horizon)
        if self.classifier_tikhonov > 0:
            regularizers.append(classifier_tikhonov(self.classifier_tikhonov))
        return regularizers

    def classifier_solver(self, functional):
        """The ``(W, c)`` block solve on ``functional`` (on :attr:`classifier_batch_size`
        examples drawn per solve, else all). Least squares: exact, with
        ``classifier_tikhonov > 0`` a direct solve (dual Gram for up to 4,000 examples, else the
        primal normal equations for up to 8,192 features), else CG to :attr:`classifier_rtol`
        (:class:`ClassifierSolver`'s ``"auto"``). Cross-entropy: :attr:`classifier_newton_steps`
        Newton-CG steps (:class:`LogisticClassifierSolver`)."""
        common = {"sample_size": self.classifier_batch_size, "seed": self.seed,
                  "batch_size": self.chunk_size or 1000}
        if self.exact_classifier:
            return ClassifierSolver(functional, method="auto", rtol=self.classifier_rtol,
                                    **common)
        if self.classifier_newton_steps == 0:
            raise ValueError("the cross-entropy classifier is trained with the kernels "
                             "(classifier_newton_steps = 0); there is no block solve")
        return LogisticClassifierSolver(functional, newton_steps=self.classifier_newton_steps,
                                        cg_iterations=self.cg_iterations,
                                        curvature_sample_size=self.classifier_curvature_batch_size,
                                        **common)

    def replace(self, **changes) -> TrainingSettings:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def on_level(self, changes, name: str = "level_settings") -> TrainingSettings:
        """The settings of one level of a multilevel run: a copy with ``changes`` (a mapping of
        :data:`LEVEL_FIELDS` to values; ``None`` or empty: ``self``), validated; ``name`` names
        the argument in the messages."""
        if changes is None:
            return self
        if not isinstance(changes, Mapping):
            raise TypeError(f"{name} must map TrainingSettings fields to values, got "
                            f"{type(changes).__name__}")
        others = sorted(set(changes) - set(LEVEL_FIELDS))
        if others:
            raise ValueError(f"{name} may change only {', '.join(LEVEL_FIELDS)} on a level, "
                             f"got {', '.join(map(str, others))}")
        return self.replace(**changes)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """Plain dict of the fields (JSON-compatible)."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The settings as a JSON string (keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> TrainingSettings:
        """Settings from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown TrainingSettings fields {unknown}; known fields are {sorted(known)}"
            )
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> TrainingSettings:
        """Inverse of :meth:`to_json`."""
        try:
            values = json.loads(text)
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"TrainingSettings JSON cannot be parsed: {error}") from None
        if not isinstance(values, dict):
            raise ValueError(
                f"TrainingSettings JSON must hold an object, got {type(values).__name__}"
            )
        return cls.from_dict(values)
