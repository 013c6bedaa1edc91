"""Figures of a heat inversion run (:mod:`pdecontrol.plotting`: Agg, PNG written atomically).

* :func:`plot_fields` - true and recovered log-diffusivity and their difference (2D, or the
  middle slice of a 3D field);
* :func:`plot_convergence` - objective and gradient norm per Gauss-Newton iteration, level
  switches marked;
* :func:`plot_iterations` - Gauss-Newton and CG iterations per level.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pdecontrol.plotting import new_figure, save_figure

__all__ = ["plot_fields", "plot_convergence", "plot_iterations"]

def _slice(field: np.ndarray) -> np.ndarray:
    return field if field.ndim == 2 else field[field.shape[0] // 2]


def plot_fields(truth: np.ndarray, recovered: np.ndarray, *, title: str = "", path=None):
    """True and recovered ``m`` (one colour scale) and ``recovered - truth``; arrays of the mesh
    shape (2D: axes ``(x, y)`` as ``Mesh.meshgrid``; 3D: the middle ``x`` slice)."""
    truth, recovered = _slice(np.asarray(truth)), _slice(np.asarray(recovered))
    figure = new_figure((11, 3.4))
    axes = figure.subplots(1, 3)
    low, high = min(truth.min(), recovered.min()), max(truth.max(), recovered.max())
    extent = (0, 1, 0, 1)
    for ax, field, name in ((axes[0], truth, "true m"), (axes[1], recovered, "recovered m")):
        image = ax.imshow(field.T, origin="lower", extent=extent, vmin=low, vmax=high,
                          cmap="viridis")
        ax.set_title(name)
    figure.colorbar(image, ax=axes[:2], shrink=0.8)
    difference = recovered - truth
    bound = float(np.max(np.abs(difference))) or 1.0
    image = axes[2].imshow(difference.T, origin="lower", extent=extent, vmin=-bound, vmax=bound,
                           cmap="RdBu_r")
    axes[2].set_title("recovered - true")
    figure.colorbar(image, ax=axes[2], shrink=0.8)
    for ax in axes:
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_convergence(history: xr.Dataset, *, title: str = "", path=None):
    """Objective, gradient norm and relative error of ``m`` per row, a dashed line at every
    level switch (a history of :func:`pdecontrol.continuation.run_continuation`)."""
    figure = new_figure((11, 3.4))
    axes = figure.subplots(1, 3)
    rows = np.arange(history.sizes["iteration"])
    for ax, column, log in ((axes[0], "objective", True), (axes[1], "gradient_norm", True),
                            (axes[2], "relative_error", False)):
        values = np.asarray(history[column].values, dtype=float)
        ax.plot(rows, values, marker="o", markersize=3)
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("Gauss-Newton iteration (all levels)")
        ax.set_title(column.replace("_", " "))
        starts = rows[np.asarray(history["stage_iteration"].values) == 0][1:]
        for row in starts:
            ax.axvline(row - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.text(row - 0.4, ax.get_ylim()[1], str(history["mesh_shape"].values[row]),
                    va="top", fontsize=8, color="grey")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def plot_iterations(levels, gauss_newton, cg, *, title: str = "", path=None):
    """Bars of Gauss-Newton and CG iterations per level (labels ``levels``)."""
    figure = new_figure((6, 3.4))
    ax = figure.subplots()
    position = np.arange(len(levels))
    ax.bar(position - 0.2, gauss_newton, width=0.4, label="Gauss-Newton")
    ax.bar(position + 0.2, cg, width=0.4, label="CG (sum)")
    ax.set_xticks(position, labels=list(levels))
    ax.set_yscale("log")
    ax.set_xlabel("mesh")
    ax.legend()
    for x, value in zip(position, gauss_newton, strict=True):
        ax.text(x - 0.2, value, str(int(value)), ha="center", va="bottom", fontsize=8)
    for x, value in zip(position, cg, strict=True):
        ax.text(x + 0.2, value, str(int(value)), ha="center", va="bottom", fontsize=8)
    if title:
        ax.set_title(title)
    return save_figure(figure, path)
