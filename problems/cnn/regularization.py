"""Regularisers of the CNN problem, built from :mod:`pdecontrol.control` regularisers.

* :func:`high_order_kernel_penalty` - a :class:`~pdecontrol.control.QuadraticPenalty` on the
  derivative-basis coefficients of order ``>= min_order`` of every kernel (``K`` and ``K0``),
  measured in units of a fixed reference length ``l`` so that it means the same at every level:

      R(K) = alpha/2 sum_kernels sum_{|m| >= min_order} beta_m^2,
      beta_m = l^-|m| alpha_m = (h / l)^|m| (B(1)^-1 s)_m,     alpha = B(h)^-1 s,

  with ``s`` the stencil weights and ``alpha`` the physical coefficients
  (:mod:`pdecontrol.stencils`). ``beta`` is the same number for the same differential operator on
  any mesh. On the level where ``h = l`` it is the plain unit-spacing coefficient; on a coarser
  level ``H = 2^k l`` an order-``|m|`` coefficient is weighted by ``2^(k |m|)``, exactly the factor
  by which the inverse Galerkin map (:func:`pdecontrol.transfer.prolong_stencil`) amplifies it
  when the kernel is prolonged to ``l``. So, with ``l`` the finest spacing, the penalty on a
  coarse network is (up to the non-orthogonality of the basis) the high-order norm of its
  kernels *after prolongation* to the finest mesh: it keeps prolonged kernels from blowing up
  (docs/method.md section 7). The default ``l`` is ``problem.reference_spacing`` (the spacing of the
  mesh the problem was first built on, kept by ``coarsen()``).
* :func:`time_smoothness` - :class:`~pdecontrol.control.TimeSmoothness` on ``K`` and ``b``.
* :func:`classifier_tikhonov` - :class:`~pdecontrol.control.Tikhonov` on ``W`` (block weight
  ``h^d``, so ``alpha/2 int W^2 dx``: mesh independent).
"""

from __future__ import annotations

import numbers

import numpy as np

from pdecontrol.control import QuadraticPenalty, Tikhonov, TimeSmoothness
from pdecontrol.stencils import derivative_basis, stencil_to_coefficients

from .network import CNNProblem, _per_axis_spacing

__all__ = [
    "high_order_kernel_penalty",
    "high_order_coefficient_matrix",
    "time_smoothness",
    "classifier_tikhonov",
]


def high_order_coefficient_matrix(
    problem: CNNProblem, min_order: int = 1, reference_spacing=None
) -> np.ndarray:
    """Matrix ``(n_rows, 3^d)``: kernel block entry -> ``beta_m`` for ``|m| >= min_order``.

    Rows in multi-index C order (only the selected orders). Acts on the problem's kernel blocks
    (stencils or derivative coefficients alike).
    """
    if not isinstance(problem, CNNProblem):
        raise TypeError(f"problem must be a CNNProblem, got {type(problem).__name__}")
    dim = problem.dim
    if (
        isinstance(min_order, bool)
        or not isinstance(min_order, numbers.Integral)
        or not 1 <= min_order <= 2 * dim
    ):
        raise ValueError(
            f"min_order must be an integer in [1, {2 * dim}] for {dim}D kernels, "
            f"got {min_order!r}"
        )
    reference = (
        problem.reference_spacing
        if reference_spacing is None
        else _per_axis_spacing(reference_spacing, dim, "reference_spacing")
    )
    multi_indices = np.array(derivative_basis(dim).multi_indices)
    scales = np.prod(np.array(reference) ** multi_indices, axis=1)  # l^|m|
    unit_stencils = np.eye(3**dim).reshape((3**dim,) + (3,) * dim)
    # column j: physical coefficients of unit stencil j, in units of l
    stencil_to_beta = (stencil_to_coefficients(unit_stencils, problem.mesh.h, dim) / scales).T
    keep = multi_indices.sum(axis=1) >= min_order
    return stencil_to_beta[keep] @ problem.kernel_matrix


def high_order_kernel_penalty(
    problem: CNNProblem,
    alpha: float,
    *,
    min_order: int = 1,
    reference_spacing=None,
    blocks=("K", "K0"),
) -> list:
    """``alpha/2 sum ||beta_{|m| >= min_order}||^2`` on every kernel of ``blocks`` (see module doc).

    Returns a list of :class:`~pdecontrol.control.QuadraticPenalty` (one per block), ready for
    the ``regularizers`` of :func:`~problems.cnn.network.cnn_functional`.
    """
    matrix = high_order_coefficient_matrix(problem, min_order, reference_spacing)
    unknown = [b for b in blocks if b not in ("K", "K0")]
    if unknown:
        raise ValueError(f"blocks must be kernel blocks 'K' and/or 'K0', got {unknown}")
    return [QuadraticPenalty(block, alpha, matrix) for block in blocks]


def time_smoothness(alpha: float, final_time: float, blocks=("K", "b")) -> list:
    """``TimeSmoothness``: ``alpha/2 int |d theta/dt|^2 dt`` on each control block."""
    return [TimeSmoothness(block, alpha, final_time) for block in blocks]


def classifier_tikhonov(alpha: float) -> Tikhonov:
    """``alpha/2 h^d ||W||^2 = alpha/2 int |W|^2 dx``: the ridge weight of the classifier."""
    return Tikhonov("W", alpha)
