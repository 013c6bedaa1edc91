"""One Gauss-Newton schedule on MNIST, row by row: validation accuracy, wall time and work.

Trains a configuration of ``problems.cnn.paper.PAPER_CONFIGS`` (default ``fast``) with fields
changed by ``FIELD=VALUE`` arguments, fine only (``train_single_level``) or coarse to fine
(``--multilevel``: ``train_multilevel``, 14x14 -> 28x28, or 7x7 -> 14x14 -> 28x28 with
``--levels 3``), on the seed-0 split of the 60,000 MNIST
training images, and prints one line per outer iteration: mesh, outer iteration, training wall
time (s, monitoring excluded), validation and training accuracy, objective, work and fine-level
work (fine convolutions) and the 1-minute load average. docs/speed.md compares schedules with it.

    python benchmarks/schedule_probe.py --data-dir ../shared/data/mnist \
        gauss_newton_steps=4 classifier_batch_size=20000 [--multilevel] [--budget 150]
    python benchmarks/schedule_probe.py --data-dir ../shared/data/mnist --multilevel \
        --coarse-iterations 4 classifier_start_newton_steps=6
    python benchmarks/schedule_probe.py --data-dir ../shared/data/mnist --multilevel \
        --levels 3 --coarse-iterations 4 4 --centring cell

``--coarse FIELD=VALUE`` and ``--fine FIELD=VALUE`` change the coarser levels or the finest
only (``level_settings`` of ``train_multilevel``; the optimiser's fields,
``problems.cnn.config.LEVEL_FIELDS``); ``--stop-at A`` ends the run at the first outer
iteration on 28x28 with validation accuracy at least ``A``:

    python benchmarks/schedule_probe.py seed=1 classifier_start_newton_steps=4 \
        --data-dir ../shared/data/mnist --multilevel --centring cell --coarse-iterations 6 \
        --fine classifier_start_newton_steps=2 --stop-at 0.9786
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from pdecontrol.memory import retain_freed_memory
from problems.cnn.data import load_mnist, to_numpy, train_validation_split
from problems.cnn.paper import PAPER_CONFIGS
from problems.cnn.training import train_multilevel, train_single_level


def parse_change(text: str, base) -> tuple:
    """``"FIELD=VALUE"`` -> ``(field, value)`` typed like the field of ``base`` (``none``: None)."""
    field, _, value = text.partition("=")
    fields = {f.name for f in dataclasses.fields(base)}
    if field not in fields or not value:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with a TrainingSettings field, "
                                         f"got {text!r}")
    current = getattr(base, field)
    if value.lower() == "none":
        return field, None
    if current is None:  # an optional field: the value's own type
        for kind in (int, float):
            try:
                return field, kind(value)
            except ValueError:
                pass
        return field, value
    kind = str if isinstance(current, str) else float if isinstance(current, float) else int
    return field, kind(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("changes", nargs="*", metavar="FIELD=VALUE")
    parser.add_argument("--config", default="fast", choices=sorted(PAPER_CONFIGS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-train", type=int, default=40_000)
    parser.add_argument("--n-val", type=int, default=20_000)
    parser.add_argument("--multilevel", action="store_true")
    parser.add_argument("--centring", choices=("node", "cell"), default="node",
                        help="mesh centring (and so the image and network transfers)")
    parser.add_argument("--levels", type=int, default=2,
                        help="--multilevel: meshes in the hierarchy (2: 14x14 -> 28x28)")
    parser.add_argument("--coarse-iterations", type=int, nargs="+", default=None,
                        help="--multilevel: outer iterations of each coarser level, coarsest "
                             "first, one value for all (default: the config's outer_iterations)")
    parser.add_argument("--coarse", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="--multilevel: changes on every coarser level only")
    parser.add_argument("--fine", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="--multilevel: changes on the finest level only")
    parser.add_argument("--budget", type=float, default=None,
                        help="stop at the first outer iteration ending past this many seconds")
    parser.add_argument("--stop-at", type=float, default=None, metavar="ACCURACY",
                        help="stop at the first outer iteration on the finest mesh with at "
                             "least this validation accuracy")
    args = parser.parse_args(argv)
    if (args.coarse or args.fine) and not args.multilevel:
        parser.error("--coarse and --fine change levels of a --multilevel run")
    n_coarse = args.levels - 1
    if args.coarse_iterations is not None and len(args.coarse_iterations) not in (1, n_coarse):
        parser.error(f"--coarse-iterations takes 1 or {n_coarse} values for --levels "
                     f"{args.levels}, got {len(args.coarse_iterations)}")
    settings = PAPER_CONFIGS[args.config]
    settings = settings.replace(**dict(parse_change(c, settings) for c in args.changes))
    coarse_changes, fine_changes = (dict(parse_change(c, settings) for c in changes)
                                    for changes in (args.coarse, args.fine))
    retain_freed_memory()
    split = train_validation_split(load_mnist("train", args.data_dir), args.n_train, args.n_val, 0)
    data = tuple(to_numpy(part, np.float32) for part in split)
    print(f"{args.config} with {' '.join(args.changes) or 'no changes'}"
          f"{' (multilevel)' if args.multilevel else ''}, {args.centring}-centred"
          f"{'; coarse: ' + ' '.join(args.coarse) if args.coarse else ''}"
          f"{'; fine: ' + ' '.join(args.fine) if args.fine else ''}", flush=True)
    fine_shape = "x".join(str(n) for n in data[0][0].shape[1:])

    def report(row):
        load = Path("/proc/loadavg").read_text().split()[0]
        print(f"{row['mesh_shape']} outer {row['stage_iteration']:2d}  {row['wall_time']:6.1f} s  "
              f"validation {row['validation_accuracy']:.4f}  training "
              f"{row['training_accuracy']:.4f}  objective {row['objective']:.4f}  work "
              f"{row['work']:.3g}  fine {row['fine_level_work']:.3g}  load {load}", flush=True)
        reached = (args.stop_at is not None and row["mesh_shape"] == fine_shape
                   and row["validation_accuracy"] >= args.stop_at)
        return reached or (args.budget is not None and row["wall_time"] >= args.budget)

    if args.multilevel:
        coarse = args.coarse_iterations or [settings.outer_iterations]
        counts = (coarse * n_coarse if len(coarse) == 1 else coarse) + [settings.outer_iterations]
        train_multilevel(*data, settings, n_levels=args.levels, outer_iterations=counts,
                         centring=args.centring, callback=report,
                         level_settings=[coarse_changes] * n_coarse + [fine_changes])
    else:
        train_single_level(*data, settings, centring=args.centring, callback=report)


if __name__ == "__main__":
    main()
