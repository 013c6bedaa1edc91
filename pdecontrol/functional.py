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

Observers
---------
Every evaluation of every subclass (``value``, ``value_and_gradient``, ``gradient``,
``gauss_newton_operator`` and each product of the operator it returns) is announced to the
observers attached with :meth:`ReducedFunctional.observe`, before and after it runs, as an
:class:`Evaluation` (pyadjoint's pre/post callbacks). An evaluation counts once: calls a
functional makes on *itself* while evaluating (the default ``value`` calling
``value_and_gradient``, a subclass calling ``super()``) are not announced again; evaluations of
*other* functionals it calls (the terms of a sum, the full functional behind a restricted one)
are announced to their own observers. Optimisers count their evaluations this way, and
:class:`pdecontrol.continuation.WorkMeter` adds up the work of a run.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.sparse.linalg import LinearOperator

from ._validation import as_float_array, check_finite

__all__ = ["ReducedFunctional", "Evaluation", "EVALUATION_KINDS"]

#: Kinds of :class:`Evaluation`: ``"gradient"`` is ``value_and_gradient`` or ``gradient``;
#: ``"gauss_newton_operator"`` is building the operator (its linearisation point),
#: ``"gauss_newton_product"`` one product ``G v`` with an operator built while observed.
EVALUATION_KINDS = ("value", "gradient", "gauss_newton_operator", "gauss_newton_product")

#: Evaluation kind announced by each observed method.
_OBSERVED_METHODS = {
    "value": "value",
    "value_and_gradient": "gradient",
    "gradient": "gradient",
    "gauss_newton_operator": "gauss_newton_operator",
}


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a reduced functional, as announced to its observers.

    Attributes
    ----------
    kind : str
        One of :data:`EVALUATION_KINDS`.
    functional : ReducedFunctional
        The functional evaluated.
    examples : ndarray or None
        The example subset of the call (``None``: all examples).
    """

    kind: str
    functional: ReducedFunctional
    examples: object = None

    @property
    def n_examples(self) -> int | None:
        """Examples the evaluation covers (``None`` for a functional not separable over
        examples)."""
        if self.examples is not None:
            return int(np.size(self.examples))
        return self.functional.n_examples


def _announce(functional, observers, kind: str, examples, call):
    """Run ``call()`` between the observers' ``before`` and ``after`` for one evaluation."""
    evaluation = Evaluation(kind, functional, examples)
    for observer in observers:
        before = getattr(observer, "before", None)
        if before is not None:
            before(evaluation)
    result = call()
    for observer in observers:
        after = getattr(observer, "after", None)
        if after is not None:
            after(evaluation)
    return result


def _observed(kind: str, method):
    """Wrap an evaluation method so that its outermost call is announced to the observers."""

    @functools.wraps(method)
    def wrapper(self, x, *args, **kwargs):
        state = self.__dict__
        observers = state.get("_observers")
        if not observers or state.get("_evaluating", False):
            return method(self, x, *args, **kwargs)
        examples = kwargs.get("examples", args[0] if args else None)
        state["_evaluating"] = True
        try:
            result = _announce(self, tuple(observers), kind, examples,
                               lambda: method(self, x, *args, **kwargs))
        finally:
            state["_evaluating"] = False
        if kind == "gauss_newton_operator":
            result = _observed_operator(self, result, examples)
        return result

    wrapper.__observed__ = True
    return wrapper


def _observed_operator(functional, operator, examples) -> LinearOperator:
    """``operator`` whose products are announced to the observers present at each product."""

    def matvec(v):
        observers = functional.__dict__.get("_observers")
        if not observers:
            return operator.matvec(v)
        return _announce(functional, tuple(observers), "gauss_newton_product", examples,
                         lambda: operator.matvec(v))

    return LinearOperator(operator.shape, matvec=matvec, rmatvec=matvec, dtype=operator.dtype)


class ReducedFunctional(ABC):
    """Abstract reduced functional ``J(x)`` with gradient and Gauss-Newton products.

    Subclasses implement :attr:`size`, :meth:`value_and_gradient` and
    :meth:`gauss_newton_operator`; everything else has a default built on those. Their
    evaluation methods are announced to observers automatically (see the module docstring).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, kind in _OBSERVED_METHODS.items():
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "__observed__", False):
                setattr(cls, name, _observed(kind, method))

    # ------------------------------------------------------------------ observers
    def observe(self, observer):
        """Attach ``observer``: an object with optional ``before(evaluation)`` and
        ``after(evaluation)`` methods (:class:`Evaluation`). Returns ``observer``."""
        if not (callable(getattr(observer, "before", None))
                or callable(getattr(observer, "after", None))):
            raise TypeError(f"an observer needs a before(evaluation) or after(evaluation) method, "
                            f"got {type(observer).__name__}")
        self.__dict__.setdefault("_observers", []).append(observer)
        return observer

    def unobserve(self, observer) -> None:
        """Detach ``observer`` (attached with :meth:`observe`)."""
        observers = self.__dict__.get("_observers", [])
        if observer not in observers:
            raise ValueError(f"{type(observer).__name__} is not observing this functional")
        observers.remove(observer)

    @contextmanager
    def observed(self, observer):
        """``with functional.observed(observer):`` attach for the block, detach after."""
        self.observe(observer)
        try:
            yield observer
        finally:
            self.unobserve(observer)

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
        """Riesz representer ``g / m`` of a dual vector (the steepest-descent direction is its
        negative)."""
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
            raise ValueError(f"{type(self).__name__} is not separable over examples; "
                             "pass examples=None")
        idx = np.asarray(examples)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("examples must be a 1-D integer index array, "
                             f"got {idx.dtype} shape {idx.shape}")
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


for _name, _kind in _OBSERVED_METHODS.items():
    if _name in ReducedFunctional.__dict__ and not getattr(ReducedFunctional.__dict__[_name],
                                                           "__isabstractmethod__", False):
        setattr(ReducedFunctional, _name, _observed(_kind, ReducedFunctional.__dict__[_name]))
