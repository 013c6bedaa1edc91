"""Gauss-Newton products with and without stored step linearisations.

For a small convolutional ResNet (``f = tanh(K_j y + b_j)``, 3x3 kernels, the Numba kernels of
:mod:`pdecontrol.ops`) and a dense tanh network, builds ``ControlFunctional.gauss_newton_operator``
and applies it to ``--products`` random directions, with ``store_linearization`` off (every
tangent and adjoint sweep recomputes ``problem.linearize``) and on (the forward solve keeps it).
Prints a markdown table: ``linearize`` calls (forward + products), peak traced memory
(tracemalloc: operator and products, the directions excluded), time of the forward solve and of
the products (best of ``--repeat``, alternating off/on), and the time ratio off/on. The products
are asserted bit-identical.

    python3 benchmarks/gauss_newton_products.py                 # defaults used in docs/framework.md
    python3 benchmarks/gauss_newton_products.py --stepper rk4 --n-steps 4
"""
from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from pdecontrol.control import ControlFunctional, ControlProblem, ParameterLayout
from pdecontrol.ops import residual_adjoint, residual_linearize, residual_tangent


class _CountingProblem(ControlProblem):
    """Counts ``linearize`` calls; ``rhs`` is the first output of ``linearize`` (not counted)."""

    def __init__(self):
        super().__init__()
        self.linearize_calls = 0

    def linearize(self, y, control, static, t):
        self.linearize_calls += 1
        return self._linearize(y, control)

    def rhs(self, y, control, static, t):
        return self._linearize(y, control)[0]

    def output(self, y_final, static):
        return y_final.reshape(y_final.shape[0], -1) @ static["W"].T

    def output_tangent(self, y_final, static, dy_final, dstatic):
        return self.output(dy_final, static) + self.output(y_final, dstatic)

    def output_adjoint(self, y_final, static, z_bar):
        y_bar = (z_bar @ static["W"]).reshape(y_final.shape)
        return y_bar, {"W": z_bar.T @ y_final.reshape(y_final.shape[0], -1)}


class ConvTanh(_CountingProblem):
    """``f = tanh(K y + b)`` on images ``(N, C, n, n)``, ``K`` ``(C, C, 3, 3)``, ``z = W y_T``."""

    def _linearize(self, y, control):
        return residual_linearize(y, control["K"], control["b"], dt=1.0, skip=False)

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return residual_tangent(cache, dy, dcontrol["K"], dcontrol["b"])

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        y_bar, K_bar, b_bar = residual_adjoint(cache, f_bar)
        return y_bar, {"K": K_bar, "b": b_bar}, {}


class DenseTanh(_CountingProblem):
    """``f = tanh(y K^T + b)`` on vectors ``(N, C)``, ``K`` ``(C, C)``, ``z = W y_T``."""

    def _linearize(self, y, control):
        activation = np.tanh(y @ control["K"].T + control["b"])
        return activation, 1.0 - activation ** 2

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return cache * (dy @ control["K"].T + y @ dcontrol["K"].T + dcontrol["b"])

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        g = cache * f_bar
        return g @ control["K"], {"K": g.T @ y, "b": g.sum(axis=0)}, {}


def build(kind: str, args, store_linearization: bool):
    """The functional and a random point for one problem kind (``'conv'`` or ``'dense'``)."""
    rng = np.random.default_rng(0)
    C, n_classes = args.channels, 10
    if kind == "conv":
        problem, state, kernel = ConvTanh(), (C, args.image, args.image), (C, C, 3, 3)
    else:
        problem, state, kernel = DenseTanh(), (args.width,), (args.width, args.width)
    layout = ParameterLayout(args.n_steps, controls={"K": kernel, "b": (state[0],)},
                             static={"W": (n_classes, int(np.prod(state)))})
    data = rng.standard_normal((args.batch, *state))
    targets = np.eye(n_classes)[rng.integers(0, n_classes, args.batch)]
    functional = ControlFunctional(problem, layout, data, targets, final_time=1.0,
                                   stepper=args.stepper, store_linearization=store_linearization)
    return functional, layout.random(rng, 0.1).flat


def _run(functional, x, directions) -> tuple:
    """(forward seconds, products seconds, linearize calls, products) of one operator."""
    functional.problem.linearize_calls = 0
    start = time.perf_counter()
    operator = functional.gauss_newton_operator(x)
    middle = time.perf_counter()
    products = np.array([operator.matvec(d) for d in directions])
    end = time.perf_counter()
    return middle - start, end - middle, functional.problem.linearize_calls, products


def _peak_mib(functional, x, directions) -> float:
    tracemalloc.start()
    operator = functional.gauss_newton_operator(x)
    for d in directions:
        operator.matvec(d)
    peak_bytes = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak_bytes / 2 ** 20


def measure(kind: str, args) -> dict:
    """Rows for ``store_linearization`` off and on; repeats alternate between the two so that
    load from other processes on a shared machine hits both alike (best of ``repeat``)."""
    cases = {flag: build(kind, args, flag == "on") for flag in ("off", "on")}
    directions = np.random.default_rng(1).standard_normal((args.products, cases["on"][1].size))
    rows = {}
    for flag, (functional, x) in cases.items():
        functional.gauss_newton_product(x, directions[0])        # compile the Numba kernels
        rows[flag] = {"forward": np.inf, "products": np.inf,
                      "peak_mib": _peak_mib(functional, x, directions)}
    for _ in range(args.repeat):
        for flag, (functional, x) in cases.items():
            forward, products, calls, result = _run(functional, x, directions)
            row = rows[flag]
            row.update(forward=min(row["forward"], forward), calls=calls, result=result,
                       products=min(row["products"], products))
    np.testing.assert_array_equal(rows["on"]["result"], rows["off"]["result"])  # bit-identical
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=8, help="conv problem: channels")
    parser.add_argument("--image", type=int, default=28, help="conv problem: image side")
    parser.add_argument("--width", type=int, default=256, help="dense problem: state width")
    parser.add_argument("--stepper", default="euler")
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--problems", nargs="*", default=["conv", "dense"],
                        choices=["conv", "dense"])
    args = parser.parse_args(argv)
    print(f"n_steps={args.n_steps}, batch={args.batch}, stepper={args.stepper}, float64; conv: "
          f"{args.channels} x {args.image}^2, dense: width {args.width}; one GN operator + "
          f"{args.products} products per row")
    print("| problem | store_linearization | linearize calls | peak memory (MiB) | forward (s) | "
          f"{args.products} products (s) | products off/on |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in args.problems:
        rows = measure(kind, args)
        for flag, row in rows.items():
            ratio = f"{rows['off']['products'] / row['products']:.2f}" if flag == "on" else ""
            print(f"| {kind} | {flag} | {row['calls']} | {row['peak_mib']:.1f} | "
                  f"{row['forward']:.3f} | {row['products']:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
