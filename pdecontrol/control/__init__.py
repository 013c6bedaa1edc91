"""Control problems by subclassing, steppers with exact discrete derivatives, reduced functionals.

Define a problem by subclassing :class:`ControlProblem`, describe its parameters with a
:class:`ParameterLayout`, and build a :class:`ControlFunctional`: objective, gradient and
Gauss-Newton products follow. Check a new problem with :func:`pdecontrol.verify.verify_problem`.
"""
from .combinators import SumFunctional, TransformedFunctional
from .functional import ControlFunctional, ForwardResult
from .implicit import ThetaMethod, backward_euler, crank_nicolson
from .losses import LeastSquaresLoss, Loss, SoftmaxCrossEntropyLoss
from .parameters import ParameterLayout, Parameters, refine_in_time, time_interpolation_matrix
from .problem import ControlProblem
from .regularizers import GradientPenalty, QuadraticPenalty, Regularizer, Tikhonov, TimeSmoothness
from .timestepping import (
                           EXPLICIT_MIDPOINT,
                           FORWARD_EULER,
                           RK4,
                           RungeKutta,
                           Trajectory,
                           get_stepper,
                           integrate,
)

__all__ = [
    "ControlProblem", "ParameterLayout", "Parameters", "refine_in_time",
    "time_interpolation_matrix",
    "RungeKutta", "FORWARD_EULER", "EXPLICIT_MIDPOINT", "RK4", "Trajectory", "integrate",
    "get_stepper",
    "ThetaMethod", "backward_euler", "crank_nicolson",
    "Loss", "LeastSquaresLoss", "SoftmaxCrossEntropyLoss",
    "Regularizer", "Tikhonov", "TimeSmoothness", "QuadraticPenalty", "GradientPenalty",
    "ControlFunctional", "ForwardResult", "SumFunctional", "TransformedFunctional",
]
