"""Coefficient inversion in the heat equation: recover the log-diffusivity ``m(x)`` of
``du/dt = div(exp(m) grad u) + q`` from noisy temperatures at several times.

* :mod:`~problems.heat.problem` - :class:`HeatEquation`, the state equation (a
  :class:`pdecontrol.control.ControlProblem` for implicit steppers);
* :mod:`~problems.heat.inversion` - :class:`HeatSettings`, :class:`HeatInversion` (a
  :class:`pdecontrol.continuation.ContinuationProblem`: synthetic truth and data, the objective
  per level, the prior preconditioner);
* :mod:`~problems.heat.cli` - ``pdecontrol heat invert`` and ``pdecontrol heat plot``.

Built only on :mod:`pdecontrol`; see ``docs/heat.md``.
"""

from .inversion import HEAT_COST, HeatInversion, HeatSettings, true_log_diffusivity
from .problem import HeatEquation

__all__ = ["HeatEquation", "HeatInversion", "HeatSettings", "true_log_diffusivity", "HEAT_COST"]
