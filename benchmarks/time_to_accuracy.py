"""Time to a validation accuracy on MNIST, every method in one run (issue 14).

All methods train the same network (``--config`` of ``problems.cnn.paper.PAPER_CONFIGS``: opening
3x3 correlation 1 -> C, ``n_steps`` residual layers ``y <- y + dt * sigma(K y + b)``, integral
classifier ``z = h^2 sum W . y + c``) from the same random kernels
(``CNNProblem.initial_parameters`` with the config's seed and scales, ``W = 0``), on the same
training / validation split, with the same number of threads (``numba.set_num_threads``,
``torch.set_num_threads`` and BLAS via threadpoolctl):

* ``adam-ce``: PyTorch Adam on the softmax cross-entropy of ``z`` (no regulariser, as a user
  would run it), one run per learning rate of ``--lr``, mini-batches of ``--batch-size``;
* ``adam-ls``: the same on the paper's objective, least squares on one-hot labels
  ``1/(2s) sum ||z - onehot||^2`` plus the classifier's Tikhonov term ``alpha/2 h^2 ||W||^2``;
* ``ours-adam-ce`` (and ``ours-adam-ls``, not run by default): ``pdecontrol.optimize.adam`` on
  our operators (``cnn_functional``, float32 states) with the same losses, learning rates and
  batches. The classifier is trained as ``h^2 W`` (a ``TransformedFunctional``), as in the
  PyTorch model, so both run the same algorithm and differ in operator and bookkeeping speed
  (and in batch order);
* ``gn-fine`` and ``gn-multilevel``: our Gauss-Newton-CG with the config's schedule, fine only
  (``train_single_level``) and coarse to fine (``train_multilevel``, 14x14 -> 28x28), as
  ``pdecontrol cnn paper`` runs them. Their validation accuracy is the driver's, once per outer
  iteration; only fine-mesh rows count (the coarse rows are accuracies on 14x14 images), and the
  multilevel clock includes the coarse level.
* ``gn-fast`` and ``gn-fast-multilevel``: the same with the ``fast`` configuration (the same
  network as ``strong``; cross-entropy, the classifier block by Newton-CG on samples, small
  Gauss-Newton batches: docs/training.md), as ``pdecontrol cnn train --config fast`` runs it.
  ``--training-seeds S ...`` runs each of them once per seed of its random kernels and samples:
  on the accuracy plateau where fine-only ends, one run's time to fine-only's final accuracy
  is partly chance, so the work claim is then also printed as the median over the seeds.

Every method gets ``--budget`` seconds of training time (evaluations excluded; a Gauss-Newton run
stops at the first outer iteration that ends past it, or at the end of its schedule) and, for
the Adam runs, at most ``--epochs`` epochs. Adam runs evaluate the whole validation set at the
start and every ``--eval-every`` seconds of training time (``15s``) or steps (``400``). The
script prints one table: time to each of ``--targets`` ("never" if not reached), the best
accuracy and when it was reached, and the ratio of each time to the reference (PyTorch Adam,
cross-entropy, lr 1e-3). The load average is recorded before and after. Before the timed runs
each planned Gauss-Newton schedule runs once, untimed, on 256 images (:func:`warm_up`), so that
no timed run pays for Numba's compilation or the loading of its cache (the ``ours-adam`` runs
call the same kernels; run alone, they are not warmed up).

Full run (the default methods, 40,000 / 20,000, 660 s each, enough for both ``strong`` schedules,
509 s and 620 s in docs/paper.md: about 1 h 40 min on an idle 2-core machine)::

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data/mnist \
        --figure time_to_accuracy.png --json time_to_accuracy.json

Quick run (a smoke test, about 10 minutes; its times are not results)::

    python benchmarks/time_to_accuracy.py --data-dir ../shared/data/mnist --n-train 2000 \
        --n-val 1000 --budget 60 --eval-every 32 --outer-iterations 2 --targets 0.9 0.92 0.93 0.95

Time only on an idle machine. On two cores busy with other work, two threads per library made a
batch-64 Adam step about 10x slower than one thread (PyTorch and ours alike: threads waiting for
each other); there, ``--threads 1`` at least gives comparable numbers.
"""

from __future__ import annotations

import argparse
import os
import time
from importlib.util import find_spec
from pathlib import Path

import numba
import numpy as np
import xarray as xr
from scipy.sparse import diags
from threadpoolctl import threadpool_limits

