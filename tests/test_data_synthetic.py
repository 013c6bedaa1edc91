"""Synthetic patterns: determinism, resolution independence, range, balance, learnability;
image-set containers, splits and the example figure."""
import dataclasses

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict
from problems.cnn.data import (
    SYNTHETIC_CLASSES,
    draw_synthetic,
    images_dataset,
    make_synthetic,
    plot_examples,
    to_numpy,
    train_validation_split,
)


def test_same_seed_same_images_other_seed_other_images():
    a = make_synthetic(30, 16, seed=5)
    b = make_synthetic(30, 16, seed=5)
    c = make_synthetic(30, 16, seed=6)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["images"].values, c["images"].values)


def test_layout_coordinates_and_attrs():
    ds = make_synthetic(12, 28, seed=0)
    assert ds["images"].dims == ("example", "y", "x") and ds["images"].shape == (12, 28, 28)
    assert ds["images"].dtype == np.float32 and ds["labels"].dtype == np.int64
    y, x = Mesh((28, 28), extent=1.0).node_coordinates()
    np.testing.assert_allclose(ds["x"].values, x, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds["y"].values, y, rtol=0, atol=1e-15)
    assert ds.attrs["h"] == 1 / 28 and ds.attrs["extent"] == 1.0
    assert ds.attrs["n_classes"] == 10 and ds.attrs["class_names"] == list(SYNTHETIC_CLASSES)
    assert "seed=0" in ds.attrs["source"]
    assert make_synthetic(3, 8, seed=0, dtype=np.float64)["images"].dtype == np.float64


def test_values_finite_and_in_unit_interval():
    images = make_synthetic(200, 32, seed=1, noise=0.6, dtype=np.float64)["images"].values
    assert np.isfinite(images).all()
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.5  # the patterns are visible, not washed out


def test_every_class_present_and_balanced():
    labels = make_synthetic(25, 8, seed=2)["labels"].values
    assert np.bincount(labels, minlength=10).tolist() == [3] * 5 + [2] * 5
    subset = make_synthetic(9, 8, seed=2, classes=["ring", 8, "bar"])
    assert subset.attrs["class_names"] == ["ring", "crescent", "bar"]
    assert np.bincount(subset["labels"].values).tolist() == [3, 3, 3]


def test_classes_are_different_shapes():
    """The ten patterns drawn with identical position, size, angle and contrast differ clearly."""
    example = draw_synthetic(1, seed=3, noise=0.0)
    same_geometry = {
        field: np.repeat(getattr(example, field), 10, axis=0)
        for field in (
            "center", "scale", "angle", "contrast", "variation", "wavevectors", "amplitudes"
        )
    }
    all_classes = dataclasses.replace(example, labels=np.arange(10), **same_geometry)
    images = all_classes.evaluate(np.arange(32) / 32, np.arange(32) / 32).reshape(10, -1)
    norms = np.linalg.norm(images, axis=1)
    distance = np.linalg.norm(images[:, None] - images[None], axis=2)
    distance /= np.sqrt(np.outer(norms, norms))
    assert distance[~np.eye(10, dtype=bool)].min() > 0.3  # measured: 0.58 (ring vs square)


def test_parameters_do_not_depend_on_resolution():
    coarse, fine = make_synthetic(20, 14, seed=4), make_synthetic(20, 56, seed=4)
    np.testing.assert_array_equal(coarse["labels"].values, fine["labels"].values)
    # node i of the coarse mesh is node 4 i of the fine one: same point, same value
    same_nodes = fine["images"].values[:, ::4, ::4]
    np.testing.assert_allclose(coarse["images"].values, same_nodes, atol=1e-6)


def test_evaluate_matches_render_and_vanishes_at_the_boundary():
    examples = draw_synthetic(10, seed=7)
    rendered = examples.render(16, dtype=np.float64)["images"].values
    nodes = np.arange(16) / 16
    np.testing.assert_array_equal(examples.evaluate(nodes, nodes), rendered)
    edges = examples.evaluate(np.array([0.0, 1.0, 1.2]), np.linspace(-0.5, 1.5, 9))
    assert np.abs(edges).max() < 1e-3  # zero on and beyond the boundary x = 0, 1


def test_full_weighting_of_fine_rendering_approximates_coarse_rendering():
    """|| R render(2n) - render(n) || / || render(n) || falls ~ like h^2 as n grows."""
    examples = draw_synthetic(60, seed=8)
    errors = []
    for n in (16, 32, 64):
        coarse = examples.render(n, dtype=np.float64)["images"].values
        fine = examples.render(2 * n, dtype=np.float64)["images"].values
        errors.append(np.linalg.norm(restrict(fine, dim=2) - coarse) / np.linalg.norm(coarse))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    # measured: 0.160, 0.058, 0.017 (observed orders 1.47, 1.77, tending to 2)
    assert np.all(orders > 1.3) and orders[-1] > 1.6, (errors, orders)
    assert errors[-1] < 0.03, errors


