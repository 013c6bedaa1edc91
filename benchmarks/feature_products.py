"""Products of a linear model with stored features: ours (Numba) against NumPy/OpenBLAS, and what
OpenBLAS's spinning threads do to the Numba kernel that follows a BLAS call (docs/speed.md,
"The classifier's products without BLAS").

Shapes of the ``fast`` configuration's classifier solve on MNIST: ``s`` examples of
``p = 8 * 28 * 28`` float32 features, ``k = 10`` classes. Prints the median of ``--repeats``
timings (ms) of:

* the softmax curvature product alone, on features that start on a cache line (as the
  classifier's, ``pdecontrol.memory.aligned_empty``) and 16 bytes off one (NumPy's guarantee),
  and right after ``F @ W.T`` with 2 and with 1 BLAS thread;
* ``F W^T``: ``feature_outputs`` against ``F @ W.T`` with 2 and 1 BLAS threads;
* ``U^T F``: ``feature_pullback`` against ``U.T @ F`` with 2 and 1 BLAS threads.

Run alone on the machine::

    python benchmarks/feature_products.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from conv_vs_torch import median_seconds  # this folder's timer (the script's folder is on sys.path)

from pdecontrol.memory import aligned_empty
from pdecontrol.ops import (
    blas_threads,
    feature_outputs,
    feature_pullback,
    kernel_threads,
    softmax_curvature_product,
)


def median_ms(function, repeats: int) -> float:
    return 1e3 * median_seconds(function, repeats)


def after_blas_ms(blas, function, repeats: int) -> float:
    """Median time of ``function`` called right after ``blas`` (not timed)."""
    times = []
    for _ in range(repeats):
        blas()
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--features", type=int, default=8 * 28 * 28)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    s, p, k, repeats = args.examples, args.features, args.classes, args.repeats
    F = aligned_empty((s, p), np.float32)
    F[...] = rng.standard_normal((s, p), dtype=np.float32)
    off_line = np.empty(s * p + 16, np.float32)  # a view 16 bytes past a cache line
    start = (-off_line.ctypes.data % 64 + 16) // 4
    F_off = off_line[start:start + s * p].reshape(s, p)
    F_off[...] = F
    logits = rng.standard_normal((s, k))
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    V = rng.standard_normal((k, p))
    W = V.astype(np.float32)
    U = rng.standard_normal((s, k))
    U32 = U.astype(np.float32)

    def curvature():
        return softmax_curvature_product(F, P, V)

    rows = [("curvature product alone", median_ms(curvature, repeats)),
            ("curvature product, features 16 bytes off a cache line",
             median_ms(lambda: softmax_curvature_product(F_off, P, V), repeats))]
    for threads in (2, 1):
        with blas_threads(threads):
            rows.append((f"curvature product after F @ W.T, {threads} BLAS thread(s)",
                         after_blas_ms(lambda: F @ W.T, curvature, repeats)))
    rows += [("feature_outputs (F W^T)", median_ms(lambda: feature_outputs(F, W), repeats)),
             ("feature_pullback (U^T F)", median_ms(lambda: feature_pullback(F, U), repeats))]
    for threads in (2, 1):
        with blas_threads(threads):
            rows += [(f"NumPy F @ W.T, {threads} BLAS thread(s)",
                      median_ms(lambda: F @ W.T, repeats)),
                     (f"NumPy U.T @ F, {threads} BLAS thread(s)",
                      median_ms(lambda: U32.T @ F, repeats))]
    print(f"{s} x {p} float32 features, k = {k}; Numba threads {kernel_threads()}; "
          f"median of {repeats} (ms)")
    for label, ms in rows:
        print(f"{label:56s} {ms:7.1f}")


if __name__ == "__main__":
    main()
