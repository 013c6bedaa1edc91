"""The reduced functional: the one interface between control problems and optimisers.

A reduced functional is ``J(x)`` for a flat parameter vector ``x`` (1-D float64 array of
length ``size``), with the state equation already eliminated. Optimisers in
:mod:`pdecontrol.optimize` only ever talk to this interface, so any subclass (a CNN, a
diffusion inversion, a textbook least-squares problem) can use every solver.

Conventions
-----------
* ``gradient`` is the Euclidean derivative ``dJ/dx`` (a dual vector).
* Parameters may carry diagonal *weights* ``m`` (e.g. the cell volume ``h**d`` for entries
  that are grid functions). They define the primal inner product ``<u, v> = sum(m u v)``; the
  Riesz representer of a gradient is ``g / m`` and its norm is the dual norm
  ``sqrt(sum(g**2 / m))``. With these, tolerances and gradient norms mean the same thing at
  every mesh resolution. Unit weights (the default) give the Euclidean case.
* ``examples`` selects a subset of the training examples (an integer index array) for
  problems whose misfit is an average over examples; ``None`` means all of them. Regularisation
  terms are always included in full.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ._validation import as_float_array, check_finite

__all__ = ["ReducedFunctional"]


class ReducedFunctional(ABC):
    """Abstract reduced functional ``J(x)`` with gradient and Gauss-Newton products.

    Subclasses implement :attr:`size`, :meth:`value_and_gradient` and
    :meth:`gauss_newton_operator`; everything else has a default built on those.
    """

    # ------------------------------------------------------------------ abstract
    @property
    @abstractmethod
    def size(self) -> int:
        """Length of the flat parameter vector."""

    @abstractmethod
    def value_and_gradient(self, x: np.ndarray, examples=None) -> tuple[float, np.ndarray]:
        """Return ``(J(x), dJ/dx(x))``; the gradient has shape ``(size,)``."""

    @abstractmethod
    def gauss_newton_operator(self, x: np.ndarray, examples=None) -> LinearOperator:
        """The (generalised) Gauss-Newton approximation ``G(x)`` of the Hessian of ``J``.

        ``G`` is symmetric positive semi-definite, shape ``(size, size)``, and maps a primal
        direction to a dual vector (same convention as :meth:`value_and_gradient`). The
        linearisation point is fixed when the operator is built, so many products reuse one
        forward solve.
        """

    # ------------------------------------------------------------------ defaults
    @property
    def n_examples(self) -> int | None:
        """Number of examples the misfit averages over, or ``None`` if it is not separable."""
        return None

    @property
    def weights(self) -> np.ndarray:
        """Diagonal weights ``m > 0`` of the primal inner product, shape ``(size,)``."""
        return np.ones(self.size)

    def value(self, x: np.ndarray, examples=None) -> float:
        """``J(x)``; subclasses may override with a cheaper forward-only evaluation."""
        return self.value_and_gradient(x, examples)[0]

    def gradient(self, x: np.ndarray, examples=None) -> np.ndarray:
        """``dJ/dx(x)``, shape ``(size,)``."""
        return self.value_and_gradient(x, examples)[1]

    def gauss_newton_product(self, x: np.ndarray, v: np.ndarray, examples=None) -> np.ndarray:
        """``G(x) v`` for one direction (builds the operator; prefer it for many products)."""
        return self.gauss_newton_operator(x, examples).matvec(v)

    def inner(self, u: np.ndarray, v: np.ndarray) -> float:
        """Weighted inner product of two primal vectors, ``sum(m * u * v)``."""
        return float(np.dot(self.weights * u, v))

    def norm(self, u: np.ndarray) -> float:
        """Weighted norm of a primal vector."""
        return float(np.sqrt(max(self.inner(u, u), 0.0)))

    def riesz(self, g: np.ndarray) -> np.ndarray:
        """Riesz representer ``g / m`` of a dual vector (the steepest-descent direction is its negative)."""
        return g / self.weights

    def dual_norm(self, g: np.ndarray) -> float:
        """Norm of a dual vector (e.g. a gradient), ``sqrt(sum(g**2 / m))``."""
        return float(np.sqrt(np.dot(g, g / self.weights)))

    def check_parameters(self, x, name: str = "x") -> np.ndarray:
        """Validate a flat parameter vector: 1-D, length :attr:`size`, finite; returns float64."""
        x = as_float_array(x, name, dtype=np.float64)
        if x.ndim != 1 or x.shape[0] != self.size:
            raise ValueError(
                f"{name} must be a flat vector of length {self.size}, got shape {x.shape}"
            )
        return check_finite(x, name)

    def check_examples(self, examples) -> np.ndarray | None:
        """Validate an example subset: ``None`` or unique integer indices in range."""
        if examples is None:
            return None
        n = self.n_examples
        if n is None:
            raise ValueError(f"{type(self).__name__} is not separable over examples; pass examples=None")
        idx = np.asarray(examples)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"examples must be a 1-D integer index array, got {idx.dtype} shape {idx.shape}")
        if idx.size == 0:
            raise ValueError("examples must not be empty")
        if idx.min() < 0 or idx.max() >= n:
            raise ValueError(f"examples must lie in [0, {n}), got range [{idx.min()}, {idx.max()}]")
        return idx

    def to_scipy(self, examples=None) -> dict:
        """Keyword arguments for :func:`scipy.optimize.minimize`: ``fun``, ``jac`` and ``hessp``.

        ``hessp`` is the Gauss-Newton product, so ``method='trust-ncg'`` or ``'Newton-CG'``
        run Gauss-Newton trust-region / line-search methods on this functional.
        """
        return {
            "fun": lambda x: self.value(x, examples),
            "jac": lambda x: self.gradient(x, examples),
            "hessp": lambda x, p: self.gauss_newton_product(x, p, examples),
        }
