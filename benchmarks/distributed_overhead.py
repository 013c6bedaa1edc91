"""The distributed path against the serial one on this machine, and the bytes it moves.

On MNIST-sized work (the CNN functional of ``--n-examples`` 28x28 MNIST images, 8 channels,
float32, the training objective's regularisers), times each evaluation of a Gauss-Newton-CG
iteration serially (one process, ``--threads`` Numba threads) and on a local Dask cluster of
``--workers`` processes (one thread each), alternating, ``--repeat`` times, and prints the
medians and the ratio distributed / serial:

* ``value_and_gradient`` on all examples; ``value`` on all examples (a line-search trial);
* ``gauss_newton_operator`` on a ``--batch`` of examples (the sub-sampled Hessian of a step) and
  ``--products`` products with it (CG iterations);
* one Gauss-Newton-CG iteration (:func:`pdecontrol.optimize.gauss_newton_cg`, ``maxiter=1``,
  ``--products`` CG iterations), with the bytes the client sent and received in it;
* the round trip of one trivial task per worker (the scheduler's latency, the floor of every
  distributed evaluation), with ``--latency-workers`` idle workers as well;
* from those, an estimate of one GN-CG iteration on 8-64 workers for ``N`` and ``10 N``
  examples (``--estimate-examples``, ``--estimate-batch``, ``--bandwidth``, ``--task-overhead``;
  the model is in :func:`_estimate`);
* with ``--training N``: the main CNN job (two-level 14x14 -> 28x28 training, Gauss-Newton
  batches of ``--batch``, classifier solves) on ``N`` MNIST images, serially and on the cluster:
  wall times, the ratio, and the largest relative difference of the two histories.

Both sides keep freed memory (:func:`pdecontrol.memory.retain_freed_memory`), as the
``pdecontrol`` command does (before it disabled trimming, the serial gradient here page-faulted
its states in again whenever the heap's peak passed 2 GiB: 1.5-6.4 s instead of 1.3-1.4 s).

    PDECONTROL_DATA_DIR=../shared/data/mnist python3 benchmarks/distributed_overhead.py
    python3 benchmarks/distributed_overhead.py --n-examples 2000 --repeat 3   # quicker
    python3 benchmarks/distributed_overhead.py --repeat 0 --latency-workers --training 10000

The figures and the scaling estimate built on them are in docs/distributed.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np


def _options():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-examples", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="Numba threads of the serial run")
    parser.add_argument("--latency-workers", type=int, nargs="*", default=[8, 32])
    parser.add_argument("--data", default="mnist", choices=("mnist", "synthetic"))
    parser.add_argument("--training", type=int, default=None, metavar="N",
                        help="also time the two-level training job on N training images")
    parser.add_argument("--estimate-examples", type=int, default=50_000,
                        help="N of the scaling estimate (its 10x problem: 10 N)")
    parser.add_argument("--estimate-batch", type=int, default=5_000,
                        help="Gauss-Newton batch B of the scaling estimate")
    parser.add_argument("--bandwidth", type=float, default=1.25,
                        help="the client's network link in GB/s for the estimate (10 GbE)")
    parser.add_argument("--task-overhead", type=float, default=1.0,
                        help="scheduler time per task in ms for the estimate")
    return parser.parse_args()


def _functional(args):
    from pdecontrol.mesh import Mesh
    from problems.cnn.config import TrainingSettings
    from problems.cnn.data import load_image_sets, to_numpy
    from problems.cnn.network import cnn_functional

    settings = TrainingSettings(n_channels=args.channels, n_steps=args.steps,
                                high_order_penalty=1e-2)
    train, _ = load_image_sets(args.data, 28, args.n_examples, 1)
    images, labels = to_numpy(train)
    problem = settings.make_problem(Mesh((28, 28)), 10)
    functional = cnn_functional(problem, images, labels, args.steps,
                                regularizers=settings.make_regularizers(problem),
                                dtype=settings.compute_dtype)
    return functional, problem.initial_parameters(args.steps, seed=0)


def _tasks(functional, x, batch, products, rng):
    """name -> zero-argument callable, one evaluation each."""
    from pdecontrol.optimize import Stopping, gauss_newton_cg

    v = rng.standard_normal(functional.size)

    def gauss_newton():
        operator = functional.gauss_newton_operator(x, batch)
        for _ in range(products):
            operator @ v

    def gn_cg_iteration():
        gauss_newton_cg(functional, x, stopping=Stopping(maxiter=1), cg_maxiter=products,
                        cg_rtol=1e-12, gauss_newton_batch_size=batch.size, seed=0)

    return {"value_and_gradient": lambda: functional.value_and_gradient(x),
            "value": lambda: functional.value(x),
            f"GN operator + {products} products": gauss_newton,
            "GN-CG iteration": gn_cg_iteration}


def _history_difference(a, b) -> float:
    """Largest relative difference of the float history columns other than wall times."""
    worst = 0.0
    for name, column in a.data_vars.items():
        if column.dtype.kind == "f" and name != "wall_time":
            x, y = column.values, b[name].values
            finite = np.isfinite(x)
            scale = np.maximum(np.abs(x[finite]), 1e-12)
            worst = max(worst, float(np.max(np.abs(x[finite] - y[finite]) / scale, initial=0)))
    return worst


def _train(args, client=None):
    """The two-level training job, serially or on ``client``: (result, wall seconds)."""
    from pdecontrol.distributed import using
    from problems.cnn.config import TrainingSettings
    from problems.cnn.data import load_image_sets, to_numpy
    from problems.cnn.training import train_multilevel

    settings = TrainingSettings(n_channels=args.channels, n_steps=args.steps, outer_iterations=2,
                                batch_size=args.batch, high_order_penalty=1e-2)
    train, validation = load_image_sets(args.data, 28, args.training, 2000)
    train, validation = to_numpy(train), to_numpy(validation)
    start = time.perf_counter()
    if client is None:
        result = train_multilevel(train, validation, settings, n_levels=2)
    else:
        with using(client):
            result = train_multilevel(train, validation, settings, n_levels=2)
    return result, time.perf_counter() - start


def _print_training(args, serial, distributed) -> None:
    (a, seconds_a), (b, seconds_b) = serial, distributed
    accuracy_a = float(a.history["validation_accuracy"].values[-1])
    accuracy_b = float(b.history["validation_accuracy"].values[-1])
    print(f"\ntwo-level training (14x14 -> 28x28, 2 + 2 outer iterations) on {args.training} "
          f"images: serial {seconds_a:.1f} s, distributed {seconds_b:.1f} s, ratio "
          f"{seconds_b / seconds_a:.2f}; validation accuracy {accuracy_a:.4f} / "
          f"{accuracy_b:.4f}; histories differ by "
          f"{_history_difference(a.history, b.history):.1e} (relative)")


def _latency(client, rounds=30) -> float:
    """Median seconds of one round of one trivial task per worker, submitted and gathered."""
    workers = len(client.scheduler_info()["workers"])
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        client.gather([client.submit(np.add, i, k, pure=False) for k in range(workers)])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _medians(runs: dict, repeat: int) -> dict:
    """``runs``: side -> {task name -> zero-argument callable}. Warm every task up once, then
    time each ``repeat`` times, the sides alternating task by task: side -> {task -> median s}."""
    for tasks in runs.values():
        for task in tasks.values():
            task()  # compile and warm up
    times = {side: {name: [] for name in tasks} for side, tasks in runs.items()}
    for _ in range(repeat):
        for name in next(iter(runs.values())):
            for side, tasks in runs.items():
                start = time.perf_counter()
                tasks[name]()
                times[side][name].append(time.perf_counter() - start)
    return {side: {name: float(np.median(t)) for name, t in by_task.items()}
            for side, by_task in times.items()}


def _evaluations(args, client) -> dict:
    """Time the evaluations serially and on ``client``; print the table and the bytes; return
    the distributed medians (s) by evaluation, and the sizes, for :func:`_estimate`."""
    from pdecontrol.distributed import DistributedControlFunctional

    serial, x = _functional(args)
    rng = np.random.default_rng(0)
    batch = np.sort(rng.choice(serial.n_examples, size=min(args.batch, serial.n_examples),
                               replace=False))
    distributed = DistributedControlFunctional.from_functional(serial, client)
    runs = {side: _tasks(functional, x, batch, args.products, np.random.default_rng(1))
            for side, functional in (("serial", serial), ("distributed", distributed))}
    medians = _medians(runs, args.repeat)
    sent, received = distributed.transfers.sent, distributed.transfers.received
    runs["distributed"]["GN-CG iteration"]()
    sent, received = distributed.transfers.sent - sent, distributed.transfers.received - received

    print(f"MNIST-sized work: {serial.n_examples} examples 28x28 ({args.data}), "
          f"{args.channels} channels, {args.steps} steps, float32, {serial.size} parameters; "
          f"GN batch {batch.size}; serial with {args.threads} Numba threads, distributed on "
          f"{args.workers} worker processes x 1 thread (cpu count {os.cpu_count()}); medians of "
          f"{args.repeat}\n")
    print("| evaluation | serial (s) | distributed (s) | ratio |")
    print("|---|---:|---:|---:|")
    for task, a in medians["serial"].items():
        b = medians["distributed"][task]
        print(f"| {task} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    print(f"\nbytes per GN-CG iteration ({args.products} CG products, {args.workers} shards): "
          f"sent {sent / 1e6:.2f} MB, received {received / 1e6:.2f} MB "
          f"(parameter vector {serial.size * 8 / 1e6:.3f} MB in float64)")
    return {"seconds": medians["distributed"], "size": serial.size, "n_examples": serial.n_examples,
            "batch": batch.size}


def _estimate(args, measured, latency) -> None:
    """Print the modelled time of one GN-CG iteration on 8-64 workers (docs/distributed.md).

    One iteration = a gradient and a line-search value on ``N`` examples, a Gauss-Newton
    operator on ``B`` examples and ``--products`` products: ``R = 3 + products`` rounds. Compute
    scales from the 2-worker medians (core-seconds = 2 x median, linear in the examples); each
    round costs the measured 2-worker round trip plus ``--task-overhead`` per task, and ships
    one float64 parameter vector to and from every worker through the client's link.
    """
    seconds, workers = measured["seconds"], args.workers
    per_example = {"gradient": workers * seconds["value_and_gradient"] / measured["n_examples"],
                   "value": workers * seconds["value"] / measured["n_examples"],
                   "gauss_newton": workers * seconds[f"GN operator + {args.products} products"]
                   / measured["batch"]}
    rounds = 3 + args.products
    vector = 8 * measured["size"]
    print(f"\nestimate of one GN-CG iteration ({args.products} CG products; round trip "
          f"{1e3 * latency:.1f} ms + {args.task_overhead:g} ms per task, client link "
          f"{args.bandwidth:g} GB/s, {rounds} rounds):\n")
    print("| problem | workers | compute (s) | latency (s) | transfer (s) | total (s) | "
          "speed-up | efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for scale in (1, 10):
        n, batch = scale * args.estimate_examples, scale * args.estimate_batch
        core_seconds = (n * (per_example["gradient"] + per_example["value"])
                        + batch * per_example["gauss_newton"])
        for s in (1, 8, 16, 32, 64):
            compute = core_seconds / s
            wait = 0.0 if s == 1 else rounds * (latency + 1e-3 * args.task_overhead * s)
            transfer = 0.0 if s == 1 else rounds * 2 * s * vector / (1e9 * args.bandwidth)
            total = compute + wait + transfer
            print(f"| N = {n:,}, B = {batch:,} | {s} | {compute:.2f} | {wait:.2f} | "
                  f"{transfer:.2f} | {total:.2f} | {core_seconds / total:.1f} | "
                  f"{core_seconds / total / s:.0%} |")


def main():
    args = _options()
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from pdecontrol.distributed import start_client
    from pdecontrol.memory import retain_freed_memory

    retain_freed_memory()  # as the pdecontrol command; start_client does it on the workers

    client = start_client(workers=args.workers)
    measured = None
    try:
        if args.repeat > 0:
            measured = _evaluations(args, client)
        latency = _latency(client)
        if args.training:
            _print_training(args, _train(args), _train(args, client))
    finally:
        client.close()
        client.cluster.close()
    print(f"\nround trip of one trivial task per worker: {1e3 * latency:.1f} ms at "
          f"{args.workers} workers", end="")
    logging.getLogger("distributed").setLevel(logging.CRITICAL)  # closing 32 busy workers
    for workers in args.latency_workers:
        client = start_client(workers=workers)
        try:
            client.wait_for_workers(workers, timeout=120)
            print(f", {1e3 * _latency(client):.1f} ms at {workers}", end="")
        finally:
            client.close()
            client.cluster.close()
    print(" (idle workers on this machine)")
    if measured is not None:
        _estimate(args, measured, latency)


if __name__ == "__main__":
    main()
