"""CNN figures: the content of the returned Figures (axes, labels, data), not pixels."""

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pdecontrol.ops import conv
from pdecontrol.transfer import restrict, restrict_stencil
from problems.cnn.figures import (
    confusion_matrix,
    plot_accuracy_against_cost,
    plot_accuracy_by_resolution,
    plot_confusion_matrix,
    plot_convolved_image,
    plot_kernels,
    plot_training_curves,
)


def _history(objective, accuracy, resolution):
    return xr.Dataset(
        {
            "objective": ("outer_iteration", objective),
            "validation_accuracy": ("outer_iteration", accuracy),
            "resolution": ("outer_iteration", resolution),
        }
    )


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_lines_labels_and_switch(tmp_path):
    fine = _history([0.22, 0.15, 0.08], [0.83, 0.9, 0.967], [28, 28, 28])
    multilevel = _history([0.21, 0.1, 0.147, 0.07], [0.82, 0.95, 0.92, np.nan], [14, 14, 28, 28])
    path = tmp_path / "curves.png"
    figure = plot_training_curves({"fine only": fine, "multilevel": multilevel}, path=path)
    assert isinstance(figure, Figure) and _is_png(path)
    ax_objective, ax_accuracy = figure.axes
    assert ax_objective.get_yscale() == "log"
    assert ax_objective.get_ylabel() == "objective"
    assert ax_accuracy.get_ylabel() == "validation accuracy (%)"
    assert ax_accuracy.get_xlabel() == "outer iteration"
    assert [t.get_text() for t in ax_objective.get_legend().get_texts()] == [
        "fine only",
        "multilevel",
    ]
    lines = [line for line in ax_accuracy.get_lines() if line.get_label() == "multilevel"]
    # NaN accuracy is skipped; values in percent
    np.testing.assert_allclose(lines[0].get_ydata(), [82.0, 95.0, 92.0])
    # the 14 -> 28 switch is marked before row 2 on both axes, only for the multilevel run
    for ax in (ax_objective, ax_accuracy):
        verticals = [
            line
            for line in ax.get_lines()
            if line.get_label().startswith("_") and np.ptp(line.get_xdata()) == 0
        ]
        assert [line.get_xdata()[0] for line in verticals] == [1.5]
    assert any("14 \u2192 28" in text.get_text() for text in ax_accuracy.texts)


def test_training_curves_errors():
    with pytest.raises(ValueError, match="non-empty mapping"):
        plot_training_curves({})
    with pytest.raises(TypeError, match="xarray.Dataset"):
        plot_training_curves({"run": [1, 2]})
    history = xr.Dataset({"objective": ("i", [1.0, 0.5])})
    with pytest.raises(ValueError, match="no variable 'validation_accuracy'"):
        plot_training_curves({"run": history})


def test_accuracy_against_cost_fine_rows_work_and_wall_time(tmp_path):
    fine = xr.Dataset(
        {
            "validation_accuracy": ("row", [0.90, 0.94, 0.96]),
            "fine_level_work": ("row", [0.0, 10.0, 20.0]),
            "wall_time": ("row", [1.0, 11.0, 21.0]),
            "resolution": ("row", [28, 28, 28]),
        }
    )
    multilevel = xr.Dataset(
        {
            "validation_accuracy": ("row", [0.88, 0.93, 0.95, np.nan, 0.965]),
            "fine_level_work": ("row", [0.0, 0.0, 0.0, 10.0, 20.0]),
            "wall_time": ("row", [1.0, 3.0, 5.0, 15.0, 25.0]),
            "resolution": ("row", [14, 14, 28, 28, 28]),
        }
    )
    path = tmp_path / "cost.png"
    figure = plot_accuracy_against_cost(
        {"fine only": fine, "multilevel": multilevel}, target=0.96, path=path
    )
    assert _is_png(path)
    ax_work, ax_time = figure.axes
    assert ax_work.get_xlabel() == "fine level work (last level only)"
    assert ax_time.get_xlabel() == "wall time (s)"

    def line(ax, label):
        (found,) = [item for item in ax.get_lines() if item.get_label() == label]
        return found

    # left: only rows on the last level (28), NaN skipped
    np.testing.assert_allclose(line(ax_work, "multilevel").get_xdata(), [0.0, 20.0])
    np.testing.assert_allclose(line(ax_work, "multilevel").get_ydata(), [95.0, 96.5])
    np.testing.assert_allclose(line(ax_work, "fine only").get_xdata(), [0.0, 10.0, 20.0])
    # right: every row, switch marked at the wall time of the first 28x28 row
    np.testing.assert_allclose(line(ax_time, "multilevel").get_xdata(), [1.0, 3.0, 5.0, 25.0])
    verticals = [
        item
        for item in ax_time.get_lines()
        if item.get_label().startswith("_") and np.ptp(item.get_xdata()) == 0
    ]
    assert [item.get_xdata()[0] for item in verticals] == [5.0]
    for ax in (ax_work, ax_time):
        np.testing.assert_allclose(line(ax, "target 96.00%").get_ydata(), [96.0, 96.0])
    with pytest.raises(ValueError, match="no variable 'wall_time'"):
        plot_accuracy_against_cost({"run": fine.drop_vars("wall_time")})


