"""Curvature product of the softmax cross-entropy of a linear model over stored features (Numba).

For features ``f_l`` (rows of ``F``, shape ``(s, p)``), softmax probabilities ``p_l`` of the
outputs ``z_l = W f_l + c`` (rows of ``P``, ``(s, k)``), row weights ``w_l`` and a direction
``(V, v)`` (``(k, p)``, ``(k,)``), :func:`softmax_curvature_product` returns::

    sum_l u_l f_l^T  and  sum_l u_l,    u_l = w_l (diag(p_l) - p_l p_l^T) (V f_l + v)

the Hessian (= Gauss-Newton) product of ``sum_l CE(W f_l + c, t_l)`` in ``(W, c)`` along
``(V, v)``, with ``w_l = sum_k t_lk`` (1 for one-hot targets). NumPy needs two matrix products,
``F V^T`` and ``U^T F``, each streaming all of ``F`` from memory, and OpenBLAS runs such
skinny products (``k = 10``) far below its peak: 126 ms for ``s = 20,000, p = 6,272`` float32
on the 2-core development machine. The kernel reads each block of 8 rows once, keeps it in
cache for both products (8 dot products per loaded ``V`` element, 8 rows per update of the
accumulator): 70 ms (docs/speed.md).

Rows are summed in chunks of :data:`CHUNK_ROWS` (the parallel tasks), the chunk sums then in
order, so the result does not depend on the number of threads (both twins bitwise equal).
The products with ``F`` run in its dtype (float32 features: multiplied and summed in float32,
as BLAS's ``sgemm`` does), the ``k`` numbers of every row (``V f_l + v``, ``u_l``) and the ``c``
part in float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._dispatch import SERIAL_BELOW_MULTIPLY_ADDS, twin_kernel

__all__ = ["softmax_curvature_product", "CHUNK_ROWS"]

#: Rows per parallel task (its own ``(k, p)`` accumulator, which stays in the core's L2 cache).
CHUNK_ROWS = 2048


@njit(fastmath=True, cache=True, inline="always")
def _row_block(F, i, P, w, V, v, G, g, dz, u):
    """Add the 8 rows ``i .. i + 7`` to ``G`` (``(k, p)``) and ``g`` (``(k,)``)."""
    k, p = V.shape
    f0, f1, f2, f3, f4, f5, f6, f7 = F[i], F[i + 1], F[i + 2], F[i + 3], F[i + 4], F[i + 5], \
        F[i + 6], F[i + 7]
    zero = F.dtype.type(0)
    for j in range(k):  # dz = V f for 8 rows: every loaded V[j, q] serves 8 dot products
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = zero
        Vj = V[j]
        for q in range(p):
            e = Vj[q]
            a0 += f0[q] * e
            a1 += f1[q] * e
            a2 += f2[q] * e
            a3 += f3[q] * e
            a4 += f4[q] * e
            a5 += f5[q] * e
            a6 += f6[q] * e
            a7 += f7[q] * e
        dz[0, j], dz[1, j], dz[2, j], dz[3, j] = a0 + v[j], a1 + v[j], a2 + v[j], a3 + v[j]
        dz[4, j], dz[5, j], dz[6, j], dz[7, j] = a4 + v[j], a5 + v[j], a6 + v[j], a7 + v[j]
    for r in range(8):
        _softmax_hessian(P[i + r], w[i + r], dz[r], u[r], g)
    for j in range(k):  # G += u^T F for 8 rows: every update of G[j, q] adds 8 terms
        to = F.dtype.type
        w0, w1, w2, w3 = to(u[0, j]), to(u[1, j]), to(u[2, j]), to(u[3, j])
        w4, w5, w6, w7 = to(u[4, j]), to(u[5, j]), to(u[6, j]), to(u[7, j])
        Gj = G[j]
        for q in range(p):
            Gj[q] += (w0 * f0[q] + w1 * f1[q] + w2 * f2[q] + w3 * f3[q]
                      + w4 * f4[q] + w5 * f5[q] + w6 * f6[q] + w7 * f7[q])


@njit(fastmath=True, cache=True, inline="always")
def _softmax_hessian(prob, weight, dz, u, g):
    """``u = weight (diag(p) - p p^T) dz``; ``g += u``."""
    mean = 0.0
    for j in range(dz.size):
        mean += prob[j] * dz[j]
    for j in range(dz.size):
        u[j] = weight * prob[j] * (dz[j] - mean)
        g[j] += u[j]


@njit(fastmath=True, cache=True, inline="always")
def _single_row(F, i, P, w, V, v, G, g, dz, u):
    """Add row ``i`` to ``G`` and ``g`` (the rows after the last full block of 8)."""
    k, p = V.shape
    f = F[i]
    for j in range(k):
        acc = F.dtype.type(0)
        Vj = V[j]
        for q in range(p):
            acc += f[q] * Vj[q]
        dz[0, j] = acc + v[j]
    _softmax_hessian(P[i], w[i], dz[0], u[0], g)
    for j in range(k):
        weight = F.dtype.type(u[0, j])
        Gj = G[j]
        for q in range(p):
            Gj[q] += weight * f[q]


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, fastmath=True, cache=True)
def _chunk_sums(F, P, w, V, v, G, g):
    """``G[c], g[c]``: the sums over rows ``c * CHUNK_ROWS ...`` (one task per chunk)."""
    s = F.shape[0]
    k = V.shape[0]
    for c in prange(G.shape[0]):
        Gc, gc = G[c], g[c]
        Gc[:] = 0
        gc[:] = 0
        dz = np.empty((8, k))
        u = np.empty((8, k))
        stop = min(s, (c + 1) * CHUNK_ROWS)
        i = c * CHUNK_ROWS
        while i + 8 <= stop:
            _row_block(F, i, P, w, V, v, Gc, gc, dz, u)
            i += 8
        while i < stop:
            _single_row(F, i, P, w, V, v, Gc, gc, dz, u)
            i += 1


def softmax_curvature_product(features, probabilities, direction, bias_direction=None,
                              weights=None):
    """``(sum_l u_l f_l^T, sum_l u_l)`` with ``u_l = w_l (diag(p_l) - p_l p_l^T) (V f_l + v)``.

    Parameters
    ----------
    features : ndarray, shape (s, p), float32 or float64
        ``F``; the compute dtype.
    probabilities : array_like, shape (s, k)
        Softmax probabilities ``p_l`` of every row.
    direction : array_like, shape (k, p)
        ``V`` (cast to the compute dtype).
    bias_direction : array_like, shape (k,), optional
        ``v`` (default 0).
    weights : array_like, shape (s,), optional
        ``w_l`` (default 1).

    Returns
    -------
    W_part : ndarray, shape (k, p), compute dtype
    c_part : ndarray, shape (k,), float64
    """
    F = np.asarray(features)
    if F.ndim != 2 or F.dtype not in (np.float32, np.float64):
        raise ValueError(f"features must be a float32 or float64 array of shape (s, p), got "
                         f"dtype {F.dtype} shape {F.shape}")
    F = np.ascontiguousarray(F)
    P = np.ascontiguousarray(probabilities, dtype=np.float64)
    V = np.ascontiguousarray(direction, dtype=F.dtype)
    s, p = F.shape
    if P.ndim != 2 or P.shape[0] != s or V.shape != (P.shape[1], p):
        raise ValueError(f"features {F.shape} need probabilities of shape (s={s}, k) and a "
                         f"direction of shape (k, p={p}); got {P.shape} and {V.shape}")
    k = P.shape[1]
    v = np.zeros(k) if bias_direction is None else np.asarray(bias_direction, np.float64)
    w = np.ones(s) if weights is None else np.asarray(weights, np.float64)
    if v.shape != (k,) or w.shape != (s,):
        raise ValueError(f"bias_direction must have shape (k={k},) and weights (s={s},); got "
                         f"{v.shape} and {w.shape}")
    n_chunks = max(1, -(-s // CHUNK_ROWS))
    G = np.empty((n_chunks, k, p), dtype=F.dtype)
    g = np.empty((n_chunks, k))
    _chunk_sums.choose(2 * s * k * p, n_chunks)(F, P, w, V, v, G, g)
    return G.sum(axis=0), g.sum(axis=0)
