"""Validation accuracy of random kernels + solved classifier, by initial kernel scale (MNIST).

The "random start" of every training run: kernels drawn by ``CNNProblem.initial_parameters``
(``N(0, s^2)`` stencil weights, ``s = scale / sqrt(C_in 3^d)``), zero biases, then the exact
ridge solve for ``(W, c)``. Larger scales drive tanh away from its linear part, so the final state
holds more nonlinear features of the image and the linear classifier on it does better. This
picks ``kernel_scale`` / ``opening_scale`` of the ``strong`` paper configuration.

    python benchmarks/random_start_probe.py --data-dir ../shared/data/mnist \
        [--n-train 10000] [--n-val 5000] [--channels 8] [--scales 1,1 3,1 3,3 5,5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pdecontrol.mesh import Mesh
from problems.cnn.config import TrainingSettings
from problems.cnn.data import load_mnist, to_numpy, train_validation_split
from problems.cnn.network import accuracy, cnn_functional


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=5_000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="split and kernel seed")
    parser.add_argument(
        "--scales",
        nargs="+",
        default=["1,1", "3,1", "1,3", "3,3", "5,5", "8,5"],
        help="kernel_scale,opening_scale pairs",
    )
    args = parser.parse_args(argv)
    dataset = load_mnist("train", args.data_dir)
    train, validation = train_validation_split(dataset, args.n_train, args.n_val, args.seed)
    (x_train, y_train), (x_val, y_val) = to_numpy(train), to_numpy(validation)
    mesh = Mesh(x_train.shape[-2:], extent=1.0)
    print(f"{args.channels} channels, {args.n_train} / {args.n_val} MNIST images, seed {args.seed}")
    print("| kernel_scale | opening_scale | training accuracy | validation accuracy | "
          "objective | solve (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for pair in args.scales:
        kernel_scale, opening_scale = (float(value) for value in pair.split(","))
        settings = TrainingSettings(
            n_channels=args.channels, kernel_scale=kernel_scale, opening_scale=opening_scale,
            seed=args.seed,
        )
        problem = settings.make_problem(mesh, 10)
        functional = cnn_functional(
            problem, x_train, y_train, settings.n_steps, dtype=np.float32,
            regularizers=settings.make_regularizers(problem),
        )
        validation_functional = cnn_functional(
            problem, x_val, y_val, settings.n_steps, dtype=np.float32
        )
        x = problem.initial_parameters(
            settings.n_steps, settings.seed, kernel_scale=kernel_scale,
            opening_scale=opening_scale,
        )
        start = time.perf_counter()
        x = settings.classifier_solver(functional)(x)
        seconds = time.perf_counter() - start
        print(f"| {kernel_scale:g} | {opening_scale:g} | {accuracy(functional, x):.2%} | "
              f"{accuracy(validation_functional, x):.2%} | {functional.value(x):.4f} | "
              f"{seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
