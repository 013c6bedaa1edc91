"""Quadratic regularisers acting on one parameter block, with exact gradient and Hessian action.

Each regulariser is ``R(p) = alpha/2 * w * ||L (p_block - ref)||^2`` for a linear map ``L`` and
a scalar weight ``w`` (the block's inner-product weight of the layout, e.g. ``h**d`` for a grid
function, so that the penalty is a discrete integral; :class:`TimeSmoothness` divides it by
``dt``); so ``grad R = alpha w L^T L (p_block - ref)`` and ``H v = alpha w L^T L v``
(symmetric PSD). Gradients and Hessian actions are returned as ``{block: float64 array}``
(Euclidean derivatives, the same convention as :class:`pdecontrol.ReducedFunctional`).
"""
from __future__ import annotations

import numbers
from abc import ABC, abstractmethod

import numpy as np

from .._validation import as_float_array, check_finite, check_positive
from .parameters import ParameterLayout, Parameters

__all__ = ["Regularizer", "Tikhonov", "TimeSmoothness", "QuadraticPenalty", "GradientPenalty"]


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not np.isfinite(alpha) \
            or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


class Regularizer(ABC):
    """``alpha/2 * w * ||L (p[block] - ref)||^2`` on one block; subclasses define ``L``."""

    def __init__(self, block: str, alpha: float):
        if not isinstance(block, str):
            raise TypeError(f"block must be a block name (str), got {type(block).__name__}")
        self.block = block
        self.alpha = _check_alpha(alpha)

    # ------------------------------------------------------------------ the linear map
    @abstractmethod
    def _apply(self, u: np.ndarray, layout: ParameterLayout):
        """``L u`` for a block-shaped array (an array, or a list of arrays whose squared norms
        add up)."""

    @abstractmethod
    def _apply_transpose(self, r: np.ndarray, layout: ParameterLayout) -> np.ndarray:
        """``L^T r`` (block-shaped result)."""

    def _weight(self, layout: ParameterLayout) -> float:
        """Scalar weight ``w`` of the squared norm: the block's inner-product weight."""
        return layout.block_weights[self.block]

    def _reference(self, layout: ParameterLayout):
        return 0.0

    # ------------------------------------------------------------------ public
    def check_layout(self, layout: ParameterLayout) -> None:
        """Raise ``ValueError`` if this regulariser cannot act on ``layout``."""
        if self.block not in layout.shapes:
            raise ValueError(f"{type(self).__name__} acts on block {self.block!r}, which the "
                             f"layout does not have; blocks are {layout.names}")

    def _block(self, params: Parameters) -> np.ndarray:
        if not isinstance(params, Parameters):
            raise TypeError(f"params must be Parameters, got {type(params).__name__}")
        self.check_layout(params.layout)
        return params[self.block]

    def value(self, params: Parameters) -> float:
        """``R(p)``."""
        u = self._block(params) - self._reference(params.layout)
        r = self._apply(u, params.layout)
        parts = r if isinstance(r, list) else [r]
        return 0.5 * self.alpha * self._weight(params.layout) * float(
            sum(np.vdot(part, part) for part in parts))

    def gradient(self, params: Parameters) -> dict:
        """``{block: dR/dp_block}``."""
        u = self._block(params) - self._reference(params.layout)
        return {self.block: self.hessian_block(u, params.layout)}

    def hessian_product(self, params: Parameters, direction: Parameters) -> dict:
        """``{block: (H v)_block}`` for the direction ``v`` (independent of ``params``)."""
        self._block(params)
        return {self.block: self.hessian_block(self._block(direction), params.layout)}

    def hessian_block(self, v: np.ndarray, layout: ParameterLayout) -> np.ndarray:
        """``alpha w L^T L v`` for a block-shaped array ``v``."""
        lv = self._apply(np.asarray(v, dtype=np.float64), layout)
        return self.alpha * self._weight(layout) * self._apply_transpose(lv, layout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(block={self.block!r}, alpha={self.alpha:g})"


class Tikhonov(Regularizer):
    """``alpha/2 ||p[block] - reference||^2`` in the block's weighted inner product.

    Parameters
    ----------
    block : str
    alpha : float
        ``>= 0``.
    reference : float or ndarray, optional
        Scalar or array of the block's full shape (default 0).
    """

    def __init__(self, block: str, alpha: float, reference=0.0):
        super().__init__(block, alpha)
        self.reference = check_finite(as_float_array(reference, "reference", dtype=np.float64),
                                      "reference")

    def check_layout(self, layout):
        super().check_layout(layout)
        if self.reference.ndim and self.reference.shape != layout.shapes[self.block]:
            raise ValueError(f"Tikhonov reference for block {self.block!r} must be a scalar or "
                             f"have shape {layout.shapes[self.block]}, "
                             f"got {self.reference.shape}")

    def _reference(self, layout):
        return self.reference

    def _apply(self, u, layout):
        return u

    def _apply_transpose(self, r, layout):
        return r


class TimeSmoothness(Regularizer):
    """``alpha/2 sum_j dt ||(theta_{j+1} - theta_j)/dt||^2`` on a control block.

    ``dt = final_time / n_steps`` is taken from the layout at evaluation, so the same object
    stays valid after :func:`~pdecontrol.control.parameters.refine_in_time`. The norm uses the
    block weight.
    """

    def __init__(self, block: str, alpha: float, final_time: float):
        super().__init__(block, alpha)
        self.final_time = check_positive(final_time, "final_time")

    def check_layout(self, layout):
        super().check_layout(layout)
        if self.block not in layout.control_shapes:
            raise ValueError(f"TimeSmoothness needs a control block; {self.block!r} is static "
                             f"(controls are {list(layout.control_shapes)})")

    def _dt(self, layout):
        return self.final_time / layout.n_steps

    def _weight(self, layout):
        return layout.block_weights[self.block] / self._dt(layout)

    def _apply(self, u, layout):
        return np.diff(u, axis=0)

    def _apply_transpose(self, r, layout):
        out = np.zeros((r.shape[0] + 1,) + r.shape[1:])
        out[1:] += r
        out[:-1] -= r
        return out


class QuadraticPenalty(Regularizer):
    """``alpha/2 w ||B p[block]||^2`` with ``B`` a matrix acting on the block's trailing axes
    (``w`` the block weight).

    ``B`` has shape ``(m, q)``; ``q`` must equal the product of the last few axis lengths of the
    block (e.g. ``q = 9`` for the ``3 x 3`` axes of kernels ``(n_steps, C, C, 3, 3)``); it is
    applied to every leading index (batched). Example: ``B`` = the rows of the inverse stencil
    basis that give the high-order derivative coefficients, to penalise rough kernels.
    """

    def __init__(self, block: str, alpha: float, matrix):
        super().__init__(block, alpha)
        matrix = check_finite(as_float_array(matrix, "matrix", dtype=np.float64), "matrix")
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D (m, q), got shape {matrix.shape}")
        self.matrix = matrix

    def _n_axes(self, shape) -> int:
        q = self.matrix.shape[1]
        for n_axes in range(1, len(shape) + 1):
            if int(np.prod(shape[-n_axes:])) == q:
                return n_axes
        raise ValueError(f"matrix of shape {self.matrix.shape} acts on q={q} entries, but no "
                         f"trailing axes of block {self.block!r} (shape {shape}) have that many "
                         "entries")

    def check_layout(self, layout):
        super().check_layout(layout)
        self._n_axes(layout.shapes[self.block])

    def _apply(self, u, layout):
        shape = layout.shapes[self.block]
        lead = shape[:len(shape) - self._n_axes(shape)]
        return u.reshape(lead + (self.matrix.shape[1],)) @ self.matrix.T

    def _apply_transpose(self, r, layout):
        return (r @ self.matrix).reshape(layout.shapes[self.block])


class GradientPenalty(Regularizer):
    """``alpha/2 w sum_axes ||D_k p[block]||^2``: the H1 seminorm ``alpha/2 int |grad m|^2 dx`` of a
    grid function on a regular mesh (``w`` the block weight, e.g. the cell volume ``h**d``).

    ``D_k`` is the forward difference ``(p[i+1] - p[i]) / h_k`` along the k-th of the block's
    trailing ``len(spacing)`` axes, between nodes of the grid only (no values outside it: a
    constant field has no penalty, as with a natural, Neumann boundary). Leading axes of the
    block (e.g. steps of a control) are batched.

    Parameters
    ----------
    block : str
    alpha : float
        ``>= 0``.
    spacing : float or sequence of float
        Mesh spacing ``h`` per axis (its length is the number of spatial axes).
    """

    def __init__(self, block: str, alpha: float, spacing):
        super().__init__(block, alpha)
        spacing = check_finite(as_float_array(np.atleast_1d(spacing), "spacing",
                                              dtype=np.float64), "spacing")
        if spacing.ndim != 1 or not 1 <= spacing.size <= 3 or np.any(spacing <= 0):
            raise ValueError(f"spacing must hold 1 to 3 positive mesh spacings, got {spacing}")
        self.spacing = tuple(float(h) for h in spacing)

    def check_layout(self, layout):
        super().check_layout(layout)
        shape = layout.shapes[self.block]
        if len(shape) < len(self.spacing) or any(n < 2 for n in shape[-len(self.spacing):]):
            raise ValueError(f"GradientPenalty on {len(self.spacing)} axes needs a block whose "
                             f"last {len(self.spacing)} axes have >= 2 nodes, got {self.block!r} "
                             f"of shape {shape}")

    def _apply(self, u, layout):
        d = len(self.spacing)
        return [np.diff(u, axis=u.ndim - d + k) / h for k, h in enumerate(self.spacing)]

    def _apply_transpose(self, r, layout):
        shape = layout.shapes[self.block]
        d = len(self.spacing)
        out = np.zeros(shape)
        for k, (part, h) in enumerate(zip(r, self.spacing, strict=True)):
            axis = len(shape) - d + k
            lead = [slice(None)] * len(shape)
            lead[axis] = slice(1, None)
            out[tuple(lead)] += part / h
            lead[axis] = slice(None, -1)
            out[tuple(lead)] -= part / h
        return out

    def __repr__(self) -> str:
        return (f"GradientPenalty(block={self.block!r}, alpha={self.alpha:g}, "
                f"spacing={self.spacing})")
