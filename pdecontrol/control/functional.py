"""The reduced functional of a control problem: objective, gradient and Gauss-Newton products.

For the flat parameter vector ``x`` (see :class:`~pdecontrol.control.parameters.ParameterLayout`)
and a subset ``S`` of the examples,

    J(x) = 1/|S| sum_{l in S} loss(z_l, c_l) + sum_r R_r(x),
    z_l = [output(y_l(t_1)), ..., output(y_l(t_K))]   (observation times, default t_1 = T),

with ``y_l`` the discrete solution of the problem's state equation. Observations at several
times come from one forward sweep; their adjoints enter the one adjoint sweep as sources at
their steps. The gradient costs one forward
and one adjoint sweep; a Gauss-Newton product one tangent and one adjoint sweep, reusing the
forward solve of :meth:`ControlFunctional.gauss_newton_operator`. By default (all states stored)
that forward solve also keeps every step's linearisation (``problem.linearize``: stage states and
caches), so the sweeps of the gradient and of every Gauss-Newton product recompute none of it.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator

from .._validation import as_float_array, check_finite, check_positive
from ..functional import ReducedFunctional
from ._accumulate import accumulate
from .parameters import ParameterLayout, Parameters
from .problem import ControlProblem
from .regularizers import Regularizer
from .timestepping import Trajectory, _read_only, get_stepper, integrate

__all__ = ["ControlFunctional", "ForwardResult"]

#: Examples :meth:`ControlFunctional.forward` solves at a time when ``chunk_size`` is None.
FORWARD_CHUNK = 1024


@dataclass(frozen=True)
class ForwardResult:
    """Per-example results of a forward solve (prediction).

    Attributes
    ----------
    final_states : ndarray, shape (n, *state_shape), or None
        ``y(T)`` in the compute dtype; None from ``forward(..., final_states=False)``.
    outputs : ndarray, shape (n, n_outputs)
        ``z = output(y(T))`` in the compute dtype.
    losses : ndarray, shape (n,)
        Per-example loss (float64, not averaged).
    examples : ndarray, shape (n,)
        The example indices, in order.
    """

    final_states: np.ndarray | None
    outputs: np.ndarray
    losses: np.ndarray
    examples: np.ndarray


@dataclass
class _Chunk:
    """Forward solve of one chunk of examples (the linearisation point of its derivatives)."""

    data: np.ndarray
    targets: np.ndarray
    trajectory: Trajectory
    outputs: np.ndarray
    output_sizes: tuple  # outputs per example of each observation time


class ControlFunctional(ReducedFunctional):
    """Reduced functional of a :class:`ControlProblem` over a set of examples.

    Parameters
    ----------
    problem : ControlProblem
        The state equation, initial state, output and loss.
    layout : ParameterLayout
        Parameter blocks; ``layout.n_steps`` is the number of time steps.
    data : ndarray, shape (n_examples, ...)
        Per-example input of ``problem.initial_state``.
    targets : ndarray, shape (n_examples, n_outputs)
        Per-example targets of ``problem.loss``.
    final_time : float
        ``T > 0``; ``dt = T / layout.n_steps``.
    stepper : RungeKutta or str
        Time stepper (default forward Euler).
    regularizers : sequence of Regularizer
        Added in full whatever the example subset.
    checkpoint_every : int, optional
        Keep every k-th state only, recompute segments in the adjoint sweep (bounded memory).
    store_linearization : bool, optional
        Keep step linearisations for the derivative sweeps (see
        :class:`~pdecontrol.control.timestepping.Trajectory`). Default (``None``): ``True`` when
        all states are stored (a forward solve and ``m`` GN products call ``problem.linearize``
        ``n_steps * stages`` times instead of ``(2m + 1)`` times that; memory per step grows by
        ``stages - 1`` states and ``stages`` caches), ``False`` with checkpointing (``True``
        there keeps one segment's linearisations during the adjoint sweep: ``k * stages``
        caches more at peak, no ``rhs`` recomputation). Values, gradients and GN products do
        not depend on it.
    chunk_size : int, optional
        Process at most this many examples at a time (default: all at once, except
        :meth:`forward`, which takes at most :data:`FORWARD_CHUNK`).
    dtype : {numpy.float64, numpy.float32}
        Compute dtype of states and of the parameters handed to the problem. Flat vectors,
        gradients and objective values are always float64.
    observation_times : sequence of float, optional
        Times ``0 <= t_1 < ... < t_K <= T`` at which ``problem.output`` observes the state
        (default ``(T,)``); each must be a multiple of ``dt``. The outputs of all times are
        concatenated per example (targets ``(n_examples, sum of output sizes)``).
    """

    def __init__(self, problem: ControlProblem, layout: ParameterLayout, data, targets, *,
                 final_time: float, stepper="euler", regularizers=(), checkpoint_every=None,
                 chunk_size=None, dtype=np.float64, store_linearization=None,
                 observation_times=None):
        if not isinstance(problem, ControlProblem):
            raise TypeError(f"problem must be a ControlProblem, got {type(problem).__name__}")
        if not isinstance(layout, ParameterLayout):
            raise TypeError(f"layout must be a ParameterLayout, got {type(layout).__name__}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.problem, self.layout = problem, layout
        self.data = check_finite(as_float_array(data, "data", dtype=self.dtype), "data")
        if self.data.ndim < 1 or self.data.shape[0] < 1:
            raise ValueError("data must have a leading example axis of length >= 1, "
                             f"got {self.data.shape}")
        self.targets = problem.loss.check_targets(targets, "targets")
        if self.targets.shape[0] != self.data.shape[0]:
            raise ValueError("targets must have one row per example: data has "
                             f"{self.data.shape[0]} examples, targets {self.targets.shape[0]}")
        self.final_time = check_positive(final_time, "final_time")
        self.stepper = get_stepper(stepper)
        self.regularizers = tuple(regularizers)
        for reg in self.regularizers:
            if not isinstance(reg, Regularizer):
                raise TypeError("regularizers must be Regularizer objects, got "
                                f"{type(reg).__name__}")
            reg.check_layout(layout)
        for name, value in (("checkpoint_every", checkpoint_every), ("chunk_size", chunk_size)):
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, numbers.Integral) or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        self.checkpoint_every, self.chunk_size = checkpoint_every, chunk_size
        if store_linearization is None:
            store_linearization = checkpoint_every is None
        if not isinstance(store_linearization, (bool, np.bool_)):
            raise TypeError(f"store_linearization must be None (automatic), True or False, "
                            f"got {store_linearization!r}")
        self.store_linearization = bool(store_linearization)
        self.observation_steps = self._observation_steps(observation_times)
        self.observation_times = (None if observation_times is None else
                                  tuple(float(t) for t in np.ravel(observation_times)))

    def options(self) -> dict:
        """The keyword options this functional was built with (``final_time``, ``stepper``,
        ``regularizers``, ...): ``ControlFunctional(problem, layout, data, targets, **options)``
        builds its twin on other data."""
        return {"final_time": self.final_time, "stepper": self.stepper,
                "regularizers": self.regularizers, "checkpoint_every": self.checkpoint_every,
                "chunk_size": self.chunk_size, "dtype": self.dtype,
                "store_linearization": self.store_linearization,
                "observation_times": self.observation_times}

    def _observation_steps(self, times) -> tuple:
        """Step indices of the observation times (``(n_steps,)`` by default)."""
        n, dt = self.layout.n_steps, self.final_time / self.layout.n_steps
        if times is None:
            return (n,)
        times = check_finite(as_float_array(times, "observation_times", dtype=np.float64),
                             "observation_times")
        if times.ndim != 1 or times.size == 0 or np.any(np.diff(times) <= 0):
            raise ValueError(f"observation_times must be a non-empty increasing sequence, got "
                             f"{times}")
        steps = np.rint(times / dt)
        off = np.abs(times / dt - steps) > 1e-9 * np.maximum(1.0, steps)
        if np.any(off) or steps[0] < 0 or steps[-1] > n:
            if np.any(off):
                bad = times[np.argmax(off)]
            else:
                bad = times[0] if steps[0] < 0 else times[-1]
            raise ValueError(
                f"observation time {bad:g} is not on the time grid of {n} steps of dt = {dt:g} "
                f"in [0, {self.final_time:g}]; choose n_steps so that every observation time is "
                "a multiple of dt")
        return tuple(int(k) for k in steps)

    # ------------------------------------------------------------------ interface
    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def n_examples(self) -> int:
        return self.data.shape[0]

    @property
    def weights(self) -> np.ndarray:
        return self.layout.weights

    def value(self, x, examples=None) -> float:
        params, controls, static = self._parameters(x)
        chunks, n = self._index_chunks(examples)
        misfit = sum(self.problem.loss.value(self._solve(controls, static, idx).outputs,
                                             self.targets[idx]) for idx in chunks)
        return misfit / n + self._regularization_value(params)

    def value_and_gradient(self, x, examples=None):
        params, controls, static = self._parameters(x)
        chunks, n = self._index_chunks(examples)
        gradient = self.layout.zeros()
        misfit = 0.0
        for idx in chunks:
            chunk = self._solve(controls, static, idx, store_linearization=self.store_linearization)
            misfit += self.problem.loss.value(chunk.outputs, chunk.targets)
            outputs_bar = self.problem.loss.gradient(chunk.outputs, chunk.targets)
            self._backpropagate(chunk, controls, static, outputs_bar, gradient)
        return misfit / n + self._regularization_value(params), self._regularized_gradient(
            params, gradient, n)

    def gauss_newton_operator(self, x, examples=None) -> LinearOperator:
        params, controls, static = self._parameters(x)
        chunks, n = self._index_chunks(examples)
        solved = [self._solve(controls, static, idx, store_linearization=self.store_linearization)
                  for idx in chunks]

        def misfit_product(v, direction):
            dcontrols, dstatic = self._cast(direction.controls), self._cast(direction.static)
            product = self.layout.zeros()
            for chunk in solved:
                doutputs = self._tangent(chunk, controls, static, dcontrols, dstatic)
                outputs_bar = self.problem.loss.hessian_product(chunk.outputs, chunk.targets,
                                                                doutputs)
                self._backpropagate(chunk, controls, static, outputs_bar, product)
            return product

        return self._regularized_operator(params, misfit_product, n)

    def _regularized_gradient(self, params: Parameters, misfit_gradient: Parameters,
                              n: int) -> np.ndarray:
        """Flat gradient: ``misfit_gradient`` (summed over ``n`` examples) divided by ``n``,
        plus the regularisers' gradients at ``params``; ``misfit_gradient`` is updated."""
        misfit_gradient.flat /= n
        for reg in self.regularizers:
            self._add_blocks(misfit_gradient, reg.gradient(params))
        return misfit_gradient.flat

    def _regularized_operator(self, params: Parameters, misfit_product, n: int):
        """The Gauss-Newton :class:`LinearOperator` from ``misfit_product(v, direction)``, the
        misfit's product summed over ``n`` examples (a new :class:`Parameters`): divided by
        ``n``, plus the regularisers' Hessian products at ``params``."""

        def matvec(v):
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            direction = self.layout.unflatten(_read_only(check_finite(v, "v")), "v")
            product = misfit_product(v, direction)
            product.flat /= n
            for reg in self.regularizers:
                self._add_blocks(product, reg.hessian_product(params, direction))
            return product.flat

        return LinearOperator((self.size, self.size), matvec=matvec, rmatvec=matvec,
                              dtype=np.float64)

    def forward(self, x, examples=None, *, final_states: bool = True) -> ForwardResult:
        """Final states, outputs and per-example losses (prediction), in example order.

        Examples are solved ``chunk_size`` at a time, and at most :data:`FORWARD_CHUNK` at a
        time when ``chunk_size`` is None: an example's numbers do not depend on the others (up
        to the last bits of matrix products, whose blocking depends on the number of rows), so
        this only bounds the working set; of each chunk only what is returned is kept
        (measured on the bundled CNN problem: docs/framework.md). ``final_states=False``
        keeps no states (``final_states`` None): a prediction's memory is then its outputs
        only, the same outputs and losses bit for bit.
        """
        _, controls, static = self._parameters(x)
        chunks, _ = self._index_chunks(examples, default_size=FORWARD_CHUNK)
        states, outputs, losses = [], [], []
        for idx in chunks:
            chunk = self._solve(controls, static, idx)
            if final_states:
                states.append(chunk.trajectory.final_state)
            outputs.append(chunk.outputs)
            losses.append(self.problem.loss.per_example(chunk.outputs, chunk.targets))
        return ForwardResult(final_states=np.concatenate(states) if final_states else None,
                             outputs=np.concatenate(outputs), losses=np.concatenate(losses),
                             examples=np.concatenate(chunks))

    def final_states(self, x, examples=None) -> np.ndarray:
        """Final states ``y(T)`` of ``examples`` (default all), in example order: shape
        ``(n, *state_shape)``, the compute dtype.

        The forward solves of :meth:`forward` without its outputs and losses (the same states bit
        for bit, in chunks as there), e.g. the features of a block solve on the last state.
        """
        _, controls, static = self._parameters(x)
        chunks, _ = self._index_chunks(examples, default_size=FORWARD_CHUNK)
        return np.concatenate([self._integrate(controls, static, idx)[1].final_state
                               for idx in chunks])

    def parameters(self, x) -> Parameters:
        """Validated structured (read-only) view of a flat vector."""
        return self._parameters(x)[0]

    # ------------------------------------------------------------------ internals
    def _cast(self, blocks: dict) -> dict:
        """Blocks in the compute dtype, read-only (views for float64, copies for float32)."""
        return {k: _read_only(np.asarray(v, dtype=self.dtype)) for k, v in blocks.items()}

    def _parameters(self, x):
        params = self.layout.unflatten(_read_only(self.check_parameters(x)))
        return params, self._cast(params.controls), self._cast(params.static)

    def _index_chunks(self, examples, default_size=None):
        """Chunks of ``chunk_size`` examples, else of ``default_size``, else all in one."""
        idx = self.check_examples(examples)
        if idx is None:
            idx = np.arange(self.n_examples)
        size = self.chunk_size or default_size or idx.size
        return [idx[i:i + size] for i in range(0, idx.size, size)], idx.size

    def _integrate(self, controls, static, idx, *, store_linearization: bool = False,
                   keep_steps=()):
        """``(data, trajectory)``: the time integration of examples ``idx``."""
        data = self.data[idx]
        y0 = np.asarray(self.problem.initial_state(data, static), dtype=self.dtype)
        if y0.ndim < 1 or y0.shape[0] != idx.size:
            raise ValueError(f"{type(self.problem).__name__}.initial_state must return one state "
                             f"per example (leading axis {idx.size}), got shape {y0.shape}")
        trajectory = integrate(self.problem, self.stepper, y0, controls, static,
                               final_time=self.final_time, n_steps=self.layout.n_steps,
                               checkpoint_every=self.checkpoint_every,
                               store_linearization=store_linearization, keep_steps=keep_steps)
        return data, trajectory

    def _solve(self, controls, static, idx, *, store_linearization: bool = False) -> _Chunk:
        """Forward solve of examples ``idx``; keep linearisations only if derivatives follow."""
        steps = self.observation_steps
        data, trajectory = self._integrate(controls, static, idx, keep_steps=steps,
                                           store_linearization=store_linearization)
        observed = [self.problem.output(trajectory.state(k), static) for k in steps]
        outputs = observed[0] if len(observed) == 1 else np.concatenate(observed, axis=1)
        targets = self.targets[idx]
        if outputs.shape != targets.shape:
            raise ValueError(f"{type(self.problem).__name__}.output returned shape {outputs.shape} "
                             f"over {len(steps)} observation time(s), but the targets of these "
                             f"examples have shape {targets.shape}")
        return _Chunk(data, targets, trajectory, outputs, tuple(z.shape[1] for z in observed))

    def _tangent(self, chunk: _Chunk, controls, static, dcontrols, dstatic) -> np.ndarray:
        dy0 = self.problem.initial_state_tangent(chunk.data, static, dstatic)
        steps, trajectory = self.observation_steps, chunk.trajectory
        dys = trajectory.tangent(np.asarray(dy0, dtype=self.dtype), dcontrols, dstatic,
                                 at_steps=steps)
        observed = [self.problem.output_tangent(trajectory.state(k), static, dys[k], dstatic)
                    for k in steps]
        return observed[0] if len(observed) == 1 else np.concatenate(observed, axis=1)

    def _backpropagate(self, chunk: _Chunk, controls, static, outputs_bar, total: Parameters):
        """Add the chain rule of (initial state, sweep, output) for ``outputs_bar`` into
        ``total``."""
        outputs_bar = np.asarray(outputs_bar, dtype=self.dtype)
        trajectory, sources = chunk.trajectory, {}
        static_bar = {name: np.zeros(np.shape(value)) for name, value in static.items()}
        bars = np.split(outputs_bar, np.cumsum(chunk.output_sizes)[:-1], axis=1)
        for step, z_bar in zip(self.observation_steps, bars, strict=True):
            y_bar, observed_static_bar = self.problem.output_adjoint(trajectory.state(step),
                                                                     static, z_bar)
            sources[step] = np.asarray(y_bar, dtype=self.dtype)
            accumulate(static_bar, observed_static_bar)
        y0_bar, controls_bar, sweep_static_bar = trajectory.adjoint(sources=sources)
        accumulate(sweep_static_bar, static_bar)
        accumulate(sweep_static_bar, self.problem.initial_state_adjoint(chunk.data, static, y0_bar))
        self._add_blocks(total, sweep_static_bar)
        self._add_blocks(total, controls_bar)

    @staticmethod
    def _add_blocks(total: Parameters, blocks: dict):
        for name, value in blocks.items():
            total[name][...] += value

    def _regularization_value(self, params) -> float:
        return float(sum(reg.value(params) for reg in self.regularizers))
