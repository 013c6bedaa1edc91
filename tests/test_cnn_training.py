"""Training drivers (problems.cnn.training) and settings (problems.cnn.config): schedule, history,
work accounting, the resolution-consistent functional's derivatives, errors."""

import dataclasses
import json

import numpy as np
import pytest

from cnn_helpers import small_settings
from pdecontrol.control import refine_in_time
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict
from pdecontrol.verify import adjoint_test, gauss_newton_test, taylor_test
from problems.cnn.config import TrainingSettings
from problems.cnn.data import make_synthetic, to_numpy
from problems.cnn.network import cnn_functional
from problems.cnn.training import (
    CONVOLUTIONS_PER_EXAMPLE,
    CNNTraining,
    resolution_consistent_functional,
    train_multilevel,
    train_resolution_consistent,
    train_single_level,
    train_time_continuation,
)
from problems.cnn.transfer import network_restriction_operator, prolong_network, restrict_network

TINY = small_settings(
    outer_iterations=1,
    gauss_newton_steps=1,
    cg_iterations=2,
    batch_size=40,
    high_order_penalty=1e-3,
)


@pytest.fixture(scope="module")
def tiny_data():
    return to_numpy(make_synthetic(60, 8, seed=0)), to_numpy(make_synthetic(30, 8, seed=1))


