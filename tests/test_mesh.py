"""Meshes and mesh hierarchies."""

import doctest

import numpy as np
import pytest

import pdecontrol.mesh
from pdecontrol.mesh import Mesh, MeshHierarchy
from pdecontrol.transfer import (
    prolong,
    prolong_field,
    prolongation_matrix,
    restrict,
    restrict_field,
    restriction_matrix,
)


def test_node_centred_geometry_per_axis():
    mesh = Mesh((4, 8), extent=(2.0, 1.0), origin=(-1.0, 0.5))
    assert mesh.dim == 2 and mesh.shape == (4, 8) and mesh.size == 32
    assert mesh.h == (0.5, 0.125)
    assert mesh.cell_volume == 0.0625
    x, y = mesh.node_coordinates()
    np.testing.assert_array_equal(x, [-1.0, -0.5, 0.0, 0.5])  # last node at origin + extent - h
    np.testing.assert_array_equal(y, 0.5 + 0.125 * np.arange(8))
    X, Y = mesh.meshgrid()
    assert X.shape == Y.shape == (4, 8)
    assert X[3, 0] == 0.5 and Y[0, 7] == y[7]  # 'ij' indexing


def test_int_shape_is_1d_and_scalars_apply_to_every_axis():
    mesh = Mesh(10)
    assert mesh.shape == (10,) and mesh.dim == 1 and mesh.h == (0.1,)
    assert Mesh((2, 2, 2), extent=3.0).extent == (3.0, 3.0, 3.0)


def test_coarse_node_j_sits_on_fine_node_2j():
    fine = Mesh((8, 6), extent=(1.0, 3.0), origin=(0.25, -1.0))
    coarse = fine.coarsen()
    assert coarse.shape == (4, 3) and coarse.extent == fine.extent and coarse.origin == fine.origin
    assert coarse.h == (2 * fine.h[0], 2 * fine.h[1])
    axes = zip(fine.node_coordinates(), coarse.node_coordinates(), strict=True)
    for fine_axis, coarse_axis in axes:
        np.testing.assert_array_equal(coarse_axis, fine_axis[::2])
    assert coarse.refine() == fine


def test_cell_centred_geometry_and_coarsening():
    """Cell i is centred at origin + (i + 1/2) h; coarse cell J is fine cells 2J and 2J + 1, so
    its centre is the mean of theirs; the centring is kept by coarsen and refine."""
    fine = Mesh((8, 6), extent=(1.0, 3.0), origin=(0.25, -1.0), centring="cell")
    assert fine.centring == "cell" and fine.h == (0.125, 0.5) and fine.cell_volume == 0.0625
    x, _ = fine.node_coordinates()
    np.testing.assert_array_equal(x, 0.25 + 0.125 * (np.arange(8) + 0.5))
    coarse = fine.coarsen()
    assert coarse.centring == "cell" and coarse.shape == (4, 3) and coarse.refine() == fine
    for fine_axis, coarse_axis in zip(fine.node_coordinates(), coarse.node_coordinates(),
                                      strict=True):
        np.testing.assert_allclose(coarse_axis, (fine_axis[::2] + fine_axis[1::2]) / 2)
    assert [m.shape for m in MeshHierarchy(Mesh((28, 28), centring="cell"), 3).meshes] == [
        (28, 28), (14, 14), (7, 7)]


def test_mnist_sizes_coarsen_twice_then_stop():
    mesh = Mesh((28, 28))
    assert mesh.coarsen().coarsen().shape == (7, 7)
    assert not mesh.coarsen().coarsen().can_coarsen and mesh.max_levels == 3
    with pytest.raises(ValueError, match="axis 0 has 7 nodes.*pad or crop to an even size"):
        mesh.coarsen().coarsen().coarsen()


