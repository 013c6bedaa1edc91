"""The convex solve for the classifier ``(W, c)`` of a :class:`~problems.cnn.network.CNNProblem`.

With the least-squares loss the outputs ``z_l = h^d <W, y_l(T)> + c`` are linear in ``(W, c)``,
so for fixed kernels the training objective restricted to ``(W, c)`` is, per class ``k``
(``s`` examples, final states ``y_l``, one-hot targets ``t_l``)::

    1/(2s) sum_l (h^d <W_k, y_l> + c_k - t_lk)^2 + a_W/2 h^d ||W_k - R_Wk||^2 + a_c/2 (c_k - r_ck)^2

where the last two terms are the functional's :class:`~pdecontrol.control.Tikhonov` regularisers
on ``W`` (block weight ``h^d``) and ``c`` (if any; several on one block are summed). Multiplying
by ``s`` and writing ``W = R_W + u`` gives a ridge problem ``1/2 ||A u - b||^2 + beta/2 ||u||^2``
with ``beta = s a_W h^d`` and features ``f_l = h^d y_l``:

* ``c`` unregularised (``a_c = 0``): ``c`` is eliminated exactly by centring (``c_k`` = mean
  residual), ``A`` = centred features;
* ``a_c > 0``: ``c`` joins ``u`` as ``c = sqrt(beta / gamma) v`` (``gamma = s a_c``), so one
  ``beta`` regularises both, ``A = [F, sqrt(beta / gamma) 1]``.

Three solvers: ``"cg"`` (matrix-free, :func:`pdecontrol.optimize.regularized_least_squares`, warm
started from the current ``W``; memory = the features), ``"gram"`` (the dual form
``(A A^T + beta I) v = b``, ``u = A^T v``: an ``s x s`` Cholesky for all classes at once, exact;
for ``s`` smaller than the number of features) and ``"normal"`` (the primal normal equations
``(A^T A + beta I) u = A^T b``: a ``p x p`` Cholesky, exact; for more examples than features, where
CG would stream all features through memory hundreds of times). ``"auto"`` needs ``beta > 0`` for
the direct solves and then picks ``"gram"`` when ``s <= min(gram_max_examples, p)``, else
``"normal"`` when ``p <= normal_max_features``; otherwise ``"cg"``. Features are kept in the compute
dtype (float32: 4 bytes per entry, e.g. 40,000 x 8 x 28 x 28 = 1.0 GB) and multiplied in float64
in row blocks of ``block_size`` examples, so no float64 copy of the whole set is made.
"""

from __future__ import annotations

import zlib

import numpy as np
import scipy.linalg
import scipy.linalg.blas
from scipy.optimize import OptimizeResult
from scipy.sparse.linalg import LinearOperator

from pdecontrol._validation import check_int
from pdecontrol.control import ControlFunctional, LeastSquaresLoss, Tikhonov
from pdecontrol.memory import aligned_empty
from pdecontrol.ops import blas_threads, kernel_threads
from pdecontrol.optimize import regularized_least_squares

from .network import check_cnn_functional

__all__ = ["ClassifierSolver", "CLASSIFIER_METHODS", "curvature_rows_first", "final_features",
           "sample_examples", "classifier_indices"]

#: Solvers of :class:`ClassifierSolver`.
CLASSIFIER_METHODS = ("auto", "cg", "gram", "normal")


def _tikhonov_terms(functional, block: str):
    """``(alpha_total, reference)`` of the Tikhonov regularisers on ``block`` (others refused)."""
    total, weighted = 0.0, 0.0
    for reg in functional.regularizers:
        if reg.block != block:
            continue
        if not isinstance(reg, Tikhonov):
            raise ValueError(
                f"ClassifierSolver supports only Tikhonov regularisers on block {block!r}, "
                f"got {reg!r}; the block problem would not be a ridge problem"
            )
        total += reg.alpha
        weighted = weighted + reg.alpha * reg.reference
    reference = weighted / total if total > 0 else 0.0
    return total, np.broadcast_to(
        np.asarray(reference, dtype=np.float64), functional.layout.shapes[block]
    )


