"""Variable-coefficient diffusion matrices for the linear-solver tests and benchmarks.

``A(m) = -div(exp(m) grad)`` of :class:`pdecontrol.diffusion.DiffusionOperator` on the unit box
(``n`` nodes per axis, zero Dirichlet values on the boundary, face coefficients the arithmetic
mean of ``exp(m)``): symmetric positive semi-definite, definite on the unknowns; ``I + dt A`` is
SPD. Grid functions are flattened in C order.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import gaussian_filter

from pdecontrol.diffusion import DiffusionOperator
from pdecontrol.mesh import Mesh


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
    """``-div(exp(m) grad)`` on the unit-box mesh of ``m``'s shape (``n`` nodes per axis):
    :class:`pdecontrol.diffusion.DiffusionOperator` (zero Dirichlet values; the rows and columns of
    boundary nodes are empty), as a CSR array."""
    return sp.csr_array(DiffusionOperator(Mesh(m.shape)).matrix(m))


def heat_step_matrix(m: np.ndarray, dt: float) -> sp.csr_array:
    """``I + dt A(m)``: the matrix of one backward-Euler step of ``du/dt = div(exp(m) grad u)``."""
    A = diffusion_matrix(m)
    return sp.csr_array(sp.identity(A.shape[0], format="csr") + dt * A)