from pdecontrol.control import TransformedFunctional
from pdecontrol.io import CorruptFileError, read_json, write_json
from pdecontrol.memory import retain_freed_memory
from pdecontrol.mesh import Mesh
from pdecontrol.ops import blas_threads
from pdecontrol.ops._dispatch import SERIAL_BELOW_MULTIPLY_ADDS
from pdecontrol.ops.feature_products import (
    CHUNK_ROWS,
    feature_outputs,
    feature_pullback,
    softmax_curvature_product,
)
from pdecontrol.optimize import Stopping, adam
from problems.cnn.data import load_mnist, to_numpy, train_validation_split
from problems.cnn.figures import new_figure, save_figure
from problems.cnn.network import cnn_functional, predict
from problems.cnn.paper import PAPER_CONFIGS
from problems.cnn.regularization import classifier_tikhonov
from problems.cnn.report import first_reaching
from problems.cnn.training import train_multilevel, train_single_level

METHODS = ("adam-ce", "adam-ls", "ours-adam-ce", "ours-adam-ls", "gn-fine", "gn-multilevel",
           "gn-fast", "gn-fast-multilevel")
DEFAULT_METHODS = ("adam-ce", "adam-ls", "ours-adam-ce", "gn-fast", "gn-fast-multilevel",
                   "gn-fine", "gn-multilevel")
#: The Gauss-Newton methods: (configuration, multilevel); ``None`` is ``--config``.
GAUSS_NEWTON = {"gn-fine": (None, False), "gn-multilevel": (None, True),
                "gn-fast": ("fast", False), "gn-fast-multilevel": ("fast", True)}
REFERENCE = "PyTorch Adam CE lr 1e-03"
EVAL_BATCH = 2000
#: Training (and validation) images of the untimed warm-up run of each Gauss-Newton schedule.
WARM_UP_IMAGES = 256


