"""A reduced functional of a subset of the parameters, the others held fixed."""

from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ..functional import ReducedFunctional
from ._checks import check_functional

__all__ = ["RestrictedFunctional", "as_index_set", "apply_block_solve"]


def as_index_set(indices, size: int, name: str = "free_indices") -> np.ndarray:
    """Sorted unique integer indices from an index array or a boolean mask of length ``size``."""
    array = np.asarray(indices)
    if array.dtype == bool:
        if array.shape != (size,):
            raise ValueError(
                f"{name} as a boolean mask must have shape ({size},), got {array.shape}"
            )
        array = np.flatnonzero(array)
    elif array.ndim != 1 or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        raise TypeError(
            f"{name} must be a 1-D integer index array or a boolean mask, got dtype {array.dtype}"
        )
    if array.size == 0:
        raise ValueError(f"{name} selects no parameters; select at least one")
    if array.min() < 0 or array.max() >= size:
        raise ValueError(
            f"{name} must lie in [0, {size}), got range [{array.min()}, {array.max()}]"
        )
    if np.unique(array).size != array.size:
        raise ValueError(f"{name} contains repeated indices; pass each parameter once")
    return np.sort(array.astype(np.int64))


def apply_block_solve(
    solve_block, x: np.ndarray, block: np.ndarray, functional: ReducedFunctional
) -> np.ndarray:
    """Call ``solve_block(x)`` and return ``x`` with only its ``block`` entries replaced."""
    solved = functional.check_parameters(solve_block(x.copy()), "solve_block(x)")
    updated = x.copy()
    updated[block] = solved[block]
    return updated


class RestrictedFunctional(ReducedFunctional):
    """``J_F(y) = J(x)`` with ``x[free] = y`` and the other entries fixed at ``x_fixed``.

    Its gradient is ``dJ/dx[free]``, its Gauss-Newton operator the block ``E^T G E`` of the full
    one (``E`` the injection of the free entries), its weights ``m[free]`` and it keeps the
    ``n_examples`` of the full functional: a ReducedFunctional like any other, so every solver
    applies to a block of parameters.

    Parameters
    ----------
    functional : ReducedFunctional
        The full functional.
    free_indices : array_like of int or bool
        Indices (or a boolean mask of length ``functional.size``) of the free parameters; they
        are sorted, so ``y`` lists the free entries in increasing index order.
    x_fixed : array_like, shape (functional.size,)
        Full vector supplying the fixed entries (its free entries are ignored).
    """

    def __init__(self, functional: ReducedFunctional, free_indices, x_fixed):
        check_functional(functional)
        self.functional = functional
        self.free_indices = as_index_set(free_indices, functional.size)
        self.x_fixed = functional.check_parameters(x_fixed, "x_fixed").copy()

    @property
    def size(self) -> int:
        return int(self.free_indices.size)

    @property
    def n_examples(self):
        return self.functional.n_examples

    @property
    def weights(self) -> np.ndarray:
        return self.functional.weights[self.free_indices]

    def check_examples(self, examples):
        return self.functional.check_examples(examples)

    def embed(self, y) -> np.ndarray:
        """Full vector, shape ``(functional.size,)``: ``x[free] = y``, fixed entries elsewhere."""
        x = self.x_fixed.copy()
        x[self.free_indices] = y
        return x

    def restrict(self, x) -> np.ndarray:
        """The free entries ``x[free]`` of a full vector."""
        return np.asarray(x)[self.free_indices].copy()

    def value(self, y, examples=None) -> float:
        return self.functional.value(self.embed(y), examples)

    def value_and_gradient(self, y, examples=None):
        value, gradient = self.functional.value_and_gradient(self.embed(y), examples)
        return value, np.asarray(gradient)[self.free_indices]

    def gauss_newton_operator(self, y, examples=None) -> LinearOperator:
        full = self.functional.gauss_newton_operator(self.embed(y), examples)
        free = self.free_indices
        size = self.functional.size

        def matvec(v):
            direction = np.zeros(size)
            direction[free] = np.ravel(v)
            return np.asarray(full.matvec(direction)).reshape(-1)[free]

        return LinearOperator(
            (free.size, free.size), matvec=matvec, rmatvec=matvec, dtype=np.float64
        )
