"""Text reports of CNN runs: the lines ``pdecontrol cnn train`` prints at its end, and the
number formats the reports share (percentages, work counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["train_report", "percent", "first_reaching"]


#: What each mode trains, for the report of ``pdecontrol cnn train``.
_MODE_WORDS = {
    "single": "single level",
    "multilevel": "coarse to fine",
    "time": "shallow to deep",
    "consistent": "fine + restricted-network loss",
}


def percent(value) -> str:
    """``"96.6%"`` for 0.966 (one decimal); ``"n/a"`` for None or a non-finite value."""
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.1f}%"


def first_reaching(accuracies, target: float):
    """Index of the first of ``accuracies`` (a run's rows, in order) at or above ``target``, or
    None. One part in 10^12 below counts as reached: a target computed from the same numbers (a
    run's final value, the mean of its last rows) is reached where the run holds it."""
    reached = np.flatnonzero(np.asarray(accuracies, dtype=float) >= target - 1e-12)
    return None if reached.size == 0 else int(reached[0])


def _count(value: float) -> str:
    """``2.9e5`` for 290,000 (two digits), ``0`` for zero."""
    if value == 0 or not np.isfinite(value):
        return f"{value:g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def train_report(config: dict, summary: dict, run_path) -> list:
    """The lines ``pdecontrol cnn train`` prints at its end: where the run is, what each stage
    (level or layer count) did to the validation accuracy, with its wall time and work, the final
    network, and where the figures are (all from ``summary``, see ``summary.json``)."""
    stages = summary["stages"]
    several_depths = len({stage["n_steps"] for stage in stages}) > 1
    fine = "x".join(map(str, summary["network_mesh_shape"]))
    lines = [f"run directory: {run_path}",
             f"{_MODE_WORDS[config['mode']]} (--mode {config['mode']}): validation accuracy on "
             f"{summary['n_val']} {config['data']} images, wall time, work (convolutions of "
             f"one {fine} image):"]
    previous = None
    for stage in stages:
        where = stage["mesh_shape"] + (f", {_plural(stage['n_steps'], 'layer')}"
                                       if several_depths else "")
        if previous is None:
            start = "random kernels" if config.get("initial") is None else "--initial network"
        elif stage["start_phase"] == "prolonged_start":
            start = f"prolonged from {previous['mesh_shape']}, before training on {where}"
        elif stage["start_phase"] == "time_refined_start":
            start = (f"{_plural(previous['n_steps'], 'layer')} refined to {stage['n_steps']}, "
                     "before training")
        else:
            start = stage["start_phase"].replace("_", " ")
        lines.append(
            f"  {where}: {percent(stage['start_validation_accuracy'])} ({start}) -> "
            f"{percent(stage['final_validation_accuracy'])} after "
            f"{_plural(stage['outer_iterations'], 'outer iteration')}; "
            f"{stage['wall_time_s']:.0f} s, work {_count(stage['work'])}")
        previous = stage
    lines.append(
        f"final network {fine}: validation {percent(summary['final_validation_accuracy'])}, "
        f"training {percent(summary['final_training_accuracy'])}, objective "
        f"{summary['final_objective']:.4g}; "
        f"{summary['command_wall_time_s']:.0f} s in all")
    names = [Path(name).name for name in summary["figures"]]
    lines.append(f"figures: {Path(run_path) / 'figures'}/ {', '.join(names)}")
    return lines
