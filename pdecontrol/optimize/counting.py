"""A transparent wrapper that counts evaluations of a reduced functional."""

from __future__ import annotations

from scipy.sparse.linalg import LinearOperator

from ..functional import ReducedFunctional
from ._checks import check_functional

__all__ = ["CountingFunctional"]


#: Counter attribute of :class:`CountingFunctional` by kind of evaluation (see ``record``).
_COUNTERS = {
    "value": "n_value",
    "gradient": "n_gradient",
    "gauss_newton_operator": "n_gauss_newton_operators",
    "gauss_newton_product": "n_gauss_newton_products",
}


class CountingFunctional(ReducedFunctional):
    """Delegates every call to ``functional`` and counts them.

    Every evaluation passes through :meth:`record` first; a subclass that needs more than the
    counts (work estimates, a log of the example subsets) overrides it and calls
    ``super().record``, and inherits the delegation.

    Attributes
    ----------
    n_value, n_gradient : int
        Calls of :meth:`value` and of :meth:`value_and_gradient` / :meth:`gradient`.
    n_gauss_newton_operators, n_gauss_newton_products : int
        Gauss-Newton operators built and products ``G v`` applied through them.
    """

    def __init__(self, functional: ReducedFunctional):
        check_functional(functional)
        self.functional = functional
        self.n_value = 0
        self.n_gradient = 0
        self.n_gauss_newton_operators = 0
        self.n_gauss_newton_products = 0

    def counts(self) -> dict:
        """Current counts, keyed by the history column names."""
        return {
            "n_value_evaluations": self.n_value,
            "n_gradient_evaluations": self.n_gradient,
            "n_gauss_newton_products": self.n_gauss_newton_products,
        }

    def record(self, kind: str, examples) -> None:
        """Count one evaluation; called before every delegated evaluation.

        Parameters
        ----------
        kind : {"value", "gradient", "gauss_newton_operator", "gauss_newton_product"}
            What is evaluated (``"gradient"``: value and gradient, or gradient alone).
        examples : index array or None
            The example subset of the call (``None``: all examples).
        """
        counter = _COUNTERS[kind]
        setattr(self, counter, getattr(self, counter) + 1)

    @property
    def size(self) -> int:
        return self.functional.size

    @property
    def n_examples(self):
        return self.functional.n_examples

    @property
    def weights(self):
        return self.functional.weights

    def value(self, x, examples=None):
        self.record("value", examples)
        return self.functional.value(x, examples)

    def value_and_gradient(self, x, examples=None):
        self.record("gradient", examples)
        return self.functional.value_and_gradient(x, examples)

    def gradient(self, x, examples=None):
        self.record("gradient", examples)
        return self.functional.gradient(x, examples)

    def gauss_newton_operator(self, x, examples=None) -> LinearOperator:
        self.record("gauss_newton_operator", examples)
        operator = self.functional.gauss_newton_operator(x, examples)

        def matvec(v):
            self.record("gauss_newton_product", examples)
            return operator.matvec(v)

        return LinearOperator(operator.shape, matvec=matvec, rmatvec=matvec, dtype=operator.dtype)

    def inner(self, u, v):
        return self.functional.inner(u, v)

    def norm(self, u):
        return self.functional.norm(u)

    def riesz(self, g):
        return self.functional.riesz(g)

    def dual_norm(self, g):
        return self.functional.dual_norm(g)

    def check_examples(self, examples):
        return self.functional.check_examples(examples)
