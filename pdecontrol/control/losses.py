"""Misfit functions between outputs ``z`` and targets ``c``, summed over a batch.

Every loss acts on outputs of shape ``(batch, n_outputs)`` and returns **sums** over the batch
(so chunks of examples add up); :class:`~pdecontrol.control.functional.ControlFunctional`
divides by the number of examples ``s``. Computations are in float64 whatever the dtype of
``z`` (outputs are small); gradients and Hessian actions are float64 arrays shaped like ``z``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from .._validation import as_float_array, check_finite

__all__ = ["Loss", "LeastSquaresLoss", "SoftmaxCrossEntropyLoss"]


class Loss(ABC):
    """Per-example misfit ``l(z, c)`` with gradient and generalised Gauss-Newton Hessian action."""

    @abstractmethod
    def per_example(self, z: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``l(z_i, c_i)`` for every example, shape ``(batch,)``, float64."""

    @abstractmethod
    def gradient(self, z: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """``d/dz sum_i l(z_i, c_i)``, shape of ``z``."""

    @abstractmethod
    def hessian_product(self, z: np.ndarray, targets: np.ndarray, dz: np.ndarray) -> np.ndarray:
        """``(d^2/dz^2 sum_i l) dz``: symmetric positive semi-definite in ``dz``, shape of ``z``."""

    def value(self, z: np.ndarray, targets: np.ndarray) -> float:
        """``sum_i l(z_i, c_i)`` (not averaged)."""
        return float(np.sum(self.per_example(z, targets)))

    def check_targets(self, targets, name: str = "targets") -> np.ndarray:
        """Validate targets (numeric, finite, at least 1-D); returns a float64 array."""
        targets = check_finite(as_float_array(targets, name, dtype=np.float64), name)
        if targets.ndim < 1:
            raise ValueError(f"{name} must have a leading example axis, got a scalar")
        return targets

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _as_batch(z, targets):
    z = np.asarray(z, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if z.shape != targets.shape:
        raise ValueError(f"outputs z of shape {z.shape} and targets of shape {targets.shape} "
                         "must match; check the problem's output and the target array")
    return z, targets


class LeastSquaresLoss(Loss):
    """``l(z, c) = 1/2 sum_k w_k (z_k - c_k)^2``: unit weights by default (so the averaged misfit
    is ``1/(2s) sum ||z_l - c_l||^2``).

    Parameters
    ----------
    weights : float or array_like of shape (n_outputs,), optional
        Positive weight per output: e.g. the cell volume ``h**d`` for outputs that are a grid
        function (so the misfit is a discrete L2 norm, the same at every resolution), or
        ``1 / sigma**2`` for noisy observations.
    """

    def __init__(self, weights=None):
        if weights is not None:
            weights = check_finite(as_float_array(weights, "weights", dtype=np.float64), "weights")
            if weights.ndim > 1 or np.any(weights <= 0):
                raise ValueError(f"weights must be a positive number or a 1-D array of positive "
                                 f"numbers (one per output), got shape {weights.shape}")
            weights.flags.writeable = False
        self.weights = weights

    def _weighted(self, r):
        if self.weights is None:
            return r
        if self.weights.ndim and self.weights.shape[0] != r.shape[1]:
            raise ValueError(f"LeastSquaresLoss has {self.weights.shape[0]} weights, but the "
                             f"outputs have {r.shape[1]} entries per example")
        return self.weights * r

    def per_example(self, z, targets):
        z, targets = _as_batch(z, targets)
        r = (z - targets).reshape(z.shape[0], -1)
        return 0.5 * np.einsum("ij,ij->i", self._weighted(r), r)

    def gradient(self, z, targets):
        z, targets = _as_batch(z, targets)
        r = z - targets
        return r if self.weights is None else self._weighted(r.reshape(z.shape[0], -1)).reshape(
            z.shape)

    def hessian_product(self, z, targets, dz):
        dz = np.array(dz, dtype=np.float64)
        return dz if self.weights is None else self._weighted(dz.reshape(dz.shape[0], -1)).reshape(
            dz.shape)

    def __repr__(self) -> str:
        if self.weights is None:
            return "LeastSquaresLoss()"
        if self.weights.ndim == 0:
            return f"LeastSquaresLoss(weights={float(self.weights):g})"
        return (f"LeastSquaresLoss(weights=<{self.weights.size} values in "
                f"[{self.weights.min():g}, {self.weights.max():g}]>)")


class SoftmaxCrossEntropyLoss(Loss):
    """``l(z, c) = -sum_k c_k log softmax(z)_k = (sum_k c_k) logsumexp(z) - c . z``.

    ``z`` and ``c`` have shape ``(batch, n_classes)``; ``c`` are non-negative class weights
    (one-hot labels or probabilities). Evaluated stably (max-shifted log-sum-exp). The Hessian
    ``(sum c)(diag(p) - p p^T)`` with ``p = softmax(z)`` is exact and PSD.
    """

    @staticmethod
    def _softmax(z):
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        return e / total, shifted, total

    def probabilities(self, z) -> np.ndarray:
        """``softmax(z)`` row by row, shape ``(batch, n_classes)``."""
        return self._softmax(np.asarray(z, dtype=np.float64))[0]

    def check_targets(self, targets, name: str = "targets") -> np.ndarray:
        targets = super().check_targets(targets, name)
        if targets.ndim != 2:
            raise ValueError(f"{name} must have shape (n_examples, n_classes) for the softmax "
                             f"cross-entropy, got {targets.shape}; one-hot encode integer labels")
        if np.any(targets < 0):
            raise ValueError(f"{name} must be non-negative class weights "
                             "(one-hot or probabilities)")
        return targets

    def per_example(self, z, targets):
        z, targets = _as_batch(z, targets)
        _, shifted, total = self._softmax(z)
        log_softmax = shifted - np.log(total)
        return -np.einsum("ij,ij->i", targets, log_softmax)

    def gradient(self, z, targets):
        z, targets = _as_batch(z, targets)
        p = self._softmax(z)[0]
        return targets.sum(axis=1, keepdims=True) * p - targets

    def hessian_product(self, z, targets, dz):
        z, targets = _as_batch(z, targets)
        p = self._softmax(z)[0]
        dz = np.asarray(dz, dtype=np.float64)
        pdz = p * dz
        return targets.sum(axis=1, keepdims=True) * (pdz - p * pdz.sum(axis=1, keepdims=True))