def test_equality_hash_and_repr_round_trip():
    mesh = Mesh((4, 6), extent=(1.0, 2.0), origin=(0.0, -1.0))
    assert mesh == Mesh((4, 6), (1.0, 2.0), (0.0, -1.0)) and hash(mesh) == hash(eval(repr(mesh)))
    assert eval(repr(mesh)) == mesh
    assert mesh != Mesh((4, 6)) and mesh != "Mesh"
    cell = Mesh((4, 6), extent=(1.0, 2.0), origin=(0.0, -1.0), centring="cell")
    assert repr(cell).endswith("centring='cell')") and "centring" not in repr(mesh)
    assert eval(repr(cell)) == cell and hash(eval(repr(cell))) == hash(cell) and cell != mesh


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(shape=(0, 4)), ValueError, r"shape\[0\] must be >= 1"),
        (dict(shape=(2, 2, 2, 2)), ValueError, "shape must have 1, 2 or 3 entries"),
        (dict(shape=(4.0, 4)), TypeError, r"shape\[0\] must be an int"),
        (dict(shape=None), TypeError, "shape must be an int or a tuple"),
        (dict(shape=(4, 4), extent=-1.0), ValueError, r"extent\[0\] must be a finite number > 0"),
        (
            dict(shape=(4, 4), extent=(1.0, 2.0, 3.0)),
            ValueError,
            "extent must be a scalar or have 2",
        ),
        (dict(shape=(4, 4), origin=(0.0, np.nan)), ValueError, r"origin\[1\] must be finite"),
        (dict(shape=4, origin="0"), TypeError, r"origin\[0\] must be a real number"),
        (dict(shape=4, centring="vertex"), ValueError, "centring must be one of"),
    ],
)
def test_bad_mesh_arguments_raise_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Mesh(**kwargs)


def test_hierarchy_levels_hold_meshes_and_transfer_matrices():
    hierarchy = MeshHierarchy(Mesh((8, 4)), 3)
    assert len(hierarchy) == 3 and hierarchy.dim == 2
    assert [level.mesh.shape for level in hierarchy] == [(8, 4), (4, 2), (2, 1)]
    finest, middle, coarsest = hierarchy.levels
    assert hierarchy[0] is finest and hierarchy[-1] is coarsest
    assert finest.P.shape == (32, 8) and finest.R.shape == (8, 32) and middle.P.shape == (8, 2)
    assert abs(finest.P - 4 * finest.R.T).max() == 0.0
    assert coarsest.P is None and coarsest.R is None
    assert "level 2: shape=(2, 1)" in repr(hierarchy)


