"""Timing of kernel (stencil) transfers and of batched image restriction.

Run: ``python3 benchmarks/kernel_transfer.py [--repeats N]``

Kernels: every 3x3 kernel of a network with 3 layers of 16x16 channels (768 kernels,
array shape (3, 16, 16, 3, 3)) is restricted and prolonged by the Galerkin map. The paper's
prototype needed 0.03 s to prolong all kernels; the goal here is under 1 ms.
Images: a (1000, 8, 28, 28) float32 batch restricted to 14x14 (matrix-free, with and without
Gaussian pre-smoothing), prolonged back, and, for reference, restricted by the sparse CSR matrix
(same array layout, so including the transposes that the (batch, channel, x, y) layout needs).
Each figure is the median over ``repeats`` timeit runs of the time of one call.
"""

from __future__ import annotations

import argparse
import timeit

import numpy as np

from pdecontrol.transfer import (
    prolong,
    prolong_stencil,
    restrict,
    restrict_image,
    restrict_stencil,
    restriction_matrix,
)


def median_seconds(function, repeats: int) -> float:
    """Median over ``repeats`` runs of the time of one call (calls per run chosen by timeit)."""
    timer = timeit.Timer(function)
    number, _ = timer.autorange()
    return float(np.median(timer.repeat(repeat=repeats, number=number)) / number)


def main(repeats: int) -> None:
    rng = np.random.default_rng(0)
    kernels = rng.standard_normal((3, 16, 16, 3, 3))
    kernels32 = kernels.astype(np.float32)
    images = rng.standard_normal((1000, 8, 28, 28)).astype(np.float32)
    coarse_images = restrict(images, 2)
    R = restriction_matrix((28, 28)).astype(np.float32)

    cases = [
        ("restrict_stencil", "(3,16,16,3,3) f64", lambda: restrict_stencil(kernels), None),
        ("prolong_stencil", "(3,16,16,3,3) f64", lambda: prolong_stencil(kernels), None),
        (
            "restrict_stencil",
            "(3,16,16,3,3) f32",
            lambda: restrict_stencil(kernels32),
            None,
        ),
        (
            "prolong_stencil",
            "(3,16,16,3,3) f32",
            lambda: prolong_stencil(kernels32),
            None,
        ),
        ("restrict", "(1000,8,28,28) f32", lambda: restrict(images, 2), images.shape[0]),
        (
            "restrict_image sigma=1",
            "(1000,8,28,28) f32",
            lambda: restrict_image(images, 2, smoothing_sigma=1.0),
            images.shape[0],
        ),
        ("prolong", "(1000,8,14,14) f32", lambda: prolong(coarse_images, 2), images.shape[0]),
        (
            "sparse R (reference)",
            "(1000,8,28,28) f32",
            lambda: (R @ images.reshape(-1, 28 * 28).T).T.reshape(coarse_images.shape),
            images.shape[0],
        ),
    ]
    print(f"{'operation':<26} {'input':<20} {'median':>12} {'examples/s':>12}")
    for name, shape, function, n_images in cases:
        seconds = median_seconds(function, repeats)
        rate = f"{n_images / seconds:12.3g}" if n_images else f"{'':>12}"
        print(f"{name:<26} {shape:<20} {seconds * 1e3:9.4f} ms {rate}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timeit repeats (median taken)")
    main(parser.parse_args().repeats)