def parse_interval(text: str) -> tuple:
    """``"15s"`` -> ``("seconds", 15.0)``; ``"400"`` -> ``("steps", 400)``."""
    try:
        interval = ("seconds", float(text[:-1])) if text.endswith("s") else ("steps", int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected seconds ('15s') or steps ('400'), got {text!r}") from None
    if not interval[1] > 0:
        raise argparse.ArgumentTypeError(f"the interval must be > 0, got {text!r}")
    return interval


def method_settings(args, config=None):
    """The settings of ``config`` (default ``--config``) with ``--channels`` applied."""
    settings = PAPER_CONFIGS[config or args.config]
    return settings if args.channels is None else settings.replace(n_channels=args.channels)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--data-dir", default=None, help="MNIST directory (else PDECONTROL_DATA_DIR)")
    add("--config", default="strong", choices=sorted(PAPER_CONFIGS),
        help="network (all methods) and Gauss-Newton schedule")
    add("--channels", type=int, default=None,
        help="channels of every method's network (default: the configurations')")
    add("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=METHODS)
    add("--n-train", type=int, default=40_000)
    add("--n-val", type=int, default=20_000)
    add("--seed", type=int, default=0, help="split seed (as `pdecontrol cnn paper`)")
    add("--targets", type=float, nargs="+", default=[0.95, 0.96, 0.97, 0.975])
    add("--budget", type=float, default=660.0, help="training seconds per method")
    add("--gn-budget", type=float, default=None,
        help="training seconds per Gauss-Newton method (default --budget)")
    add("--epochs", type=int, default=None, help="at most this many epochs (Adam runs)")
    add("--lr", type=float, nargs="+", default=[1e-3, 3e-3], help="Adam learning rates")
    add("--batch-size", type=int, default=64, help="Adam mini-batch")
    add("--eval-every", type=parse_interval, default=("seconds", 15.0),
        help="Adam: seconds of training ('15s') or steps ('400') between evaluations")
    add("--outer-iterations", type=int, default=None,
        help="Gauss-Newton outer iterations per level (default: the config's)")
    add("--start-newton-steps", type=int, default=None,
        help="multilevel runs: Newton steps of the cross-entropy classifier solve at each "
             "level's start (classifier_start_newton_steps; default: the config's)")
    add("--centring", choices=("node", "cell"), default="node",
        help="mesh centring of the Gauss-Newton runs (the transfers of multilevel runs)")
    add("--training-seeds", type=int, nargs="+", default=None,
        help="Gauss-Newton runs: one run per seed of the random kernels and of the classifier's "
             "samples (TrainingSettings.seed; default: the config's); the work claim is then "
             "printed per seed and as the median of the ratios")
    add("--claim-targets", type=float, nargs="+", default=[],
        help="the work claim also to these validation accuracies (besides fine-only's final)")
    add("--claim-plateau", type=int, default=None, metavar="K",
        help="the work claim also to the mean of fine-only's last K outer iterations (its "
             "plateau: one final accuracy is a draw from noise of about 0.1 point)")
    add("--coarse-iterations", type=int, default=None,
        help="outer iterations of the 14x14 level of multilevel runs (default: as the 28x28 "
             "level)")
    add("--threads", type=int, default=2)
    add("--figure", type=Path, default=None, help="PNG: accuracy against training time")
    add("--json", type=Path, default=None, help="write the histories and the loads as JSON")
    add("--from-json", type=Path, default=None, metavar="PATH",
        help="train nothing: print the tables (and draw --figure) from the histories that an "
             "earlier run wrote with --json, for the targets given now")
    args = parser.parse_args(argv)
    if args.claim_plateau is not None and args.claim_plateau < 1:
        parser.error(f"--claim-plateau takes at least 1 outer iteration, got {args.claim_plateau}")
    return args


def load_average() -> str:
    """The first three fields of /proc/loadavg (1, 5, 15 minutes), or "n/a"."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


# ---------------------------------------------------------------------- recording
class Trace:
    """Training time, evaluations and the budget of one first-order run.

    ``step_done(seconds, x)`` after every step adds its training time, evaluates the parameters
    ``x()`` when due (not timed) and says whether the budget is spent.
    """

    def __init__(self, args, evaluate, label: str):
        self.budget, (self.unit, self.every) = args.budget, args.eval_every
        self.evaluate, self.label = evaluate, label
        self.train_time, self.steps, self.due = 0.0, 0, self.every
        self.rows = []

    def record(self, x) -> float:
        accuracy = self.evaluate(x)
        self.rows.append((self.train_time, self.steps, accuracy))
        return accuracy

    def step_done(self, seconds: float, x) -> bool:
        self.train_time += seconds
        self.steps += 1
        spent = self.train_time >= self.budget
        clock = self.train_time if self.unit == "seconds" else self.steps
        if clock >= self.due or spent:
            self.due = (clock // self.every + 1) * self.every
            accuracy = self.record(x())
            print(f"  {self.label}: step {self.steps:6d}  {self.train_time:7.1f} s  "
                  f"validation {accuracy:.4f}", flush=True)
        return spent

    def finish(self, x) -> xr.Dataset:
        """The history, with ``x`` evaluated if the last step was not (epochs ran out)."""
        if self.rows[-1][1] != self.steps:
            self.record(x)
        seconds, steps, accuracies = (list(column) for column in zip(*self.rows, strict=True))
        return xr.Dataset({"wall_time": ("evaluation", seconds),
                           "step": ("evaluation", steps),
                           "validation_accuracy": ("evaluation", accuracies)})


def first_time_to(history: xr.Dataset, target: float):
    """Wall time of the first history row with validation accuracy >= target, else None."""
    index = first_reaching(history["validation_accuracy"].values, target)
    return None if index is None else float(history["wall_time"].values[index])


# ---------------------------------------------------------------------- data and network
def load_data(args):
    dataset = load_mnist("train", args.data_dir)
    train, validation = train_validation_split(dataset, args.n_train, args.n_val, args.seed)
    return to_numpy(train, np.float32), to_numpy(validation, np.float32)


def initial_network(settings, images):
    """The problem, the initial flat parameters and the spacing ``h`` of the fine mesh."""
    mesh = Mesh(images.shape[-2:], extent=1.0)
    problem = settings.make_problem(mesh, 10)
    x0 = problem.initial_parameters(settings.n_steps, settings.seed,
                                    kernel_scale=settings.kernel_scale,
                                    opening_scale=settings.opening_scale)
    return problem, x0, float(mesh.h[0])


def build_torch_model(torch, settings, problem, x0, h: float):
    """The CNN as a torch.nn.Module with parameters copied from the flat vector ``x0``; the
    classifier is stored as ``h^2 W`` (a plain linear layer)."""
    from pdecontrol.control import Parameters

    params = Parameters(problem.layout(settings.n_steps), x0)
    activations = {"tanh": torch.tanh, "relu": torch.relu}
    activation = activations[settings.activation]
    opening = None if settings.opening_activation is None else activations[
        settings.opening_activation]
    dt = settings.time_horizon / settings.n_steps
    stencils = problem.block_to_stencils

    class Network(torch.nn.Module):
        def __init__(self):
            super().__init__()

            def as_tensor(values):
                return torch.nn.Parameter(torch.tensor(np.asarray(values, np.float32)))

            self.K0 = as_tensor(stencils(params["K0"]))
            self.b0 = as_tensor(params["b0"])
            self.K = torch.nn.ParameterList([as_tensor(stencils(params["K"][j]))
                                             for j in range(settings.n_steps)])
            self.b = torch.nn.ParameterList([as_tensor(params["b"][j])
                                             for j in range(settings.n_steps)])
            self.W = as_tensor(h**2 * params["W"])
            self.c = as_tensor(params["c"])

        def forward(self, x):
            y = torch.nn.functional.conv2d(x, self.K0, self.b0, padding=1)
            if opening is not None:
                y = opening(y)
            for K, b in zip(self.K, self.b, strict=True):
                y = y + dt * activation(torch.nn.functional.conv2d(y, K, b, padding=1))
            return y.flatten(1) @ self.W.flatten(1).T + self.c

    return Network()


# ---------------------------------------------------------------------- methods
def run_torch_adam(args, settings, data, loss: str, lr: float, label: str) -> xr.Dataset:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    (x_train, y_train), (x_val, y_val) = data
    problem, x0, h = initial_network(settings, x_train)
    model = build_torch_model(torch, settings, problem, x0, h)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images = torch.tensor(x_train[:, None])
    labels = torch.tensor(y_train)
    one_hot = torch.nn.functional.one_hot(labels, 10).float()
    val_images, val_labels = torch.tensor(x_val[:, None]), torch.tensor(y_val)
    alpha = settings.classifier_tikhonov
    generator = torch.Generator().manual_seed(settings.seed)

    def objective(batch):
        z = model(images[batch])
        if loss == "ce":
            return torch.nn.functional.cross_entropy(z, labels[batch])
        # classifier stored as h^2 W: alpha/2 h^2 |W|^2 = alpha/(2 h^2) |h^2 W|^2
        return (0.5 * ((z - one_hot[batch]) ** 2).sum(1).mean()
                + alpha / (2 * h**2) * (model.W**2).sum())

    def accuracy(_):
        with torch.no_grad():
            correct = sum(int((model(val_images[i:i + EVAL_BATCH]).argmax(1)
                               == val_labels[i:i + EVAL_BATCH]).sum())
                          for i in range(0, len(val_labels), EVAL_BATCH))
        return correct / len(val_labels)

    trace = Trace(args, accuracy, label)
    trace.record(None)
    for _ in range(args.epochs or 10**9):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), args.batch_size):
            tic = time.perf_counter()
            optimizer.zero_grad()
            objective(order[start:start + args.batch_size]).backward()
            optimizer.step()
            if trace.step_done(time.perf_counter() - tic, lambda: None):
                return trace.finish(None)
    return trace.finish(None)


def classifier_scaling(problem, n_steps: int, h: float):
    """The diagonal map ``x' -> x`` with ``W = W' / h^2`` (``W' = h^2 W``, as the PyTorch model
    stores it), identity on the other blocks."""
    layout = problem.layout(n_steps)
    scale = layout.zeros()
    scale.flat[:] = 1.0
    scale["W"][...] = 1.0 / h**2
    return diags(scale.flat)


def run_our_adam(args, settings, data, loss: str, lr: float, label: str) -> xr.Dataset:
    (x_train, y_train), (x_val, y_val) = data
    if loss == "ce":
        settings = settings.replace(loss="softmax_cross_entropy")
    problem, x0, h = initial_network(settings, x_train)
    regularizers = [classifier_tikhonov(settings.classifier_tikhonov)] if loss == "ls" else []
    options = {"final_time": settings.time_horizon, "stepper": settings.stepper,
               "dtype": settings.compute_dtype}
    functional = cnn_functional(problem, x_train, y_train, settings.n_steps,
                                regularizers=regularizers, **options)
    validation = cnn_functional(problem, x_val, y_val, settings.n_steps, **options)
    scaling = classifier_scaling(problem, settings.n_steps, h)
    scaled = TransformedFunctional(functional, scaling)

    def accuracy(x_scaled):
        scores = predict(validation, scaling @ x_scaled, batch_size=EVAL_BATCH)
        return float(np.mean(np.argmax(scores, axis=1) == y_val))

    trace = Trace(args, accuracy, label)
    clock = {"last": time.perf_counter()}

    def callback(state):
        if state.nit == 0:
            trace.record(state.x)
            clock["last"] = time.perf_counter()
            return False
        seconds = time.perf_counter() - clock["last"]
        stop = trace.step_done(seconds, lambda: state.x)
        clock["last"] = time.perf_counter()
        return stop

    steps_per_epoch = -(-len(y_train) // args.batch_size)
    maxiter = steps_per_epoch * args.epochs if args.epochs else 10**9
    x_start = x0.copy()
    x_start[scaling.diagonal() != 1.0] *= h**2  # W' = h^2 W (zero at the start)
    with blas_threads(1):  # as pdecontrol's training runs (pdecontrol.ops.threads)
        result = adam(scaled, x_start, learning_rate=lr, batch_size=args.batch_size,
                      stopping=Stopping(maxiter=maxiter, grtol=0.0), seed=settings.seed,
                      callback=callback)
    return trace.finish(result.x)


def run_gauss_newton(args, settings, data, multilevel: bool, label: str) -> xr.Dataset:
    """The fine-mesh rows (``wall_time``, ``validation_accuracy``, ``fine_level_work``) of a
    Gauss-Newton run that stops at the first outer iteration ending past the budget."""
    if args.outer_iterations is not None:
        settings = settings.replace(outer_iterations=args.outer_iterations)

    def stop(row):
        if np.isfinite(row.get("validation_accuracy", np.nan)):
            print(f"  {label}: {row['mesh_shape']} outer {row['stage_iteration']}  "
                  f"{row['wall_time']:7.1f} s  validation {row['validation_accuracy']:.4f}",
                  flush=True)
        return row["wall_time"] >= (args.budget if args.gn_budget is None else args.gn_budget)

    if multilevel:
        if args.start_newton_steps is not None:
            settings = settings.replace(classifier_start_newton_steps=args.start_newton_steps)
        counts = (args.coarse_iterations or settings.outer_iterations, settings.outer_iterations)
        result = train_multilevel(*data, settings, n_levels=2, outer_iterations=counts,
                                  centring=args.centring, callback=stop)
    else:
        result = train_single_level(*data, settings, centring=args.centring, callback=stop)
    history = result.history
    fine = history["level"].values == 0  # coarse rows: accuracies on 14x14 images
    columns = ["wall_time", "validation_accuracy", "work", "fine_level_work"]
    return history[columns].isel(iteration=np.flatnonzero(fine))


def warm_up(args, data, methods) -> float:
    """Seconds spent running every planned Gauss-Newton schedule once, untimed, for one outer
    iteration per level on ``WARM_UP_IMAGES`` images, so that Numba's compilation (or the
    loading of its cache) falls outside the timed runs. Without it the first Gauss-Newton run of
    a process spent 2 s more on its start (docs/speed.md, "Ten coarse iterations"), and a run
    right after an edit of a kernel's source 20 s more (recompilation). Its batches are large
    enough for the convolutions' parallel path, the one the timed runs take; the feature
    products' parallel path is compiled apart (:func:`warm_up_feature_products`)."""
    start = time.perf_counter()
    (x_train, y_train), (x_val, y_val) = data
    small = ((x_train[:WARM_UP_IMAGES], y_train[:WARM_UP_IMAGES]),
             (x_val[:WARM_UP_IMAGES], y_val[:WARM_UP_IMAGES]))
    for method in dict.fromkeys(methods):
        config, multilevel = GAUSS_NEWTON[method]
        settings = method_settings(args, config).replace(outer_iterations=1)
        if multilevel:
            train_multilevel(*small, settings, n_levels=2, outer_iterations=(1, 1),
                             centring=args.centring)
        else:
            train_single_level(*small, settings, centring=args.centring)
    warm_up_feature_products()
    return time.perf_counter() - start


def warm_up_feature_products() -> None:
    """Compile the parallel twins of the classifier's feature products: they run in parallel
    only on more than ``CHUNK_ROWS`` rows and ``SERIAL_BELOW_MULTIPLY_ADDS`` multiply-adds, more
    than the warm-up runs reach (after an edit of their source, the first timed run spent 10 s
    more on its start). Float32 features, as in training."""
    rows, columns = 2 * CHUNK_ROWS, -(-SERIAL_BELOW_MULTIPLY_ADDS // CHUNK_ROWS)
    features = np.ones((rows, columns), np.float32)
    probabilities = np.full((rows, 2), 0.5)
    direction = np.ones((2, columns))
    feature_outputs(features, direction)
    feature_pullback(features, probabilities)
    softmax_curvature_product(features, probabilities, direction)


def run_method(args, settings, data, method: str, seed=None) -> dict:
    """Histories of ``method``: one per learning rate for the Adam methods; for a Gauss-Newton
    method one run, with the training seed ``seed`` if given."""
    if method in GAUSS_NEWTON:
        config, multilevel = GAUSS_NEWTON[method]
        config = config or args.config
        settings = method_settings(args, config)
        name = f"GN-CG {'multilevel' if multilevel else 'fine-only'} ({config}"
        if seed is None:
            name += ")"
        else:
            settings, name = settings.replace(seed=seed), f"{name}, seed {seed})"
        return {name: run_gauss_newton(args, settings, data, multilevel, name)}
    loss = method.rsplit("-", 1)[1]
    runner = run_our_adam if method.startswith("ours-") else run_torch_adam
    library = "pdecontrol" if method.startswith("ours-") else "PyTorch"
    histories = {}
    for lr in args.lr:
        label = f"{library} Adam {loss.upper()} lr {lr:.0e}"
        histories[label] = runner(args, settings, data, loss, lr, label)
    return histories


def planned_runs(args) -> list:
    """``(method, seed)`` in run order: the Adam methods, then the Gauss-Newton methods seed by
    seed, so that the fine-only and multilevel runs of a seed run next to each other (the
    machine's speed drifts by 10-20% over an hour)."""
    adam = [(method, None) for method in args.methods if method not in GAUSS_NEWTON]
    gauss_newton = [method for method in args.methods if method in GAUSS_NEWTON]
    return adam + [(method, seed) for seed in args.training_seeds or [None]
                   for method in gauss_newton]


# ---------------------------------------------------------------------- report
def seconds_text(seconds: float) -> str:
    return f"{seconds:.{1 if seconds < 10 else 0}f} s"


def format_time(seconds, reference) -> str:
    """``"12 s (0.50x)"``: a time to a target and its ratio to the reference's, or "never"."""
    if seconds is None:
        return "never"
    ratio = "-" if reference is None else f"{seconds / reference:.2f}x"
    return f"{seconds_text(seconds)} ({ratio})"


def results_table(histories: dict, targets) -> str:
    """One markdown row per method: time to each target (ratio to the reference), best."""
    reference = histories.get(REFERENCE)
    header = " | ".join(target_label(target) for target in targets)
    lines = [f"| method | {header} | best accuracy | time of best |",
             "| --- |" + " --- |" * (len(targets) + 2)]
    for name, history in histories.items():
        cells = []
        for target in targets:
            base = None if reference is None else first_time_to(reference, target)
            cells.append(format_time(first_time_to(history, target), base))
        accuracy = history["validation_accuracy"].values
        if not np.any(np.isfinite(accuracy)):  # e.g. multilevel stopped on the coarse level
            lines.append(f"| {name} | {' | '.join(cells)} | - | - |")
            continue
        best = int(np.nanargmax(accuracy))
        lines.append(f"| {name} | {' | '.join(cells)} | {accuracy[best]:.2%} | "
                     f"{seconds_text(float(history['wall_time'].values[best]))} |")
    return "\n".join(lines)


CLAIM_COLUMNS = ("work", "fine_level_work", "wall_time")


def fine_iteration_seconds(history) -> float:
    """The median wall time (s) of a run's fine outer iterations: the clock's speed in that run
    (its fine-mesh rows, start excluded; NaN with fewer than two rows)."""
    seconds = np.diff(history["wall_time"].values)
    return float(np.median(seconds)) if seconds.size else float("nan")


def target_label(target: float) -> str:
    """``"97.5%"`` for 0.975, ``"97.75%"`` for 0.9775: one decimal, two where it has them."""
    return f"{target:.1%}" if float(f"{target:.3f}") == target else f"{target:.2%}"


def claim_label(target) -> str:
    """How the work-claim tables name ``target`` (see :func:`claim_level`)."""
    if target is None:
        return "fine-only's final"
    if isinstance(target, tuple):
        return f"fine-only's last {target[1]}, mean"
    return target_label(target)


def claim_level(target, accuracy) -> float:
    """The accuracy a work-claim target stands for, given fine-only's accuracies ``accuracy``:
    ``None`` its final value, ``("plateau", K)`` the mean of its last ``K``, a float itself."""
    if target is None:
        return float(accuracy[-1])
    return float(np.mean(accuracy[-target[1]:])) if isinstance(target, tuple) else target


def work_claim_table(histories: dict, targets=(None,)) -> str:
    """The paper's work claim for every configuration (and seed) run both ways: multilevel
    against fine-only, to fine-only's final accuracy (target ``None``), to the mean of its
    last ``K`` outer iterations (target ``("plateau", K)``) or to a given accuracy,
    each run at its first outer iteration on the fine mesh with at least that accuracy (a
    fine-only run that touched its final accuracy before its last iteration reached it there;
    the histories hold fine-mesh rows only): total work (fine convolutions, coarse levels
    included), work on the fine level and wall time, each as multilevel / fine-only; with
    several seeds of a configuration also the median of each ratio ("never" counts as larger
    than any ratio). The target's cell names the outer iteration at which each run reached it
    (fine-only / multilevel's fine level). The last column, a fine outer iteration's median
    time in each run, shows a machine that ran faster or slower during one of the two runs
    (same work, other seconds)."""
    lines = ["| configuration | to | work (ratio) | fine-level work (ratio) | wall time (ratio) "
             "| fine outer iteration |",
             "| --- | --- | --- | --- | --- | --- |"]
    ratios = {}  # (configuration, target) -> one row of ratios (inf: never) per seed
    for target in targets:
        for name, fine in histories.items():
            if not name.startswith("GN-CG fine-only"):
                continue
            multi = histories.get(name.replace("fine-only", "multilevel"))
            if multi is None:
                continue
            accuracy = fine["validation_accuracy"].values
            run = name.split("(")[-1].rstrip(")")
            runs = ratios.setdefault((run.split(",")[0], target), [])
            level, label = claim_level(target, accuracy), claim_label(target)
            first = [first_reaching(history["validation_accuracy"].values, level)
                     for history in (fine, multi)]  # fine-mesh rows only (run_gauss_newton)
            to = label if isinstance(target, float) else f"{label} {level:.2%}"
            if None in first:
                who = "fine-only" if first[0] is None else "multilevel"
                lines.append(f"| {run} | {to} | {who} never | | | |")
                runs.append([np.inf] * len(CLAIM_COLUMNS))
                continue
            theirs_row, row = (history.isel(iteration=index)
                               for history, index in zip((fine, multi), first, strict=True))
            cells = [f"{to} (outer {first[0]} / fine outer {first[1]})"]
            runs.append([])
            for column in CLAIM_COLUMNS:
                mine, theirs = float(row[column]), float(theirs_row[column])
                cells.append(f"{mine:.3g} / {theirs:.3g} ({mine / theirs:.2f}x)")
                runs[-1].append(mine / theirs)
            cells.append(f"{fine_iteration_seconds(multi):.2f} / "
                         f"{fine_iteration_seconds(fine):.2f} s")
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
    for (config, target), runs in ratios.items():
        if len(runs) > 1:
            medians = np.median(np.array(runs), axis=0)
            cells = ["never" if np.isinf(m) else f"{m:.2f}x" for m in medians]
            to = claim_label(target)
            lines.append(f"| {config}: median of {len(runs)} seeds | {to} | "
                         + " | ".join(cells) + " | |")
    return "\n".join(lines) if len(lines) > 2 else ""


def plot_time_to_accuracy(histories: dict, targets, path) -> None:
    """Validation accuracy (%) against training wall time (s, log axis), one line per run:
    solid PyTorch, dashed pdecontrol Adam, dots Gauss-Newton-CG (one per outer iteration)."""
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    figure = new_figure((7.5, 4.8))
    ax = figure.subplots()
    lowest = []
    for name, history in histories.items():
        seconds = history["wall_time"].values
        accuracy = 100 * history["validation_accuracy"].values
        shown = (seconds > 0) & np.isfinite(accuracy)
        style = "o-" if name.startswith("GN") else "--" if name.startswith("pdecontrol") else "-"
        ax.plot(seconds[shown], accuracy[shown], style, markersize=3, label=name)
        lowest += list(accuracy[shown])
    for target in targets:
        ax.axhline(100 * target, color="0.5", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    low = max(min(lowest, default=0.0), 100 * min(targets) - 10)
    ax.set_ylim(np.floor(low), min(100.0, max(lowest + [100 * max(targets)]) + 1))
    ax.set_xlabel("training wall time (s, evaluations excluded)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("MNIST 28x28: time to accuracy (dotted: targets)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(figure, path)


def history_document(histories: dict, loads: dict, args) -> dict:
    runs = {name: {column: [float(v) for v in history[column].values]
                   for column in ("wall_time", "validation_accuracy", "work",
                                  "fine_level_work")
                   if column in history}
            for name, history in histories.items()}
    options = {key: (str(value) if isinstance(value, Path) else value)
               for key, value in vars(args).items()}
    return {"runs": runs, "load_average": loads, "options": options}


def histories_from_document(document: dict) -> dict:
    """The histories of :func:`history_document`'s ``document`` (one dataset per run)."""
    return {name: xr.Dataset({column: ("iteration", np.asarray(values, dtype=float))
                              for column, values in columns.items()})
            for name, columns in document["runs"].items()}


def report(histories: dict, loads: dict, args) -> None:
    """Print the time-to-accuracy and work-claim tables; draw ``args.figure``."""
    print(f"\n{results_table(histories, args.targets)}\n")
    print(f"ratios: time / time of {REFERENCE}; load average before: {loads['before']}, "
          f"after: {loads['after']}")
    plateau = () if args.claim_plateau is None else (("plateau", args.claim_plateau),)
    claim = work_claim_table(histories, (None, *plateau, *args.claim_targets))
    if claim:
        print(f"\nmultilevel / fine-only (the work claim):\n\n{claim}\n")
    if args.figure is not None:
        plot_time_to_accuracy(histories, args.targets, args.figure)
        print(f"written: {args.figure}")


def main(argv=None):
    args = parse_args(argv)
    if args.from_json is not None:
        try:
            document = read_json(args.from_json)
        except (OSError, CorruptFileError) as error:
            raise SystemExit(f"--from-json: {error}") from None
        print(f"the {len(document['runs'])} runs of {args.from_json}; nothing is trained")
        report(histories_from_document(document), document["load_average"], args)
        return
    if any(m.startswith("adam-") for m in args.methods) and find_spec("torch") is None:
        raise SystemExit("the adam-* methods need PyTorch (pip install torch); or leave them out "
                         "with --methods")
    retain_freed_memory()
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    settings = method_settings(args)
    loads = {"before": load_average()}
    print(f"load average before: {loads['before']} ({os.cpu_count()} CPUs)")
    if loads["before"] != "n/a" and float(loads["before"].split()[0]) > 0.5:
        print("warning: the machine is busy; these timings are not comparable with an idle run")
    data = load_data(args)
    print(f"config {args.config}: {settings.n_channels} channels, {settings.n_steps} layers; "
          f"{args.n_train} / {args.n_val} images; budget {args.budget:g} s per method; "
          f"Adam lr {args.lr}, batch {args.batch_size}; {args.threads} threads", flush=True)
    histories = {}
    with threadpool_limits(limits=args.threads):
        gauss_newton = [method for method, _ in planned_runs(args) if method in GAUSS_NEWTON]
        if gauss_newton:
            print(f"warm-up (Numba's compilation or cache, untimed): "
                  f"{warm_up(args, data, gauss_newton):.1f} s", flush=True)
        for method, seed in planned_runs(args):
            which = method if seed is None else f"{method}, seed {seed}"
            print(f"{which} (load average {load_average()})", flush=True)
            histories.update(run_method(args, settings, data, method, seed))
    loads["after"] = load_average()
    if args.json is not None:  # first: the runs are kept whatever the reports below do
        write_json(args.json, history_document(histories, loads, args))
        print(f"written: {args.json}")
    report(histories, loads, args)


if __name__ == "__main__":
    main()