def classifier_indices(functional) -> np.ndarray:
    """Flat indices of the classifier block ``(W, c)`` in the functional's parameter vector."""
    slices = functional.layout.slices
    return np.r_[np.arange(slices["W"].start, slices["W"].stop),
                 np.arange(slices["c"].start, slices["c"].stop)]


def sample_examples(x, n_examples: int, sample_size, seed: int):
    """A random sample of ``sample_size`` of ``n_examples`` examples (sorted; ``None`` for all,
    when ``sample_size`` is ``None`` or not smaller), drawn by a generator seeded by ``seed`` and
    the CRC-32 of the parameters ``x``: a function of the point, so a resumed run draws what an
    uninterrupted one drew, with no generator state to save."""
    if sample_size is None or sample_size >= n_examples:
        return None
    rng = _point_generator(x, seed)
    return np.sort(rng.choice(n_examples, sample_size, replace=False))


def curvature_rows_first(x, examples, curvature_size, seed: int) -> np.ndarray:
    """``examples`` reordered so that a random ``curvature_size`` of them come first, each part
    sorted: the rows of a block's Hessian products on a sub-sample of its examples (a random
    sub-sample even when the examples are ordered by label). Drawn, like
    :func:`sample_examples`, by a generator seeded by ``seed`` and the parameters ``x`` (another
    stream of it); ``examples`` itself when ``curvature_size`` is not smaller."""
    examples = np.asarray(examples)
    if curvature_size >= examples.size:
        return examples
    first = np.zeros(examples.size, dtype=bool)
    first[_point_generator(x, seed, 1).choice(examples.size, curvature_size, replace=False)] = True
    return np.r_[examples[first], examples[~first]]


