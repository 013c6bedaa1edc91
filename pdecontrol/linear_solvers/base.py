"""The protocol: a linear solver turns a square sparse matrix into a factorization.

A *linear solver* (:class:`LinearSolver`) is an immutable set of options with
``factorize(matrix) -> Factorization``. A *factorization* does all set-up work (an LU
factorization, an AMG hierarchy) once, when it is built, and reuses it for every
``solve(b)`` (``A x = b``) and ``solve_transpose(b)`` (``A^T x = b``). Right-hand sides have
shape ``(n,)`` or ``(n, k)`` (``k`` independent columns, e.g. a batch of examples); solutions
have the shape of ``b``, float64.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from .._validation import as_float_array, check_finite

__all__ = ["LinearSolver", "Factorization", "ConvergenceError", "as_square_matrix"]


class ConvergenceError(RuntimeError):
    """An iterative solve did not reach its tolerance (``maxiter`` reached or a breakdown)."""


def as_square_matrix(matrix, name: str = "matrix") -> sp.csr_array:
    """Return ``matrix`` as a canonical float64 CSR array (sorted indices, no duplicates).

    Accepts a SciPy sparse matrix/array or a dense 2-D array of real numbers, shape ``(n, n)``
    with ``n >= 1`` and finite entries. The input is never modified (a copy is made when it has
    to be sorted or converted).
    """
    if sp.issparse(matrix):
        if np.issubdtype(matrix.dtype, np.complexfloating):
            raise TypeError(f"{name} must be real, got complex dtype {matrix.dtype}")
        csr = sp.csr_array(matrix, dtype=np.float64)
    else:
        dense = as_float_array(matrix, name, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(f"{name} must be a 2-D matrix, got shape {dense.shape}")
        csr = sp.csr_array(dense)
    if csr.shape[0] != csr.shape[1] or csr.shape[0] == 0:
        raise ValueError(f"{name} must be square and non-empty, got shape {csr.shape}")
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    check_finite(csr.data, name)
    return csr


class Factorization(ABC):
    """A set-up solver for one square matrix ``A``, shape ``(n, n)``.

    Attributes
    ----------
    solver : LinearSolver
        The options it was built with.
    shape : tuple
        ``(n, n)``.
    setup_seconds : float
        Wall time of the set-up (factorization / hierarchy), seconds.
    solve_seconds : float
        Wall time of all solves so far, seconds.
    n_solves : int
        Number of right-hand-side columns solved so far (forward and transposed).
    accuracy : float
        Relative error to expect of a solve, ``|x - A^-1 b| / |A^-1 b|`` (in the energy norm for
        AMG-CG); verification code sets its tolerances from it (``docs/linear_solvers.md``,
        "Accuracy").
    """

    accuracy: float

    def __init__(self, matrix, solver):
        matrix = as_square_matrix(matrix)
        self.solver = solver
        self.shape = matrix.shape
        self.solve_seconds = 0.0
        self.n_solves = 0
        start = time.perf_counter()
        self._setup(matrix)
        self.setup_seconds = time.perf_counter() - start

    def solve(self, b) -> np.ndarray:
        """``A^-1 b`` for ``b`` of shape ``(n,)`` or ``(n, k)``; float64, the shape of ``b``."""
        return self._solve(b, transpose=False)

    def solve_transpose(self, b) -> np.ndarray:
        """``A^-T b`` for ``b`` of shape ``(n,)`` or ``(n, k)``; float64, the shape of ``b``."""
        return self._solve(b, transpose=True)

    def _solve(self, b, transpose: bool) -> np.ndarray:
        b = check_finite(as_float_array(b, "b", dtype=np.float64), "b")
        n = self.shape[0]
        if b.ndim not in (1, 2) or b.shape[0] != n:
            raise ValueError(
                f"b must have shape ({n},) or ({n}, k) to match the {n}x{n} matrix, got {b.shape}"
            )
        columns = b.reshape(n, -1)
        start = time.perf_counter()
        x = self._solve_columns(columns, transpose)
        self.solve_seconds += time.perf_counter() - start
        self.n_solves += columns.shape[1]
        return x.reshape(b.shape)

    @abstractmethod
    def _setup(self, matrix: sp.csr_array) -> None:
        """Do the set-up for ``matrix`` (canonical float64 CSR, shape ``(n, n)``)."""

    @abstractmethod
    def _solve_columns(self, b: np.ndarray, transpose: bool) -> np.ndarray:
        """Solve for the columns of ``b``, shape ``(n, k)``; return ``(n, k)`` float64."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n={self.shape[0]}, solver={self.solver!r}, "
                f"setup {self.setup_seconds:.3g} s, {self.n_solves} solves)")


class LinearSolver(Protocol):
    """Options of a solver; ``factorize`` does the set-up for one matrix."""

    @property
    def name(self) -> str:
        """The name :func:`~pdecontrol.linear_solvers.solver_by_name` knows it by."""

    def factorize(self, matrix) -> Factorization:
        """Set up for the square matrix ``matrix`` (sparse or dense, ``(n, n)``)."""
