"""Reduced functionals built from others: weighted sums and affine changes of variables.

Multilevel (resolution-consistent) training adds the loss of a Galerkin-restricted network,
a linear map of the same parameters, at a coarser level:
``SumFunctional([J_fine, TransformedFunctional(J_coarse, A)])``.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from .._validation import as_float_array, check_finite
from ..functional import ReducedFunctional

__all__ = ["SumFunctional", "TransformedFunctional"]


class SumFunctional(ReducedFunctional):
    """``J(x) = sum_i a_i J_i(x)`` for functionals of one common parameter vector.

    Parameters
    ----------
    functionals : sequence of ReducedFunctional
        All of the same :attr:`size`. Their inner-product weights must agree; the sum uses them.
    coefficients : sequence of float, optional
        ``a_i >= 0`` (default all 1), so the Gauss-Newton operator stays PSD.

    Notes
    -----
    ``examples`` is passed on to every term; that needs all terms to have the same
    :attr:`n_examples` (e.g. one example set seen at two resolutions), otherwise pass ``None``.
    """

    def __init__(self, functionals, coefficients=None):
        self.functionals = tuple(functionals)
        if not self.functionals:
            raise ValueError("functionals must not be empty")
        for j in self.functionals:
            if not isinstance(j, ReducedFunctional):
                raise TypeError("functionals must be ReducedFunctional objects, got "
                                f"{type(j).__name__}")
        sizes = {j.size for j in self.functionals}
        if len(sizes) != 1:
            raise ValueError(f"all functionals must have the same size, got sizes {sorted(sizes)}")
        if coefficients is None:
            coefficients = np.ones(len(self.functionals))
        coefficients = check_finite(as_float_array(coefficients, "coefficients", dtype=np.float64),
                                    "coefficients")
        if coefficients.shape != (len(self.functionals),) or np.any(coefficients < 0):
            raise ValueError(f"coefficients must be {len(self.functionals)} numbers >= 0, "
                             f"got {coefficients}")
        self.coefficients = coefficients
        first = self.functionals[0].weights
        if any(not np.array_equal(j.weights, first) for j in self.functionals[1:]):
            raise ValueError("all functionals must use the same inner-product weights; wrap the "
                             "odd one in a TransformedFunctional with the common weights")
        counts = {j.n_examples for j in self.functionals}
        self._n_examples = counts.pop() if len(counts) == 1 else None

    @property
    def size(self) -> int:
        return self.functionals[0].size

    @property
    def n_examples(self):
        return self._n_examples

    @property
    def weights(self) -> np.ndarray:
        return self.functionals[0].weights

    def value(self, x, examples=None) -> float:
        examples = self.check_examples(examples)
        return float(sum(a * j.value(x, examples)
                         for a, j in zip(self.coefficients, self.functionals, strict=True)))

    def value_and_gradient(self, x, examples=None):
        examples = self.check_examples(examples)
        total, gradient = 0.0, np.zeros(self.size)
        for a, j in zip(self.coefficients, self.functionals, strict=True):
            value, g = j.value_and_gradient(x, examples)
            total += a * value
            gradient += a * g
        return total, gradient

    def gauss_newton_operator(self, x, examples=None) -> LinearOperator:
        examples = self.check_examples(examples)
        operators = [j.gauss_newton_operator(x, examples) for j in self.functionals]

        def matvec(v):
            return sum(a * op.matvec(v) for a, op in zip(self.coefficients, operators, strict=True))

        return LinearOperator((self.size, self.size), matvec=matvec, rmatvec=matvec,
                              dtype=np.float64)


class TransformedFunctional(ReducedFunctional):
    """``J(A x + c)``: a functional composed with an affine map of its parameters.

    Parameters
    ----------
    functional : ReducedFunctional
        ``J`` of size ``m``.
    operator : LinearOperator, matrix or sparse matrix, shape (m, n)
        ``A``; its transpose is applied with ``rmatvec``.
    offset : ndarray, shape (m,), optional
        ``c`` (default 0).
    weights : ndarray, shape (n,), optional
        Inner-product weights of the new parameter vector (default ones).

    Notes
    -----
    Gradient ``A^T g(A x + c)``, Gauss-Newton ``A^T G(A x + c) A``.
    """

    def __init__(self, functional: ReducedFunctional, operator, offset=None, weights=None):
        if not isinstance(functional, ReducedFunctional):
            raise TypeError("functional must be a ReducedFunctional, got "
                            f"{type(functional).__name__}")
        self.functional = functional
        self.operator = aslinearoperator(operator)
        if self.operator.shape[0] != functional.size:
            raise ValueError(f"operator must have shape ({functional.size}, n) to map into the "
                             f"functional's parameters, got {self.operator.shape}")
        if offset is None:
            offset = np.zeros(functional.size)
        self.offset = check_finite(as_float_array(offset, "offset", dtype=np.float64), "offset")
        if self.offset.shape != (functional.size,):
            raise ValueError(f"offset must have shape ({functional.size},), "
                             f"got {self.offset.shape}")
        if weights is None:
            weights = np.ones(self.operator.shape[1])
        weights = check_finite(as_float_array(weights, "weights", dtype=np.float64), "weights")
        if weights.shape != (self.operator.shape[1],) or np.any(weights <= 0):
            raise ValueError(f"weights must be {self.operator.shape[1]} numbers > 0")
        self._weights = weights

    @property
    def size(self) -> int:
        return self.operator.shape[1]

    @property
    def n_examples(self):
        return self.functional.n_examples

    @property
    def weights(self) -> np.ndarray:
        return self._weights

    def _inner_point(self, x) -> np.ndarray:
        inner = self.operator.matvec(self.check_parameters(x))
        return np.asarray(inner, dtype=np.float64).reshape(-1) + self.offset

    def value(self, x, examples=None) -> float:
        return self.functional.value(self._inner_point(x), examples)

    def value_and_gradient(self, x, examples=None):
        value, g = self.functional.value_and_gradient(self._inner_point(x), examples)
        return value, np.asarray(self.operator.rmatvec(g), dtype=np.float64).reshape(-1)

    def gauss_newton_operator(self, x, examples=None) -> LinearOperator:
        inner = self.functional.gauss_newton_operator(self._inner_point(x), examples)

        def matvec(v):
            v = np.asarray(v, dtype=np.float64).reshape(-1)
            return np.asarray(self.operator.rmatvec(inner.matvec(self.operator.matvec(v))),
                              dtype=np.float64).reshape(-1)

        return LinearOperator((self.size, self.size), matvec=matvec, rmatvec=matvec,
                              dtype=np.float64)
