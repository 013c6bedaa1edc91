"""Numba-jitted batched convolutions, activations, fused residual steps, the fused
elementwise update of the time-steppers and the softmax curvature product of a linear model
over stored features (CPU, float32/64); the least-squares fit of a convolution's kernels.

Convention everywhere: correlation with zero "same" padding, 3-wide stencils, images of shape
``(N, C, *spatial)`` with 1, 2 or 3 spatial axes, kernels ``(C_out, C_in, 3, ..., 3)``.
See ``docs/operators.md`` for the API, conventions and measured performance.
"""

# first: sets Numba's CPU features (512-bit vectors) before any kernel below is decorated
from . import _codegen  # noqa: F401  # isort: skip
from ._dispatch import use_serial_kernels
from .activations import ACTIVATION_NAMES, SMOOTH_RELU_ETA, Activation, get_activation
from .conv import add_bias, bias_gradient, conv, conv_kernel_gradient, conv_transpose
from .elementwise import add_scaled
from .feature_products import feature_outputs, feature_pullback, softmax_curvature_product
from .kernel_fit import conv_least_squares
from .residual import (
    ResidualLinearization,
    residual_adjoint,
    residual_linearize,
    residual_step,
    residual_tangent,
)
from .threads import blas_threads, kernel_threads

__all__ = [
    "ACTIVATION_NAMES",
    "SMOOTH_RELU_ETA",
    "Activation",
    "get_activation",
    "conv",
    "conv_transpose",
    "conv_kernel_gradient",
    "conv_least_squares",
    "add_bias",
    "add_scaled",
    "bias_gradient",
    "ResidualLinearization",
    "residual_step",
    "residual_linearize",
    "residual_tangent",
    "residual_adjoint",
    "use_serial_kernels",
    "feature_outputs",
    "feature_pullback",
    "softmax_curvature_product",
    "blas_threads",
    "kernel_threads",
]
