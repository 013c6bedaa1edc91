"""Network files (problems.cnn.network_file), moving loaded networks, and resuming training."""

import numpy as np
import pytest
import xarray as xr

from cnn_helpers import small_settings
from pdecontrol.io import CorruptFileError, write_netcdf
from pdecontrol.mesh import Mesh
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.evaluation import TrainedNetwork
from problems.cnn.network_file import (
    FORMAT,
    load_history,
    load_network,
    network_to_dataset,
    read_network_file,
    save_network,
)
from problems.cnn.training import STATE_FILE, train_multilevel, train_single_level
from problems.cnn.transfer import prolong_network, restrict_network

SETTINGS = small_settings(outer_iterations=2, gauss_newton_steps=1, cg_iterations=2, batch_size=30)


def random_network(rng, settings=SETTINGS, shape=(8, 8), n_classes=3, centring="node"):
    problem = settings.make_problem(Mesh(shape, centring=centring), n_classes)
    layout = problem.layout(settings.n_steps)
    return TrainedNetwork(problem, layout.random(rng, scale=0.5).flat, settings)


@pytest.fixture(scope="module")
def data():
    return to_numpy(make_synthetic(50, 8, seed=0)), to_numpy(make_synthetic(20, 8, seed=1))


# ---------------------------------------------------------------------- save / load
@pytest.mark.parametrize("basis", ["stencil", "derivative"])
def test_round_trip_is_exact(tmp_path, rng, basis):
    settings = SETTINGS.replace(kernel_basis=basis, opening_activation="tanh", n_steps=3)
    network = random_network(rng, settings)
    history = xr.Dataset(
        {"objective": ("iteration", [0.5, 0.25]), "phase": ("iteration", ["start", "train"])}
    )
    path = save_network(tmp_path / "net.nc", network, history=history, metadata={"note": "x"})
    network_file = read_network_file(path)
    np.testing.assert_array_equal(network_file.network.parameters, network.parameters)
    assert repr(network_file.network.problem) == repr(network.problem)
    assert network_file.network.settings == settings and network_file.metadata == {"note": "x"}
    xr.testing.assert_identical(network_file.history, history)
    assert load_network(path, network.problem).n_steps == 3


def test_file_layout_has_named_dims(rng):
    dataset = network_to_dataset(random_network(rng))
    assert dataset["K"].dims == ("layer", "out_channel", "in_channel", "kernel_y", "kernel_x")
    assert dataset["W"].dims == ("class", "out_channel", "y", "x")
    assert dataset["K0"].dims == ("out_channel", "image_channel", "kernel_y", "kernel_x")
    np.testing.assert_allclose(dataset["x"].values, np.arange(8) / 8)
    assert dataset.attrs["mesh_shape"].tolist() == [8, 8] and dataset.attrs["n_steps"] == 2
    assert dataset.attrs["stepper"] == "euler" and dataset.attrs["loss"] == "least_squares"


def test_cell_centred_network_keeps_its_centring(tmp_path, rng):
    """The file records the centring (cell centres as coordinates); files without it are nodal."""
    network = random_network(rng, centring="cell")
    dataset = network_to_dataset(network)
    assert dataset.attrs["mesh_centring"] == "cell"
    np.testing.assert_allclose(dataset["x"].values, (np.arange(8) + 0.5) / 8)
    loaded = load_network(save_network(tmp_path / "net.nc", network), network.problem)
    assert loaded.mesh == Mesh((8, 8), centring="cell")
    np.testing.assert_array_equal(loaded.parameters, network.parameters)
    assert loaded.restrict().mesh.centring == "cell"
    legacy = tmp_path / "legacy.nc"
    nodal = network_to_dataset(random_network(rng))
    del nodal.attrs["mesh_centring"]
    write_netcdf(legacy, nodal, format=FORMAT)
    assert load_network(legacy).mesh == Mesh((8, 8))


def test_history_is_optional(tmp_path, rng):
    path = save_network(tmp_path / "net.nc", random_network(rng))
    assert load_history(path) is None and read_network_file(path).history is None


def test_loading_onto_another_mesh_names_both_and_the_move(tmp_path, rng):
    network = random_network(rng)
    path = save_network(tmp_path / "net.nc", network)
    coarse = SETTINGS.make_problem(Mesh((4, 4)), 3)
    with pytest.raises(ValueError, match=r"(?s)shape=\(8, 8\).*shape=\(4, 4\).*restrict\(1\)"):
        load_network(path, coarse)
    fine = SETTINGS.make_problem(Mesh((16, 16)), 3)
    with pytest.raises(ValueError, match=r"prolong\(1\)"):
        load_network(path, fine)
    other = SETTINGS.replace(n_channels=3).make_problem(Mesh((8, 8)), 3)
    with pytest.raises(ValueError, match="differs from the problem"):
        load_network(path, other)


