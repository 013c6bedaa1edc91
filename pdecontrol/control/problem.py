"""The one base class a user subclasses to define a time-dependent control problem.

The problem is, for a batch of examples (leading axis of every state),

    dy/dt = f(y, theta(t), static, t),   y(0) = y0(data, static),   z = output(y(T), static),

with objective ``loss(z, targets)`` averaged over the examples plus regularisation (added by
:class:`~pdecontrol.control.functional.ControlFunctional`). ``theta(t)`` is the dict of control
blocks of the current step (constant over a step), ``static`` the dict of static blocks (see
:class:`~pdecontrol.control.parameters.ParameterLayout`).

Contract
--------
* Only :meth:`rhs`, :meth:`rhs_tangent` and :meth:`rhs_adjoint` are abstract. The initial state
  defaults to ``y0 = data`` and the output to ``z = y(T)`` flattened per example; override them
  (with their tangent and adjoint) when they depend on static parameters.
* Tangents take a direction for every argument and return the directional derivative.
  Adjoints take a cotangent of the result and return cotangents of the inputs as dicts; a block
  missing from a returned dict (or ``None``) means a zero cotangent, so controls a problem does
  not use get zero gradient. Control and static cotangents are summed over the batch
  (parameters are shared by all examples).
* Adjoints must be the exact transposes of the tangents (check with
  :func:`pdecontrol.verify.verify_problem`). Arrays passed in must not be modified.
* :meth:`linearize` may return a cache (anything) alongside ``f`` that the framework hands back
  to :meth:`rhs_tangent` / :meth:`rhs_adjoint` at the same point, e.g. the activation derivative,
  so it is computed once. The default returns ``None``; then ``cache`` is ``None``.
* States are arrays of shape ``(batch, *state_shape)`` in the functional's compute dtype
  (float64 or float32); parameter blocks arrive cast to that dtype.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..ops.elementwise import add_scaled
from .losses import LeastSquaresLoss, Loss

__all__ = ["ControlProblem"]


class ControlProblem(ABC):
    """Abstract time-dependent control problem ``dy/dt = f(y, theta(t), static, t)``.

    Parameters
    ----------
    loss : Loss, optional
        Misfit between outputs and targets; default a new :class:`LeastSquaresLoss`.
    """

    def __init__(self, loss: Loss | None = None):
        if loss is None:
            loss = LeastSquaresLoss()
        if not isinstance(loss, Loss):
            raise TypeError(f"loss must be a pdecontrol.control.Loss, got {type(loss).__name__}")
        self.loss = loss

    # ------------------------------------------------------------------ right-hand side
    @abstractmethod
    def rhs(self, y, control: dict, static: dict, t: float) -> np.ndarray:
        """``f(y, theta, static, t)``, same shape as ``y``."""

    @abstractmethod
    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None) -> np.ndarray:
        """``f_y dy + f_theta dcontrol + f_static dstatic`` at ``(y, control, static, t)``."""

    @abstractmethod
    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None) -> tuple:
        """Transpose of :meth:`rhs_tangent`: ``(y_bar, control_bar, static_bar)`` for ``f_bar``.

        ``y_bar`` has the shape of ``y``; ``control_bar`` / ``static_bar`` are dicts of
        batch-summed cotangents (missing blocks are zero).
        """

    def euler_step(self, y, control: dict, static: dict, t: float, dt: float) -> np.ndarray:
        """``y + dt f(y, theta, static, t)``: a forward-Euler step that keeps no linearisation
        (the forward Euler stepper's value-only sweeps call it). The default is :meth:`rhs`
        and one fused add; a problem with a fused pass may override it, and must then give
        these numbers bit for bit, as the linearised sweeps combine :meth:`linearize`'s
        ``f`` the default way (checked by :func:`pdecontrol.verify.verify_problem`)."""
        return add_scaled(y, dt, self.rhs(y, control, static, t))

    def linearize(self, y, control: dict, static: dict, t: float) -> tuple:
        """``(f, cache)``: the right-hand side and data reused by its tangent and adjoint."""
        return self.rhs(y, control, static, t), None

    def rhs_jacobian(self, control: dict, static: dict, t: float):
        """``L = df/dy`` as a ``scipy.sparse`` matrix on one example's flattened state, for a
        right-hand side affine in the state (``f = L y + g``); implicit steppers
        (:class:`~pdecontrol.control.implicit.ThetaMethod`) solve with ``I - theta dt L``.
        ``L`` must agree with :meth:`rhs_tangent` in ``dy`` (checked by
        :func:`pdecontrol.verify.verify_problem`)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no rhs_jacobian; implicit steppers need one (and a "
            "right-hand side affine in the state): implement it or use an explicit stepper")

    # ------------------------------------------------------------------ initial state
    def initial_state(self, data: np.ndarray, static: dict) -> np.ndarray:
        """``y0`` of shape ``(batch, *state_shape)``; default: the data itself."""
        return data

    def initial_state_tangent(self, data, static, dstatic) -> np.ndarray:
        """Derivative of :meth:`initial_state` along ``dstatic``; default zero."""
        return np.zeros_like(self.initial_state(data, static))

    def initial_state_adjoint(self, data, static, y0_bar) -> dict:
        """Transpose of :meth:`initial_state_tangent`: static cotangents (dict); default none."""
        return {}

    # ------------------------------------------------------------------ output
    def output(self, y_final: np.ndarray, static: dict) -> np.ndarray:
        """``z`` of shape ``(batch, n_outputs)``; default: the final state, flattened."""
        return y_final.reshape(y_final.shape[0], -1)

    def output_tangent(self, y_final, static, dy_final, dstatic) -> np.ndarray:
        """Derivative of :meth:`output` along ``(dy_final, dstatic)``."""
        return dy_final.reshape(dy_final.shape[0], -1)

    def output_adjoint(self, y_final, static, z_bar) -> tuple:
        """Transpose of :meth:`output_tangent`: ``(y_final_bar, static_bar)``."""
        return z_bar.reshape(y_final.shape), {}
