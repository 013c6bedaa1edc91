"""Products of a linear model with stored features (Numba): outputs, pull-backs and the softmax
cross-entropy's curvature product.

For features ``f_l`` (rows of ``F``, shape ``(s, p)``) and a linear model ``z_l = W f_l + c``
(``W`` of shape ``(k, p)``, few outputs ``k``):

- :func:`feature_outputs` returns ``Z = F W^T + c`` (``(s, k)``), the model's outputs;
- :func:`feature_pullback` returns ``U^T F`` (``(k, p)``) for row weights ``U`` (``(s, k)``),
  the pull-back of output cotangents to ``W``;
- :func:`softmax_curvature_product` returns, for softmax probabilities ``p_l`` of the outputs
  (rows of ``P``), row weights ``w_l`` and a direction ``(V, v)``::

      sum_l u_l f_l^T  and  sum_l u_l,    u_l = w_l (diag(p_l) - p_l p_l^T) (V f_l + v)

  the Hessian (= Gauss-Newton) product of ``sum_l CE(W f_l + c, t_l)`` in ``(W, c)`` along
  ``(V, v)``, with ``w_l = sum_k t_lk`` (1 for one-hot targets), in one pass over ``F``.

Why not NumPy: OpenBLAS runs such skinny products (``k = 10``) far below its peak, the curvature
product needs two of them, each streaming all of ``F`` from memory (126 ms for ``s = 20,000,
p = 6,272`` float32 on the 2-core development machine against 51-53 ms here), and OpenBLAS's
threads spin after each call, slowing the Numba kernels that follow by up to half (a curvature
product right after ``F @ W.T``: 126 ms against 80 ms; docs/speed.md). The kernels read each
block of 8 rows once and keep it in cache: 8 dot products per loaded ``W`` element, 8 rows per
update of an accumulator, two accumulators ``G[j], G[j + 1]`` per pass over the block (0.75-0.85x
the time of a pullback with one, 0.85-0.9x of a curvature product; the same sums, bitwise).
They run fastest on features that start on a cache line (:func:`pdecontrol.memory.aligned_empty`;
58 against 81 ms for the curvature product above).

Sums over rows run in chunks of :data:`CHUNK_ROWS` (the parallel tasks), the chunk sums then in
order, so results do not depend on the number of threads (both twins bitwise equal). The
products with ``F`` run in its dtype (float32 features: multiplied and summed in float32, as
BLAS's ``sgemm`` does); the ``k`` numbers of every row (outputs, ``u_l``) and the ``c`` part
are float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..memory import aligned_empty
from ._dispatch import SERIAL_BELOW_MULTIPLY_ADDS, twin_kernel

__all__ = ["feature_outputs", "feature_pullback", "softmax_curvature_product", "CHUNK_ROWS"]

#: Rows per parallel task (its own ``(k, p)`` accumulator, which stays in the core's L2 cache).
CHUNK_ROWS = 2048

#: Rows of one block (held in cache for all ``k`` outputs).
_BLOCK = 8


@njit(fastmath=True, cache=True, inline="always")
def _block_outputs(F, i, V, v, dz):
    """``dz[r, j] = V[j] . F[i + r] + v[j]`` for the 8 rows ``i .. i + 7``."""
    k, p = V.shape
    f0, f1, f2, f3, f4, f5, f6, f7 = F[i], F[i + 1], F[i + 2], F[i + 3], F[i + 4], F[i + 5], \
        F[i + 6], F[i + 7]
    zero = F.dtype.type(0)
    for j in range(k):  # every loaded V[j, q] serves 8 dot products
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


@njit(fastmath=True, cache=True, inline="always")
def _block_weights(u, j, to):
    """The 8 rows' weights ``u[0 .. 7, j]`` cast by ``to``."""
    return (to(u[0, j]), to(u[1, j]), to(u[2, j]), to(u[3, j]), to(u[4, j]), to(u[5, j]),
            to(u[6, j]), to(u[7, j]))