def test_hierarchy_transfers_equal_the_chained_matrices(rng):
    hierarchy = MeshHierarchy(Mesh((8, 8, 4)), 3)
    x = rng.standard_normal((2, 8, 8, 4))
    coarse = hierarchy.restrict(x, to_level=2)
    expected = hierarchy[1].R @ (hierarchy[0].R @ x.reshape(2, -1).T)
    np.testing.assert_allclose(coarse.reshape(2, -1), expected.T, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(hierarchy.restrict(x, 1), restrict(x, 3))
    y = rng.standard_normal((2, 4, 4, 2))
    np.testing.assert_array_equal(hierarchy.prolong(y, to_level=0, from_level=1), prolong(y, 3))
    np.testing.assert_array_equal(hierarchy.restrict(y, to_level=1, from_level=1), y)


def test_hierarchy_field_transfers_repeat_the_one_level_field_transfers(rng):
    hierarchy = MeshHierarchy(Mesh((8, 4)), 3)
    x = rng.standard_normal((2, 8, 4)).astype(np.float32)
    coarse = hierarchy.restrict_field(x, to_level=2)
    assert coarse.dtype == np.float32 and coarse.shape == (2, 2, 1)
    np.testing.assert_array_equal(coarse, restrict_field(restrict_field(x, 2), 2))
    y = rng.standard_normal((2, 1))
    np.testing.assert_array_equal(
        hierarchy.prolong_field(y, to_level=0, from_level=2), prolong_field(prolong_field(y, 2), 2)
    )
    np.testing.assert_array_equal(hierarchy.prolong_field(y, to_level=2, from_level=2), y)
    constant = np.full((8, 4), 0.195)
    np.testing.assert_array_equal(hierarchy.restrict_field(constant, 2), np.full((2, 1), 0.195))


def test_cell_centred_hierarchy_uses_the_cell_centred_transfers(rng):
    mesh = Mesh((8, 4), centring="cell")
    hierarchy = MeshHierarchy(mesh, 3)
    assert hierarchy.centring == "cell"
    assert abs(hierarchy[0].P - prolongation_matrix((4, 2), "cell")).max() == 0.0
    assert abs(hierarchy[1].R - restriction_matrix((4, 2), "cell")).max() == 0.0
    x = rng.standard_normal((2, 8, 4))
    np.testing.assert_array_equal(hierarchy.restrict(x, 1), restrict(x, 2, "cell"))
    np.testing.assert_array_equal(hierarchy.restrict_field(x, 1), restrict(x, 2, "cell"))
    y = rng.standard_normal((2, 1))
    np.testing.assert_array_equal(hierarchy.restrict(hierarchy.prolong(y, 0, 2), 2), y)
    np.testing.assert_array_equal(hierarchy.prolong_field(y, 0, 2), prolong(
        prolong(y, 2, "cell"), 2, "cell"))
    assert MeshHierarchy.from_coarsest(hierarchy[2].mesh, 3)[0].mesh == mesh
    with pytest.raises(ValueError, match="not a mesh of this hierarchy"):
        MeshHierarchy.spanning(mesh, Mesh((4, 2)))


def test_single_level_hierarchy_of_an_odd_mesh():
    hierarchy = MeshHierarchy(Mesh(7), 1)
    assert len(hierarchy) == 1 and hierarchy[0].P is None


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda h: MeshHierarchy(Mesh((28, 28)), 4),
            ValueError,
            "n_levels=4 is too many.*at most 3",
        ),
        (lambda h: MeshHierarchy(Mesh(8), 0), ValueError, "n_levels must be an int >= 1"),
        (lambda h: MeshHierarchy((8, 8), 2), TypeError, "mesh must be a pdecontrol.mesh.Mesh"),
        (
            lambda h: h.restrict(np.zeros((3, 8, 6)), 1),
            ValueError,
            r"spatial shape \(8, 8\) of level 0",
        ),
        (
            lambda h: h.restrict(np.zeros((4, 4)), 0, from_level=1),
            ValueError,
            "to_level >= from_level",
        ),
        (
            lambda h: h.prolong(np.zeros((4, 4)), 2, from_level=1),
            ValueError,
            "to_level <= from_level",
        ),
        (lambda h: h.restrict(np.zeros((8, 8)), 3), ValueError, r"to_level must be in \[0, 3\)"),
        (
            lambda h: h.restrict_field(np.zeros((4, 4)), 0, from_level=1),
            ValueError,
            "restrict_field goes to coarser levels.*use prolong_field",
        ),
        (
            lambda h: h.prolong_field(np.zeros((4, 4)), 2, from_level=1),
            ValueError,
            "prolong_field goes to finer levels.*use restrict_field",
        ),
        (
            lambda h: h.prolong_field(np.zeros((4, 4)), 0, from_level=2),
            ValueError,
            r"spatial shape \(2, 2\) of level 2",
        ),
        (
            lambda h: h.prolong(np.zeros((8, 8)), 0, from_level=1.0),
            TypeError,
            "from_level must be an int",
        ),
    ],
)
def test_bad_hierarchy_arguments_raise_clear_errors(call, error, match):
    hierarchy = MeshHierarchy(Mesh((8, 8)), 3)
    with pytest.raises(error, match=match):
        call(hierarchy)


def test_doctests():
    result = doctest.testmod(pdecontrol.mesh)
    assert result.attempted > 0 and result.failed == 0


def test_hierarchy_levels_sizes_and_spanning():
    hierarchy = MeshHierarchy(Mesh((28, 28)), 3)
    assert [m.shape for m in hierarchy.meshes] == [(28, 28), (14, 14), (7, 7)]
    assert [hierarchy.relative_size(k) for k in range(3)] == [1.0, 0.25, 1 / 16]
    assert hierarchy.level_of(Mesh((14, 14))) == 1
    with pytest.raises(ValueError, match=r"not a mesh of this hierarchy"):
        hierarchy.level_of(Mesh((14, 14), extent=2.0))
    spanning = MeshHierarchy.spanning(Mesh((7, 7)), Mesh((28, 28)))
    assert [m.shape for m in spanning.meshes] == [(28, 28), (14, 14), (7, 7)]
    assert len(MeshHierarchy.spanning(Mesh((16,)))) == 1
    with pytest.raises(ValueError, match="not a mesh of this hierarchy"):
        MeshHierarchy.spanning(Mesh((28, 28)), Mesh((10, 10)))
    refined = MeshHierarchy.from_coarsest(Mesh((7, 7), extent=2.0), 3)
    assert refined[0].mesh == Mesh((28, 28), extent=2.0) and refined[2].mesh.shape == (7, 7)
    with pytest.raises(ValueError, match="n_levels must be an int >= 1"):
        MeshHierarchy.from_coarsest(Mesh((7, 7)), 0)
