"""ParameterLayout / Parameters: flat view, weights, validation, time refinement."""
import numpy as np
import pytest

from pdecontrol.control import (
    ParameterLayout,
    Parameters,
    refine_in_time,
    time_interpolation_matrix,
)


@pytest.fixture
def layout():
    return ParameterLayout(4, controls={"K": (2, 2, 3, 3), "b": (2,)}, static={"W": (3, 2, 5)},
                           block_weights={"W": 0.25})


def test_sizes_order_and_weights(layout):
    assert layout.size == 4 * 36 + 4 * 2 + 30
    assert layout.names == ["K", "b", "W"]
    assert layout.shapes["K"] == (4, 2, 2, 3, 3)
    w = layout.weights
    assert w.shape == (layout.size,)
    np.testing.assert_array_equal(w[layout.slices["W"]], 0.25)
    np.testing.assert_array_equal(w[layout.slices["K"]], 1.0)


def test_unflatten_gives_views_and_flatten_round_trips(layout, rng):
    x = rng.standard_normal(layout.size)
    p = layout.unflatten(x)
    assert isinstance(p, Parameters)
    p["b"][1, 0] = 42.0
    assert x[layout.slices["b"]][2] == 42.0          # a view, not a copy
    assert layout.flatten(p) is x
    np.testing.assert_array_equal(p.control_at(2)["K"], p["K"][2])
    q = layout.from_blocks({k: np.array(v) for k, v in p.items()})
    np.testing.assert_array_equal(layout.flatten(q), x)
    np.testing.assert_array_equal(layout.flatten(dict(p.items())), x)
    assert set(p.controls) == {"K", "b"} and set(p.static) == {"W"}


def test_random_and_zeros(layout, rng):
    assert not np.any(layout.zeros().flat)
    p = layout.random(rng, scale={"K": 0.1})
    assert np.any(p["K"]) and not np.any(p["b"]) and not np.any(p["W"])


@pytest.mark.parametrize("bad, match", [
    ({"K": np.zeros((4, 2, 2, 3)), "b": np.zeros((4, 2)), "W": np.zeros((3, 2, 5))}, "'K'.*shape"),
    ({"K": np.zeros((4, 2, 2, 3, 3)), "b": np.full((4, 2), np.nan), "W": np.zeros((3, 2, 5))},
     "'b'.*non-finite"),
    ({"K": np.zeros((4, 2, 2, 3, 3)), "W": np.zeros((3, 2, 5))}, "missing \\['b'\\]"),
])
def test_from_blocks_names_the_bad_block(layout, bad, match):
    with pytest.raises(ValueError, match=match):
        layout.from_blocks(bad)


def test_layout_and_unflatten_errors(layout):
    with pytest.raises(ValueError, match="n_steps"):
        ParameterLayout(0, controls={"K": (2,)})
    with pytest.raises(ValueError, match="unique"):
        ParameterLayout(2, controls={"K": (2,)}, static={"K": (2,)})
    with pytest.raises(ValueError, match="block_weights"):
        ParameterLayout(2, controls={"K": (2,)}, block_weights={"Q": 1.0})
    with pytest.raises(ValueError, match="block_weights"):
        ParameterLayout(2, controls={"K": (2,)}, block_weights={"K": -1.0})
    with pytest.raises(ValueError, match="length"):
        layout.unflatten(np.zeros(layout.size + 1))


def test_time_interpolation_matrix_properties():
    same = time_interpolation_matrix(5, 5)
    np.testing.assert_allclose(same, np.eye(5), atol=1e-15)
    m = time_interpolation_matrix(3, 7)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)             # constants are preserved
    assert np.all(m >= 0)


def test_refine_in_time_reproduces_linear_controls_and_copies_static(layout, rng):
    p = layout.random(rng)
    mid = (np.arange(4) + 0.5) / 4
    p["b"][...] = (2.0 * mid - 1.0)[:, None] * np.array([1.0, 3.0])   # linear in time
    fine = refine_in_time(p, 8)
    assert fine.layout.n_steps == 8 and fine.layout.block_weights == layout.block_weights
    fine_mid = (np.arange(8) + 0.5) / 8
    inside = (fine_mid >= mid[0]) & (fine_mid <= mid[-1])
    expected = (2.0 * fine_mid - 1.0)[:, None] * np.array([1.0, 3.0])
    np.testing.assert_allclose(fine["b"][inside], expected[inside], atol=1e-14)
    np.testing.assert_array_equal(fine["W"], p["W"])
    back = refine_in_time(refine_in_time(p, 4), 4)
    np.testing.assert_allclose(back.flat, p.flat, atol=1e-14)
