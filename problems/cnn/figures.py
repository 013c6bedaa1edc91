"""Figures of the CNN experiments (matplotlib, Agg canvas: no display, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` and, when ``path`` is given, also
saves it there as PNG (``dpi`` 120). Images are drawn with row 0 at the top (as stored) and
pixel ``(i, j)`` at node ``(i h, j h)``; stencils are drawn as their 3x3 weights in the
correlation convention of :mod:`pdecontrol.ops` (entry ``[a, b]`` multiplies
``y[i + a - 1, j + b - 1]``).

* :func:`plot_training_curves` - objective and validation accuracy per outer iteration for
  several runs (e.g. fine-only vs multilevel), with every change of resolution marked.
* :func:`plot_accuracy_against_cost` - validation accuracy against fine-level work and against
  wall time, so that the work a multilevel run saves can be read off at a target accuracy.
* :func:`plot_confusion_matrix` - row-normalised confusion matrix of a classifier.
* :func:`plot_convolved_image` - an image convolved with a kernel on the fine mesh, next to the
  restricted image convolved with the Galerkin-restricted kernel on the coarse mesh.
* :func:`plot_kernels` - a grid of learned 3x3 kernels, one panel group per layer.
* :func:`plot_accuracy_by_resolution` - accuracy by resolution and network variant (grouped bars).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from pdecontrol._validation import as_float_array, check_finite
from pdecontrol.ops import conv
from pdecontrol.plotting import new_figure, save_figure
from pdecontrol.transfer import restrict_image, restrict_stencil

__all__ = [
    "plot_training_curves",
    "plot_accuracy_against_cost",
    "plot_confusion_matrix",
    "plot_convolved_image",
    "plot_kernels",
    "plot_accuracy_by_resolution",
    "save_figure",
    "confusion_matrix",
]

# ---------------------------------------------------------------------- training curves
def _history_dim(history: xr.Dataset, name: str) -> str:
    if not isinstance(history, xr.Dataset):
        raise TypeError(
            f"histories[{name!r}] must be an xarray.Dataset, got {type(history).__name__}"
        )
    if len(history.dims) != 1:
        raise ValueError(
            f"histories[{name!r}] must have exactly one dimension (the outer iteration), "
            f"got {dict(history.sizes)}"
        )
    return next(iter(history.dims))


def _switches(history: xr.Dataset, dim: str, level_variable: str) -> list:
    """``[(row, label)]``: rows where ``level_variable`` changes (first row of the new level)."""
    if level_variable not in history.variables:
        return []
    values = np.asarray(history[level_variable].values)
    return [
        (row, f"{values[row - 1]} \u2192 {values[row]}")
        for row in range(1, values.size)
        if values[row] != values[row - 1]
    ]


def _mark_switch(axes, x: float, text: str, color: str) -> None:
    """A dashed vertical line at ``x`` on every axis of ``axes``, labelled ``text`` (rotated, at
    the bottom) on the last one: a change of level in a training history."""
    for ax in axes:
        ax.axvline(x, color=color, linestyle="--", linewidth=1)
    axes[-1].annotate(
        text,
        xy=(x, 0.03),
        xycoords=("data", "axes fraction"),
        rotation=90,
        fontsize=7,
        color=color,
        ha="right",
        va="bottom",
    )


def _require_variables(history: xr.Dataset, name: str, variables) -> None:
    for variable in variables:
        if variable not in history.variables:
            raise ValueError(
                f"histories[{name!r}] has no variable {variable!r}; it has "
                f"{sorted(history.data_vars)}"
            )


def plot_training_curves(
    histories: Mapping,
    *,
    objective: str = "objective",
    accuracy: str = "validation_accuracy",
    level_variable: str = "resolution",
    title: str | None = None,
    path=None,
) -> Figure:
    """Objective (log scale) and validation accuracy per outer iteration, one line per run.

    Parameters
    ----------
    histories : mapping of str to xarray.Dataset
        Run name (legend label, e.g. ``"fine only"``, ``"multilevel"``) to its history: a Dataset
        with one dimension (outer iterations, in order; plotted at x = 0, 1, 2, ...) holding the
        variables ``objective`` and ``accuracy`` (a fraction in [0, 1], plotted in percent). A
        variable ``level_variable`` (e.g. the image resolution per row) marks each change of
        level with a dashed vertical line before the first row of the new level, labelled
        ``old -> new``. Missing accuracy values (NaN) are skipped.
    objective, accuracy, level_variable : str
        Variable names in the histories.
    title : str, optional
    path : path-like, optional
        Save the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: objective (left) and validation accuracy in % (right).
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty mapping of run name to history Dataset")
    figure = new_figure((10, 4))
    ax_objective, ax_accuracy = figure.subplots(1, 2)
    for index, (name, history) in enumerate(histories.items()):
        dim = _history_dim(history, name)
        _require_variables(history, name, (objective, accuracy))
        color = f"C{index}"
        rows = np.arange(history.sizes[dim])
        values = np.asarray(history[objective].values, dtype=float)
        ax_objective.plot(rows, values, "o-", color=color, label=name, markersize=4)
        percent = 100.0 * np.asarray(history[accuracy].values, dtype=float)
        known = np.isfinite(percent)
        ax_accuracy.plot(rows[known], percent[known], "o-", color=color, label=name, markersize=4)
        for row, label in _switches(history, dim, level_variable):
            _mark_switch((ax_objective, ax_accuracy), row - 0.5, f"{name}: {label}", color)
    ax_objective.set_yscale("log")
    ax_objective.set_xlabel("outer iteration")
    ax_objective.set_ylabel("objective")
    ax_objective.set_title("training objective")
    ax_accuracy.set_xlabel("outer iteration")
    ax_accuracy.set_ylabel("validation accuracy (%)")
    ax_accuracy.set_title("validation accuracy")
    for ax in (ax_objective, ax_accuracy):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_accuracy_against_cost(
    histories: Mapping,
    *,
    target: float | None = None,
    accuracy: str = "validation_accuracy",
    work: str = "fine_level_work",
    wall_time: str = "wall_time",
    level_variable: str = "resolution",
    title: str | None = None,
    path=None,
) -> Figure:
    """Validation accuracy against fine-level work (left) and against wall time (right).

    Parameters
    ----------
    histories : mapping of str to xarray.Dataset
        Run name to its history (one dimension, the rows in order) with the variables
        ``accuracy`` (fraction, plotted in %), ``work`` (cumulative work on the finest level,
        e.g. fine convolutions) and ``wall_time`` (cumulative seconds). The left axis shows only
        the rows on the run's last level (``level_variable`` equal to its final value; all rows
        if the variable is absent), since coarse rows do no fine-level work. The right axis shows
        every row, with each change of level marked by a dashed vertical line.
    target : float, optional
        Accuracy (fraction) drawn as a dotted horizontal line on both axes, e.g. fine-only's
        final accuracy.
    accuracy, work, wall_time, level_variable : str
        Variable names in the histories.
    title : str, optional
    path : path-like, optional
        Save the figure there as PNG.

    Returns
    -------
    matplotlib.figure.Figure
        Two axes: accuracy in % against ``work`` and against ``wall_time`` (s).
    """
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories must be a non-empty mapping of run name to history Dataset")
    figure = new_figure((10, 4))
    ax_work, ax_time = figure.subplots(1, 2)
    for index, (name, history) in enumerate(histories.items()):
        dim = _history_dim(history, name)
        _require_variables(history, name, (accuracy, work, wall_time))
        color = f"C{index}"
        percent = 100.0 * np.asarray(history[accuracy].values, dtype=float)
        known = np.isfinite(percent)
        if level_variable in history.variables:
            levels = np.asarray(history[level_variable].values)
            last_level = levels == levels[-1]
        else:
            last_level = np.ones(percent.size, dtype=bool)
        shown = known & last_level
        cost = np.asarray(history[work].values, dtype=float)
        ax_work.plot(cost[shown], percent[shown], "o-", color=color, label=name, markersize=4)
        seconds = np.asarray(history[wall_time].values, dtype=float)
        ax_time.plot(seconds[known], percent[known], "o-", color=color, label=name, markersize=4)
        for row, label in _switches(history, dim, level_variable):
            _mark_switch((ax_time,), seconds[row], f"{name}: {label}", color)
    if target is not None:
        for ax in (ax_work, ax_time):
            ax.axhline(
                100.0 * target,
                color="0.4",
                linestyle=":",
                linewidth=1,
                label=f"target {100.0 * target:.2f}%",
            )
    ax_work.set_xlabel(f"{work.replace('_', ' ')} (last level only)")
    ax_work.set_title("accuracy against fine-level work")
    ax_time.set_xlabel(f"{wall_time.replace('_', ' ')} (s)")
    ax_time.set_title("accuracy against wall time")
    for ax in (ax_work, ax_time):
        ax.set_ylabel("validation accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


# ---------------------------------------------------------------------- confusion matrix
def _labels(values, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"{name} must be a non-empty 1-D array of integer class indices, got "
            f"dtype {values.dtype} shape {values.shape}"
        )
    if values.min() < 0:
        raise ValueError(f"{name} must be >= 0 (class indices), got minimum {values.min()}")
    return values.astype(np.int64)


def confusion_matrix(labels, predictions, n_classes: int | None = None) -> np.ndarray:
    """Counts ``(n_classes, n_classes)``: ``[i, j]`` = examples of class ``i`` predicted ``j``."""
    labels = _labels(labels, "labels")
    predictions = _labels(predictions, "predictions")
    if labels.shape != predictions.shape:
        raise ValueError(
            f"labels and predictions must have the same length, got {labels.size} "
            f"and {predictions.size}"
        )
    n = int(max(labels.max(), predictions.max())) + 1 if n_classes is None else int(n_classes)
    if max(labels.max(), predictions.max()) >= n:
        raise ValueError(f"class indices must be < n_classes = {n}")
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def plot_confusion_matrix(
    labels, predictions, *, class_names=None, title: str | None = None, path=None
) -> Figure:
    """Confusion matrix, rows = true class, columns = predicted class, normalised per row.

    Colour is the fraction of the true class (row) predicted as each class; the cells show the
    percentage (blank below 0.5%). The title reports the overall accuracy and example count.

    Parameters
    ----------
    labels, predictions : array_like of int, shape (N,)
        True and predicted class indices.
    class_names : sequence of str, optional
        Tick labels (default ``0 .. n_classes - 1``); its length sets ``n_classes``.
    """
    n_classes = None if class_names is None else len(class_names)
    counts = confusion_matrix(labels, predictions, n_classes)
    n_classes = counts.shape[0]
    names = (
        [str(k) for k in range(n_classes)] if class_names is None else list(map(str, class_names))
    )
    totals = counts.sum(axis=1, keepdims=True)
    fraction = counts / np.maximum(totals, 1)
    accuracy = np.trace(counts) / counts.sum()
    figure = new_figure((1.2 + 0.5 * n_classes, 0.8 + 0.5 * n_classes))
    ax = figure.subplots()
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n_classes):
        for j in range(n_classes):
            if fraction[i, j] >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{100 * fraction[i, j]:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if fraction[i, j] > 0.5 else "black",
                )
    ax.set_xticks(
        range(n_classes),
        names,
        rotation=45 if max(map(len, names)) > 2 else 0,
        ha="right" if max(map(len, names)) > 2 else "center",
        fontsize=8,
    )
    ax.set_yticks(range(n_classes), names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    heading = f"accuracy {100 * accuracy:.1f}% ({counts.sum()} examples)"
    ax.set_title(heading if title is None else f"{title}\n{heading}", fontsize=9)
    figure.colorbar(image, ax=ax, label="fraction of true class", shrink=0.8)
    return save_figure(figure, path)


# ---------------------------------------------------------------------- convolution across scales
def plot_convolved_image(image, stencil, *, centring: str = "node", title: str | None = None,
                         path=None) -> Figure:
    """An image convolved on the fine mesh and on the coarse mesh with the restricted kernel.

    Top row: the fine image ``x`` (``n x n``), the fine stencil ``s_h``, ``K_h x`` and its
    restriction ``R K_h x``. Bottom row: the restricted image ``R x`` (``n/2 x n/2``; ``R`` of
    ``centring``: full weighting or 2x2 averaging), the Galerkin-restricted stencil
    ``s_H = restrict_stencil(s_h)``
    (``K_H = R K_h P``), ``K_H R x`` and the difference ``R K_h x - K_H R x``. The responses
    share one colour scale, the stencils another. The title gives
    ``||R K_h x - K_H R x|| / ||R K_h x||``: how well the coarse computation reproduces the
    restricted fine one (small for smooth, low-order stencils; large for rough ones).

    Parameters
    ----------
    image : array_like, shape (n, n), n even
    stencil : array_like, shape (3, 3)
        Fine-mesh stencil weights (correlation).
    """
    image = check_finite(as_float_array(image, "image", dtype=np.float64), "image")
    stencil = check_finite(as_float_array(stencil, "stencil", dtype=np.float64), "stencil")
    if image.ndim != 2 or image.shape[0] % 2 or image.shape[1] % 2 or min(image.shape) < 2:
        raise ValueError(
            f"image must be a 2-D array with even sizes (it is restricted once), "
            f"got shape {image.shape}; pad or crop it"
        )
    if stencil.shape != (3, 3):
        raise ValueError(f"stencil must have shape (3, 3), got {stencil.shape}")
    coarse_image = restrict_image(image, dim=2, centring=centring)
    coarse_stencil = restrict_stencil(stencil, dim=2, centring=centring)
    fine_result = conv(image[None, None], stencil[None, None])[0, 0]
    coarse_result = conv(coarse_image[None, None], coarse_stencil[None, None])[0, 0]
    reference = restrict_image(fine_result, dim=2, centring=centring)
    mismatch = np.linalg.norm(reference - coarse_result) / max(np.linalg.norm(reference), 1e-300)

    figure = new_figure((12, 6))
    axes = figure.subplots(2, 4)
    result_limit = max(np.abs(fine_result).max(), np.abs(coarse_result).max(), 1e-12)
    stencil_limit = max(np.abs(stencil).max(), np.abs(coarse_stencil).max(), 1e-12)
    fine_size = f"{image.shape[0]}x{image.shape[1]}"
    coarse_size = f"{coarse_image.shape[0]}x{coarse_image.shape[1]}"
    panels = [
        [
            (image, "gray", f"fine image $x$ ({fine_size})"),
            (stencil, "stencil", "fine stencil $s_h$"),
            (fine_result, "result", f"$K_h\\,x$ ({fine_size})"),
            (reference, "result", f"$R\\,K_h\\,x$ ({coarse_size})"),
        ],
        [
            (coarse_image, "gray", f"coarse image $R\\,x$ ({coarse_size})"),
            (coarse_stencil, "stencil", "coarse stencil $s_H$ (Galerkin)"),
            (coarse_result, "result", f"$K_H\\,R\\,x$ ({coarse_size})"),
            (reference - coarse_result, "result", "$R\\,K_h\\,x - K_H\\,R\\,x$"),
        ],
    ]
    colours = {
        "gray": ("gray", None),
        "stencil": ("RdBu_r", stencil_limit),
        "result": ("RdBu_r", result_limit),
    }
    drawn = {}
    for (row, column), ax in np.ndenumerate(axes):
        values, kind, label = panels[row][column]
        cmap, limit = colours[kind]
        drawn[kind] = ax.imshow(
            values,
            cmap=cmap,
            interpolation="nearest",
            vmin=None if limit is None else -limit,
            vmax=limit,
        )
        if kind == "stencil":
            for (a, b), value in np.ndenumerate(values):
                ax.text(b, a, f"{value:.2f}", ha="center", va="center", fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.colorbar(drawn["stencil"], ax=axes[:, 1], shrink=0.6, label="stencil weight")
    figure.colorbar(drawn["result"], ax=axes[:, 2:], shrink=0.6, label="response")
    heading = (
        f"Galerkin kernel on the coarse mesh: |R K_h x - K_H R x| / |R K_h x| = {mismatch:.3f}"
    )
    figure.suptitle(heading if title is None else f"{title}\n{heading}", fontsize=10)
    return save_figure(figure, path)


# ---------------------------------------------------------------------- kernels
def plot_kernels(kernels: Mapping, *, title: str | None = None, path=None) -> Figure:
    """Grid of 3x3 stencils: one panel group per layer, rows = output, columns = input channels.

    Parameters
    ----------
    kernels : mapping of str to array_like, shape (C_out, C_in, 3, 3)
        Layer name (e.g. ``"opening"``, ``"layer 1"``) to its stencil weights (correlation).
        Each group has its own symmetric colour scale (``RdBu_r``, 0 = white); the largest
        absolute weight is in the group title.
    """
    if not isinstance(kernels, Mapping) or not kernels:
        raise ValueError(
            "kernels must be a non-empty mapping of layer name to (C_out, C_in, 3, 3) stencils"
        )
    groups = []
    for name, weights in kernels.items():
        weights = check_finite(as_float_array(weights, f"kernels[{name!r}]"), f"kernels[{name!r}]")
        if weights.ndim != 4 or weights.shape[2:] != (3, 3):
            raise ValueError(
                f"kernels[{name!r}] must have shape (C_out, C_in, 3, 3), got {weights.shape}"
            )
        groups.append((str(name), weights))
    rows = max(w.shape[0] for _, w in groups)
    widths = [w.shape[1] for _, w in groups]
    widths = [max(width, 3) for width in widths]  # room for the title and colour bar
    figure = new_figure((0.55 * sum(widths) + 0.5, 0.55 * rows + 1.6))
    subfigures = np.atleast_1d(figure.subfigures(1, len(groups), width_ratios=widths))
    for subfigure, (name, weights) in zip(subfigures, groups, strict=True):
        limit = max(np.abs(weights).max(), 1e-12)
        axes = subfigure.subplots(rows, weights.shape[1], squeeze=False)
        for (out, inp), ax in np.ndenumerate(axes):
            ax.set_xticks([])
            ax.set_yticks([])
            if out < weights.shape[0]:
                image = ax.imshow(weights[out, inp], cmap="RdBu_r", vmin=-limit, vmax=limit)
            else:
                ax.set_axis_off()
            if out == 0:
                ax.set_title(f"in {inp}", fontsize=6)
            if inp == 0 and out < weights.shape[0]:
                ax.set_ylabel(f"out {out}", fontsize=6)
        subfigure.suptitle(f"{name}\n|w| \u2264 {limit:.2g}", fontsize=8)
        subfigure.colorbar(image, ax=axes, location="bottom", shrink=0.8, aspect=25)
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


# ---------------------------------------------------------------------- accuracy table
def plot_accuracy_by_resolution(
    accuracy: xr.DataArray, *, reference: Mapping | None = None, title: str | None = None, path=None
) -> Figure:
    """Grouped bars: accuracy (%) per resolution (groups) and network variant (bars).

    Parameters
    ----------
    accuracy : xarray.DataArray, dims ("resolution", "variant")
        Fractions in [0, 1] (NaN = not evaluated, no bar); coordinates: the resolutions (e.g.
        ``n`` of an ``n x n`` image) and variant names (e.g. ``"restricted"``,
        ``"classifier-only"``, ``"resolved"``, ``"prolonged"``).
    reference : mapping of (resolution, variant) to fraction, optional
        Numbers to compare with (e.g. the paper's), drawn as black ticks over the bars.
    """
    if not isinstance(accuracy, xr.DataArray) or set(accuracy.dims) != {"resolution", "variant"}:
        raise ValueError(
            "accuracy must be an xarray.DataArray with dims ('resolution', 'variant'), "
            f"got {type(accuracy).__name__} {getattr(accuracy, 'dims', None)}"
        )
    accuracy = accuracy.transpose("resolution", "variant")
    resolutions = [str(r) for r in accuracy["resolution"].values]
    variants = [str(v) for v in accuracy["variant"].values]
    values = 100.0 * np.asarray(accuracy.values, dtype=float)
    figure = new_figure((1.5 + 1.6 * len(resolutions) * max(1, len(variants)) / 3, 4))
    ax = figure.subplots()
    width = 0.8 / len(variants)
    positions = np.arange(len(resolutions))
    for k, variant in enumerate(variants):
        x = positions - 0.4 + (k + 0.5) * width
        known = np.isfinite(values[:, k])
        bars = ax.bar(x[known], values[known, k], width, label=variant, color=f"C{k}")
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        for i, resolution in enumerate(accuracy["resolution"].values):
            paper = None if reference is None else reference.get((resolution, variant))
            if paper is not None:
                ax.plot(
                    [x[i] - width / 2, x[i] + width / 2],
                    [100 * paper] * 2,
                    "k-",
                    linewidth=2,
                    label="paper" if "paper" not in ax.get_legend_handles_labels()[1] else None,
                )
    ax.set_xticks(positions, [f"{r}x{r}" for r in resolutions])
    ax.set_xlabel("image resolution")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("accuracy by resolution and network variant" if title is None else title)
    return save_figure(figure, path)
