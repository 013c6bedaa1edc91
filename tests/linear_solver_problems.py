"""Variable-coefficient diffusion matrices for the linear-solver tests and benchmarks.

``A(m) = -div(exp(m) grad)`` by the 5-point (2D) / 7-point (3D) finite-volume stencil on the
``n^d`` interior nodes of the unit cube, ``h = 1/(n+1)``, zero Dirichlet values outside, face
coefficients the harmonic mean of ``exp(m)`` at the two nodes (the node's own value on a
boundary face). ``A = sum_axes D^T diag(k_faces) D`` is symmetric positive definite. Grid
functions are flattened in C order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter


def smooth_log_coefficient(rng, n: int, contrast: float, dim: int = 2,
                           correlation_length: float = 0.05) -> np.ndarray:
    """A smooth random ``m``, shape ``(n,) * dim``, scaled to ``[0, log(contrast)]`` exactly.

    White noise filtered by a Gaussian of width ``correlation_length`` (units of the domain).
    """
    h = 1.0 / (n + 1)
    field = gaussian_filter(rng.standard_normal((n,) * dim), correlation_length / h,
                            mode="reflect")
    field = (field - field.min()) / (field.max() - field.min())
    return np.log(contrast) * field


def diffusion_matrix(m: np.ndarray) -> sp.csr_array:
    """``-div(exp(m) grad)`` on the grid of ``m`` (shape ``(n,) * dim``), ``(n^dim, n^dim)`` CSR."""
    n, dim = m.shape[0], m.ndim
    h = 1.0 / (n + 1)
    k = np.exp(m)
    # difference operator from n nodes to the n + 1 faces of one axis (outside values are zero)
    difference = sp.diags_array([-np.ones(n), np.ones(n)], offsets=[-1, 0], shape=(n + 1, n)) / h
    identity = sp.identity(n, format="csr")
    matrix = sp.csr_array((n ** dim, n ** dim))
    for axis in range(dim):
        padded = np.concatenate([np.take(k, [0], axis), k, np.take(k, [n - 1], axis)], axis)
        left = np.take(padded, np.arange(n + 1), axis)
        right = np.take(padded, np.arange(1, n + 2), axis)
        faces = 2.0 * left * right / (left + right)
        factors = [identity] * dim
        factors[axis] = difference
        gradient = factors[0]
        for factor in factors[1:]:
            gradient = sp.kron(gradient, factor, format="csr")
        matrix = matrix + gradient.T @ sp.diags_array(faces.reshape(-1)) @ gradient
    return sp.csr_array(matrix)


def heat_step_matrix(m: np.ndarray, dt: float) -> sp.csr_array:
    """``I + dt A(m)``: the matrix of one backward-Euler step of ``du/dt = div(exp(m) grad u)``."""
    A = diffusion_matrix(m)
    return sp.csr_array(sp.identity(A.shape[0], format="csr") + dt * A)
