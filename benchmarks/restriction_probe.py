"""Why a fine-only network fails when restricted, and what makes it restrict well.

``probe NETWORK``: two measurements on a trained 28x28 network (a ``network_*.nc`` of
``pdecontrol cnn paper``), on the seed-0 40,000 / 20,000 MNIST split:

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

``study``: the restriction study of docs/paper.md ("What makes a fine-only network restrict
well"). On a seed-0 ``--n-train`` / ``--n-val`` MNIST split (default 4,000 / 2,000: the largest
training set with the cheap dual classifier solve) and the network of ``--config`` (default
``strong``) with a short schedule (``--outer-iterations`` of ``--gauss-newton-steps`` steps of
at most ``--cg-iterations`` CG iterations), for every transfer family (node / cell centring x
Galerkin / rediscretized kernels): the accuracy at 28, 14 and 7 of the fine-only network and of
the resolution-consistent network of that family (levels 28 -> 14 -> 7, weight 1), each
restricted with the family's transfer and with W only (``--parts families``). Then the factors,
on fine-only networks (``--parts factors``): Gaussian smoothing of the images before restriction
(``--sigmas``, evaluation only), the high-order penalty (0 and 1e-2, orders as in the config),
the activation (relu) and the final time (``--final-time``, i.e. ``dt``). Single-level training
does not depend on the centring (tests/test_cnn_scales.py), so one fine-only network serves both
centrings.
Prints markdown tables; ``--out`` also writes them with the raw numbers as JSON.

    python benchmarks/restriction_probe.py probe runs/paper-strong/network_fine.nc \
        --data-dir ../shared/data/mnist [--n-train 10000] [--n-val 5000] [--gammas 0 1 10 100]
    NUMBA_NUM_THREADS=1 nice -n 5 python benchmarks/restriction_probe.py study \
        --data-dir ../shared/data/mnist --out runs/restriction-study
    NUMBA_NUM_THREADS=1 nice -n 5 python benchmarks/restriction_probe.py study --config paper \
        --parts factors --data-dir ../shared/data/mnist --out runs/restriction-study-paper
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from pdecontrol.io import make_folder, write_json
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict_image
from problems.cnn.classifier import ClassifierSolver
from problems.cnn.data import load_image_sets
from problems.cnn.evaluation import (
    TrainedNetwork,
    as_labelled_images,
    evaluate_across_scales,
    image_pyramid,
    moved_variant,
)
from problems.cnn.network_file import read_network_file
from problems.cnn.paper import PAPER_CONFIGS
from problems.cnn.training import train_resolution_consistent, train_single_level


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


# ---------------------------------------------------------------------- the study
#: Transfer families: (centring, kernel transfer, column of evaluate_across_scales).
FAMILIES = tuple(
    (centring, transfer, moved_variant(transfer))
    for centring, transfer in itertools.product(("node", "cell"), ("galerkin", "rediscretize")))
RESOLUTIONS = (28, 14, 7)


def with_centring(network: TrainedNetwork, centring: str) -> TrainedNetwork:
    """The same parameters on the mesh of the other centring (same shape, extent, origin)."""
    mesh = network.mesh
    moved = Mesh(mesh.shape, extent=mesh.extent, origin=mesh.origin, centring=centring)
    return TrainedNetwork(network.problem.with_mesh(moved), network.parameters, network.settings)


def family_accuracy(network, validation, centring, transfer, sigma=None) -> dict:
    """``{"restricted": [a28, a14, a7], "w_only": [a28, a14, a7]}`` of ``network`` moved with
    the family's transfer (images restricted with its ``R`` after smoothing ``sigma``)."""
    network = with_centring(network, centring)
    column = moved_variant(transfer)
    pyramid = image_pyramid(validation, len(RESOLUTIONS) - 1, smoothing_sigma=sigma,
                            centring=centring)
    table = evaluate_across_scales(network, pyramid, variants=(column, "classifier_only"))
    accuracy = table["accuracy"]
    restricted = accuracy.sel(variant=column).values.tolist()
    w_only = accuracy.sel(variant="classifier_only").values.tolist()
    w_only[0] = restricted[0]  # the network itself at 28x28
    return {"restricted": restricted, "w_only": w_only}


def _cells(values) -> str:
    return " / ".join(f"{100 * v:.1f}" for v in values)


