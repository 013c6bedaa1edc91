"""Synthetic volumes (3D): determinism, resolution independence, range, balance, distinct
classes; the image-set containers for volumes."""
import dataclasses

import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict
from problems.cnn.data import (
    VOLUME_CLASSES,
    draw_volumes,
    images_dataset,
    load_image_sets,
    make_volumes,
    plot_examples,
    to_numpy,
)


def test_same_seed_same_volumes_other_seed_other_volumes():
    a, b, c = make_volumes(20, 8, seed=5), make_volumes(20, 8, seed=5), make_volumes(20, 8, seed=6)
    xr.testing.assert_identical(a, b)
    assert not np.array_equal(a["images"].values, c["images"].values)


def test_layout_coordinates_and_attrs():
    ds = make_volumes(12, 8, seed=0)
    assert ds["images"].dims == ("example", "z", "y", "x")
    assert ds["images"].shape == (12, 8, 8, 8) and ds["images"].dtype == np.float32
    z, y, x = Mesh((8, 8, 8), extent=1.0).node_coordinates()
    for name, nodes in (("z", z), ("y", y), ("x", x)):
        np.testing.assert_allclose(ds[name].values, nodes, rtol=0, atol=1e-15)
    assert ds.attrs["h"] == 1 / 8 and ds.attrs["n_classes"] == 10
    assert ds.attrs["class_names"] == list(VOLUME_CLASSES) and "seed=0" in ds.attrs["source"]
    images, labels = to_numpy(ds, np.float64)
    assert images.shape == (12, 8, 8, 8) and labels.dtype == np.int64


def test_values_finite_and_in_unit_interval():
    volumes = make_volumes(100, 16, seed=1, noise=0.6, dtype=np.float64)["images"].values
    assert np.isfinite(volumes).all()
    assert volumes.min() >= 0.0 and volumes.max() <= 1.0
    assert volumes.max() > 0.5  # the shapes are visible, not washed out


def test_every_class_present_and_balanced():
    labels = make_volumes(25, 4, seed=2)["labels"].values
    assert np.bincount(labels, minlength=10).tolist() == [3] * 5 + [2] * 5
    subset = make_volumes(9, 4, seed=2, classes=["shell", 6, "rod"])
    assert subset.attrs["class_names"] == ["shell", "torus", "rod"]
    assert np.bincount(subset["labels"].values).tolist() == [3, 3, 3]


def test_rotations_are_proper_and_spread():
    rotation = draw_volumes(500, seed=3).rotation
    np.testing.assert_allclose(np.einsum("nji,njk->nik", rotation, rotation),
                               np.broadcast_to(np.eye(3), rotation.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation), 1.0, atol=1e-12)
    # uniform on SO(3): the mean of a random rotation matrix is 0
    assert np.abs(rotation.mean(axis=0)).max() < 0.1


def test_classes_are_different_shapes():
    """The ten shapes drawn with identical position, size, rotation and contrast differ clearly."""
    example = draw_volumes(1, seed=3, noise=0.0)
    same_geometry = {
        field: np.repeat(getattr(example, field), 10, axis=0)
        for field in ("center", "scale", "rotation", "contrast", "variation", "wavevectors",
                      "amplitudes")
    }
    all_classes = dataclasses.replace(example, labels=np.arange(10), **same_geometry)
    nodes = np.arange(24) / 24
    volumes = all_classes.evaluate(nodes, nodes, nodes).reshape(10, -1)
    norms = np.linalg.norm(volumes, axis=1)
    distance = np.linalg.norm(volumes[:, None] - volumes[None], axis=2)
    distance /= np.sqrt(np.outer(norms, norms))
    assert distance[~np.eye(10, dtype=bool)].min() > 0.3, distance  # measured: 0.36 (ball, cube)


def test_parameters_do_not_depend_on_resolution():
    coarse, fine = make_volumes(10, 8, seed=4), make_volumes(10, 16, seed=4)
    np.testing.assert_array_equal(coarse["labels"].values, fine["labels"].values)
    # node i of the coarse mesh is node 2 i of the fine one: same point, same value
    np.testing.assert_allclose(coarse["images"].values,
                               fine["images"].values[:, ::2, ::2, ::2], atol=1e-6)


def test_evaluate_matches_render_and_vanishes_at_the_boundary():
    volumes = draw_volumes(10, seed=7)
    rendered = volumes.render(8, dtype=np.float64)["images"].values
    nodes = np.arange(8) / 8
    np.testing.assert_allclose(volumes.evaluate(nodes, nodes, nodes), rendered,
                               rtol=0, atol=1e-14)
    inside = np.linspace(-0.5, 1.5, 9)
    for faces in ((np.array([0.0, 1.0, 1.2]), inside, inside),
                  (inside, np.array([0.0, 1.0]), inside),
                  (inside, inside, np.array([-0.1, 0.0, 1.0]))):
        assert np.abs(volumes.evaluate(*faces)).max() < 1e-3  # zero on and beyond every face


def test_full_weighting_of_fine_rendering_approximates_coarse_rendering():
    """|| R render(2n) - render(n) || / || render(n) || falls as n grows (resolution-free)."""
    volumes = draw_volumes(20, seed=8)
    renders = {n: volumes.render(n, dtype=np.float64)["images"].values for n in (8, 16, 32)}
    errors = [np.linalg.norm(restrict(renders[2 * n], dim=3) - renders[n])
              / np.linalg.norm(renders[n]) for n in (8, 16)]
    # measured: 0.33 (8^3 from 16^3), 0.17 (16^3 from 32^3); 0.06 for 32^3 from 64^3
    assert errors[1] < 0.7 * errors[0] and errors[1] < 0.25, errors


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"resolution": 3}, ValueError, "resolution must be >= 4"),
        ({"n_examples": 0}, ValueError, "n_examples must be >= 1"),
        ({"classes": ["ball", "hexagon"]}, ValueError, "unknown class 'hexagon'"),
        ({"classes": [10]}, ValueError, "index 10 is out of range"),
        ({"noise": 1.0}, ValueError, r"noise must be a number in \[0, 1\)"),
        ({"position_jitter": 2.0}, ValueError, r"position_jitter must be a number in \[0, 1\]"),
        ({"dtype": np.int16}, TypeError, "dtype must be a floating-point"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_volumes(**{"n_examples": 4, "resolution": 4, "seed": 0, **kwargs})


def test_images_dataset_takes_cubic_volumes_only():
    with pytest.raises(ValueError, match=r"\(n_examples, n, n, n\) for volumes"):
        images_dataset(np.zeros((2, 4, 4, 5)), [0, 1], class_names=["a", "b"], source="t")


def test_load_image_sets_serves_volumes_and_names_the_sets():
    train, validation = load_image_sets("volumes", 8, 12, 4, seed=1)
    assert train["images"].dims == ("example", "z", "y", "x")
    assert (train.sizes["example"], validation.sizes["example"]) == (12, 4)
    with pytest.raises(ValueError, match="--data must be one of synthetic, mnist, volumes"):
        load_image_sets("cubes", 8, 12, 4)


def test_plot_examples_shows_the_middle_slice():
    figure = plot_examples(make_volumes(20, 8, seed=0), make_volumes(20, 16, seed=0),
                           n_per_class=1)
    assert isinstance(figure, Figure) and len(figure.axes) == 20
    assert figure.axes[0].get_images()[0].get_array().shape == (8, 8)
