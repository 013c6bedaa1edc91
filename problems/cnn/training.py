"""Training drivers of the CNN problem, run by the framework's continuation machinery.

Every driver is a :class:`pdecontrol.continuation.Schedule` of stages (a mesh level of the
image pyramid and a number of layers) run by :func:`pdecontrol.continuation.run_continuation`
on :class:`problems.cnn.training_problem.CNNTraining`, which supplies only what is about images
and networks: the stage objective, the transfer of networks between meshes (Galerkin by
default, or rediscretization: ``kernel_transfer``; node- or cell-centred meshes: ``centring``),
the classifier solve and the accuracy monitor.

* :func:`train_single_level` - one stage on the given images.
* :func:`train_multilevel` - Algorithm 1 of docs/method.md: restrict the images ``n_levels - 1``
  times, start on the coarsest mesh, train, prolong the network to the next finer mesh
  (:func:`problems.cnn.transfer.prolong_network`: inverse Galerkin kernels), re-solve the
  classifier there (the ``"prolonged_start"`` row, before any training on that level), continue
  to the finest mesh.
* :func:`train_time_continuation` - the same in depth: train few layers, refine the layers by
  interpolation in time (the framework's default time transfer, ``T`` fixed, ``dt`` shrinks),
  continue (``"time_refined_start"`` rows).
* :func:`train_resolution_consistent` - one parameter set, objective
  ``J_h(x) + w sum_k J_{2^k h}(R_k x)`` (fine loss plus the loss of the Galerkin-restricted
  network on restricted images; :func:`resolution_consistent_functional`).

**Outer iteration** (docs/method.md section 4). Each stage runs
:func:`pdecontrol.optimize.block_coordinate_descent`. With the least-squares loss the stage
starts with the exact classifier solve (``W, c`` on the whole training set,
:class:`problems.cnn.classifier.ClassifierSolver`); an outer iteration is then
``settings.gauss_newton_steps`` sub-sampled Gauss-Newton-CG steps on the kernels and biases
``K, b, K0, b0`` followed by the classifier solve (``order="solve_last"``: the paper's order,
solve W then k GN steps, with the solve of iteration ``i + 1`` done at the end of iteration
``i``, so every row has the optimal classifier for its kernels). With the cross-entropy loss the
classifier is not a least-squares block: by default the Gauss-Newton steps update all parameters;
with ``settings.classifier_newton_steps > 0`` it is a block again, improved by that many Newton-CG
steps of the convex logistic regression on the final states
(:class:`problems.cnn.logistic_classifier.LogisticClassifierSolver`) where least squares solves
exactly. ``settings.classifier_batch_size`` fits the block on a sample drawn per solve, and
``settings.gauss_newton_batch_size`` takes the Gauss-Newton products on part of the gradient's
batch. The
resolution-consistent objective offers both (``classifier="fine_solve"`` or ``"gauss_newton"``).

**History**: the framework's (:mod:`pdecontrol.continuation.driver`: ``stage``,
``stage_iteration``, ``phase``, ``level``, ``mesh_shape``, ``n_steps``, the step columns
``inner_iterations``, ``inner_status``, ``cg_iterations``, evaluation counts, ``work``,
``fine_level_work``, ``wall_time``), with the CNN's monitor: ``objective`` (the full training
objective on all examples), ``training_accuracy`` and ``validation_accuracy`` (NaN without
validation data; on the stage's mesh), and ``n_classifier_solves``.

**Work** is counted in *fine convolutions*: one ``C x C`` 3x3 (3x3x3 for volumes) convolution of
one example on the finest mesh of the schedule. Per example and per stage of the Runge-Kutta
scheme of each layer (:data:`CONVOLUTIONS_PER_EXAMPLE`), a forward solve costs 1 convolution, a
gradient 3 (forward, adjoint state, kernel gradient), building a Gauss-Newton operator 1 (its
forward solve), a Gauss-Newton product 4 (tangent ``K dy + dK y``, adjoint); a convolution on a
mesh with ``2^-dk`` of the fine nodes costs ``2^-dk`` (one level coarser costs 4x less in 2D, 8x
less in 3D). The classifier solve costs one forward solve of every example it is fitted on (the
least-squares solve or the Newton-CG steps on the stored final states themselves are not
counted: they stream features, not convolutions); monitoring is not counted.

**Resume.** With ``state_dir`` the run writes its state (:mod:`pdecontrol.continuation.state`)
to ``state_dir/training_state.npz`` after every row; calling the same driver with the same data,
settings and schedule resumes from it, identical to an uninterrupted run (same parameters bit for
bit, same history apart from ``wall_time``). The state of a different run is refused.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from pdecontrol._validation import check_int
from pdecontrol.continuation import Schedule, per_stage

from .config import TrainingSettings
from .training_problem import (
    CONVOLUTIONS_PER_EXAMPLE,
    STATE_FILE,
    CNNTraining,
    TrainingResult,
    resolution_consistent_functional,
)

__all__ = [
    "train_single_level",
    "train_multilevel",
    "train_time_continuation",
    "halving_layers",
    "train_resolution_consistent",
    "TrainingResult",
    "CNNTraining",
    "resolution_consistent_functional",
    "STATE_FILE",
    "CONVOLUTIONS_PER_EXAMPLE",
]


# ---------------------------------------------------------------------- drivers
_DOC_COMMON = """
    train : (images, labels) or image-set xarray.Dataset
        Training images ``(N, n, n)`` (or ``(N, C_in, n, n)``) on the unit square and integer
        labels; volumes ``(N, n, n, n)`` (or ``(N, C_in, n, n, n)``) on the unit cube.
    validation : (images, labels) or Dataset, optional
        Validation images of the same resolution (accuracy recorded per row).
    settings : TrainingSettings, optional
        Default ``TrainingSettings()``.
    n_classes : int, optional
        Default: the dataset's ``n_classes`` attribute, else ``max(label) + 1``.
    dim : {2, 3}, optional
        Spatial dimension: read off an image-set Dataset (``z, y, x`` dims: volumes), default 2
        for arrays; ``dim=3`` reads ``(N, n, n, n)`` arrays as volumes.
    state_dir : str or Path, optional
        Write the resume state after every row; resume from it if present.
    callback : callable, optional
        ``callback(row)`` after every row (a dict of the history columns); return ``True`` to stop.
    progress : bool
        Show a tqdm bar.
