"""Coarse-mesh steps in the fine stage of a multilevel run (MG/OPT style), row by row.

Runs ``benchmarks/schedule_probe.py --multilevel`` with every fine-level outer iteration made of
``--fine-steps`` Gauss-Newton steps of the configuration followed by ``--cycles`` coarse-model
steps. A coarse-model step, on a batch ``B`` of the gradient batch size (kernels and biases; the
classifier ``W_H = R W_h`` held fixed):

1. the fine gradient ``g_h`` at ``x_h`` on ``B``; the restricted network ``x_H = R x_h``
   (:func:`problems.cnn.transfer.restrict_network`);
2. the coarse model ``m(y) = f_H(y; B) - v . y`` with ``v = grad f_H(x_H; B) - P^T g_h``, so that
   ``grad m(x_H) = P^T g_h`` (``P``: :func:`problems.cnn.transfer.prolong_network`, linear);
3. ``--coarse-steps`` Gauss-Newton steps on ``m`` from ``x_H`` (the configuration's CG
   iterations and Gauss-Newton batch);
4. the fine step ``x_h + t P (y - x_H)``, ``t`` from 1 halved up to 3 times until the fine
   objective on ``B`` decreases sufficiently (Armijo, 1e-4); no step otherwise.

``--fine-steps 4 --cycles 0`` is the configuration itself. ``P`` restricted to the kernels and
biases is built as a matrix when the problem is set up, before the training clock starts.
docs/speed.md ("Coarse-mesh steps in the fine stage") reads it:

    python benchmarks/two_level_steps_probe.py --fine-steps 2 --cycles 2 -- seed=1 \
        classifier_start_newton_steps=4 --data-dir ../shared/data/mnist --multilevel \
        --centring cell --coarse-iterations 6 --stop-at 0.9786
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from unittest import mock

import numpy as np
from scipy.optimize import OptimizeResult

from pdecontrol.functional import ReducedFunctional
from pdecontrol.optimize import Stopping, gauss_newton_cg
from pdecontrol.optimize.restricted import RestrictedFunctional
from problems.cnn.classifier import classifier_indices
from problems.cnn.training_problem import CNNTraining
from problems.cnn.transfer import prolong_network, restrict_network

sys.path.insert(0, str(Path(__file__).resolve().parent))
import schedule_probe  # noqa: E402

ARMIJO = 1e-4
HALVINGS = 3


class ShiftedOnBatch(ReducedFunctional):
    """``base`` on the examples ``batch`` only (example ``i`` is ``batch[i]``), minus
    ``shift . y``: the coarse model of an MG/OPT cycle."""

    def __init__(self, base: ReducedFunctional, batch: np.ndarray, shift: np.ndarray):
        self.base, self.batch, self.shift = base, batch, shift

    @property
    def size(self) -> int:
        return self.base.size

    @property
    def n_examples(self) -> int:
        return self.batch.size

    @property
    def weights(self) -> np.ndarray:
        return self.base.weights

    def _examples(self, examples):
        return self.batch if examples is None else self.batch[np.asarray(examples)]

    def value_and_gradient(self, y, examples=None):
        value, gradient = self.base.value_and_gradient(y, self._examples(examples))
        return value - float(self.shift @ y), np.asarray(gradient) - self.shift

    def gauss_newton_operator(self, y, examples=None):
        return self.base.gauss_newton_operator(y, self._examples(examples))


class TwoLevelStepsTraining(CNNTraining):
    """:class:`CNNTraining` whose finest stage adds coarse-model steps to each outer iteration
    (the module docstring). ``FINE_STEPS``, ``CYCLES``, ``COARSE_STEPS``: set by :func:`main`."""

    FINE_STEPS, CYCLES, COARSE_STEPS = 4, 0, 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = {"accepted": 0, "rejected": 0}
        if self.CYCLES and len(self.hierarchy) > 1:
            n_steps = self.settings.n_steps
            fine, coarse = (self.functional(level, n_steps, regularized=True) for level in (0, 1))
            self.fine_free, self.coarse_free = (
                np.setdiff1d(np.arange(f.size), classifier_indices(f)) for f in (fine, coarse))
            self.coarse_objective = coarse
            self.prolongation = np.zeros((self.fine_free.size, self.coarse_free.size))
            unit = np.zeros(coarse.size)
            for j, index in enumerate(self.coarse_free):
                unit[index] = 1.0
                self.prolongation[:, j] = prolong_network(
                    self.network_problem(1), unit, 1, self.kernel_transfer)[self.fine_free]
                unit[index] = 0.0

    def stage(self, level, n_steps, outer_iterations):
        stage = super().stage(level, n_steps, outer_iterations)
        if level != 0 or not self.CYCLES or len(self.hierarchy) < 2:
            return stage
        return dataclasses.replace(stage, options={**stage.options,
                                                   "inner_solver": self.inner_solver})

    def coarse_step(self, functional: RestrictedFunctional, y, rng, batch_size, options):
        """One coarse-model step from the free entries ``y`` of the fine stage's block."""
        fine, P = functional.functional, self.prolongation
        batch = np.sort(rng.choice(fine.n_examples, batch_size, replace=False))
        x_h = functional.embed(y)
        value, gradient = fine.value_and_gradient(x_h, batch)
        gradient = np.asarray(gradient)[functional.free_indices]
        x_H = restrict_network(self.network_problem(0), x_h, 1, self.kernel_transfer)
        coarse = RestrictedFunctional(self.coarse_objective, self.coarse_free, x_H)
        y_H = x_H[self.coarse_free]
        shift = coarse.value_and_gradient(y_H, batch)[1] - P.T @ gradient
        model = gauss_newton_cg(
            ShiftedOnBatch(coarse, batch, shift), y_H,
            stopping=Stopping(maxiter=self.COARSE_STEPS, grtol=0.0), seed=rng,
            cg_maxiter=options["cg_maxiter"],
            gauss_newton_batch_size=options["gauss_newton_batch_size"])
        direction = P @ (np.asarray(model.x) - y_H)
        slope = float(gradient @ direction)
        step = 1.0
        for _ in range(HALVINGS + 1):
            trial = y + step * direction
            if slope < 0 and functional.value(trial, batch) <= value + ARMIJO * step * slope:
                self.counts["accepted"] += 1
                return trial
            step /= 2
        self.counts["rejected"] += 1
        return y

    def inner_solver(self, functional, y0, *, stopping, seed, **options):
        """The configuration's Gauss-Newton steps, then the coarse-model steps."""
        result = gauss_newton_cg(functional, y0, seed=seed, **options,
                                 stopping=Stopping(maxiter=self.FINE_STEPS, grtol=0.0))
        y = np.asarray(result.x)
        batch_size = options["gradient_batch_size"] or functional.n_examples
        for _ in range(self.CYCLES):
            y = self.coarse_step(functional, y, seed, batch_size, options)
        return OptimizeResult(x=y, nit=result.nit + self.CYCLES, status=result.status,
                              history=result.history)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [options] -- SCHEDULE_PROBE_ARGUMENTS")
    parser.add_argument("--fine-steps", type=int, default=4,
                        help="Gauss-Newton steps on the fine level per outer iteration")
    parser.add_argument("--cycles", type=int, default=0,
                        help="coarse-model steps per fine outer iteration, after them")
    parser.add_argument("--coarse-steps", type=int, default=1,
                        help="Gauss-Newton steps on each coarse model")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if "--multilevel" not in rest:
        parser.error("coarse-model steps need a coarse level: pass --multilevel to the probe")
    for name, value, low in (("--fine-steps", args.fine_steps, 1), ("--cycles", args.cycles, 0),
                             ("--coarse-steps", args.coarse_steps, 1)):
        if value < low:
            parser.error(f"{name} must be at least {low}, got {value}")
    TwoLevelStepsTraining.FINE_STEPS = args.fine_steps
    TwoLevelStepsTraining.CYCLES = args.cycles
    TwoLevelStepsTraining.COARSE_STEPS = args.coarse_steps
    print(f"{args.fine_steps} fine Gauss-Newton steps and {args.cycles} coarse-model steps "
          f"({args.coarse_steps} Gauss-Newton steps each) per fine outer iteration", flush=True)
    created = []

    def training(*a, **k):
        created.append(TwoLevelStepsTraining(*a, **k))
        return created[-1]

    with mock.patch("problems.cnn.training.CNNTraining", training):
        schedule_probe.main(rest)
    if created and args.cycles:
        print(f"coarse-model steps accepted {created[-1].counts['accepted']}, rejected "
              f"{created[-1].counts['rejected']}", flush=True)


if __name__ == "__main__":
    main()
