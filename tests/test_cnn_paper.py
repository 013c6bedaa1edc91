"""The paper job (problems.cnn.paper): helpers that read training histories, and the two
configurations against what the documentation says they run."""

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from pdecontrol.control import QuadraticPenalty
from pdecontrol.mesh import Mesh
from pdecontrol.stencils import derivative_basis
from problems.cnn.paper import PAPER_CONFIGS, _configuration_line, cost_to_reach
from problems.cnn.report import first_reaching
from problems.cnn.training_problem import CNNTraining

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _multilevel_history():
    # coarse stage 0 (no fine work), then fine stage 1
    return xr.Dataset(
        {
            "stage": ("iteration", [0, 0, 0, 1, 1, 1, 1]),
            "stage_iteration": ("iteration", [0, 1, 2, 0, 1, 2, 3]),
            "validation_accuracy": ("iteration", [0.80, 0.99, 0.99, 0.90, 0.95, 0.97, 0.98]),
            "fine_level_work": ("iteration", [0.0, 0.0, 0.0, 10.0, 110.0, 210.0, 310.0]),
            "wall_time": ("iteration", [1.0, 2.0, 3.0, 4.0, 14.0, 24.0, 34.0]),
        },
        coords={"iteration": np.arange(7)},
    )


@pytest.mark.parametrize(
    "target, work, wall",
    [(0.95, 110.0, 14.0), (0.97, 210.0, 24.0), (0.90, 10.0, 4.0), (0.981, None, None)],
)
def test_multilevel_cost_counts_the_fine_stage_only(target, work, wall):
    # the coarse stage's 99% must not count as reaching the target on the fine mesh
    cost = cost_to_reach(_multilevel_history(), target)
    assert cost == {"fine_level_work": work, "wall_time": wall}


def test_fine_only_reaches_its_final_accuracy_where_it_first_touches_it():
    # a fine-only run (one stage) at 97.9% after outer 2 that dips and ends at 97.9%: the work
    # claim's fine-only side is outer 2, not the end of the run
    history = xr.Dataset(
        {
            "stage": ("iteration", [0, 0, 0, 0, 0]),
            "stage_iteration": ("iteration", [0, 1, 2, 3, 4]),
            "validation_accuracy": ("iteration", [0.90, 0.95, 0.979, 0.975, 0.979]),
            "fine_level_work": ("iteration", [10.0, 110.0, 210.0, 310.0, 410.0]),
            "wall_time": ("iteration", [1.0, 11.0, 21.0, 31.0, 41.0]),
        },
        coords={"iteration": np.arange(5)},
    )
    final = float(history["validation_accuracy"][-1])
    assert cost_to_reach(history, final) == {"fine_level_work": 210.0, "wall_time": 21.0}


def test_first_reaching_counts_a_target_made_of_the_same_numbers():
    # a plateau of 95.015% three times: its mean rounds to two ulps above the value the run holds
    accuracies = [0.9, 0.95, 0.95015, 0.95015, 0.95015]
    plateau = float(np.mean(accuracies[-3:]))
    assert plateau > 0.95015
    assert first_reaching(accuracies, plateau) == 2
    assert first_reaching(accuracies, accuracies[-1]) == 2
    assert first_reaching(accuracies, 0.95) == 1
    assert first_reaching(accuracies, 0.9502) is None
    assert first_reaching([], 0.5) is None


def _stage(settings, n_examples):
    """The outer-iteration stage that training with ``settings`` on ``n_examples`` runs."""
    images, labels = np.zeros((n_examples, 4, 4)), np.arange(n_examples) % 10
    training = CNNTraining(settings, (images, labels), n_classes=10)
    return training.stage(0, settings.n_steps, settings.outer_iterations)


