"""A :class:`~pdecontrol.control.ControlFunctional` evaluated on example shards held by Dask
workers.

The misfit of a control functional is a mean over examples, and so are its gradient and
Gauss-Newton products. :class:`DistributedControlFunctional` deals the examples into shards
(shard ``s`` of ``S`` holds examples ``s, s + S, s + 2S, ...``, so that any contiguous batch or
random subset spreads evenly over the workers), builds each shard's own ``ControlFunctional``
(misfit only) once on a worker (:func:`distributed.Client.submit`: the task carries the shard's
data, so Dask can rebuild a shard lost with its worker from the task's lineage), and then ships
only what changes:

* ``value`` / ``value_and_gradient``: the parameters ``x`` to every shard touched by the
  example subset; each returns its misfit sum (and gradient sum); the client adds them,
  divides by the number of examples and adds the regularisers;
* ``gauss_newton_operator``: each shard keeps its linearisation (the forward solve of the
  operator) on its worker, as a future, for as long as the operator lives; every product ships
  the direction ``v`` and gathers one partial product per shard;
* ``forward``: the per-example results, gathered.

Everything else (layout, weights, regularisers, :meth:`parameters`, the data for the client's
own use) is the :class:`ControlFunctional` it subclasses, so optimisers, the continuation driver
and block solvers that take a ``ControlFunctional`` run on it unchanged; a sub-sampled step draws
global example indices, and each shard evaluates the ones it holds. Results equal the serial
functional's to rounding (the partial sums are added in another order); with the same shards
they are bitwise reproducible, also after a shard was rebuilt.

Tasks never pin a worker: the scheduler places a shard's tasks where its data is, and a task
whose data was lost is recomputed elsewhere. The price is memory: the client keeps the data (it
is a ``ControlFunctional``), and the scheduler keeps a copy in each shard's build task. Worker
functions are module-level (imported, not pickled, on the workers); the problem and the stepper
are pickled once per shard.
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
from dask.sizeof import sizeof
from scipy.sparse.linalg import LinearOperator

from ..control.functional import ControlFunctional, ForwardResult

__all__ = ["DistributedControlFunctional", "TransferMeter"]


# ---------------------------------------------------------------------- on the workers
def _build_shard(problem, layout, data, targets, options) -> ControlFunctional:
    """The shard's misfit functional (no regularisers)."""
    return ControlFunctional(problem, layout, data, targets, **options)


def _misfit_sum(shard: ControlFunctional, x, examples) -> float:
    count = shard.n_examples if examples is None else len(examples)
    return shard.value(x, examples) * count


def _misfit_and_gradient_sums(shard: ControlFunctional, x, examples) -> tuple:
    count = shard.n_examples if examples is None else len(examples)
    value, gradient = shard.value_and_gradient(x, examples)
    return value * count, np.asarray(gradient) * count


def _forward(shard: ControlFunctional, x, examples, *, final_states: bool) -> ForwardResult:
    return shard.forward(x, examples, final_states=final_states)


class _ShardLinearization:
    """A shard's Gauss-Newton operator at ``x`` (the forward solve it holds), kept on a worker.

    Pickled (if the scheduler ever moves it), it leaves the operator behind and builds it again
    on arrival: moving never changes a product, only costs a forward solve.
    """

    def __init__(self, shard: ControlFunctional, x, examples):
        self.shard, self.x, self.examples = shard, x, examples
        self.count = shard.n_examples if examples is None else len(examples)
        self._operator = None

    def product(self, v) -> np.ndarray:
        if self._operator is None:
            self._operator = self.shard.gauss_newton_operator(self.x, self.examples)
        return np.asarray(self._operator.matvec(v)) * self.count

    def __getstate__(self):
        return {"shard": self.shard, "x": self.x, "examples": self.examples, "count": self.count,
                "_operator": None}


def _linearize(shard: ControlFunctional, x, examples) -> _ShardLinearization:
    linearization = _ShardLinearization(shard, x, examples)
    linearization.product(np.zeros(shard.size))  # the forward solve, now, on this worker
    return linearization


def _product(linearization: _ShardLinearization, v) -> np.ndarray:
    return linearization.product(v)


@sizeof.register(ControlFunctional)
def _sizeof_functional(functional) -> int:
    """What moving a shard would cost (its data), so the scheduler keeps its tasks local."""
    return int(functional.data.nbytes + functional.targets.nbytes)


@sizeof.register(_ShardLinearization)
def _sizeof_linearization(linearization) -> int:
    return 4 * _sizeof_functional(linearization.shard)


# ---------------------------------------------------------------------- on the client
class TransferMeter:
    """Bytes the client sent to and received from the workers (arrays and floats only)."""

    def __init__(self):
        self.sent = 0
        self.received = 0

    def send(self, *arrays) -> None:
        self.sent += sum(int(np.asarray(a).nbytes) for a in arrays if a is not None)

    def receive(self, *arrays) -> None:
        self.received += sum(int(np.asarray(a).nbytes) for a in arrays if a is not None)