@njit(fastmath=True, cache=True, inline="always")
def _block_accumulate(F, i, u, G):
    """``G[j] += sum_r u[r, j] F[i + r]`` for the 8 rows ``i .. i + 7`` (``u`` cast to ``F``'s
    dtype). Two outputs per pass over the rows: every loaded row element serves both."""
    k, p = G.shape
    f0, f1, f2, f3, f4, f5, f6, f7 = F[i], F[i + 1], F[i + 2], F[i + 3], F[i + 4], F[i + 5], \
        F[i + 6], F[i + 7]
    to = F.dtype.type
    for j in range(0, k - 1, 2):  # every update of G[j, q] adds 8 terms
        w0, w1, w2, w3, w4, w5, w6, w7 = _block_weights(u, j, to)
        x0, x1, x2, x3, x4, x5, x6, x7 = _block_weights(u, j + 1, to)
        Gj, Gn = G[j], G[j + 1]
        for q in range(p):
            Gj[q] += (w0 * f0[q] + w1 * f1[q] + w2 * f2[q] + w3 * f3[q]
                      + w4 * f4[q] + w5 * f5[q] + w6 * f6[q] + w7 * f7[q])
            Gn[q] += (x0 * f0[q] + x1 * f1[q] + x2 * f2[q] + x3 * f3[q]
                      + x4 * f4[q] + x5 * f5[q] + x6 * f6[q] + x7 * f7[q])
    if k % 2:
        w0, w1, w2, w3, w4, w5, w6, w7 = _block_weights(u, k - 1, to)
        Gj = G[k - 1]
        for q in range(p):
            Gj[q] += (w0 * f0[q] + w1 * f1[q] + w2 * f2[q] + w3 * f3[q]
                      + w4 * f4[q] + w5 * f5[q] + w6 * f6[q] + w7 * f7[q])


@njit(fastmath=True, cache=True, inline="always")
def _row_outputs(F, i, V, v, dz):
    """``dz[0, j] = V[j] . F[i] + v[j]`` (the rows after the last full block)."""
    k, p = V.shape
    f = F[i]
    for j in range(k):
        acc = F.dtype.type(0)
        Vj = V[j]
        for q in range(p):
            acc += f[q] * Vj[q]
        dz[0, j] = acc + v[j]


@njit(fastmath=True, cache=True, inline="always")
def _row_accumulate(F, i, u, G):
    """``G[j] += u[0, j] F[i]``."""
    k, p = G.shape
    f = F[i]
    for j in range(k):
        weight = F.dtype.type(u[0, j])
        Gj = G[j]
        for q in range(p):
            Gj[q] += weight * f[q]


