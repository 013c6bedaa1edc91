"""Sparse LU (SciPy ``splu``, i.e. SuperLU): direct solves, forward and transposed."""
from __future__ import annotations

from dataclasses import dataclass

from scipy.sparse.linalg import splu

from .base import Factorization

__all__ = ["SparseLU", "LUFactorization"]

_ORDERINGS = ("COLAMD", "MMD_AT_PLUS_A", "MMD_ATA", "NATURAL")


@dataclass(frozen=True)
class SparseLU:
    """Sparse LU, ``Pr A Pc = L U``, of any non-singular square matrix (immutable options).

    ``solve_transpose`` reuses the same factors (SuperLU's ``trans="T"``).

    Parameters
    ----------
    permc_spec : str
        Column ordering: ``"COLAMD"`` (SciPy's default), ``"MMD_AT_PLUS_A"`` (often less fill
        for a symmetric pattern), ``"MMD_ATA"`` or ``"NATURAL"``.
    """

    permc_spec: str = "COLAMD"

    def __post_init__(self):
        if self.permc_spec not in _ORDERINGS:
            raise ValueError(f"permc_spec must be one of {_ORDERINGS}, got {self.permc_spec!r}")

    @property
    def name(self) -> str:
        """``"splu"``."""
        return "splu"

    def factorize(self, matrix) -> LUFactorization:
        """Factorize the square ``matrix`` (sparse or dense, ``(n, n)``)."""
        return LUFactorization(matrix, self)


class LUFactorization(Factorization):
    """The SuperLU factors of one matrix (see :class:`~pdecontrol.linear_solvers.Factorization`).

    ``accuracy`` is ``1e-13``: a direct solve is exact up to rounding, amplified by the
    condition of the matrix; on the heat steps of ``docs/linear_solvers.md`` (condition numbers
    up to about 1e10) the measured relative errors of solves and dot-product tests stay below it.
    """

    accuracy = 1e-13

    def _setup(self, matrix) -> None:
        try:
            self._lu = splu(matrix.tocsc(), permc_spec=self.solver.permc_spec)
        except RuntimeError as exc:  # SuperLU reports "Factor is exactly singular"
            raise ValueError(f"matrix is singular ({exc}); check how it was assembled") from exc

    def _solve_columns(self, b, transpose):
        return self._lu.solve(b, trans="T" if transpose else "N")
