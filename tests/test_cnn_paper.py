"""Helpers of the paper job (problems.cnn.paper) that read training histories."""

import numpy as np
import pytest
import xarray as xr

from problems.cnn.paper import PAPER_CONFIGS, multilevel_cost_to_reach


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
    cost = multilevel_cost_to_reach(_multilevel_history(), target)
    assert cost == {"fine_level_work": work, "wall_time": wall}


def test_paper_configs_are_valid_and_distinct():
    paper, strong = PAPER_CONFIGS["paper"], PAPER_CONFIGS["strong"]
    assert paper.n_channels == 2 and paper.high_order_penalty == 0
    assert strong.n_channels == 8 and strong.high_order_penalty > 0
    assert strong.kernel_scale == strong.opening_scale == 3.0
    # the paper's schedule: 10 outer iterations, 2 GN steps of <= 10 CG, batch 10,000, 2 layers
    assert (paper.outer_iterations, paper.gauss_newton_steps, paper.cg_iterations) == (10, 2, 10)
    assert (paper.batch_size, paper.n_steps) == (10_000, 2)
    # strong: as many outer iterations and layers, more and smaller GN steps
    assert (strong.outer_iterations, strong.gauss_newton_steps, strong.cg_iterations) == (10, 4, 20)
    assert (strong.batch_size, strong.n_steps) == (2_000, 2)


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