def test_ridge_classifier_learns_something_but_not_everything():
    """Linear least squares on raw pixels: well above chance (10%), far from perfect."""
    train, test = make_synthetic(2000, 16, seed=9), make_synthetic(1000, 16, seed=10)

    def features(ds):
        images, labels = to_numpy(ds, np.float64)
        return np.c_[images.reshape(len(images), -1), np.ones(len(images))], labels

    (a, train_labels), (b, test_labels) = features(train), features(test)
    gram = a.T @ a + 1e-2 * len(a) * np.eye(a.shape[1])
    weights = np.linalg.solve(gram, a.T @ np.eye(10)[train_labels])
    accuracy = np.mean(np.argmax(b @ weights, axis=1) == test_labels)
    assert 0.15 < accuracy < 0.7, accuracy


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"resolution": 3}, ValueError, "resolution must be >= 4"),
        ({"resolution": 16.0}, TypeError, "resolution must be an int"),
        ({"n_examples": 0}, ValueError, "n_examples must be >= 1"),
        ({"classes": ["disk", "hexagon"]}, ValueError, "unknown class 'hexagon'"),
        ({"classes": [10]}, ValueError, "index 10 is out of range"),
        ({"classes": ["disk", 0]}, ValueError, "distinct classes"),
        ({"noise": 1.0}, ValueError, r"noise must be a number in \[0, 1\)"),
        ({"seed": -1}, ValueError, "seed must be >= 0"),
        ({"dtype": np.int16}, TypeError, "dtype must be a floating-point"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, message):
    arguments = {"n_examples": 4, "resolution": 8, "seed": 0, **kwargs}
    with pytest.raises(error, match=message):
        make_synthetic(**arguments)


# ----------------------------------------------------------------------------- containers
def test_images_dataset_validates_its_input(rng):
    names = ["a", "b"]
    with pytest.raises(ValueError, match=r"images must have shape \(n_examples, n, n\)"):
        images_dataset(np.zeros((2, 4, 5)), [0, 1], class_names=names, source="t")
    with_nan = np.zeros((2, 4, 4))
    with_nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="images contains 1 non-finite"):
        images_dataset(with_nan, [0, 1], class_names=names, source="t")
    with pytest.raises(TypeError, match="labels must be an integer array"):
        images_dataset(rng.random((2, 4, 4)), [0.0, 1.0], class_names=names, source="t")
    with pytest.raises(ValueError, match=r"labels must lie in 0..1"):
        images_dataset(rng.random((2, 4, 4)), [0, 2], class_names=names, source="t")


def test_to_numpy_returns_plain_arrays():
    ds = make_synthetic(6, 8, seed=0)
    images, labels = to_numpy(ds, dtype=np.float64)
    assert images.shape == (6, 8, 8) and images.dtype == np.float64
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images, ds["images"].values)
    with pytest.raises(TypeError, match="dataset must be an xarray.Dataset"):
        to_numpy(images)


def test_split_sizes_disjoint_and_reproducible():
    ds = make_synthetic(50, 8, seed=0)
    train, val = train_validation_split(ds, 30, 15, seed=3)
    assert (train.sizes["example"], val.sizes["example"]) == (30, 15)
    assert not set(train["example"].values) & set(val["example"].values)
    assert train.attrs["split"] == "train" and val.attrs["split"] == "validation"
    np.testing.assert_array_equal(
        train["images"].values, ds["images"].values[train["example"].values]
    )
    same, _ = train_validation_split(ds, 30, 15, seed=3)
    other, _ = train_validation_split(ds, 30, 15, seed=4)
    xr.testing.assert_identical(same, train)
    assert not np.array_equal(other["example"].values, train["example"].values)


@pytest.mark.parametrize(
    "n_train, n_val, message",
    [
        (0, 5, "n_train must be >= 1"),
        (5, -1, "n_val must be >= 0"),
        (40, 11, "exceeds the 50 examples"),
    ],
)
def test_split_rejects_bad_sizes(n_train, n_val, message):
    with pytest.raises(ValueError, match=message):
        train_validation_split(make_synthetic(50, 8, seed=0), n_train, n_val, seed=0)


def test_plot_examples_grid(tmp_path):
    examples = draw_synthetic(20, seed=0, classes=["disk", "ring"])
    figure = plot_examples(examples.render(8), examples.render(16), n_per_class=3)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 2 * 3 * 2  # rows = classes, columns = examples x resolutions
    figure.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 0
    with pytest.raises(ValueError, match="datasets\\[1\\] holds other examples"):
        plot_examples(examples.render(8), make_synthetic(20, 8, seed=1, classes=["disk", "ring"]))


def test_position_jitter_controls_the_spread_of_centres():
    centred = draw_synthetic(200, seed=3, position_jitter=0.0)
    spread = draw_synthetic(200, seed=3, position_jitter=1.0)
    np.testing.assert_allclose(centred.center, 0.5)
    assert np.ptp(spread.center) > 0.3
    default = draw_synthetic(200, seed=3)
    assert 0 < np.ptp(default.center) < np.ptp(spread.center)


@pytest.mark.parametrize("jitter", [-0.1, 1.5, True, "a"])
def test_bad_position_jitter_is_an_error(jitter):
    with pytest.raises(ValueError, match="position_jitter"):
        draw_synthetic(10, seed=0, position_jitter=jitter)