def _point_generator(x, seed: int, *stream) -> np.random.Generator:
    """A generator seeded by ``seed``, the CRC-32 of the parameters ``x`` and ``stream``."""
    crc = zlib.crc32(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    return np.random.default_rng([seed, crc, *stream])


def final_features(functional, x, examples=None, batch_size: int = 1000) -> np.ndarray:
    """The classifier's features ``f_l = h^d y_l(T)`` of ``examples`` (default all), flattened:
    shape ``(s, C * prod(mesh.shape))``, the functional's compute dtype; forward solves of
    ``batch_size`` examples at a time."""
    idx = np.arange(functional.n_examples) if examples is None else np.asarray(examples)
    problem = functional.problem
    # on a cache line: the classifier's products read these features 20 times or more
    out = aligned_empty((idx.size, problem.n_channels * problem.mesh.size), functional.dtype)
    h_d = functional.dtype.type(problem.mesh.cell_volume)
    for start in range(0, idx.size, batch_size):
        batch = idx[start : start + batch_size]
        states = functional.final_states(x, batch)
        np.multiply(states.reshape(batch.size, -1), h_d, out=out[start : start + batch.size])
    return out


class _Features:
    """``A`` of the ridge problem as float64 row-blocked products over stored features."""

    def __init__(self, features, centre: bool, bias_column: float, block_size: int):
        self.features = features  # (s, p), compute dtype
        self.block_size = block_size
        self.n_examples, self.n_features = features.shape
        self.mean = self._column_mean() if centre else None
        self.bias_column = bias_column  # 0: no extra column
        self.size = self.n_features + (1 if bias_column else 0)

    def _blocks(self):
        for start in range(0, self.n_examples, self.block_size):
            stop = min(start + self.block_size, self.n_examples)
            yield slice(start, stop), np.asarray(self.features[start:stop], dtype=np.float64)

    def _column_mean(self):
        total = np.zeros(self.features.shape[1])
        for _, block in self._blocks():
            total += block.sum(axis=0)
        return total / self.n_examples

    def matvec(self, u):
        """``A u`` for ``u`` of shape ``(size,)`` or ``(size, k)`` (k columns in one pass)."""
        u = np.asarray(u, dtype=np.float64)
        w = u[: self.n_features]
        out = np.empty((self.n_examples,) + u.shape[1:])
        for rows, block in self._blocks():
            out[rows] = block @ w
        if self.mean is not None:
            out -= self.mean @ w
        if self.bias_column:
            out += self.bias_column * u[-1]
        return out

    def rmatvec(self, v):
        """``A^T v`` for ``v`` of shape ``(s,)`` or ``(s, k)`` (k columns in one pass)."""
        v = np.asarray(v, dtype=np.float64)
        out = np.zeros((self.size,) + v.shape[1:])
        for rows, block in self._blocks():
            out[: self.n_features] += block.T @ v[rows]
        if self.mean is not None:
            out[: self.n_features] -= np.multiply.outer(self.mean, v.sum(axis=0))
        if self.bias_column:
            out[-1] = self.bias_column * v.sum(axis=0)
        return out

    def gram(self):
        """``A A^T`` (s x s, float64)."""
        gram = np.zeros((self.n_examples, self.n_examples))
        blocks = list(self._blocks())
        for rows_i, block_i in blocks:
            for rows_j, block_j in blocks:
                if rows_j.start >= rows_i.start:
                    gram[rows_i, rows_j] = block_i @ block_j.T
                    gram[rows_j, rows_i] = gram[rows_i, rows_j].T
        if self.mean is not None:
            row_mean = gram.mean(axis=1)
            gram += row_mean.mean() - row_mean[:, None] - row_mean[None, :]
        if self.bias_column:
            gram += self.bias_column**2
        return gram

    def normal(self):
        """``A^T A`` (size x size, float64), accumulated over row blocks by symmetric rank-k
        updates (BLAS ``syrk``: half the flops of a general product, no temporary)."""
        p = self.n_features
        features_normal = np.zeros((p, p), order="F")
        column_sum = np.zeros(p)
        for _, block in self._blocks():
            # block.T is Fortran-ordered: lower triangle of block.T @ block, updated in place
            features_normal = scipy.linalg.blas.dsyrk(
                1.0, block.T, beta=1.0, c=features_normal, lower=1, overwrite_c=1
            )
            column_sum += block.sum(axis=0)
        for start in range(0, p, self.block_size):  # mirror the lower triangle, by blocks
            stop = min(start + self.block_size, p)
            diagonal = features_normal[start:stop, start:stop]
            diagonal[...] = np.tril(diagonal) + np.tril(diagonal, -1).T
            features_normal[start:stop, stop:] = features_normal[stop:, start:stop].T
        if self.size == p:
            normal = features_normal
        else:
            normal = np.zeros((self.size, self.size))
            normal[:p, :p] = features_normal
        if self.mean is not None:
            # (F - 1 m^T)^T (F - 1 m^T) = F^T F - s m m^T  (m = column mean)
            normal[:p, :p] -= self.n_examples * np.outer(self.mean, self.mean)
        if self.bias_column:
            normal[:p, p] = normal[p, :p] = self.bias_column * column_sum
            normal[p, p] = self.bias_column**2 * self.n_examples
        return normal

    def operator(self) -> LinearOperator:
        return LinearOperator(
            (self.n_examples, self.size), matvec=self.matvec, rmatvec=self.rmatvec, dtype=np.float64
        )


class ClassifierSolver:
    """``solve_block`` for the classifier: ``x -> x`` with ``(W, c)`` minimising the functional.

    Usable as ``solve_block`` of :func:`pdecontrol.optimize.block_coordinate_descent` and
    :class:`pdecontrol.optimize.VariableProjection` (linear block: :attr:`indices`).

    Parameters
    ----------
    functional : ControlFunctional
        Built on a :class:`CNNProblem` with the least-squares loss (e.g. by
        :func:`~problems.cnn.network.cnn_functional`). Regularisers on ``W`` and ``c`` must be
        :class:`~pdecontrol.control.Tikhonov`; with a Tikhonov on ``c``, ``W`` needs one too.
    method : {"auto", "cg", "gram", "normal"}
        See the module docstring.
    examples : index array, optional
        Examples to fit on (default all: the whole training set). The minimised objective is the
        functional's on these examples.
    sample_size, seed : int, optional
        Instead of fixed ``examples``: fit on ``sample_size`` examples drawn afresh at every call
        (:func:`sample_examples`, seeded by ``seed`` and the parameters).
    rtol : float
        Relative residual of the CG solve (``"cg"``).
    maxiter : int, optional
        CG iteration cap per class (default: the number of unknowns).
    batch_size : int
        Examples per forward solve when collecting final states.
    block_size : int
        Rows per float64 block in the feature products.
    gram_max_examples : int
        Largest number of examples for which ``"auto"`` forms the ``s x s`` Gram matrix.
    normal_max_features : int
        Largest number of features for which ``"auto"`` forms the ``p x p`` normal matrix
        (``8 p^2`` bytes: 315 MB for 8 channels on 28 x 28).

    Attributes
    ----------
    last_result : scipy.optimize.OptimizeResult or None
        ``method``, ``fun`` (scaled block objective), ``nit``, ``status`` of the last solve.
    indices : ndarray of int
        Flat indices of ``W`` and ``c`` (the linear block).
    """

    def __init__(
        self,
        functional: ControlFunctional,
        *,
        method: str = "auto",
        examples=None,
        sample_size=None,
        seed: int = 0,
        rtol: float = 1e-10,
        maxiter=None,
        batch_size: int = 1000,
        block_size: int = 2048,
        gram_max_examples: int = 4000,
        normal_max_features: int = 8192,
    ):
        check_cnn_functional(functional)
        if not isinstance(functional.problem.loss, LeastSquaresLoss):
            raise ValueError(
                "the classifier is linear least squares only for LeastSquaresLoss; got "
                f"{functional.problem.loss!r}: train (W, c) with the other parameters"
            )
        if method not in CLASSIFIER_METHODS:
            raise ValueError(f"method must be one of {CLASSIFIER_METHODS}, got {method!r}")
        self.functional = functional
        self.method = method
        self.examples = functional.check_examples(examples)
        if sample_size is not None and self.examples is not None:
            raise ValueError("give examples (a fixed set) or sample_size (a sample per call), "
                             "not both")
        self.sample_size = None if sample_size is None else check_int(sample_size,
                                                                       "sample_size", 1)
        self.seed = check_int(seed, "seed", 0)
        self.rtol = rtol
        self.maxiter = maxiter
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.block_size = check_int(block_size, "block_size", 1)
        self.gram_max_examples = check_int(gram_max_examples, "gram_max_examples", 1)
        self.normal_max_features = check_int(normal_max_features, "normal_max_features", 1)
        self.alpha_W, self.reference_W = _tikhonov_terms(functional, "W")
        self.alpha_c, self.reference_c = _tikhonov_terms(functional, "c")
        if self.alpha_c > 0 and self.alpha_W == 0:
            raise ValueError("a Tikhonov regulariser on c needs one on W as well (alpha > 0)")
        self.indices = classifier_indices(functional)
        self.last_result = None

    # ------------------------------------------------------------------ pieces
    def examples_at(self, x):
        """The examples a call at ``x`` fits on (``None``: all)."""
        if self.sample_size is None:
            return self.examples
        return sample_examples(x, self.functional.n_examples, self.sample_size, self.seed)

    def features(self, x) -> np.ndarray:
        """``h^d y_l(T)`` flattened, shape ``(s, C * prod(mesh.shape))``, compute dtype."""
        return final_features(self.functional, x, self.examples_at(x), self.batch_size)

    def _choose(self, n_examples, n_features, beta):
        if self.method != "auto":
            if self.method in ("gram", "normal") and beta == 0:
                raise ValueError(
                    f"method={self.method!r} needs a Tikhonov regulariser on W (alpha > 0)"
                )
            return self.method
        if beta == 0:
            return "cg"
        if n_examples <= min(self.gram_max_examples, n_features):
            return "gram"
        return "normal" if n_features <= self.normal_max_features else "cg"

    # ------------------------------------------------------------------ solve
    def __call__(self, x) -> np.ndarray:
        """A copy of ``x`` with ``(W, c)`` replaced by the block minimiser."""
        functional = self.functional
        x = functional.check_parameters(x).copy()
        examples = self.examples_at(x)
        features = final_features(functional, x, examples, self.batch_size)
        with blas_threads(kernel_threads()):  # dense products and solves: all threads
            return self._solve_ridge(x, features, examples)

    def _solve_ridge(self, x, features, examples) -> np.ndarray:
        """``x`` (a copy, changed in place) with ``(W, c)`` the ridge solution on ``features``."""
        functional = self.functional
        params = functional.layout.unflatten(x)
        problem = functional.problem
        n_classes = problem.n_classes
        s = features.shape[0]
        targets = functional.targets if examples is None else functional.targets[examples]
        beta = s * self.alpha_W * problem.mesh.cell_volume
        gamma = s * self.alpha_c
        centre = gamma == 0
        bias_column = 0.0 if centre else float(np.sqrt(beta / gamma))
        A = _Features(features, centre, bias_column, self.block_size)
        reference_W = self.reference_W.reshape(n_classes, -1)  # (k, p)
        # right-hand side b = t - A_W R_W (- c reference for the augmented column)
        reference_u = np.vstack([reference_W.T, np.zeros((A.size - A.n_features, n_classes))])
        rhs = targets - A.matvec(reference_u)
        if centre:
            rhs -= rhs.mean(axis=0)
        else:
            rhs -= np.asarray(self.reference_c)[None, :]
        method = self._choose(s, A.n_features, beta)
        if method == "gram":
            gram = A.gram()
            gram[np.diag_indices_from(gram)] += beta
            dual = scipy.linalg.cho_solve(scipy.linalg.cho_factor(gram, lower=True), rhs)
            u = A.rmatvec(dual)
            result = OptimizeResult(x=u, nit=0, status="converged", success=True)
        elif method == "normal":
            normal = A.normal()
            normal[np.diag_indices_from(normal)] += beta
            projected = A.rmatvec(rhs)
            u = scipy.linalg.cho_solve(scipy.linalg.cho_factor(normal, lower=True), projected)
            result = OptimizeResult(x=u, nit=0, status="converged", success=True)
        else:
            start = np.column_stack(
                [
                    np.r_[
                        params["W"][k].reshape(-1) - reference_W[k],
                        [] if centre else [(params["c"][k] - self.reference_c[k]) / bias_column],
                    ]
                    for k in range(n_classes)
                ]
            )
            result = regularized_least_squares(
                A.operator(), rhs, beta, x0=start, rtol=self.rtol, maxiter=self.maxiter
            )
            u = result.x
        W = reference_W + u[: A.n_features].T
        if centre:
            # c_k = mean_l (t_lk - <f_l, W_k>)
            c = targets.mean(axis=0) - A.mean @ W.T
        else:
            c = self.reference_c + bias_column * u[-1]
        params["W"][...] = W.reshape(params["W"].shape)
        params["c"][...] = c
        misfit = A.matvec(u) - rhs
        self.last_result = OptimizeResult(
            method=method,
            nit=int(result.nit),
            status=result.status,
            success=result.success,
            fun=0.5 * float(np.sum(misfit**2)) + 0.5 * beta * float(np.sum(u**2)),
            n_examples=s,
            n_features=A.n_features,
        )
        return x