def run_study(args) -> dict:
    """Train the networks of the study and measure them; returns the tables and raw numbers."""
    train, validation = load_image_sets("mnist", 28, args.n_train, args.n_val, seed=0,
                                        data_dir=args.data_dir)
    train = as_labelled_images(train, "train")
    validation = as_labelled_images(validation, "validation")
    base = PAPER_CONFIGS[args.config].replace(
        outer_iterations=args.outer_iterations, gauss_newton_steps=args.gauss_newton_steps,
        cg_iterations=args.cg_iterations)
    common = {"n_classes": 10}
    results = {"config": args.config, "settings": base.to_dict(), "n_train": args.n_train,
               "n_val": args.n_val,
               "families": {}, "factors": {}, "wall_time_s": {}}

    def timed(name, train_function, *a, **k):
        start = time.perf_counter()
        result = train_function(*a, **k)
        results["wall_time_s"][name] = time.perf_counter() - start
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {results['wall_time_s'][name]:.0f} s, "
              f"validation {result.history['validation_accuracy'].values[-1]:.2%}", flush=True)
        return result.network

    fine = timed("fine-only", train_single_level, train, validation, base, **common)
    lines = ["| family | network | restricted 28 / 14 / 7 | W-only 28 / 14 / 7 |",
             "| --- | --- | --- | --- |"]
    for centring, transfer, _ in FAMILIES if "families" in args.parts else ():
        name = f"{centring}-{transfer}"
        consistent = timed(
            f"consistent {name}", train_resolution_consistent, train, validation, base,
            consistency_levels=(1, 2), consistency_weight=args.consistency_weight,
            centring=centring, kernel_transfer=transfer, **common)
        entry = {"fine_only": family_accuracy(fine, validation, centring, transfer),
                 "consistent": family_accuracy(consistent, validation, centring, transfer)}
        results["families"][name] = entry
        for network in ("fine_only", "consistent"):
            row = entry[network]
            lines.append(f"| {centring}, {transfer} | {network.replace('_', '-')} | "
                         f"{_cells(row['restricted'])} | {_cells(row['w_only'])} |")
        print("\n".join(lines[-2:]), flush=True)

    variants = {"base": (fine, None)}
    variants.update({f"sigma {sigma:g}": (fine, sigma) for sigma in args.sigmas})
    for label, changes in () if "factors" not in args.parts else (
        ("high-order penalty 0", {"high_order_penalty": 0.0}),
        ("high-order penalty 1e-2", {"high_order_penalty": 1e-2}),
        ("relu", {"activation": "relu"}),
        (f"final time {args.final_time:g} (dt {args.final_time / base.n_steps:g})",
         {"final_time": args.final_time}),
    ):
        variants[label] = (timed(label, train_single_level, train, validation,
                                 base.replace(**changes), **common), None)
    factor_lines = ["| fine-only network | " + " | ".join(
        f"{c}, {t}: restricted 14 / 7 (W-only 14 / 7)" for c, t, _ in FAMILIES) + " |",
        "| --- " * (len(FAMILIES) + 1) + "|"]
    for label, (network, sigma) in variants.items():
        rows = {f"{c}-{t}": family_accuracy(network, validation, c, t, sigma)
                for c, t, _ in FAMILIES}
        results["factors"][label] = rows
        factor_lines.append(
            f"| {label} (28: {100 * rows['node-galerkin']['restricted'][0]:.1f}) | " + " | ".join(
                f"{_cells(r['restricted'][1:])} ({_cells(r['w_only'][1:])})"
                for r in rows.values()) + " |")
        print(factor_lines[-1], flush=True)
    results["tables"] = {"families": lines, "factors": factor_lines}
    return results


def study_main(args):
    results = run_study(args)
    print("\n" + "\n".join(results["tables"]["families"]))
    print("\n" + "\n".join(results["tables"]["factors"]))
    if args.out is not None:
        out = Path(args.out)
        make_folder(out)
        write_json(out / "restriction_study.json", results)
        print(f"written: {out / 'restriction_study.json'}")


def probe_main(args):
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    probe = commands.add_parser("probe", help="state gap and smooth classifiers of one network")
    probe.add_argument("network", help="a 28x28 network_*.nc of pdecontrol cnn paper")
    probe.add_argument("--gap-images", type=int, default=500)
    probe.add_argument("--gammas", type=float, nargs="+", default=[0.0, 1.0, 10.0, 100.0])
    study = commands.add_parser("study", help="transfer families and factors (trains networks)")
    study.add_argument("--config", choices=tuple(PAPER_CONFIGS), default="strong",
                       help="network of pdecontrol cnn paper --config (default strong)")
    study.add_argument("--parts", nargs="+", choices=("families", "factors"),
                       default=["families", "factors"],
                       help="families: fine-only and consistent networks per transfer family; "
                            "factors: fine-only networks with one setting changed")
    study.add_argument("--outer-iterations", type=int, default=3)
    study.add_argument("--gauss-newton-steps", type=int, default=2)
    study.add_argument("--cg-iterations", type=int, default=10)
    study.add_argument("--consistency-weight", type=float, default=1.0)
    study.add_argument("--sigmas", type=float, nargs="+", default=[0.5, 1.0])
    study.add_argument("--final-time", type=float, default=0.4)
    study.add_argument("--out", default=None, help="folder for restriction_study.json")
    for command, n_train, n_val in ((probe, 10_000, 5_000), (study, 4_000, 2_000)):
        command.add_argument("--data-dir", default=None, help="MNIST directory")
        command.add_argument("--n-train", type=int, default=n_train)
        command.add_argument("--n-val", type=int, default=n_val)
    args = parser.parse_args(argv)
    (probe_main if args.command == "probe" else study_main)(args)


if __name__ == "__main__":
    main()
