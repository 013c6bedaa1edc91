"""Time to a target validation accuracy: PyTorch Adam vs our Gauss-Newton-CG (MNIST, CPU).

The PyTorch model is the network of :class:`problems.cnn.network.CNNProblem` with the settings of
``--config`` (``problems.cnn.paper.PAPER_CONFIGS``): opening 3x3 correlation 1 -> C (zero "same"
padding; the opening activation of the config), ``n_steps`` residual layers
``y <- y + dt * sigma(K y + b)``, the integral classifier ``z = h^2 sum W . y + c`` and the
least-squares loss ``1/(2s) sum ||z - onehot||^2`` plus the classifier's Tikhonov term
``alpha/2 h^2 ||W||^2``. It starts from **the same random kernels** as our training
(``CNNProblem.initial_parameters`` with the config's seed and scales) and ``W = 0``; the
classifier is stored as ``h^2 W`` (a plain linear layer, the usual scaling for Adam). The
high-order kernel penalty is not added: Adam minimises the plain misfit, as a user would.

Adam runs for ``--epochs`` over the training images in mini-batches; every ``--eval-every``
steps it evaluates the whole validation set. Reported: training wall time (evaluation excluded)
until the validation accuracy first reaches each of ``--targets``, and the best accuracy reached.

Our numbers come from a finished ``pdecontrol cnn paper`` output directory (``--paper-dir``): the
training wall time of the first fine-mesh history row of fine-only and multilevel training
whose validation accuracy reaches each target (``history_fine.nc``, ``history_multilevel.nc``;
the multilevel clock includes the coarse level). Both ran on this machine, at different times; with
``--threads`` equal to the cores (2 here) both use the whole machine.

    python benchmarks/adam_time_to_accuracy.py --data-dir ../shared/data/mnist \
        --paper-dir runs/paper-strong [--config strong] [--targets 0.95 0.96 0.967] [--lr 3e-4] \
        [--figure time_to_accuracy.png]

``--figure`` draws validation accuracy against training wall time for every method, with the
targets as dotted lines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xarray as xr

from pdecontrol.mesh import Mesh
from problems.cnn.data import load_mnist, to_numpy, train_validation_split
from problems.cnn.paper import PAPER_CONFIGS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-dir", default=None, help="MNIST directory (else PDECONTROL_DATA_DIR)"
    )
    parser.add_argument("--paper-dir", type=Path, default=None,
                        help="a `pdecontrol cnn paper` --out")
    parser.add_argument("--config", default="strong", choices=sorted(PAPER_CONFIGS))
    parser.add_argument("--n-train", type=int, default=40_000)
    parser.add_argument("--n-val", type=int, default=20_000)
    parser.add_argument(
        "--targets", type=float, nargs="+", default=[0.95, 0.96, 0.967],
        help="validation accuracies to time (the paper's final: 0.967)",
    )
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--eval-every", type=int, default=400, help="steps between evaluations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0,
                        help="split seed (as `pdecontrol cnn paper`)")
    parser.add_argument("--figure", type=Path, default=None, help="PNG: accuracy against time")
    return parser.parse_args(argv)


def plot_time_to_accuracy(histories: dict, targets, path) -> None:
    """Validation accuracy (%) against training wall time (s), one line per method."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from problems.cnn.figures import save_figure

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for name, history in histories.items():
        ax.plot(history["wall_time"].values, 100 * history["validation_accuracy"].values,
                "o-" if history.sizes[next(iter(history.dims))] < 60 else "-", markersize=3,
                label=name)
    for target in targets:
        ax.axhline(100 * target, color="0.5", linestyle=":", linewidth=1)
    low = min(100 * float(h["validation_accuracy"].min()) for h in histories.values())
    ax.set_ylim(max(low, 100 * min(targets) - 3), None)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("MNIST 28x28: time to accuracy (dotted: targets)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(figure, path)


def first_time_to(history: xr.Dataset, target: float):
    """Wall time of the first history row with validation accuracy >= target, else None."""
    reached = np.flatnonzero(history["validation_accuracy"].values >= target)
    return None if reached.size == 0 else float(history["wall_time"].values[reached[0]])


def build_torch_model(torch, settings, problem, x0, h: float):
    """The CNN as a torch.nn.Module with parameters copied from the flat vector ``x0``."""
    from pdecontrol.control import Parameters

    params = Parameters(problem.layout(settings.n_steps), x0)
    activation = {"tanh": torch.tanh, "relu": torch.relu}[settings.activation]
    opening_activation = (
        None if settings.opening_activation is None
        else {"tanh": torch.tanh, "relu": torch.relu}[settings.opening_activation]
    )
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
            if opening_activation is not None:
                y = opening_activation(y)
            for K, b in zip(self.K, self.b, strict=True):
                y = y + dt * activation(torch.nn.functional.conv2d(y, K, b, padding=1))
            return y.flatten(1) @ self.W.flatten(1).T + self.c

    return Network()


def run_adam(args, settings, train, validation):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(settings.seed)
    (x_train, y_train), (x_val, y_val) = train, validation
    mesh = Mesh(x_train.shape[-2:], extent=1.0)
    problem = settings.make_problem(mesh, 10)
    x0 = problem.initial_parameters(
        settings.n_steps, settings.seed, kernel_scale=settings.kernel_scale,
        opening_scale=settings.opening_scale,
    )
    h = float(mesh.h[0])
    model = build_torch_model(torch, settings, problem, x0, h)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    images = torch.tensor(x_train[:, None], dtype=torch.float32)
    targets = torch.nn.functional.one_hot(torch.tensor(y_train), 10).float()
    val_images = torch.tensor(x_val[:, None], dtype=torch.float32)
    val_labels = torch.tensor(y_val)
    alpha = settings.classifier_tikhonov
    generator = torch.Generator().manual_seed(settings.seed)

    def validation_accuracy():
        with torch.no_grad():
            correct = sum(
                int((model(val_images[i:i + 2000]).argmax(1) == val_labels[i:i + 2000]).sum())
                for i in range(0, len(val_labels), 2000)
            )
        return correct / len(val_labels)

    rows, train_time, step = [], 0.0, 0
    for epoch in range(args.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), args.batch_size):
            batch = order[start:start + args.batch_size]
            tic = time.perf_counter()
            optimizer.zero_grad()
            residual = model(images[batch]) - targets[batch]
            # classifier stored as h^2 W: alpha/2 h^2 |W|^2 = alpha/(2 h^2) |h^2 W|^2
            loss = 0.5 * (residual**2).sum(1).mean() + alpha / (2 * h**2) * (model.W**2).sum()
            loss.backward()
            optimizer.step()
            train_time += time.perf_counter() - tic
            step += 1
            if step % args.eval_every == 0:
                accuracy = validation_accuracy()
                rows.append((train_time, accuracy))
                print(f"  adam epoch {epoch} step {step:6d}  {train_time:7.1f} s  "
                      f"loss {loss.item():.4f}  validation {accuracy:.4f}", flush=True)
    return xr.Dataset(
        {"validation_accuracy": ("evaluation", [accuracy for _, accuracy in rows]),
         "wall_time": ("evaluation", [seconds for seconds, _ in rows])}
    )