def test_confusion_matrix_counts_and_figure(tmp_path):
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 2, 0])
    counts = confusion_matrix(labels, predictions)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    figure = plot_confusion_matrix(
        labels,
        predictions,
        class_names=["a", "b", "c"],
        title="restricted",
        path=tmp_path / "c.png",
    )
    ax = figure.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), counts / 2)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert "accuracy 66.7% (6 examples)" in ax.get_title()
    assert _is_png(tmp_path / "c.png")


def test_confusion_matrix_errors():
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="integer class indices"):
        confusion_matrix([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="n_classes = 2"):
        plot_confusion_matrix([0, 2], [0, 1], class_names=["a", "b"])


def test_convolved_image_panels_are_fine_and_galerkin_coarse(rng, tmp_path):
    image = rng.random((16, 16))
    stencil = rng.standard_normal((3, 3))
    figure = plot_convolved_image(image, stencil, path=tmp_path / "conv.png")
    panels = [ax for ax in figure.axes if ax.images and ax.get_title()]
    by_title = {ax.get_title(): ax.images[0].get_array() for ax in panels}
    assert len(by_title) == 8
    fine = conv(image[None, None], stencil[None, None])[0, 0]
    coarse_stencil = restrict_stencil(stencil)
    coarse = conv(restrict(image, 2)[None, None], coarse_stencil[None, None])[0, 0]
    np.testing.assert_allclose(by_title["$K_h\\,x$ (16x16)"], fine)
    np.testing.assert_allclose(by_title["coarse stencil $s_H$ (Galerkin)"], coarse_stencil)
    np.testing.assert_allclose(by_title["$K_H\\,R\\,x$ (8x8)"], coarse)
    mismatch = np.linalg.norm(restrict(fine, 2) - coarse) / np.linalg.norm(restrict(fine, 2))
    assert f"{mismatch:.3f}" in figure.get_suptitle()


def test_convolved_image_smooth_stencil_matches_across_scales(tmp_path):
    # d/dx on a smooth image: the Galerkin-restricted kernel on the coarse mesh reproduces the
    # restricted fine response up to the O(h^2) differences, the boundary rows excepted
    x = np.linspace(0, 1, 64, endpoint=False)
    image = np.outer(np.sin(np.pi * x), np.sin(np.pi * x)) ** 2
    stencil = np.outer([1, 2, 1], [-1, 0, 1]) / 8.0
    title = plot_convolved_image(image, stencil).get_suptitle()
    assert float(title.rsplit("=", 1)[1]) < 0.05


def test_convolved_image_errors():
    with pytest.raises(ValueError, match="even sizes"):
        plot_convolved_image(np.ones((7, 8)), np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"stencil must have shape \(3, 3\)"):
        plot_convolved_image(np.ones((8, 8)), np.ones((5, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        plot_convolved_image(np.full((8, 8), np.nan), np.ones((3, 3)))


def test_kernel_grid_one_panel_per_stencil(rng, tmp_path):
    kernels = {
        "opening": rng.standard_normal((4, 1, 3, 3)),
        "layer 1": rng.standard_normal((4, 4, 3, 3)),
    }
    figure = plot_kernels(kernels, path=tmp_path / "k.png")
    panels = [ax for subfigure in figure.subfigs for ax in subfigure.axes if ax.images]
    stencil_panels = [ax for ax in panels if ax.images[0].get_array().shape == (3, 3)]
    assert len(stencil_panels) == 4 + 16
    titles = [subfigure._suptitle.get_text() for subfigure in figure.subfigs]
    assert titles[0].startswith("opening") and titles[1].startswith("layer 1")
    first = figure.subfigs[1].axes[0].images[0]
    np.testing.assert_allclose(first.get_array(), kernels["layer 1"][0, 0])
    limit = np.abs(kernels["layer 1"]).max()
    assert first.get_clim() == pytest.approx((-limit, limit))
    with pytest.raises(ValueError, match=r"\(C_out, C_in, 3, 3\)"):
        plot_kernels({"bad": np.ones((2, 3, 3))})


def test_accuracy_bars_and_reference(tmp_path):
    accuracy = xr.DataArray(
        [[0.96, 0.95, np.nan], [0.84, 0.818, 0.9]],
        dims=("resolution", "variant"),
        coords={"resolution": [28, 14], "variant": ["restricted", "classifier-only", "resolved"]},
    )
    figure = plot_accuracy_by_resolution(
        accuracy, reference={(14, "restricted"): 0.841}, path=tmp_path / "a.png"
    )
    ax = figure.axes[0]
    heights = sorted(round(patch.get_height(), 6) for patch in ax.patches)
    assert heights == sorted([96.0, 95.0, 84.0, 81.8, 90.0])  # NaN: no bar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["28x28", "14x14"]
    assert ax.get_ylabel() == "accuracy (%)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(legend) == ["classifier-only", "paper", "resolved", "restricted"]
    paper = [line for line in ax.get_lines() if line.get_label() == "paper"]
    np.testing.assert_allclose(paper[0].get_ydata(), [84.1, 84.1])
    with pytest.raises(ValueError, match="dims"):
        plot_accuracy_by_resolution(xr.DataArray([0.9], dims=("x",)))


def test_save_into_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        plot_confusion_matrix([0, 1], [0, 1], path=tmp_path / "missing" / "c.png")
