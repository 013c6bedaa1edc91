"""Why a fine-only network fails when Galerkin-restricted: its states, or its classifier?

Two measurements on a trained 28x28 network (a ``network_*.nc`` of ``pdecontrol cnn paper``), on the
seed-0 40,000 / 20,000 MNIST split:

1. **State gap**: ``||y_H(T) - R y_h(T)|| / ||R y_h(T)||`` on ``--gap-images`` validation images,
   where ``y_h(T)`` is the fine network's final state on the fine images and ``y_H(T)`` the
   restricted network's on the restricted images (overall and per channel). Zero would mean
   restriction commutes with the network.
2. **Smooth classifier**: ``W`` re-solved on the first ``--n-train`` training images with the
   network's ridge weight ``beta`` plus a gradient penalty ``gamma ||D W||^2`` (first
   differences along both axes of each channel, unscaled), ``gamma`` = each of ``--gammas``
   times ``beta``; fine and restricted validation accuracy on the first ``--n-val`` validation
   images. If restriction failed because ``R W`` loses the oscillatory part of ``W``, a smoother
   ``W`` would restrict better.

    python benchmarks/restriction_probe.py runs/paper-strong/network_fine.nc \
        --data-dir ../shared/data/mnist [--n-train 10000] [--n-val 5000] [--gammas 0 1 10 100]
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from pdecontrol.transfer import restrict_image
from problems.cnn.classifier import ClassifierSolver
from problems.cnn.data import load_image_sets
from problems.cnn.evaluation import TrainedNetwork, as_labelled_images, image_pyramid
from problems.cnn.network_file import read_network_file


def gradient_penalty_matrix(n_channels: int, n: int) -> np.ndarray:
    """``D^T D`` for first differences along both axes of each ``n x n`` channel (dense)."""
    difference = sp.diags([-np.ones(n - 1), np.ones(n - 1)], [0, 1], shape=(n - 1, n))
    identity = sp.identity(n)
    gradient = sp.vstack([sp.kron(identity, difference), sp.kron(difference, identity)])
    return np.kron(np.eye(n_channels), (gradient.T @ gradient).toarray())


def state_gap(network, images, labels) -> tuple:
    """Relative gap between the restricted network's final state and the restricted fine one:
    overall and per channel."""
    coarse_images = image_pyramid((images, labels), 1)[1][0]
    fine = network.functional(images, labels).forward(network.parameters).final_states
    restricted = network.restrict(1)
    coarse = restricted.functional(coarse_images, labels).forward(restricted.parameters)
    coarse = coarse.final_states
    expected = restrict_image(fine.reshape(-1, *fine.shape[2:]), 2, 1).reshape(coarse.shape)
    per_channel = np.linalg.norm((coarse - expected).swapaxes(0, 1).reshape(coarse.shape[1], -1),
                                 axis=1)
    per_channel /= np.linalg.norm(expected.swapaxes(0, 1).reshape(coarse.shape[1], -1), axis=1)
    return float(np.linalg.norm(coarse - expected) / np.linalg.norm(expected)), per_channel


def smooth_classifiers(network, train, validation, gammas):
    """``(gamma / beta, fine accuracy, restricted accuracy)`` for each gradient-penalty weight."""
    (train_images, train_labels), (val_images, val_labels) = train, validation
    coarse_val = image_pyramid(validation, 1)[1][0]
    functional = network.functional(train_images, train_labels, regularized=True)
    solver = ClassifierSolver(functional)
    features = solver.features(network.parameters).astype(np.float64)
    n_examples = features.shape[0]
    targets = functional.targets.astype(np.float64)
    mean = features.mean(axis=0)
    centred = features - mean
    normal = centred.T @ centred
    rhs = centred.T @ (targets - targets.mean(axis=0))
    problem = network.problem
    beta = n_examples * solver.alpha_W * problem.mesh.cell_volume
    penalty = gradient_penalty_matrix(problem.n_channels, problem.mesh.shape[0])
    identity = np.eye(normal.shape[0])
    rows = []
    for gamma in gammas:
        W = scipy.linalg.solve(normal + beta * identity + gamma * beta * penalty, rhs,
                               assume_a="pos")
        x = np.array(network.parameters)
        params = functional.layout.unflatten(x)
        params["W"][...] = W.T.reshape(params["W"].shape)
        params["c"][...] = targets.mean(axis=0) - mean @ W
        changed = TrainedNetwork(problem, x, network.settings)
        rows.append((gamma, changed.accuracy(val_images, val_labels),
                     changed.restrict(1).accuracy(coarse_val, val_labels)))
    return beta, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("network", help="a 28x28 network_*.nc of pdecontrol cnn paper")
    parser.add_argument("--data-dir", default=None, help="MNIST directory")
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-val", type=int, default=5_000)
    parser.add_argument("--gap-images", type=int, default=500)
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.0, 1.0, 10.0, 100.0])
    args = parser.parse_args(argv)
    network = read_network_file(args.network).network
    train, validation = load_image_sets("mnist", 28, 40_000, 20_000, seed=0,
                                        data_dir=args.data_dir)
    train_images, train_labels = as_labelled_images(train, "train")
    val_images, val_labels = as_labelled_images(validation, "validation")
    gap, per_channel = state_gap(network, val_images[:args.gap_images],
                                 val_labels[:args.gap_images])
    print(f"{args.network}: state gap ||y_H(T) - R y_h(T)|| / ||R y_h(T)|| = {gap:.3f} "
          f"on {args.gap_images} validation images; per channel "
          + " ".join(f"{value:.2f}" for value in per_channel))
    beta, rows = smooth_classifiers(
        network,
        (train_images[:args.n_train], train_labels[:args.n_train]),
        (val_images[:args.n_val], val_labels[:args.n_val]),
        args.gammas,
    )
    print(f"\nW re-solved on {args.n_train} training images, ridge beta = {beta:.4g}, "
          f"{args.n_val} validation images\n")
    print("| gamma / beta | fine 28x28 | restricted 14x14 |")
    print("| --- | --- | --- |")
    for gamma, fine, restricted in rows:
        print(f"| {gamma:g} | {fine:.2%} | {restricted:.2%} |")


if __name__ == "__main__":
    main()