def test_strong_is_the_configuration_of_the_documented_run():
    """docs/paper.md's full-size results were measured with ``strong``: the configuration line
    its table quotes is the one the job writes for today's ``strong`` on that split."""
    text = (DOCS / "paper.md").read_text()
    fourth_run = text[text.index("## Fourth run") :]
    documented = re.search(r"^Configuration `strong`: .*$", fourth_run, re.MULTILINE).group()
    strong = PAPER_CONFIGS["strong"]
    assert documented == _configuration_line("strong", strong.to_dict(), 40_000, 20_000)
    # and training runs what the line states
    numbers = re.search(
        r"(\d+) outer iterations per level, (\d+) Gauss-Newton steps of at most (\d+) CG "
        r"iterations, batch (\d+)",
        documented,
    )
    outer, gauss_newton, cg, batch = map(int, numbers.groups())
    stage = _stage(strong, 40_000)
    assert stage.stopping.maxiter == outer
    assert stage.options["inner_stopping"].maxiter == gauss_newton
    assert stage.options["inner_options"]["cg_maxiter"] == cg
    assert stage.options["inner_options"]["gradient_batch_size"] == batch
    assert stage.options["inner_options"]["gauss_newton_batch_size"] == batch


def test_paper_configuration_runs_the_papers_schedule():
    """docs/method.md section 6: a 2-layer CNN, least-squares classifier (solved, not trained),
    and the schedule of its table's coarse-training row."""
    text = (DOCS / "method.md").read_text()
    row = re.search(
        r"coarse training \((\d+) outer iterations, (\d+) GN steps each, batch ([\d,]+)\)", text
    )
    outer, gauss_newton, batch = (int(group.replace(",", "")) for group in row.groups())
    layers = int(re.search(r"a (\d+)-layer CNN", text).group(1))
    paper = PAPER_CONFIGS["paper"]
    assert paper.n_steps == layers
    assert "least-squares classifier" in text and paper.exact_classifier
    stage = _stage(paper, 40_000)
    assert stage.stopping.maxiter == outer
    assert stage.options["inner_stopping"].maxiter == gauss_newton
    assert stage.options["inner_options"]["gradient_batch_size"] == batch
    assert stage.options["inner_options"]["gauss_newton_batch_size"] == batch


def test_only_strong_and_fast_penalise_kernels_and_only_their_high_derivatives():
    """``strong`` (docs/cli.md): "the high-order penalty ... on derivative orders >= 2", and
    ``fast`` keeps strong's network and penalty; the paper's network has no kernel penalty."""
    mesh = Mesh((8, 8), extent=1.0)
    basis = derivative_basis(2, mesh.h)
    for name, settings in PAPER_CONFIGS.items():
        problem = settings.make_problem(mesh, 10)
        penalties = [
            reg
            for reg in settings.make_regularizers(problem)
            if isinstance(reg, QuadraticPenalty) and reg.block in ("K", "K0")
        ]
        assert {reg.block for reg in penalties} == ({"K", "K0"} if name != "paper" else set())
        layout = problem.layout(settings.n_steps)
        for stencil, multi_index in zip(basis.stencils, basis.multi_indices, strict=True):
            params = layout.zeros()
            params["K"][...] = stencil  # every kernel of every layer: one derivative stencil
            params["K0"][...] = stencil
            value = sum(reg.value(params) for reg in penalties)
            if sum(multi_index) >= 2:
                assert value > 0 or name == "paper", (name, multi_index)
            else:
                assert value == pytest.approx(0.0, abs=1e-12), (name, multi_index)


def test_reproduce_paper_refuses_bad_arguments_before_training(tmp_path):
    from problems.cnn.paper import reproduce_paper

    images, labels = np.zeros((4, 28, 28)), np.arange(4)
    out = tmp_path / "out"

    def run(settings=PAPER_CONFIGS["paper"], **options):
        return reproduce_paper((images, labels), (images, labels), settings, out, **options)

    with pytest.raises(ValueError, match="consistent_start must be one of"):
        run(consistent=True, consistent_start="coarse")
    with pytest.raises(ValueError, match="outer_iterations"):
        run(consistent=True, consistent_iterations=0)
    with pytest.raises(TypeError, match="TrainingSettings"):
        run({})
    assert not out.exists()
