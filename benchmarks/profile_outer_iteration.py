"""Where a Gauss-Newton outer iteration's time goes: cProfile of ``pdecontrol cnn train``.

Runs ``pdecontrol cnn train`` in this process under :mod:`cProfile` (default: the ``strong``
network and its schedule on the full 40,000 / 20,000 MNIST split, one outer iteration, so
the profile holds two classifier solves, the four Gauss-Newton steps and two monitoring passes)
and prints the wall and CPU times and the functions with the most own time. Options after
``--`` replace the training options, e.g. ``-- --n-train 4000 --n-val 2000``.

    python benchmarks/profile_outer_iteration.py --data-dir ../shared/data/mnist [--top 15]
    PDECONTROL_RETAIN_MEMORY=0 python benchmarks/profile_outer_iteration.py ...  # glibc default
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time

from pdecontrol.cli import main as pdecontrol

#: ``pdecontrol cnn train`` options of the profiled run (the ``strong`` config's network and
#: schedule).
STRONG_OUTER_ITERATION = (
    "--data mnist --mode single --n-train 40000 --n-val 20000 --channels 8 --kernel-scale 3 "
    "--opening-scale 3 --high-order-penalty 1e-3 --high-order-min-order 2 --batch 2000 "
    "--gauss-newton-steps 4 --cg-iterations 20 --outer-iterations 1"
).split()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST directory")
    parser.add_argument("--top", type=int, default=15, help="functions to list")
    parser.add_argument("train_options", nargs="*", help="after --: pdecontrol cnn train options")
    args = parser.parse_args(argv)
    options = args.train_options or list(STRONG_OUTER_ITERATION)
    if args.data_dir is not None:
        options += ["--data-dir", args.data_dir]
    with tempfile.TemporaryDirectory() as scratch:
        argv = ["cnn", "train", *options, "--out", os.path.join(scratch, "run"), "-q"]
        profile = cProfile.Profile()
        wall, cpu = time.perf_counter(), time.process_time()
        status = profile.runcall(pdecontrol, argv)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if status != 0:
        raise SystemExit(f"pdecontrol {' '.join(argv)} failed with status {status}")
    times = os.times()
    print(f"pdecontrol cnn train {' '.join(options)}")
    print(
        f"wall {wall:.1f} s, CPU {cpu:.1f} s (user {times.user:.1f} s, system {times.system:.1f} s"
        " for the whole process)"
    )
    stats = pstats.Stats(profile)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
