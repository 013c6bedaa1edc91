"""Pointwise activations ``sigma`` with their derivatives, for the residual layers.

Three activations, chosen by name:

* ``"tanh"`` - ``sigma(a) = tanh(a)``, ``sigma'(a) = 1 - tanh(a)**2``.
* ``"relu"`` - ``sigma(a) = max(a, 0)``, ``sigma'(a) = 1 if a > 0 else 0`` (0 at the kink).
* ``"smooth_relu"`` - ReLU with its kink replaced by a quadratic on ``|a| < eta``
  (``eta = SMOOTH_RELU_ETA = 0.1``)::

      sigma(a) = 0                       for a <= -eta
               = (a + eta)**2 / (4 eta)  for |a| < eta
               = a                       for a >= eta

  It is C^1 (``sigma'`` is continuous, piecewise linear), so Taylor tests of order 2 pass.

Every activation is evaluated together with its derivative in one pass
(:meth:`Activation.value_and_derivative`); the fused residual kernels use the same scalar code.
In float32, ``tanh`` is a vectorisable rational approximation (the minimax form used by Eigen,
max. relative error 3e-7, i.e. a few float32 ulp); in float64 it is the libm ``tanh``.
Inputs are not checked for NaN (hot path); NaN propagates for tanh and compares as "not > 0"
for the ReLUs.
"""

from __future__ import annotations

import enum
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .._validation import as_float_array
from ._dispatch import SERIAL_BELOW_ELEMENTS, twin_kernel

__all__ = ["Activation", "ACTIVATION_NAMES", "SMOOTH_RELU_ETA", "get_activation"]

SMOOTH_RELU_ETA = 0.1

#: Names accepted by :func:`get_activation`.
ACTIVATION_NAMES = ("tanh", "relu", "smooth_relu")


class ActivationKind(enum.IntEnum):
    """Internal selector passed into jitted kernels (the public API uses names)."""

    TANH = 0
    RELU = 1
    SMOOTH_RELU = 2


# float32 coefficients of the rational tanh approximation (odd degree-13 / even degree-6).
_F32 = np.float32
_TANH_CLAMP = _F32(7.90531110763549805)
_TA1, _TA3, _TA5, _TA7 = (
    _F32(4.89352455891786e-03),
    _F32(6.37261928875436e-04),
    _F32(1.48572235717979e-05),
    _F32(5.12229709037114e-08),
)
_TA9, _TA11, _TA13 = (
    _F32(-8.60467152213735e-11),
    _F32(2.00018790482477e-13),
    _F32(-2.76076847742355e-16),
)
_TB0, _TB2, _TB4, _TB6 = (
    _F32(4.89352518554385e-03),
    _F32(2.26843463243900e-03),
    _F32(1.18534705686654e-04),
    _F32(1.19825839466702e-06),
)


def fast_tanh(a):
    """``tanh(a)``; in jitted code a vectorisable rational approximation for float32."""
    return math.tanh(a)


@overload(fast_tanh, inline="always")
def _fast_tanh_overload(a):
    if a == types.float32:

        def rational_tanh(a):
            x = min(max(a, -_TANH_CLAMP), _TANH_CLAMP)
            x2 = x * x
            num = (
                (((((_TA13 * x2 + _TA11) * x2 + _TA9) * x2 + _TA7) * x2 + _TA5) * x2 + _TA3) * x2
                + _TA1
            ) * x
            den = ((_TB6 * x2 + _TB4) * x2 + _TB2) * x2 + _TB0
            return num / den

        return rational_tanh
    return lambda a: math.tanh(a)


def constant_like(value, like):
    """``value`` converted to the scalar type of ``like`` (keeps float32 code in float32)."""
    return type(like)(value)


@overload(constant_like)
def _constant_like_overload(value, like):
    if like == types.float32:
        return lambda value, like: np.float32(value)
    return lambda value, like: np.float64(value)


@njit(cache=True, error_model="numpy", inline="always")
def activate(kind, a):
    """Scalar ``(sigma(a), sigma'(a))`` for the activation ``kind`` (an :class:`ActivationKind`).

    The result has the type of ``a`` (no upcast of float32).
    """
    zero = constant_like(0.0, a)
    one = constant_like(1.0, a)
    if kind == ActivationKind.TANH:
        s = fast_tanh(a)
        return s, one - s * s
    if kind == ActivationKind.RELU:
        if a > zero:
            return a, one
        return zero, zero
    eta = constant_like(SMOOTH_RELU_ETA, a)
    if a >= eta:
        return a, one
    if a <= -eta:
        return zero, zero
    shifted = a + eta
    return shifted * shifted / (constant_like(4.0, a) * eta), shifted / (
        constant_like(2.0, a) * eta
    )


@twin_kernel(SERIAL_BELOW_ELEMENTS, cache=True, error_model="numpy", fastmath={"contract"})
def _activate_array(kind, a, value, derivative, want_value, want_derivative):
    """Fill flat ``value`` / ``derivative`` with sigma(a), sigma'(a) (each only if wanted).

    Serial twin below :data:`~._dispatch.SERIAL_BELOW_ELEMENTS` elements (identical results).
    """
    for i in prange(a.size):
        s, ds = activate(kind, a[i])
        if want_value:
            value[i] = s
        if want_derivative:
            derivative[i] = ds


class Activation:
    """A pointwise activation: ``act(a)``, ``act.derivative(a)``, ``act.value_and_derivative(a)``.

    Obtain one with :func:`get_activation`; arrays of any shape, float32 or float64 (dtype
    preserved; other numeric input becomes float64).
    """

    __slots__ = ("name", "kind")

    def __init__(self, name: str):
        if name not in ACTIVATION_NAMES:
            raise ValueError(f"activation must be one of {ACTIVATION_NAMES}, got {name!r}")
        self.name = name
        self.kind = ActivationKind[name.upper()]

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Activation) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def _evaluate(self, a, want_value: bool, want_derivative: bool):
        a = np.ascontiguousarray(as_float_array(a, "a"))
        value = np.empty_like(a)
        derivative = np.empty_like(a)
        _activate_array.choose(a.size)(
            int(self.kind),
            a.reshape(-1),
            value.reshape(-1),
            derivative.reshape(-1),
            want_value,
            want_derivative,
        )
        return value, derivative

    def __call__(self, a) -> np.ndarray:
        """``sigma(a)``, same shape and dtype as ``a``."""
        return self._evaluate(a, True, False)[0]

    def derivative(self, a) -> np.ndarray:
        """``sigma'(a)``, same shape and dtype as ``a``."""
        return self._evaluate(a, False, True)[1]

    def value_and_derivative(self, a) -> tuple[np.ndarray, np.ndarray]:
        """``(sigma(a), sigma'(a))`` from one pass over ``a``."""
        return self._evaluate(a, True, True)


def get_activation(activation) -> Activation:
    """The :class:`Activation` named ``activation`` (one of :data:`ACTIVATION_NAMES`).

    An :class:`Activation` is returned unchanged.
    """
    if isinstance(activation, Activation):
        return activation
    if not isinstance(activation, str):
        raise TypeError(
            f"activation must be a name {ACTIVATION_NAMES} or an Activation, "
            f"got {type(activation).__name__}"
        )
    return Activation(activation)