class DistributedControlFunctional(ControlFunctional):
    """A :class:`ControlFunctional` whose misfit, gradient and Gauss-Newton products are
    evaluated on example shards held by Dask workers (see the module docstring).

    Parameters
    ----------
    problem, layout, data, targets, **options
        As :class:`ControlFunctional` (the client keeps them too, e.g. for block solves).
    client : distributed.Client
        The cluster to use.
    n_shards : int, optional
        Number of shards (default: the number of workers); at most the number of examples.

    Attributes
    ----------
    n_shards : int
        Shard ``s`` holds examples ``s, s + n_shards, s + 2 n_shards, ...``.
    transfers : TransferMeter
        Bytes moved between the client and the workers by this functional.
    """

    def __init__(self, problem, layout, data, targets, *, client, n_shards=None, **options):
        super().__init__(problem, layout, data, targets, **options)
        if n_shards is None:
            n_shards = max(1, len(client.scheduler_info()["workers"]))
        if isinstance(n_shards, bool) or not isinstance(n_shards, (int, np.integer)) \
                or not 1 <= n_shards <= self.n_examples:
            raise ValueError(f"n_shards must be an integer in [1, {self.n_examples}] (the number "
                             f"of examples), got {n_shards!r}")
        self.client = client
        self.n_shards = int(n_shards)
        self.transfers = TransferMeter()
        shard_options = dict(self.options(), regularizers=())
        self._shards = []
        with warnings.catch_warnings():
            # a shard's data travels in its build task on purpose: the scheduler keeps the task
            # to rebuild a shard lost with its worker (scattered data would be lost with it)
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            for s in range(self.n_shards):
                data, targets = self.data[s::self.n_shards], self.targets[s::self.n_shards]
                self._shards.append(client.submit(_build_shard, problem, layout, data, targets,
                                                  shard_options, pure=False))
                self.transfers.send(data, targets)

    @classmethod
    def from_functional(cls, functional: ControlFunctional, client, n_shards=None):
        """The distributed twin of a serial ``functional`` (same problem, data and options)."""
        if not isinstance(functional, ControlFunctional):
            raise TypeError(f"functional must be a ControlFunctional, got "
                            f"{type(functional).__name__}")
        return cls(functional.problem, functional.layout, functional.data, functional.targets,
                   client=client, n_shards=n_shards, **functional.options())

    def map_shards(self, function) -> list:
        """``[function(shard) for shard in shards]``, run on the workers, in shard order; each
        shard is the misfit :class:`ControlFunctional` of its examples (e.g. to read its
        stepper's solve counts). ``function`` is pickled: module-level, or a closure over
        picklable values; its results come back to the client."""
        return self.client.gather([self.client.submit(function, shard, pure=False)
                                   for shard in self._shards])

    # ------------------------------------------------------------------ examples by shard
    def _split(self, examples):
        """``([(shard, local examples or None, positions in examples or None)], count)`` for
        the shards touched."""
        idx = self.check_examples(examples)
        if idx is None:
            return [(s, None, None) for s in range(self.n_shards)], self.n_examples
        parts = []
        owner = idx % self.n_shards
        for s in range(self.n_shards):
            positions = np.flatnonzero(owner == s)
            if positions.size:
                parts.append((s, idx[positions] // self.n_shards, positions))
        return parts, idx.size

    def _run(self, function, parts, *arguments):
        futures = []
        for s, local, _ in parts:
            futures.append(self.client.submit(function, self._shards[s], *arguments, local,
                                              pure=False))
            self.transfers.send(*arguments, local)
        return self.client.gather(futures)

    # ------------------------------------------------------------------ evaluations
    def value(self, x, examples=None) -> float:
        params, _, _ = self._parameters(x)
        parts, n = self._split(examples)
        sums = self._run(_misfit_sum, parts, np.asarray(params.flat))
        self.transfers.receive(*sums)
        return float(sum(sums)) / n + self._regularization_value(params)

    def value_and_gradient(self, x, examples=None):
        params, _, _ = self._parameters(x)
        parts, n = self._split(examples)
        results = self._run(_misfit_and_gradient_sums, parts, np.asarray(params.flat))
        misfit, gradient = 0.0, self.layout.zeros()
        for value, part in results:
            misfit += value
            gradient.flat[...] += part
            self.transfers.receive(value, part)
        return misfit / n + self._regularization_value(params), self._regularized_gradient(
            params, gradient, n)

    def gauss_newton_operator(self, x, examples=None) -> LinearOperator:
        params, _, _ = self._parameters(x)
        parts, n = self._split(examples)
        linearizations = []
        for s, local, _ in parts:
            linearizations.append(self.client.submit(_linearize, self._shards[s],
                                                     np.asarray(params.flat), local, pure=False))
            self.transfers.send(params.flat, local)

        def misfit_product(v, direction):
            futures = [self.client.submit(_product, linearization, v, pure=False)
                       for linearization in linearizations]
            self.transfers.send(*([v] * len(futures)))
            partial = self.client.gather(futures)
            self.transfers.receive(*partial)
            product = self.layout.zeros()
            product.flat[...] = np.sum(partial, axis=0)
            return product

        return self._regularized_operator(params, misfit_product, n)

    def final_states(self, x, examples=None) -> np.ndarray:
        """``forward(x, examples).final_states``: solved on the workers, which also compute
        (and send) the outputs and losses."""
        return self.forward(x, examples).final_states

    def forward(self, x, examples=None, *, final_states: bool = True) -> ForwardResult:
        params, _, _ = self._parameters(x)
        parts, n = self._split(examples)
        results = self._run(partial(_forward, final_states=final_states), parts,
                            np.asarray(params.flat))
        idx = np.arange(n) if examples is None else self.check_examples(examples)
        names = ("final_states", "outputs", "losses") if final_states else ("outputs", "losses")
        fields = {}
        for (s, _, positions), result in zip(parts, results, strict=True):
            self.transfers.receive(*(getattr(result, name) for name in names))
            if positions is None:  # all of shard s: examples s, s + S, ...
                positions = np.arange(s, self.n_examples, self.n_shards)
            for name in names:
                part = getattr(result, name)
                if name not in fields:
                    fields[name] = np.empty((n,) + part.shape[1:], dtype=part.dtype)
                fields[name][positions] = part
        return ForwardResult(examples=idx, **{"final_states": None, **fields})
