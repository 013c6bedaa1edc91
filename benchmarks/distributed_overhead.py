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
* with ``--training N``: the main CNN job (two-level 14x14 -> 28x28 training, Gauss-Newton
  batches of ``--batch``, classifier solves) on ``N`` MNIST images, serially and on the cluster:
  wall times, the ratio, and the largest relative difference of the two histories.

Both sides keep freed memory (:func:`pdecontrol.memory.retain_freed_memory`), as the
``pdecontrol`` command does.

    PDECONTROL_DATA_DIR=../shared/data/mnist python3 benchmarks/distributed_overhead.py
    python3 benchmarks/distributed_overhead.py --n-examples 2000 --repeat 3   # quicker
    python3 benchmarks/distributed_overhead.py --repeat 0 --latency-workers --training 10000

The figures and the scaling estimate built on them are in docs/distributed.md.
"""

from __future__ import annotations

import argparse
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


def _training(args, client) -> None:
    """Time the two-level training job serially and on ``client``; print the comparison."""
    from pdecontrol.distributed import using
    from problems.cnn.config import TrainingSettings
    from problems.cnn.data import load_image_sets, to_numpy
    from problems.cnn.training import train_multilevel

    settings = TrainingSettings(n_channels=args.channels, n_steps=args.steps, outer_iterations=2,
                                batch_size=args.batch, high_order_penalty=1e-2)
    train, validation = load_image_sets(args.data, 28, args.training, 2000)
    train, validation = to_numpy(train), to_numpy(validation)
    results, seconds = {}, {}
    for name in ("serial", "distributed"):
        start = time.perf_counter()
        if name == "serial":
            results[name] = train_multilevel(train, validation, settings, n_levels=2)
        else:
            with using(client):
                results[name] = train_multilevel(train, validation, settings, n_levels=2)
        seconds[name] = time.perf_counter() - start
    accuracy = {name: float(r.history["validation_accuracy"].values[-1])
                for name, r in results.items()}
    print(f"\ntwo-level training (14x14 -> 28x28, 2 + 2 outer iterations) on {args.training} "
          f"images: serial {seconds['serial']:.1f} s, distributed {seconds['distributed']:.1f} s, "
          f"ratio {seconds['distributed'] / seconds['serial']:.2f}; validation accuracy "
          f"{accuracy['serial']:.4f} / {accuracy['distributed']:.4f}; histories differ by "
          f"{_history_difference(results['serial'].history, results['distributed'].history):.1e}"
          f" (relative)")


def _latency(client, rounds=30) -> float:
    """Median seconds of one round of one trivial task per worker, submitted and gathered."""
    workers = len(client.scheduler_info()["workers"])
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        client.gather([client.submit(np.add, i, k, pure=False) for k in range(workers)])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _evaluations(args, client) -> None:
    """Time the evaluations serially and on ``client``; print the table, bytes and latency."""
    from pdecontrol.distributed import DistributedControlFunctional

    serial, x = _functional(args)
    rng = np.random.default_rng(0)
    batch = np.sort(rng.choice(serial.n_examples, size=min(args.batch, serial.n_examples),
                               replace=False))
    distributed = DistributedControlFunctional.from_functional(serial, client)
    runs = {"serial": _tasks(serial, x, batch, args.products, np.random.default_rng(1)),
            "distributed": _tasks(distributed, x, batch, args.products, np.random.default_rng(1))}
    for tasks in runs.values():  # compile and warm up
        for task in tasks.values():
            task()
    times = {name: {task: [] for task in tasks} for name, tasks in runs.items()}
    for _ in range(args.repeat):
        for task in runs["serial"]:
            for name in ("serial", "distributed"):  # side by side, alternating
                start = time.perf_counter()
                runs[name][task]()
                times[name][task].append(time.perf_counter() - start)
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
    for task in runs["serial"]:
        a, b = np.median(times["serial"][task]), np.median(times["distributed"][task])
        print(f"| {task} | {a:.3f} | {b:.3f} | {b / a:.2f} |")
    print(f"\nbytes per GN-CG iteration ({args.products} CG products, {args.workers} shards): "
          f"sent {sent / 1e6:.2f} MB, received {received / 1e6:.2f} MB "
          f"(parameter vector {serial.size * 8 / 1e6:.3f} MB in float64)")


def main():
    args = _options()
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from pdecontrol.distributed import start_client
    from pdecontrol.memory import retain_freed_memory

    retain_freed_memory()  # as the pdecontrol command; start_client does it on the workers

    client = start_client(workers=args.workers)
    try:
        if args.repeat > 0:
            _evaluations(args, client)
        latency = _latency(client)
        if args.training:
            _training(args, client)
    finally:
        client.close()
        client.cluster.close()
    print(f"\nround trip of one trivial task per worker: {1e3 * latency:.1f} ms at "
          f"{args.workers} workers", end="")
    for workers in args.latency_workers:
        client = start_client(workers=workers)
        try:
            client.wait_for_workers(workers, timeout=120)
            print(f", {1e3 * _latency(client):.1f} ms at {workers}", end="")
        finally:
            client.close()
            client.cluster.close()
    print(" (idle workers on this machine)")


if __name__ == "__main__":
    main()
