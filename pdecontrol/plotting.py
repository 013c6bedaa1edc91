"""Figures without a display: a new Agg figure, saved as PNG atomically (every problem's
figures go through these two functions)."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import atomic_path

__all__ = ["new_figure", "save_figure", "DPI"]

#: Resolution used by :func:`save_figure`.
DPI = 120


def new_figure(figsize) -> Figure:
    """A figure of ``figsize`` inches with the constrained layout, on an Agg canvas (no pyplot,
    no display, safe in threads)."""
    figure = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path) -> Figure:
    """Save ``figure`` as PNG at ``path`` atomically (parent directories must exist; ``None``
    saves nothing); return the figure."""
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(path)
        if directory and not os.path.isdir(directory):
            raise ValueError(
                f"path {path!r}: directory {directory!r} does not exist; create it first"
            )
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=DPI, format="png", bbox_inches="tight")
    return figure