def test_corrupt_foreign_and_missing_files(tmp_path, rng):
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(b"\x89HDF\r\n" + rng.bytes(200))
    with pytest.raises(CorruptFileError, match="cannot be read as netCDF"):
        read_network_file(corrupt)
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_netcdf(foreign)
    with pytest.raises(CorruptFileError, match="carries no SHA-256"):
        load_network(foreign)
    history = tmp_path / "history.nc"
    write_netcdf(history, xr.Dataset({"a": ("x", np.arange(3.0))}), format="other")
    with pytest.raises(CorruptFileError, match="is a 'other' file, not 'pdecontrol-cnn-network"):
        load_network(history)
    truncated = tmp_path / "truncated.nc"
    write_netcdf(truncated, network_to_dataset(random_network(rng)).drop_vars("W"), format=FORMAT)
    with pytest.raises(ValueError, match=r"missing \['W'\]"):
        load_network(truncated)
    with pytest.raises(FileNotFoundError):
        load_network(tmp_path / "absent.nc")


def test_altered_values_and_histories_are_refused(tmp_path, rng):
    """Bytes flipped inside the file (same size): the SHA-256 of the network, or of its history
    group, no longer matches."""
    history = xr.Dataset({"objective": ("iteration", np.linspace(1.0, 0.5, 50))})
    network = random_network(rng)
    path = save_network(tmp_path / "net.nc", network, history=history)
    data = path.read_bytes()
    for values, group in ((np.asarray(network.blocks()["K"]).ravel(), "network"),
                          (history["objective"].values, "group history")):
        target = np.ascontiguousarray(values[:4]).tobytes()
        assert data.count(target) == 1
        altered = tmp_path / f"altered-{group[:5]}.nc"
        altered.write_bytes(data.replace(target, bytes(b ^ 0x40 for b in target)))
        with pytest.raises(CorruptFileError, match="do not match the SHA-256") as error:
            read_network_file(altered)
        assert ("group history" in str(error.value)) == (group == "group history")


def test_loaded_network_moves_and_classifies_at_other_resolutions(tmp_path, data):
    (images, labels), _ = data
    result = train_single_level((images, labels), settings=SETTINGS)
    path = save_network(tmp_path / "net.nc", result.network, history=result.history)
    network = load_network(path)
    coarse = network.on_mesh(Mesh((4, 4)))
    np.testing.assert_array_equal(
        coarse.parameters, restrict_network(network.problem, network.parameters)
    )
    fine = network.on_mesh(Mesh((16, 16)))
    np.testing.assert_array_equal(
        fine.parameters, prolong_network(network.problem, network.parameters)
    )
    restricted_images = images.reshape(50, 4, 2, 4, 2)[:, :, 0, :, 0]  # any 4x4 images
    assert 0.0 <= coarse.accuracy(restricted_images, labels) <= 1.0
    assert fine.predict(np.repeat(np.repeat(images, 2, 1), 2, 2)).shape == (50, 10)
    with pytest.raises(ValueError, match="not reached from"):
        network.on_mesh(Mesh((6, 6)))
    xr.testing.assert_identical(load_history(path), result.history)


# ---------------------------------------------------------------------- resume
class Interrupted(Exception):
    pass


def interrupt_at(stage, outer):
    def callback(row):
        if row["stage"] == stage and row["stage_iteration"] == outer:
            raise Interrupted

    return callback


def without_wall_time(history):
    return history.drop_vars("wall_time").assign_attrs({})


# the cross-entropy classifier block fitted on samples drawn per solve, products on part of the
# batch: the samples must be drawn again identically on resume
SAMPLED = SETTINGS.replace(loss="softmax_cross_entropy", classifier_newton_steps=2,
                           classifier_batch_size=30, gauss_newton_batch_size=10)


@pytest.mark.parametrize("stage, outer, settings", [(0, 1, SETTINGS), (0, 2, SETTINGS),
                                                    (1, 0, SETTINGS), (0, 2, SAMPLED)])
def test_resume_equals_uninterrupted(tmp_path, data, stage, outer, settings):
    train, validation = data
    reference = train_multilevel(train, validation, settings)
    with pytest.raises(Interrupted):
        train_multilevel(
            train,
            validation,
            settings,
            state_dir=tmp_path,
            callback=interrupt_at(stage, outer),
        )
    assert (tmp_path / STATE_FILE).is_file()
    resumed = train_multilevel(train, validation, settings, state_dir=tmp_path)
    np.testing.assert_array_equal(resumed.x, reference.x)
    xr.testing.assert_identical(
        without_wall_time(resumed.history), without_wall_time(reference.history)
    )
    for a, b in zip(resumed.stage_networks, reference.stage_networks, strict=True):
        np.testing.assert_array_equal(a.parameters, b.parameters)
    # a finished run is returned from its resume state without training again
    again = train_multilevel(
        train, validation, settings, state_dir=tmp_path, callback=interrupt_at(0, 0)
    )
    np.testing.assert_array_equal(again.x, reference.x)


def test_resume_refuses_a_different_run(tmp_path, data):
    train, validation = data
    with pytest.raises(Interrupted):
        train_single_level(
            train, validation, SETTINGS, state_dir=tmp_path, callback=interrupt_at(0, 1)
        )
    with pytest.raises(ValueError, match="different run.*problem.settings"):
        train_single_level(train, validation, SETTINGS.replace(seed=1), state_dir=tmp_path)
    with pytest.raises(ValueError, match="different run.*problem.n_levels"):
        train_multilevel(train, validation, SETTINGS, state_dir=tmp_path)
    images, labels = train
    with pytest.raises(ValueError, match="different run.*problem.data_sha256"):
        train_single_level(
            (images[::-1], labels[::-1]), validation, SETTINGS, state_dir=tmp_path
        )
