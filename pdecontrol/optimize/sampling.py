"""Random example batches for sub-sampled and stochastic optimisers.

Batches are sorted, unique integer indices into ``range(n_examples)``; every draw comes from one
:class:`numpy.random.Generator`, so the same seed gives the same batches.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["check_batch_size", "draw_batch", "EpochBatches"]


def check_batch_size(batch_size, n_examples, name: str) -> int | None:
    """Validate an optional batch size against ``n_examples`` (``None`` = all examples)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{name} must be an integer or None, got {type(batch_size).__name__}")
    if n_examples is None:
        raise ValueError(
            f"{name}={batch_size} needs a functional that is separable over examples "
            "(n_examples is None); pass None to use the full objective"
        )
    if not 1 <= batch_size <= n_examples:
        raise ValueError(
            f"{name} must be between 1 and n_examples={n_examples}, got {batch_size}; "
            "pass None to use all examples"
        )
    return int(batch_size)


def draw_batch(rng: np.random.Generator, population, batch_size: int | None) -> np.ndarray | None:
    """Draw ``batch_size`` distinct indices uniformly without replacement, sorted.

    ``population`` is either ``n`` (draw from ``range(n)``) or an index array to draw from.
    Returns ``population`` unchanged (``None`` or the array) when ``batch_size`` is ``None``.
    """
    if batch_size is None:
        return None if isinstance(population, numbers.Integral) else population
    if isinstance(population, numbers.Integral):
        return np.sort(rng.choice(int(population), size=batch_size, replace=False))
    return np.sort(rng.choice(np.asarray(population), size=batch_size, replace=False))


class EpochBatches:
    """Mini-batches that sweep all examples once per epoch in a fresh random order.

    Each epoch permutes ``range(n_examples)`` and cuts it into consecutive batches of
    ``batch_size`` (the last batch of an epoch is smaller when ``batch_size`` does not divide
    ``n_examples``). Each batch is returned sorted.
    """

    def __init__(self, n_examples: int, batch_size: int, rng: np.random.Generator):
        self.n_examples = int(n_examples)
        self.batch_size = int(batch_size)
        self.rng = rng
        self.epoch = -1
        self._order = np.empty(0, dtype=np.int64)
        self._start = 0

    def next(self) -> np.ndarray:
        """The next batch (starts a new epoch when the current one is exhausted)."""
        if self._start >= self._order.size:
            self._order = self.rng.permutation(self.n_examples)
            self._start = 0
            self.epoch += 1
        batch = self._order[self._start : self._start + self.batch_size]
        self._start += self.batch_size
        return np.sort(batch)

    def get_state(self) -> dict:
        """Position in the current epoch (the generator's state is its owner's to save)."""
        return {"epoch": self.epoch, "order": self._order.copy(), "start": self._start}

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state`."""
        self.epoch = int(state["epoch"])
        self._order = np.asarray(state["order"], dtype=np.int64).copy()
        self._start = int(state["start"])
