"""Throughput of the paper's network with pdecontrol.ops vs PyTorch (CPU), side by side.

Network (Haber, Ruthotto & Holtham): opening 3x3 convolution 1 -> C (``y0 = K0 x``), then two
residual layers ``y <- y + dt * tanh(K y + b)`` (C -> C, dt = 1) on 28x28 images. "fwd" is the
forward pass; "fwd+bwd" adds the gradient of ``0.5 * ||y_2||^2`` w.r.t. all kernels and biases
(backprop of y_bar = y_2). Both libraries use the same dtype and the same number of threads and
are timed in the same run, interleaved, median of ``--repeats`` after one warm-up. Each timed
pass directly follows an untimed pass of the same library (steady state, as in training):
timed right after the other library's pass, a pass often measured page faults rather than
arithmetic: on the benchmark VM, memory that stayed free for ~2 s is handed back to the host
and costs kernel time to touch again (docs/operators.md).
GFLOP/s counts convolution FLOPs only (2 per multiply-add; backward = transpose + kernel
gradient); the peak is a large float32/float64 numpy matmul measured in the same run.
On AVX-512 hosts pdecontrol.ops compiles 512-bit code (the header says whether it did);
``NUMBA_CPU_FEATURES`` set to the host features gives the 256-bit build for comparison
(docs/operators.md, "512-bit code generation").

    python benchmarks/conv_vs_torch.py [--channels 4 8 16 32] [--batch 1000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from pdecontrol.ops import (
    _codegen,
    conv,
    conv_kernel_gradient,
    residual_adjoint,
    residual_linearize,
    residual_step,
)

SIZE = 28
LAYERS = 2


def matmul_peak(dtype, n=3072, repeats=5) -> float:
    """Median GFLOP/s of an n x n numpy matmul: the practical peak of this machine."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    a @ a
    return 2 * n**3 / median_seconds(lambda: a @ a, repeats) / 1e9


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def conv_flops(channels: int, backward: bool) -> int:
    """Convolution FLOPs per image: opening 1->C plus LAYERS C->C (x3 with backward)."""
    per_tap = 2 * 9 * SIZE * SIZE
    forward = per_tap * (channels + LAYERS * channels * channels)
    if not backward:
        return forward
    # opening: kernel gradient only; layers: transpose + kernel gradient
    return forward + per_tap * (channels + 2 * LAYERS * channels * channels)


def make_parameters(channels: int, dtype, rng):
    k0 = (rng.standard_normal((channels, 1, 3, 3)) / 3).astype(dtype)
    kernels = [
        (rng.standard_normal((channels, channels, 3, 3)) / (3 * np.sqrt(channels))).astype(dtype)
        for _ in range(LAYERS)
    ]
    biases = [np.zeros(channels, dtype) for _ in range(LAYERS)]
    return k0, kernels, biases


def ours_forward(x, k0, kernels, biases):
    y = conv(x, k0)
    for K, b in zip(kernels, biases, strict=True):
        y = residual_step(y, K, b, 1.0, "tanh")
    return y


def ours_forward_backward(x, k0, kernels, biases):
    y = conv(x, k0)
    states = []
    for K, b in zip(kernels, biases, strict=True):
        y, lin = residual_linearize(y, K, b, 1.0, "tanh")
        states.append(lin)
    y_bar = y  # gradient of 0.5 ||y||^2
    gradients = []
    for lin in reversed(states):
        y_bar, K_bar, b_bar = residual_adjoint(lin, y_bar)
        gradients.append((K_bar, b_bar))
    return conv_kernel_gradient(x, y_bar), gradients


def torch_functions(torch, x, k0, kernels, biases):
    functional = torch.nn.functional
    tx = torch.from_numpy(x)
    tk0 = torch.from_numpy(k0).requires_grad_(True)
    tks = [torch.from_numpy(K).requires_grad_(True) for K in kernels]
    tbs = [torch.from_numpy(b).requires_grad_(True) for b in biases]

    def network():
        y = functional.conv2d(tx, tk0, padding=1)
        for K, b in zip(tks, tbs, strict=True):
            y = y + torch.tanh(functional.conv2d(y, K, b, padding=1))
        return y

    def forward():
        with torch.no_grad():
            return network()

    def forward_backward():
        for p in (tk0, *tks, *tbs):
            p.grad = None
        y = network()
        (0.5 * (y * y).sum()).backward()

    return forward, forward_backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    numba.set_num_threads(args.threads)
    try:
        import torch
    except ImportError:
        torch = None
        print(
            "PyTorch is NOT installed: only our throughput is measured "
            "(pip install torch==2.13.0 for the CPU build)."
        )
    else:
        torch.set_num_threads(args.threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = matmul_peak(dtype)
    print(
        f"numba {numba.__version__}, {args.threads} threads, {args.dtype}, batch {args.batch}, "
        f"{SIZE}x{SIZE}, median of {args.repeats}; matmul peak {peak:.0f} GFLOP/s"
    )
    print(f"512-bit vectors for Numba: {_codegen.CODEGEN_STATUS}")
    header = (
        f"{'C':>3} {'pass':>8} {'ours img/s':>11} {'torch img/s':>12} {'ratio':>6} "
        f"{'ours GFLOP/s':>13} {'of peak':>8} {'torch GFLOP/s':>14}"
    )
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for channels in args.channels:
        x = rng.standard_normal((args.batch, 1, SIZE, SIZE)).astype(dtype)
        params = make_parameters(channels, dtype, rng)
        ours = {
            "fwd": lambda x=x, params=params: ours_forward(x, *params),
            "fwd+bwd": lambda x=x, params=params: ours_forward_backward(x, *params),
        }
        theirs = {}
        if torch:
            theirs = dict(zip(("fwd", "fwd+bwd"), torch_functions(torch, x, *params), strict=True))
        for name in ("fwd", "fwd+bwd"):
            runs = [ours[name]] + ([theirs[name]] if torch else [])
            for run in runs:  # warm-up (compilation, allocator)
                run()
            times = {id(run): [] for run in runs}
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                for run in runs:
                    run()  # untimed: the timed pass follows a pass of the same library
                    times[id(run)].append(median_seconds(run, 1))
            ours_rate = args.batch / np.median(times[id(ours[name])])
            gflops = conv_flops(channels, name == "fwd+bwd") * ours_rate / 1e9
            if torch:
                torch_rate = args.batch / np.median(times[id(theirs[name])])
                torch_gflops = conv_flops(channels, name == "fwd+bwd") * torch_rate / 1e9
                tail = f"{torch_rate:12.0f} {ours_rate / torch_rate:6.2f}"
                tail_flops = f"{torch_gflops:14.1f}"
            else:
                tail, tail_flops = f"{'n/a':>12} {'n/a':>6}", f"{'n/a':>14}"
            print(
                f"{channels:3d} {name:>8} {ours_rate:11.0f} {tail} {gflops:13.1f} "
                f"{gflops / peak:8.1%} {tail_flops}",
                flush=True,
            )


if __name__ == "__main__":
    main()