# ---------------------------------------------------------------------- settings
def test_settings_round_trip_and_are_immutable():
    settings = TrainingSettings(
        n_channels=3, final_time=1.5, opening_activation="tanh", batch_size=None, seed=4
    )
    assert TrainingSettings.from_json(settings.to_json()) == settings
    assert settings.time_horizon == 1.5
    assert TrainingSettings(n_steps=3).time_horizon == 3.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.n_channels = 4
    assert settings.replace(seed=5).seed == 5 and settings.seed == 4
    # numpy numbers are stored as Python numbers, so the settings always serialise
    from_numpy = TrainingSettings(cg_iterations=np.int64(3), batch_size=np.int32(100),
                                  cg_rtol=np.float32(0.5), final_time=np.float64(2.0))
    assert type(from_numpy.cg_iterations) is int and type(from_numpy.batch_size) is int
    assert type(from_numpy.cg_rtol) is float and type(from_numpy.final_time) is float
    assert TrainingSettings.from_json(from_numpy.to_json()) == from_numpy


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"n_channels": 0}, "n_channels"),
        ({"n_steps": 1.5}, "n_steps"),
        ({"dtype": "float16"}, "dtype"),
        ({"loss": "hinge"}, "loss"),
        ({"cg_rtol": 1.0}, "cg_rtol"),
        ({"activation": "sigmoid"}, "activation"),
        ({"stepper": "rk3"}, "stepper"),
        ({"kernel_basis": "fourier"}, "kernel_basis"),
        ({"batch_size": 0}, "batch_size"),
        ({"classifier_tikhonov": -1.0}, "classifier_tikhonov"),
        ({"final_time": float("nan")}, "final_time"),
        ({"opening_scale": 0.0}, "opening_scale"),
        ({"kernel_scale": -1.0}, "kernel_scale"),
    ],
)
def test_settings_reject_bad_values(changes, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainingSettings(**changes)


def test_initial_kernel_scales_reach_the_start(tiny_data):
    (images, labels), _ = tiny_data
    starts = {}
    for kernel_scale, opening_scale in ((1.0, 1.0), (3.0, 2.0)):
        settings = TINY.replace(kernel_scale=kernel_scale, opening_scale=opening_scale)
        result = train_multilevel((images, labels), settings=settings, n_levels=1,
                                  outer_iterations=0)
        starts[kernel_scale] = result.network.blocks()
    np.testing.assert_allclose(starts[3.0]["K"], 3.0 * starts[1.0]["K"], rtol=1e-12)
    np.testing.assert_allclose(starts[3.0]["K0"], 2.0 * starts[1.0]["K0"], rtol=1e-12)


def test_settings_from_json_errors():
    with pytest.raises(ValueError, match="unknown TrainingSettings fields"):
        TrainingSettings.from_dict({"n_channel": 3})
    with pytest.raises(ValueError, match="cannot be parsed"):
        TrainingSettings.from_json("{not json")


def test_settings_regularizers_follow_weights():
    problem = TINY.make_problem(Mesh((8, 8)), 10)
    names = [(type(r).__name__, r.block) for r in TINY.make_regularizers(problem)]
    assert names == [("QuadraticPenalty", "K"), ("QuadraticPenalty", "K0"), ("Tikhonov", "W")]
    none = TINY.replace(high_order_penalty=0.0, classifier_tikhonov=0.0)
    assert none.make_regularizers(problem) == []


# ------------------------------------------------------------ resolution-consistent functional
@pytest.fixture(scope="module")
def consistent_functional():
    rng = np.random.default_rng(3)
    settings = TINY.replace(time_smoothness=1e-2)
    fine = settings.make_problem(Mesh((8, 8)), 3)
    images = rng.random((6, 8, 8))
    labels = np.arange(6) % 3

    def make(problem, data, regs):
        return cnn_functional(problem, data, labels, 2, final_time=1.0, regularizers=regs)

    J_fine = make(fine, images, settings.make_regularizers(fine))
    coarse = [
        (
            k,
            make(
                fine.coarsen() if k == 1 else fine.coarsen().coarsen(),
                restrict(images, 2) if k == 1 else restrict(restrict(images, 2), 2),
                (),
            ),
        )
        for k in (1, 2)
    ]
    functional = resolution_consistent_functional(J_fine, coarse, weight=0.7)
    x = fine.initial_parameters(2, seed=0)
    params = J_fine.layout.unflatten(x)
    params["b"][...] = 0.1 * rng.standard_normal(params["b"].shape)
    params["W"][...] = rng.standard_normal(params["W"].shape)
    params["c"][...] = 0.1
    return functional, J_fine, coarse, x


def test_resolution_consistent_value_is_fine_plus_weighted_restricted(consistent_functional):
    functional, J_fine, coarse, x = consistent_functional
    expected = J_fine.value(x) + 0.7 * sum(
        J.value(restrict_network(J_fine.problem, x, k)) for k, J in coarse
    )
    assert functional.value(x) == pytest.approx(expected, rel=1e-12)


def test_resolution_consistent_taylor(consistent_functional):
    functional, _, _, x = consistent_functional
    result = taylor_test(functional, x, rng=np.random.default_rng(1))
    assert result.passed, result
    assert np.all(np.abs(result.orders[np.isfinite(result.orders)] - 2) < 0.1)


def test_resolution_consistent_gauss_newton_symmetric_psd(consistent_functional):
    functional, _, _, x = consistent_functional
    result = gauss_newton_test(functional, x, rng=np.random.default_rng(2))
    assert result.passed, result


def test_resolution_consistent_functional_with_rediscretized_coarse_networks(
        consistent_functional):
    _, J_fine, coarse, x = consistent_functional
    functional = resolution_consistent_functional(J_fine, coarse, weight=0.7,
                                                  kernel_transfer="rediscretize")
    expected = J_fine.value(x) + 0.7 * sum(
        J.value(restrict_network(J_fine.problem, x, k, "rediscretize")) for k, J in coarse
    )
    assert functional.value(x) == pytest.approx(expected, rel=1e-12)
    assert abs(functional.value(x) - consistent_functional[0].value(x)) > 1e-6


@pytest.mark.parametrize("levels", [1, 2])
def test_network_restriction_operator_adjoint(consistent_functional, levels):
    _, J_fine, _, _ = consistent_functional
    operator = network_restriction_operator(J_fine.problem, 2, levels)
    result = adjoint_test(
        operator.matvec,
        operator.rmatvec,
        operator.shape[1],
        operator.shape[0],
        rng=np.random.default_rng(levels),
    )
    assert result.passed and result.relative_error < 1e-10, result


# ------------------------------------------------------------ drivers: schedule and history
def test_single_level_history_and_work(tiny_data):
    train, validation = tiny_data
    result = train_single_level(train, validation, TINY.replace(outer_iterations=2))
    history = result.history
    assert history.sizes["iteration"] == 3
    assert list(history.phase.values) == ["start", "iterate", "iterate"]
    assert list(history.mesh_shape.values) == ["8x8"] * 3
    assert np.all(np.diff(history.objective.values) < 0)
    assert np.all(np.diff(history.work.values) > 0)
    np.testing.assert_array_equal(history.fine_level_work, history.work)
    # row 0: one classifier solve = one forward solve of the 60 examples through 2 layers
    assert (
        history.work.values[0] == CONVOLUTIONS_PER_EXAMPLE["classifier_solve"] * 60 * 2
    )
    assert history.n_classifier_solves.values.tolist() == [1, 2, 3]
    assert np.all(history.n_gauss_newton_products.values[1:] > 0)
    assert np.all((history.validation_accuracy >= 0) & (history.validation_accuracy <= 1))
    assert result.status == "completed" and result.network.mesh == Mesh((8, 8))
    assert len(result.stage_networks) == 1
    np.testing.assert_array_equal(result.x, result.stage_networks[0].parameters)


def test_multilevel_schedule_counts_coarse_work_at_quarter_cost(tiny_data):
    train, validation = tiny_data
    result = train_multilevel(train, validation, TINY, n_levels=2, outer_iterations=[2, 1])
    history = result.history
    assert list(history.phase.values) == [
        "start", "iterate", "iterate", "prolonged_start", "iterate"]
    assert list(history.mesh_shape.values) == ["4x4"] * 3 + ["8x8"] * 2
    assert list(history.level.values) == [1, 1, 1, 0, 0]
    assert np.all(history.fine_level_work.values[:3] == 0)
    # the coarse classifier solve: 60 examples, 2 layers, a 4x4 convolution = 1/4 of an 8x8 one
    assert history.work.values[0] == 60 * 2 / 4
    assert [n.mesh.shape for n in result.stage_networks] == [(4, 4), (8, 8)]
    assert result.problems[0].mesh == Mesh((4, 4))


def test_level_settings_change_their_level_only(tiny_data):
    train, validation = tiny_data
    coarse = {"gauss_newton_steps": 2, "cg_iterations": 3}
    problem = CNNTraining(TINY, train, validation, n_levels=2, level_settings={1: coarse})
    assert problem.settings_at(1) == TINY.replace(**coarse)
    assert problem.settings_at(0) == TINY
    for level, steps, cg in ((1, 2, 3), (0, 1, 2)):
        options = problem.stage(level, 2, 1).options
        assert options["inner_stopping"].maxiter == steps
        assert options["inner_options"]["cg_maxiter"] == cg
    assert problem.describe()["level_settings"] == {"1": coarse}
    assert "level_settings" not in CNNTraining(TINY, train, validation, n_levels=2,
                                               level_settings={0: {}}).describe()
    # the driver: coarsest first; the coarse stage runs as with the changes everywhere, the
    # fine stage then differs from that run; empty changes are no changes
    runs = {name: train_multilevel(train, validation, TINY, n_levels=2, outer_iterations=[2, 1],
                                   level_settings=level_settings).history
            for name, level_settings in (("coarse", [coarse, None]), ("none", [{}, None]))}
    everywhere = train_multilevel(train, validation, TINY.replace(**coarse), n_levels=2,
                                  outer_iterations=[2, 1]).history
    plain = train_multilevel(train, validation, TINY, n_levels=2, outer_iterations=[2, 1]).history
    np.testing.assert_array_equal(runs["coarse"].objective[:3], everywhere.objective[:3])
    assert runs["coarse"].objective[-1] != everywhere.objective[-1]
    np.testing.assert_array_equal(runs["none"].objective, plain.objective)
    assert json.loads(runs["coarse"].attrs["level_settings"]) == {"1": coarse}
    assert "level_settings" not in runs["none"].attrs


def test_level_settings_errors(tiny_data):
    train, _ = tiny_data
    with pytest.raises(ValueError, match=r"level_settings\[1\] may change only "
                                         r"gauss_newton_steps.*got n_channels, seed"):
        CNNTraining(TINY, train, n_levels=2, level_settings={1: {"seed": 3, "n_channels": 4}})
    with pytest.raises(ValueError, match="level 2 is not on the hierarchy of 2 levels"):
        CNNTraining(TINY, train, n_levels=2, level_settings={2: {"cg_iterations": 3}})
    with pytest.raises(TypeError, match=r"level_settings\[0\] must map TrainingSettings "
                                        "fields to values, got list"):
        CNNTraining(TINY, train, level_settings={0: [("cg_iterations", 3)]})
    with pytest.raises(TypeError, match="level_settings must map levels"):
        CNNTraining(TINY, train, level_settings=[{"cg_iterations": 3}])
    with pytest.raises(ValueError, match="cg_iterations"):  # the settings' own validation
        CNNTraining(TINY, train, level_settings={0: {"cg_iterations": 0}})
    with pytest.raises(ValueError, match="level_settings must be a sequence of 2 mappings"):
        train_multilevel(train, settings=TINY, n_levels=2, level_settings=[{}])


@pytest.mark.parametrize("centring, kernel_transfer",
                         [("cell", "galerkin"), ("node", "rediscretize"), ("cell", "rediscretize")])
def test_training_problem_moves_images_and_networks_by_its_transfer_family(
        tiny_data, centring, kernel_transfer):
    train, validation = tiny_data
    problem = CNNTraining(TINY, train, validation, n_levels=2, centring=centring,
                          kernel_transfer=kernel_transfer)
    assert problem.hierarchy.centring == centring
    np.testing.assert_array_equal(problem.level_images(1)[1], restrict(validation[0], 2, centring))
    stage = problem.stage(1, 2, 1)
    x = problem.initial_point(stage)
    coarse = problem.network_problem(1)
    np.testing.assert_array_equal(problem.transfer_in_space(x, stage, 0),
                                  prolong_network(coarse, x, 1, kernel_transfer))
    described = problem.describe()
    assert described.get("centring", "node") == centring
    assert described.get("kernel_transfer", "galerkin") == kernel_transfer
    default = CNNTraining(TINY, train, validation, n_levels=2).describe()
    assert "centring" not in default and "kernel_transfer" not in default


def test_multilevel_on_cell_centred_meshes_with_rediscretized_kernels(tiny_data):
    train, validation = tiny_data
    result = train_multilevel(train, validation, TINY, n_levels=2, outer_iterations=[1, 1],
                              centring="cell", kernel_transfer="rediscretize")
    history = result.history
    assert list(history.phase.values) == ["start", "iterate", "prolonged_start", "iterate"]
    assert [n.mesh for n in result.stage_networks] == [Mesh((4, 4), centring="cell"),
                                                       Mesh((8, 8), centring="cell")]
    assert np.all((history.validation_accuracy >= 0) & (history.validation_accuracy <= 1))
    assert history.objective.values[-1] < history.objective.values[-2]


def test_time_continuation_refines_layers(tiny_data):
    train, validation = tiny_data
    settings = TINY.replace(n_steps=4)
    result = train_time_continuation(train, validation, settings, outer_iterations=[1, 1, 0])
    history = result.history
    assert list(history.n_steps.values) == [1, 1, 2, 2, 4]
    assert list(history.phase.values) == [
        "start", "iterate", "time_refined_start", "iterate", "time_refined_start"]
    assert result.network.n_steps == 4 and result.network.final_time == 4.0
    # the last stage's start is the 2-layer network refined in time (T fixed), W re-solved
    two, four = result.stage_networks[1], result.stage_networks[2]
    refined = refine_in_time(two.blocks(), 4)
    for block in ("K", "b", "K0", "b0"):
        np.testing.assert_array_equal(four.blocks()[block], refined[block])
    assert not np.array_equal(four.blocks()["W"], two.blocks()["W"])


def test_resolution_consistent_driver_both_classifier_modes(tiny_data):
    train, validation = tiny_data
    for mode in ("fine_solve", "gauss_newton"):
        result = train_resolution_consistent(
            train, validation, TINY.replace(batch_size=None), classifier=mode
        )
        history = result.history
        assert history.sizes["iteration"] == 2
        assert history.n_classifier_solves.values[-1] == (2 if mode == "fine_solve" else 1)
        assert history.fine_level_work.values[-1] < history.work.values[-1]
    # full batch: Armijo decrease of the whole objective
    assert history.objective.values[1] < history.objective.values[0]


def test_cross_entropy_trains_classifier_by_gauss_newton(tiny_data):
    train, _ = tiny_data
    settings = TINY.replace(loss="softmax_cross_entropy", batch_size=None)
    result = train_single_level(train, None, settings)
    history = result.history
    assert history.n_classifier_solves.values.tolist() == [0, 0]
    assert np.isnan(history.validation_accuracy.values).all()
    assert history.objective.values[1] < history.objective.values[0]


def test_callback_stops(tiny_data):
    train, _ = tiny_data
    rows = []
    result = train_single_level(
        train,
        None,
        TINY.replace(outer_iterations=3),
        callback=lambda row: rows.append(row) or row["stage_iteration"] == 1,
    )
    assert result.status == "stopped_by_callback"
    assert result.history.sizes["iteration"] == 2 and len(rows) == 2


# ---------------------------------------------------------------------- errors
def test_driver_errors(tiny_data):
    (images, labels), (val_images, val_labels) = tiny_data
    with pytest.raises(ValueError, match="cannot be coarsened 4 times"):
        train_multilevel((images, labels), settings=TINY, n_levels=5)
    with pytest.raises(ValueError, match="labels must lie in"):
        train_single_level((images, labels), settings=TINY, n_classes=3)
    with pytest.raises(ValueError, match="one entry per image"):
        train_single_level((images, labels[:-1]), settings=TINY)
    with pytest.raises(TypeError, match="images, labels"):
        train_single_level(images, settings=TINY)
    with pytest.raises(ValueError, match="validation images must have the shape"):
        train_single_level((images, labels), (val_images[:, :4, :4], val_labels), TINY)
    with pytest.raises(ValueError, match="layer_schedule"):
        train_time_continuation((images, labels), settings=TINY, layer_schedule=(1, 3))
    with pytest.raises(ValueError, match="consistency_levels"):
        train_resolution_consistent((images, labels), settings=TINY, consistency_levels=(1, 1))
    with pytest.raises(ValueError, match="classifier must be"):
        train_resolution_consistent((images, labels), settings=TINY, classifier="ridge")
    with pytest.raises(ValueError, match="initial must be a flat vector of length"):
        train_single_level((images, labels), settings=TINY, initial=np.zeros(5))
    with pytest.raises(TypeError, match="settings must be TrainingSettings"):
        train_single_level((images, labels), settings={"n_channels": 2})
    with pytest.raises(TypeError, match="callback must be callable"):
        train_single_level((images, labels), settings=TINY, callback=3)
    with pytest.raises(ValueError, match="outer_iterations must be an int or one value per stage"):
        train_multilevel((images, labels), settings=TINY, outer_iterations=[1, 2, 3])
    with pytest.raises(ValueError, match="non-finite"):
        train_single_level((np.full_like(images, np.nan), labels), settings=TINY)
    with pytest.raises(ValueError, match="kernel_transfer must be one of"):
        train_multilevel((images, labels), settings=TINY, kernel_transfer="bilinear")
    with pytest.raises(ValueError, match="centring must be one of"):
        train_resolution_consistent((images, labels), settings=TINY, centring="vertex")
