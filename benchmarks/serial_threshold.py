"""Where the parallel twin of each :mod:`pdecontrol.ops` kernel starts to beat its serial twin.

For every kernel (``add_scaled``, the tanh and relu activations, ``conv``,
``conv_kernel_gradient``) and a range of sizes, times the public function with the serial and
with the parallel twin forced (``TwinKernel.serial_below`` set to infinity or 0), alternating
batches, and prints the median time per call of each, their ratio parallel / serial and the
work of the call (elements, or multiply-adds ``N * C_out * C_in * 3**d * P`` for the
convolutions; a one-image convolution has one chunk and runs serially either way).
``--load`` busy-looping processes run meanwhile (started and stopped by this script).

    python3 benchmarks/serial_threshold.py                  # idle machine
    python3 benchmarks/serial_threshold.py --load 2         # two busy processes
    python3 benchmarks/serial_threshold.py --dtype float32 --only add_scaled
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time

import numba
import numpy as np

from pdecontrol.ops import (
    _gradient_kernels,
    _kernels,
    activations,
    add_scaled,
    conv,
    conv_kernel_gradient,
    elementwise,
    get_activation,
)


def per_call(function, seconds: float) -> float:
    """Mean seconds per call of ``function`` over a batch of at least ``seconds``."""
    function()
    calls, start = 0, time.perf_counter()
    while True:
        function()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / calls


def compare(twin, function, repeats: int, seconds: float) -> tuple[float, float]:
    """Median seconds per call with the serial and with the parallel twin, batches alternating."""
    times = {math.inf: [], 0: []}
    saved = twin.serial_below
    try:
        for _ in range(repeats):
            for threshold in times:
                twin.serial_below = threshold
                times[threshold].append(per_call(function, seconds))
    finally:
        twin.serial_below = saved
    return float(np.median(times[math.inf])), float(np.median(times[0]))


def cases(dtype):
    """``(kernel name, twin, work, call)`` for every measured size."""
    rng = np.random.default_rng(0)
    for exponent in range(8, 23):
        base, vector = rng.standard_normal((2, 2**exponent)).astype(dtype)
        yield ("add_scaled", elementwise._add_scaled_kernel, base.size,
               lambda base=base, vector=vector: add_scaled(base, 0.5, vector, out=base))
    for name in ("tanh", "relu"):
        activation = get_activation(name)
        for exponent in range(6, 21):
            a = rng.standard_normal(2**exponent).astype(dtype)
            yield (name, activations._activate_array, a.size,
                   lambda a=a, activation=activation: activation.value_and_derivative(a))
    for channels, side in ((4, 8), (8, 28)):
        for n_images in (1, 2, 4, 8, 16, 32, 64, 256):
            x = rng.standard_normal((n_images, channels, side, side)).astype(dtype)
            K = rng.standard_normal((channels, channels, 3, 3)).astype(dtype)
            work = n_images * channels * channels * 9 * side * side
            name = f"C={channels} {side}x{side} N={n_images}"
            yield f"conv {name}", _kernels.conv_driver, work, lambda x=x, K=K: conv(x, K)
            yield (f"kernel gradient {name}", _gradient_kernels.kernel_gradient_driver, work,
                   lambda x=x: conv_kernel_gradient(x, x))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load", type=int, default=0, help="busy-looping processes (default 0)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=5, help="batches per twin (default 5)")
    parser.add_argument("--seconds", type=float, default=0.02, help="length of a batch")
    parser.add_argument("--only", default="", help="only kernels whose name starts with this")
    args = parser.parse_args()
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.load)]
    try:
        print(f"{numba.get_num_threads()} Numba threads, {args.load} busy processes, "
              f"{args.dtype}, median of {args.repeats} batches of >= {args.seconds} s")
        print(f"{'kernel':<36} {'work':>11} {'serial us':>10} {'parallel us':>11} {'par/ser':>7}")
        for name, twin, work, call in cases(np.dtype(args.dtype)):
            if name.startswith(args.only):
                serial, parallel = compare(twin, call, args.repeats, args.seconds)
                print(f"{name:<36} {work:11d} {1e6 * serial:10.2f} {1e6 * parallel:11.2f} "
                      f"{parallel / serial:7.2f}", flush=True)
    finally:
        for process in load:
            process.kill()
            process.wait()


if __name__ == "__main__":
    main()
