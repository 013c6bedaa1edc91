"""Reuse the factorization of a matrix seen before: exact fingerprints, a small LRU store."""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from .._validation import check_int
from .base import Factorization, as_square_matrix

__all__ = ["FactorizationCache", "matrix_fingerprint"]


def matrix_fingerprint(matrix) -> str:
    """Exact fingerprint of a square matrix: 32 hex digits.

    BLAKE2b (128 bit) of the shape and of the bytes of the canonical float64 CSR form
    (``indptr``, ``indices`` as int64, ``data``). Equal fingerprints mean the same stored
    pattern and bitwise the same values (a collision has probability ~2^-128); an explicitly
    stored zero counts as pattern and ``-0.0`` differs from ``0.0``, which can only cause an
    unneeded set-up, never a wrong reuse. Costs one pass over the matrix (about 20 ms per
    million nonzeros).
    """
    csr = as_square_matrix(matrix)
    digest = hashlib.blake2b(repr(csr.shape).encode(), digest_size=16)
    for array in (csr.indptr.astype(np.int64), csr.indices.astype(np.int64), csr.data):
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


class FactorizationCache:
    """The factorizations of the last ``capacity`` distinct matrices, for one solver.

    ``factorize(A)`` returns the stored factorization when a matrix with the same
    :func:`matrix_fingerprint` was factorized before (least recently used are dropped beyond
    ``capacity``), and sets up a new one otherwise. A stepper calls it at every time step of
    every sweep (forward, tangent, adjoint): the set-up is done once per distinct matrix.

    Parameters
    ----------
    solver : LinearSolver
        E.g. ``solver_by_name("amg-sa", rtol=1e-10)``.
    capacity : int
        Factorizations kept (each holds LU factors or an AMG hierarchy: mind the memory).

    Attributes
    ----------
    setups : int
        Factorizations built so far.
    hits : int
        Calls answered from the store.
    """

    def __init__(self, solver, capacity: int = 4):
        if not callable(getattr(solver, "factorize", None)):
            raise TypeError(
                f"solver must have a factorize(matrix) method (e.g. solver_by_name('splu')), "
                f"got {type(solver).__name__}"
            )
        self.solver = solver
        self.capacity = check_int(capacity, "capacity", 1)
        self.setups = 0
        self.hits = 0
        self._store: OrderedDict[str, Factorization] = OrderedDict()

    def factorize(self, matrix) -> Factorization:
        """The factorization of ``matrix``: stored if seen before, else set up and stored."""
        matrix = as_square_matrix(matrix)
        key = matrix_fingerprint(matrix)
        if key in self._store:
            self._store.move_to_end(key)
            self.hits += 1
            return self._store[key]
        factorization = self.solver.factorize(matrix)
        self.setups += 1
        self._store[key] = factorization
        if len(self._store) > self.capacity:
            self._store.popitem(last=False)
        return factorization

    def clear(self) -> None:
        """Drop every stored factorization (the counters are kept)."""
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return (f"FactorizationCache({self.solver!r}, capacity={self.capacity}, "
                f"stored={len(self)}, setups={self.setups}, hits={self.hits})")
