"""A prolonged network's kernels fitted to reproduce the coarse network, layer by layer.

The kernel transfers of :mod:`problems.cnn.transfer` are fixed linear maps: Galerkin prolongation
keeps ``R K_h P = K_H``, but a 3-wide fine stencil cannot map an interpolated coarse state to the
interpolated coarse result (``K_h P y != P K_H y`` unless ``K_h`` is a multiple of the identity),
and through the nonlinear layers the difference grows: on MNIST (``fast``, cell-centred) a 14x14
network with 97.8% validation accuracy, Galerkin-prolonged, gave 71% on the 28x28 images with
its prolonged classifier, and 76% even on the interpolated 14x14 images (docs/speed.md).

:func:`fit_prolonged_kernels` uses the training images instead. With the biases kept, it fits
the fine opening kernels ``K0`` and then every residual layer's ``K`` in turn, by the ridge
regression :func:`pdecontrol.ops.conv_least_squares`, so that the fine network's pre-activation
on fine images matches the coarse network's on the same images restricted, interpolated to the
fine mesh (``P a_H``); every layer is fitted on the states of the fine layers already fitted,
so errors do not accumulate unseen. With the classifier prolonged so that ``z_h(y_h) =
z_H(R y_h)`` the fine network then classifies as the coarse one wherever ``R y_h`` follows
``y_H``. The ridge pulls towards the fixed transfer's kernels (``prolongation_fit_ridge``
relative to the mean square of a pre-activation per point).

Forward Euler layers only (``y <- y + dt sigma(K y + b)``, ``stepper="euler"``).
"""

from __future__ import annotations

import numpy as np

from pdecontrol.ops import conv, conv_least_squares

from .network import CNNProblem

__all__ = ["fit_prolonged_kernels", "fit_convolutions_per_example"]


def fit_convolutions_per_example(dim: int) -> int:
    """Fine ``C x C`` convolutions per fit example and layer (the work model of
    :mod:`problems.cnn.training`): the forward step (1), the tap images of the Gram matrix
    (``3^d``: ``C 3^d`` outputs from ``C`` inputs), its kernel gradient (``3^d``) and the
    right-hand side (1); 20 in 2D. The coarse network's forward steps are charged on its level.
    """
    return 2 + 2 * 3**dim


def _forward(activation, a):
    """``sigma(a)``, or ``a`` for a linear layer (``activation`` None)."""
    return a if activation is None else activation(a)


def fit_prolonged_kernels(
    coarse: CNNProblem,
    coarse_x,
    fine: CNNProblem,
    fine_x,
    coarse_images,
    fine_images,
    prolong_states,
    *,
    final_time: float,
    ridge: float,
) -> np.ndarray:
    """``fine_x`` with its kernels ``K0`` and ``K`` fitted to reproduce the network ``coarse_x``.

    Parameters
    ----------
    coarse, fine : CNNProblem
        The networks' problems on the two meshes (same channels and activations).
    coarse_x : ndarray
        Flat parameters of the coarse network (``n_steps`` layers).
    fine_x : ndarray
        Flat parameters of the same network moved to ``fine`` by a kernel transfer: the ridge's
        reference for the kernels; its biases and classifier are kept.
    coarse_images, fine_images : ndarray, shape (N, [C_in,] *spatial)
        The same ``N`` examples on the two meshes (the fine images restricted).
    prolong_states : callable
        ``(N, C, *coarse spatial) -> (N, C, *fine spatial)``: the mesh interpolation ``P``.
    final_time : float
        ``T``; the layers step ``dt = T / n_steps`` (forward Euler).
    ridge : float >= 0
        Weight of ``||K - K_transfer||^2`` against the mean square pre-activation misfit.

    Returns
    -------
    ndarray, float64
        The flat fine parameters with the fitted kernels.
    """
    n_steps = coarse.n_steps_of(coarse_x, "coarse_x")
    coarse_params = coarse.parameters(coarse_x, "coarse_x")
    if fine.n_steps_of(fine_x, "fine_x") != n_steps:
        raise ValueError(f"fine_x has {fine.n_steps_of(fine_x)} layers but coarse_x "
                         f"{n_steps}; give the same network on both meshes")
    fitted = fine.parameters(np.array(fine_x, dtype=np.float64), "fine_x")
    x_H = coarse.check_images(coarse_images, "coarse_images").astype(np.float64)
    x_h = fine.check_images(fine_images, "fine_images").astype(np.float64)
    if x_H.shape[0] != x_h.shape[0]:
        raise ValueError(f"coarse_images and fine_images must hold the same examples, got "
                         f"{x_H.shape[0]} and {x_h.shape[0]}")
    dt = float(final_time) / n_steps

    def fit(inputs, coarse_pre_activation, reference, bias):
        stencils = conv_least_squares(inputs, prolong_states(coarse_pre_activation), bias=bias,
                                      reference=fine.block_to_stencils(reference), ridge=ridge)
        return fine.stencils_to_block(stencils)

    b0 = coarse_params["b0"]
    a_H = conv(x_H, coarse.block_to_stencils(coarse_params["K0"]), b0)
    fitted["K0"][...] = fit(x_h, a_H, fitted["K0"], b0)
    y_H = _forward(coarse.opening_activation, a_H)
    y_h = _forward(fine.opening_activation, conv(x_h, fine.block_to_stencils(fitted["K0"]), b0))
    for layer in range(n_steps):
        b = coarse_params["b"][layer]
        a_H = conv(y_H, coarse.block_to_stencils(coarse_params["K"][layer]), b)
        fitted["K"][layer] = fit(y_h, a_H, fitted["K"][layer], b)
        a_h = conv(y_h, fine.block_to_stencils(fitted["K"][layer]), b)
        y_H = y_H + dt * _forward(coarse.activation, a_H)
        y_h = y_h + dt * _forward(fine.activation, a_h)
    return fitted.flat