@njit(fastmath=True, cache=True, inline="always")
def _softmax_hessian(prob, weight, dz, u, g):
    """``u = weight (diag(p) - p p^T) dz``; ``g += u``."""
    mean = 0.0
    for j in range(dz.size):
        mean += prob[j] * dz[j]
    for j in range(dz.size):
        u[j] = weight * prob[j] * (dz[j] - mean)
        g[j] += u[j]


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, fastmath=True, cache=True)
def _outputs_kernel(F, V, v, Z):
    """``Z = F V^T + v`` (one task per chunk of rows; every row on its own)."""
    s = F.shape[0]
    for c in prange(-(-s // CHUNK_ROWS)):
        stop = min(s, (c + 1) * CHUNK_ROWS)
        i = c * CHUNK_ROWS
        while i + _BLOCK <= stop:
            _block_outputs(F, i, V, v, Z[i:i + _BLOCK])
            i += _BLOCK
        while i < stop:
            _row_outputs(F, i, V, v, Z[i:i + 1])
            i += 1


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, fastmath=True, cache=True)
def _pullback_chunk_sums(F, U, G):
    """``G[c] = sum over the rows of chunk c of U[l]^T F[l]`` (one task per chunk)."""
    s = F.shape[0]
    for c in prange(G.shape[0]):
        Gc = G[c]
        Gc[:] = 0
        stop = min(s, (c + 1) * CHUNK_ROWS)
        i = c * CHUNK_ROWS
        while i + _BLOCK <= stop:
            _block_accumulate(F, i, U[i:i + _BLOCK], Gc)
            i += _BLOCK
        while i < stop:
            _row_accumulate(F, i, U[i:i + 1], Gc)
            i += 1


@twin_kernel(SERIAL_BELOW_MULTIPLY_ADDS, fastmath=True, cache=True)
def _chunk_sums(F, P, w, V, v, G, g):
    """``G[c], g[c]``: the curvature product's sums over rows ``c * CHUNK_ROWS ...`` (one task
    per chunk; each block of rows read once for both of its products)."""
    s = F.shape[0]
    k = V.shape[0]
    for c in prange(G.shape[0]):
        Gc, gc = G[c], g[c]
        Gc[:] = 0
        gc[:] = 0
        dz = np.empty((_BLOCK, k))
        u = np.empty((_BLOCK, k))
        stop = min(s, (c + 1) * CHUNK_ROWS)
        i = c * CHUNK_ROWS
        while i + _BLOCK <= stop:
            _block_outputs(F, i, V, v, dz)
            for r in range(_BLOCK):
                _softmax_hessian(P[i + r], w[i + r], dz[r], u[r], gc)
            _block_accumulate(F, i, u, Gc)
            i += _BLOCK
        while i < stop:
            _row_outputs(F, i, V, v, dz)
            _softmax_hessian(P[i], w[i], dz[0], u[0], gc)
            _row_accumulate(F, i, u, Gc)
            i += 1


def _check_features(features) -> np.ndarray:
    F = np.asarray(features)
    if F.ndim != 2 or F.dtype not in (np.float32, np.float64):
        raise ValueError(f"features must be a float32 or float64 array of shape (s, p), got "
                         f"dtype {F.dtype} shape {F.shape}")
    return np.ascontiguousarray(F)


def _check_rows(values, name: str, s: int, k: int | None = None) -> np.ndarray:
    """A float64 ``(s, k)`` array (``(s,)`` without ``k``), C-contiguous."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if values.shape[:1] != (s,) or (values.ndim != 2 if k is None else values.shape != (s, k)):
        expected = f"(s={s}, k)" if k is None else f"(s={s}, k={k})"
        raise ValueError(f"{name} must have shape {expected} for features of {s} rows; got "
                         f"{values.shape}")
    return values


def _check_model(weights, bias, name: str, bias_name: str, F) -> tuple:
    """``(V, v)``: weights ``(k, p)`` cast to ``F``'s dtype and a float64 bias ``(k,)`` (0)."""
    V = np.asarray(weights)
    if V.ndim != 2 or V.shape[1] != F.shape[1]:
        raise ValueError(f"{name} must have shape (k, p={F.shape[1]}) for features {F.shape}; "
                         f"got {V.shape}")
    V = np.ascontiguousarray(V, dtype=F.dtype)
    k = V.shape[0]
    v = np.zeros(k) if bias is None else np.asarray(bias, dtype=np.float64)
    if v.shape != (k,):
        raise ValueError(f"{bias_name} must have shape (k={k},); got {v.shape}")
    return V, v


def _chunks(s: int) -> int:
    return max(1, -(-s // CHUNK_ROWS))


def feature_outputs(features, weights, bias=None) -> np.ndarray:
    """``F W^T + c``: the outputs of the linear model on every row of ``F``.

    Parameters
    ----------
    features : ndarray, shape (s, p), float32 or float64
        ``F``; the compute dtype (``W`` is cast to it).
    weights : array_like, shape (k, p)
        ``W``.
    bias : array_like, shape (k,), optional
        ``c`` (default 0).

    Returns
    -------
    ndarray, shape (s, k), float64
    """
    F = _check_features(features)
    V, v = _check_model(weights, bias, "weights", "bias", F)
    s, p = F.shape
    Z = np.empty((s, V.shape[0]))
    _outputs_kernel.choose(s * V.shape[0] * p, _chunks(s))(F, V, v, Z)
    return Z


def feature_pullback(features, row_weights) -> np.ndarray:
    """``U^T F = sum_l u_l f_l^T``: output cotangents ``u_l`` pulled back to the weights.

    Parameters
    ----------
    features : ndarray, shape (s, p), float32 or float64
        ``F``; the compute dtype.
    row_weights : array_like, shape (s, k)
        ``U`` (float64; cast to the compute dtype for the products).

    Returns
    -------
    ndarray, shape (k, p), compute dtype
    """
    F = _check_features(features)
    s, p = F.shape
    U = _check_rows(row_weights, "row_weights", s)
    G = aligned_empty((_chunks(s), U.shape[1], p), F.dtype)
    _pullback_chunk_sums.choose(s * U.shape[1] * p, G.shape[0])(F, U, G)
    return G.sum(axis=0)


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
    F = _check_features(features)
    s, p = F.shape
    P = _check_rows(probabilities, "probabilities", s)
    k = P.shape[1]
    V, v = _check_model(direction, bias_direction, "direction", "bias_direction", F)
    if V.shape[0] != k:
        raise ValueError(f"direction must have shape (k={k}, p={p}) for probabilities of shape "
                         f"{P.shape}; got {V.shape}")
    w = np.ones(s) if weights is None else np.asarray(weights, np.float64)
    if w.shape != (s,):
        raise ValueError(f"weights must have shape (s={s},); got {w.shape}")
    n_chunks = _chunks(s)
    G = aligned_empty((n_chunks, k, p), F.dtype)
    g = np.empty((n_chunks, k))
    _chunk_sums.choose(2 * s * k * p, n_chunks)(F, P, w, V, v, G, g)
    return G.sum(axis=0), g.sum(axis=0)