def main(argv=None):
    args = parse_args(argv)
    settings = PAPER_CONFIGS[args.config]
    dataset = load_mnist("train", args.data_dir)
    train, validation = train_validation_split(dataset, args.n_train, args.n_val, args.seed)
    train, validation = to_numpy(train), to_numpy(validation)
    print(f"config {args.config}: {settings.n_channels} channels, {settings.n_steps} layers; "
          f"{args.n_train} / {args.n_val} images; Adam lr {args.lr}, batch {args.batch_size}, "
          f"{args.epochs} epochs, {args.threads} threads")
    histories = {"PyTorch Adam": run_adam(args, settings, train, validation)}
    if args.paper_dir is not None:
        for name, file in (("GN-CG fine-only", "history_fine.nc"),
                           ("GN-CG multilevel", "history_multilevel.nc")):
            with xr.open_dataset(args.paper_dir / file) as history:
                # the fine stage only: coarse rows are accuracies on 14x14 images
                fine_stage = history["stage"].values == history["stage"].values.max()
                history = history.isel(iteration=np.flatnonzero(fine_stage))
                histories[name] = history[["validation_accuracy", "wall_time"]].load()
    header = " | ".join(f"time to {target:.1%} (s)" for target in args.targets)
    print(f"\n| method | {header} | best validation |")
    print("| --- |" + " --- |" * (len(args.targets) + 1))
    for name, history in histories.items():
        times = [first_time_to(history, target) for target in args.targets]
        shown = " | ".join("not reached" if t is None else f"{t:.0f}" for t in times)
        best = float(history["validation_accuracy"].max())
        print(f"| {name} | {shown} | {best:.2%} |")
    if args.figure is not None:
        plot_time_to_accuracy(histories, args.targets, args.figure)
        print(f"\nwritten: {args.figure}")


if __name__ == "__main__":
    main()
