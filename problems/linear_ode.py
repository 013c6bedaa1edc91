"""Analytic test problem: the linear decay ODE ``dy/dt = -theta(t) * y`` (componentwise).

For a batch of examples with states ``y`` of shape ``(batch, n)``:

* control block ``theta`` of step shape ``(n,)`` (a decay rate per component and step),
* static block ``shift`` ``(n,)``: initial state ``y(0) = data + shift``,
* static block ``gain`` ``(n,)``: output ``z = gain * y(T)``,
* least-squares loss on the outputs.

With forward Euler, ``y_n = P * (data + shift)`` with ``P = prod_j (1 - dt theta_j)``, so the
discrete objective and its gradient have the closed form :func:`euler_objective_and_gradient`,
against which the framework is checked end to end.
"""
from __future__ import annotations

import numbers

import numpy as np

from pdecontrol.control import ControlProblem, LeastSquaresLoss, ParameterLayout

__all__ = ["LinearDecayProblem", "euler_objective_and_gradient"]


class LinearDecayProblem(ControlProblem):
    """``dy/dt = -theta(t) * y``, ``y(0) = data + shift``, ``z = gain * y(T)``, least squares.

    Parameters
    ----------
    n : int
        Number of state components per example.
    """

    def __init__(self, n: int):
        super().__init__(LeastSquaresLoss())
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n (state components per example) must be an integer >= 1, got {n!r}")
        self.n = int(n)

    def layout(self, n_steps: int) -> ParameterLayout:
        """Parameter layout with ``n_steps`` time steps."""
        return ParameterLayout(n_steps, controls={"theta": (self.n,)},
                               static={"shift": (self.n,), "gain": (self.n,)})

    def rhs(self, y, control, static, t):
        return -control["theta"] * y

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        return -dcontrol["theta"] * y - control["theta"] * dy

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        return -control["theta"] * f_bar, {"theta": -np.sum(f_bar * y, axis=0)}, {}

    def initial_state(self, data, static):
        return data + static["shift"]

    def initial_state_tangent(self, data, static, dstatic):
        return np.broadcast_to(dstatic["shift"], data.shape).copy()

    def initial_state_adjoint(self, data, static, y0_bar):
        return {"shift": y0_bar.sum(axis=0)}

    def output(self, y_final, static):
        return static["gain"] * y_final

    def output_tangent(self, y_final, static, dy_final, dstatic):
        return static["gain"] * dy_final + dstatic["gain"] * y_final

    def output_adjoint(self, y_final, static, z_bar):
        return static["gain"] * z_bar, {"gain": np.sum(z_bar * y_final, axis=0)}


def euler_objective_and_gradient(theta, shift, gain, data, targets, final_time):
    """Closed-form forward-Euler objective and gradient of :class:`LinearDecayProblem`.

    Parameters
    ----------
    theta : ndarray, shape (n_steps, n)
    shift, gain : ndarray, shape (n,)
    data, targets : ndarray, shape (s, n)
    final_time : float

    Returns
    -------
    value : float
        ``1/(2s) sum_l ||gain * P * (data_l + shift) - c_l||^2``, ``P = prod_j (1 - dt theta_j)``.
    gradient : dict
        ``{"theta": (n_steps, n), "shift": (n,), "gain": (n,)}``; ``dJ/dtheta_j`` uses the
        product over the other steps ``k != j`` (prefix and suffix products, no division).
    """
    theta = np.asarray(theta, dtype=np.float64)
    n_steps = theta.shape[0]
    dt = final_time / n_steps
    factors = 1.0 - dt * theta
    ones = np.ones((1, theta.shape[1]))
    before = np.cumprod(np.vstack([ones, factors[:-1]]), axis=0)
    after = np.cumprod(np.vstack([ones, factors[::-1][:-1]]), axis=0)[::-1]
    product = before[-1] * factors[-1]
    y0 = data + shift
    residual = gain * product * y0 - targets
    s = data.shape[0]
    value = 0.5 * np.sum(residual ** 2) / s
    weighted = np.sum(residual * gain * y0, axis=0) / s
    gradient = {
        "theta": -dt * before * after * weighted,
        "shift": np.sum(residual, axis=0) * gain * product / s,
        "gain": np.sum(residual * product * y0, axis=0) / s,
    }
    return value, gradient