"""
_DOC_TRANSFERS = """
    centring : {"node", "cell"}
        Centring of the meshes (:class:`pdecontrol.mesh.Mesh`): the ``R`` that restricts the
        images and the classifier, and the Galerkin map of the kernels.
    kernel_transfer : {"galerkin", "rediscretize"}
        How the network's kernels move between levels
        (:data:`problems.cnn.transfer.KERNEL_TRANSFERS`)."""


def _check_settings(settings) -> TrainingSettings:
    """``settings``, ``TrainingSettings()`` for ``None``; ``TypeError`` for anything else."""
    settings = TrainingSettings() if settings is None else settings
    if not isinstance(settings, TrainingSettings):
        raise TypeError(f"settings must be TrainingSettings, got {type(settings).__name__}")
    return settings


def _check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be callable(row) -> bool | None, got {type(callback).__name__}")


def train_single_level(
    train,
    validation=None,
    settings=None,
    *,
    centring: str = "node",
    n_classes=None,
    dim=None,
    initial=None,
    state_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """Train on the given resolution only: classifier solve, then outer iterations.

    Parameters
    ----------{common}
    centring : {"node", "cell"}
        Centring of the network's mesh: training on one mesh does not depend on it (the same
        parameters either way), but it decides how the network restricts afterwards.
    initial : ndarray, optional
        Flat starting parameters (default: seeded random kernels, zero biases).
    """
    settings = _check_settings(settings)
    _check_callback(callback)
    problem = CNNTraining(settings, train, validation, n_classes=n_classes, dim=dim,
                          centring=centring)
    schedule = Schedule([problem.stage(0, settings.n_steps, settings.outer_iterations)])
    return problem.train(schedule, "train_single_level", initial=initial, state_dir=state_dir,
                         callback=callback, progress=progress)


def train_multilevel(
    train,
    validation=None,
    settings=None,
    *,
    n_levels: int = 2,
    outer_iterations=None,
    smoothing_sigma=None,
    centring: str = "node",
    kernel_transfer: str = "galerkin",
    level_settings=None,
    n_classes=None,
    dim=None,
    state_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """Algorithm 1 (docs/method.md): coarsest mesh first, prolong the network, re-solve W,
    continue.

    Parameters
    ----------{common}
    n_levels : int
        Meshes in the hierarchy (``n_levels - 1`` coarsenings of the images); 1 is single-level.
    outer_iterations : int or sequence of int, optional
        Outer iterations per level, coarsest first (default ``settings.outer_iterations``);
        0 records the stage's start only (e.g. the prolonged start without fine training).
    smoothing_sigma : float, optional
        Gaussian pre-smoothing of the images before each restriction (pixels of the finer mesh;
        :func:`pdecontrol.transfer.restrict_image`).{transfers}
    level_settings : sequence of mapping, optional
        Per level, coarsest first (as ``outer_iterations``), the
        :data:`~problems.cnn.config.LEVEL_FIELDS` of ``settings`` changed on that level
        (``None`` or ``{}``: none), e.g. ``[{"classifier_batch_size": 10_000}, None]``.
    """
    settings = _check_settings(settings)
    _check_callback(callback)
    n_levels = check_int(n_levels, "n_levels", 1)
    if level_settings is not None:
        if isinstance(level_settings, (str, bytes)) or not isinstance(level_settings, Sequence) \
                or len(level_settings) != n_levels:
            raise ValueError(f"level_settings must be a sequence of {n_levels} mappings (or "
                             f"None), one per level, coarsest first, got {level_settings!r}")
        level_settings = {n_levels - 1 - i: changes for i, changes in enumerate(level_settings)}
    problem = CNNTraining(settings, train, validation, n_classes=n_classes, dim=dim,
                          n_levels=n_levels,
                          smoothing_sigma=smoothing_sigma, centring=centring,
                          kernel_transfer=kernel_transfer, level_settings=level_settings)
    counts = per_stage(outer_iterations, n_levels, "outer_iterations")
    schedule = Schedule([
        problem.stage(level, settings.n_steps, settings.outer_iterations if count is None
                      else count)
        for level, count in zip(range(n_levels - 1, -1, -1), counts, strict=True)])
    return problem.train(schedule, "train_multilevel", state_dir=state_dir, callback=callback,
                         progress=progress)


def halving_layers(n_steps: int, name: str = "settings.n_steps") -> list:
    """The default layer schedule of time continuation: ``n_steps`` halved while even, e.g.
    ``[1, 2, 4]`` for 4; ``ValueError`` naming ``name`` when that leaves one stage (odd
    ``n_steps``: nothing to continue from)."""
    layers = [n_steps]
    while layers[0] % 2 == 0:
        layers.insert(0, layers[0] // 2)
    if len(layers) < 2:
        raise ValueError(
            f"time continuation trains {name} halved while even first (1, 2, 4 for 4), but "
            f"{name} = {n_steps} is odd: one stage, no continuation; use an even number of "
            "layers (e.g. 2 or 4), or single-level training for one layer")
    return layers


def train_time_continuation(
    train,
    validation=None,
    settings=None,
    *,
    layer_schedule=None,
    outer_iterations=None,
    centring: str = "node",
    n_classes=None,
    dim=None,
    state_dir=None,
    callback=None,
    progress=False,
) -> TrainingResult:
    """Train few layers, refine in time (interpolated controls, same ``T``), continue.

    Parameters
    ----------{common}
    layer_schedule : sequence of int, optional
        Increasing numbers of layers ending at ``settings.n_steps``, at least two (default:
        :func:`halving_layers`, e.g. ``(1, 2, 4)`` for 4 layers; odd ``n_steps`` is refused).
    outer_iterations : int or sequence of int, optional
        Outer iterations per stage (default ``settings.outer_iterations``; 0: start row only).
    centring : {"node", "cell"}
        Centring of the network's mesh (as in :func:`train_single_level`).
    """
    settings = _check_settings(settings)
    _check_callback(callback)
    if layer_schedule is None:
        layers = halving_layers(settings.n_steps)
    else:
        layers = [check_int(n, f"layer_schedule[{i}]", 1) for i, n in enumerate(layer_schedule)]
    if len(layers) < 2 or layers[-1] != settings.n_steps or any(
            a >= b for a, b in itertools.pairwise(layers)):
        raise ValueError(
            f"layer_schedule must have at least two stages, increase strictly and end at "
            f"settings.n_steps = {settings.n_steps}, got {layers}"
        )
    problem = CNNTraining(settings, train, validation, n_classes=n_classes, dim=dim,
                          centring=centring)
    counts = per_stage(outer_iterations, len(layers), "outer_iterations")
    schedule = Schedule([problem.stage(0, n, settings.outer_iterations if count is None
                                       else count)
                         for n, count in zip(layers, counts, strict=True)])
    return problem.train(schedule, "train_time_continuation", state_dir=state_dir,
                         callback=callback, progress=progress)


def train_resolution_consistent(
    train,
    validation=None,
    settings=None,
    *,
    consistency_levels=(1,),
    consistency_weight: float = 1.0,
    classifier: str = "fine_solve",
    smoothing_sigma=None,
    centring: str = "node",
    kernel_transfer: str = "galerkin",
    n_classes=None,
    dim=None,
    initial=None,
    state_dir=None,
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
        Gaussian pre-smoothing when restricting the images.{transfers}
    initial : ndarray, optional
        Flat starting parameters on the fine mesh.
    """
    settings = _check_settings(settings)
    _check_callback(callback)
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
    problem = CNNTraining(settings, train, validation, n_classes=n_classes, dim=dim,
                          n_levels=max(levels) + 1, smoothing_sigma=smoothing_sigma,
                          consistency_levels=levels, consistency_weight=weight,
                          classifier_in_gauss_newton=classifier == "gauss_newton",
                          centring=centring, kernel_transfer=kernel_transfer)
    schedule = Schedule([problem.stage(0, settings.n_steps, settings.outer_iterations)])
    return problem.train(schedule, "train_resolution_consistent", initial=initial,
                         state_dir=state_dir, callback=callback, progress=progress)


for _driver in (
    train_single_level,
    train_multilevel,
    train_time_continuation,
    train_resolution_consistent,
):
    _driver.__doc__ = (_driver.__doc__.replace("{common}", _DOC_COMMON.rstrip())
                       .replace("{transfers}", _DOC_TRANSFERS))
