"""Approximate block solve of the classifier ``(W, c)`` for the softmax cross-entropy loss.

With the cross-entropy loss the training objective restricted to ``(W, c)`` is, for fixed kernels
(``s`` examples, features ``f_l = h^d y_l(T)`` flattened, one-hot targets ``t_l``)::

    1/s sum_l CE(W f_l + c, t_l) + a_W/2 h^d ||W - R_W||^2 + a_c/2 ||c - r_c||^2

(multinomial logistic regression on the network's final states; the regularisers are the
functional's :class:`~pdecontrol.control.Tikhonov` terms on ``W`` and ``c``, if any). It is convex
but not quadratic: :class:`LogisticClassifierSolver` takes a few Newton-CG steps on it, warm
started from the current ``(W, c)``, each followed by a backtracking line search, with the
Hessian ``(1/s) sum_l J_l^T H_l J_l`` (``H_l`` the softmax Hessian, exact and PSD).

Why: a product with this Hessian only streams the stored features (``2 s p`` multiply-adds,
``p = C n^d``), tens of times cheaper per example than a Gauss-Newton product through the
network, so the classifier can be fitted on a far larger sample than the network's Gauss-Newton
batch (the variable-projection idea of docs/method.md section 4 carried to the cross-entropy).
The solve is approximate (a few Newton steps, CG to a relative residual) and, with
``sample_size``, fitted on a random sample of the examples drawn afresh at every call: the
sample is a function of the seed and of the parameters it is called with, so a resumed run
draws the same samples as an uninterrupted one. With ``curvature_sample_size`` the Hessian
products run over a random part of that sample only (a sub-sampled Newton method: the value,
gradient and line search keep the whole sample), which cuts the cost of the CG iterations in
proportion (measured on the bundled CNN problem: docs/speed.md).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import OptimizeResult

from pdecontrol._validation import check_int
from pdecontrol.control import ControlFunctional, SoftmaxCrossEntropyLoss
from pdecontrol.ops import (
    blas_threads,
    feature_outputs,
    feature_pullback,
    softmax_curvature_product,
)
from pdecontrol.optimize import conjugate_gradient

from .classifier import (
    _tikhonov_terms,
    classifier_indices,
    curvature_rows_first,
    final_features,
    sample_examples,
)
from .network import check_cnn_functional

__all__ = ["LogisticClassifierSolver"]


class LogisticClassifierSolver:
    """``solve_block`` for the classifier with the cross-entropy loss: ``x -> x`` with ``(W, c)``
    improved by ``newton_steps`` Newton-CG steps on the block objective.

    Usable as ``solve_block`` of :func:`pdecontrol.optimize.block_coordinate_descent` (block:
    :attr:`indices`), like :class:`~problems.cnn.classifier.ClassifierSolver`.

    Parameters
    ----------
    functional : ControlFunctional
        Built on a :class:`CNNProblem` with :class:`~pdecontrol.control.SoftmaxCrossEntropyLoss`.
        Regularisers on ``W`` and ``c`` must be :class:`~pdecontrol.control.Tikhonov`.
    newton_steps : int
        Newton-CG steps per call (warm started: later calls continue from the last ``(W, c)``).
    cg_iterations : int
        CG iterations per Newton step (at most).
    cg_rtol : float
        Relative CG residual (in the block's dual norm) at which a Newton step stops early.
    sample_size, seed : int, optional
        Fit on ``sample_size`` examples drawn afresh at every call
        (:func:`~problems.cnn.classifier.sample_examples`, seeded by ``seed`` and the
        parameters); default all examples.
    curvature_sample_size : int, optional
        Examples of the Hessian products, drawn at every call from the examples fitted
        (:func:`~problems.cnn.classifier.curvature_rows_first`); default all of them.
    batch_size : int
        Examples per forward solve when collecting the features.

    Attributes
    ----------
    indices : ndarray of int
        Flat indices of ``W`` and ``c``.
    last_result : scipy.optimize.OptimizeResult or None
        ``fun`` (block objective before and after: ``fun_start``, ``fun``), ``nit`` (Newton
        steps), ``cg_iterations`` (total), ``n_examples`` and ``n_curvature_examples`` of the
        last call.
    """

    def __init__(
        self,
        functional: ControlFunctional,
        *,
        newton_steps: int = 3,
        cg_iterations: int = 10,
        cg_rtol: float = 1e-2,
        sample_size=None,
        seed: int = 0,
        curvature_sample_size=None,
        batch_size: int = 1000,
    ):
        check_cnn_functional(functional)
        if not isinstance(functional.problem.loss, SoftmaxCrossEntropyLoss):
            raise ValueError(
                "LogisticClassifierSolver fits the softmax cross-entropy; got "
                f"{functional.problem.loss!r}: use ClassifierSolver for least squares"
            )
        self.functional = functional
        self.newton_steps = check_int(newton_steps, "newton_steps", 1)
        self.cg_iterations = check_int(cg_iterations, "cg_iterations", 1)
        if not 0 < cg_rtol < 1:
            raise ValueError(f"cg_rtol must lie in (0, 1), got {cg_rtol}")
        self.cg_rtol = float(cg_rtol)
        self.sample_size = (None if sample_size is None
                            else check_int(sample_size, "sample_size", 1))
        self.seed = check_int(seed, "seed", 0)
        self.curvature_sample_size = (
            None if curvature_sample_size is None
            else check_int(curvature_sample_size, "curvature_sample_size", 1))
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.alpha_W, self.reference_W = _tikhonov_terms(functional, "W")
        self.alpha_c, self.reference_c = _tikhonov_terms(functional, "c")
        self.indices = classifier_indices(functional)
        self.last_result = None

    def __call__(self, x, newton_steps=None) -> np.ndarray:
        """A copy of ``x`` with ``(W, c)`` after ``newton_steps`` Newton-CG steps (default
        :attr:`newton_steps`)."""
        newton_steps = (self.newton_steps if newton_steps is None
                        else check_int(newton_steps, "newton_steps", 1))
        functional = self.functional
        x = functional.check_parameters(x).copy()
        examples = sample_examples(x, functional.n_examples, self.sample_size, self.seed)
        curvature_rows = functional.n_examples if examples is None else examples.size
        if self.curvature_sample_size is not None and self.curvature_sample_size < curvature_rows:
            examples = curvature_rows_first(
                x, np.arange(curvature_rows) if examples is None else examples,
                self.curvature_sample_size, self.seed)
            curvature_rows = self.curvature_sample_size
        features = final_features(functional, x, examples, self.batch_size)  # (s, p)
        # every product over the features is a Numba kernel: one BLAS thread, so that CG's dot
        # products leave no BLAS thread spinning beside them (pdecontrol.ops.threads)
        with blas_threads(1):
            return self._newton_steps(x, features, examples, newton_steps, curvature_rows)

    def _newton_steps(self, x, features, examples, newton_steps: int,
                      curvature_rows: int) -> np.ndarray:
        """``x`` (a copy, changed in place) after the Newton-CG steps on ``features``, the
        Hessian products over its first ``curvature_rows`` rows."""
        functional = self.functional
        targets = functional.targets if examples is None else functional.targets[examples]
        params = functional.layout.unflatten(x)
        n_classes = functional.problem.n_classes
        W = np.array(params["W"], dtype=np.float64).reshape(n_classes, -1)
        c = np.array(params["c"], dtype=np.float64)
        cell_volume = functional.problem.mesh.cell_volume
        block = _LogisticBlock(features, targets, self.alpha_W * cell_volume,
                               self.reference_W.reshape(n_classes, -1), self.alpha_c,
                               np.asarray(self.reference_c, dtype=np.float64), curvature_rows)
        weights = np.r_[np.full(W.size, cell_volume), np.ones(c.size)]
        start = value = block.value(W, c)
        cg_total = 0
        for _ in range(newton_steps):
            gradient = block.gradient()
            cg = conjugate_gradient(block.hessian_product, -gradient, rtol=self.cg_rtol,
                                    maxiter=self.cg_iterations,
                                    preconditioner=lambda r: r / weights)
            cg_total += cg.iterations
            dW, dc = cg.x[:W.size].reshape(W.shape), cg.x[W.size:]
            slope = float(gradient @ cg.x)
            step = 1.0
            while True:  # Armijo on the block objective (the full Newton step is usually taken)
                trial = block.value(W + step * dW, c + step * dc)
                if trial <= value + 1e-4 * step * slope or step < 1e-4:
                    break
                step *= 0.5
            if not trial < value:  # no decrease: keep the last (W, c)
                block.value(W, c)
                break
            W, c, value = W + step * dW, c + step * dc, trial
        params["W"][...] = W.reshape(params["W"].shape)
        params["c"][...] = c
        self.last_result = OptimizeResult(
            fun_start=start, fun=value, nit=newton_steps, cg_iterations=cg_total,
            n_examples=features.shape[0], n_curvature_examples=curvature_rows)
        return x


class _LogisticBlock:
    """The block objective of :class:`LogisticClassifierSolver` at fixed features.

    ``value(W, c)`` evaluates and remembers the softmax probabilities; ``gradient()`` and
    ``hessian_product(v)`` act at the last point evaluated. Flat vectors are ``[W.ravel(), c]``,
    float64; features stay in their compute dtype and are multiplied in float32 or float64 as
    stored. The Hessian products run over the first ``curvature_rows`` rows (default all).
    """

    def __init__(self, features, targets, beta, reference_W, alpha_c, reference_c,
                 curvature_rows=None):
        self.features, self.targets = features, targets  # (s, p), (s, k)
        self.beta, self.reference_W = beta, reference_W  # beta = a_W h^d
        self.alpha_c, self.reference_c = alpha_c, reference_c
        self.loss = SoftmaxCrossEntropyLoss()
        self.n = features.shape[0]
        self.m = self.n if curvature_rows is None else curvature_rows  # the Hessian's rows
        self.row_weights = targets[:self.m].sum(axis=1)  # the Hessian's factor sum_k t_lk

    def _outputs(self, W, c):
        return feature_outputs(self.features, W, c)

    def value(self, W, c) -> float:
        self.W, self.c = W, c
        self.z = self._outputs(W, c)
        self.probabilities = None  # of z, computed by the first Hessian product at this point
        return (self.loss.value(self.z, self.targets) / self.n
                + 0.5 * self.beta * float(np.sum((W - self.reference_W) ** 2))
                + 0.5 * self.alpha_c * float(np.sum((c - self.reference_c) ** 2)))

    def _pull_back(self, z_bar, dW, dc):
        """``J^T z_bar / s`` plus the regulariser's term for ``(dW, dc)``, flat."""
        W_bar = feature_pullback(self.features, z_bar).astype(np.float64) / self.n
        c_bar = z_bar.sum(axis=0) / self.n
        return np.r_[(W_bar + self.beta * dW).ravel(), c_bar + self.alpha_c * dc]

    def gradient(self) -> np.ndarray:
        return self._pull_back(self.loss.gradient(self.z, self.targets),
                               self.W - self.reference_W, self.c - self.reference_c)

    def hessian_product(self, v) -> np.ndarray:
        """One pass over the first ``m`` rows of the features
        (:func:`~pdecontrol.ops.softmax_curvature_product`): the Hessian of the block objective
        with its loss averaged over those rows."""
        size, m = self.W.size, self.m
        dW, dc = v[:size].reshape(self.W.shape), v[size:]
        if self.probabilities is None:
            self.probabilities = self.loss.probabilities(self.z[:m])
        W_bar, c_bar = softmax_curvature_product(self.features[:m], self.probabilities, dW, dc,
                                                 self.row_weights)
        return np.r_[(W_bar / m + self.beta * dW).ravel(), c_bar / m + self.alpha_c * dc]
