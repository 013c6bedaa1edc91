"""The residual CNN of Haber, Ruthotto & Holtham as a :class:`pdecontrol.control.ControlProblem`.

For a batch of images ``x`` of shape ``(N, C_in, *spatial)`` on a node-centred
:class:`pdecontrol.mesh.Mesh` (``dim`` = 1, 2 or 3, spacing ``h``)::

    y(0)   = sigma0(K0 x + b0)                    opening layer, C_in -> C channels
    dy/dt  = sigma(K(t) y + b(t))                 residual layers (forward Euler: the ResNet)
    z      = h^d * sum_{c, i} W[k, c, i] y(T)[c, i] + c_k     integral classifier, k = class

* Convolutions are **correlations** with zero "same" padding and 3-wide stencils
  (:mod:`pdecontrol.ops`); ``K y`` sums over input channels.
* ``sigma`` is ``"tanh"``, ``"relu"`` or ``"smooth_relu"``; ``sigma0`` is ``None`` (the default:
  a linear opening ``y0 = K0 x + b0``) or one of those names.
* The classifier is the integral ``z = int W . y(T) dx`` in the mesh's quadrature, so ``W`` is a
  grid function per class and channel (block weight ``h^d``) that moves between meshes.

Parameter layout (:meth:`CNNProblem.layout`), flat order as listed:

========  ==========  ======================================  ============
block     kind        shape                                   weight
========  ==========  ======================================  ============
``K``     control     ``(n_steps, C, C, *kernel)``            1
``b``     control     ``(n_steps, C)``                        1
``K0``    static      ``(C, C_in, *kernel)``                  1
``b0``    static      ``(C,)``                                1
``W``     static      ``(n_classes, C, *mesh.shape)``         ``h^d``
``c``     static      ``(n_classes,)``                        1
========  ==========  ======================================  ============

``*kernel`` is ``(3,) * dim`` (stencil weights, ``kernel_basis="stencil"``) or ``(3**dim,)``
(``kernel_basis="derivative"``): coefficients ``beta`` of the derivative basis of
:mod:`pdecontrol.stencils` in units of a fixed reference length ``l``,
``K = B(h) diag(l^|m|) beta``, i.e. ``beta_m = l^-|m| alpha_m`` with ``alpha`` the physical
coefficients (``alpha = B(h)^-1 K``). ``beta`` means the same differential operator on every
mesh; with ``l = h`` (the default, the mesh the problem is built on) ``K = B(1) beta`` is well
scaled (unit stencil weights), whereas raw physical coefficients ``alpha`` would scale like
``h^|m|`` (``1e-6`` for a fourth derivative on 28x28) and ruin Taylor tests and optimisers.
"""

from __future__ import annotations

import numpy as np

from pdecontrol._validation import as_float_array, check_finite, check_int, check_positive
from pdecontrol.control import ControlFunctional, ControlProblem, ParameterLayout, Parameters
from pdecontrol.mesh import Mesh
from pdecontrol.ops import (
    bias_gradient,
    blas_threads,
    conv,
    conv_kernel_gradient,
    get_activation,
    residual_adjoint,
    residual_linearize,
    residual_step,
    residual_tangent,
)
from pdecontrol.stencils import basis_matrix, derivative_basis, stencil_to_coefficients

__all__ = ["CNNProblem", "KERNEL_BASES", "MAX_PIXEL", "cnn_functional", "predict", "accuracy",
           "check_cnn_functional"]

#: Parameterisations of the kernels: raw stencil weights or derivative-basis coefficients.
KERNEL_BASES = ("stencil", "derivative")
#: Largest ``|pixel|`` accepted: images are scaled to about [0, 1] (images ``x 1e30`` overflow
#: the float32 states and end in a failed classifier solve).
MAX_PIXEL = 1e3


def _per_axis_spacing(value, dim: int, name: str) -> tuple:
    values = np.ravel(np.asarray(value, dtype=object))
    if values.size == 1:
        values = np.repeat(values, dim)
    if values.size != dim:
        raise ValueError(
            f"{name} must be a scalar or have {dim} entries (one per axis), got {value!r}"
        )
    return tuple(check_positive(v, f"{name}[{axis}]") for axis, v in enumerate(values))


class CNNProblem(ControlProblem):
    """Residual CNN ``dy/dt = sigma(K y + b)`` with learned opening and integral classifier.

    Parameters
    ----------
    mesh : pdecontrol.mesh.Mesh
        Mesh of the images (1D, 2D or 3D, node-centred).
    n_channels : int
        ``C``, channels of the state.
    n_classes : int
        Number of classes (outputs ``z`` per example).
    in_channels : int, default 1
        ``C_in``, channels of the input images.
    activation : {"tanh", "relu", "smooth_relu"}, default "tanh"
        ``sigma`` of the residual layers.
    opening_activation : {None, "tanh", "relu", "smooth_relu"}, default None
        ``sigma0`` after the opening convolution; ``None`` keeps the opening linear.
    kernel_basis : {"stencil", "derivative"}, default "stencil"
        Parameterisation of ``K`` and ``K0`` (see the module docstring).
    reference_spacing : float or tuple of float, optional
        ``l`` of the derivative basis (default ``mesh.h``); keep it fixed across levels
        (:meth:`with_mesh` does). Ignored for ``kernel_basis="stencil"``.
    loss : pdecontrol.control.Loss, optional
        Default least squares on one-hot targets (as the paper).
    """

    def __init__(
        self,
        mesh: Mesh,
        n_channels: int,
        n_classes: int,
        *,
        in_channels: int = 1,
        activation="tanh",
        opening_activation=None,
        kernel_basis: str = "stencil",
        reference_spacing=None,
        loss=None,
    ):
        super().__init__(loss)
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a pdecontrol.mesh.Mesh, got {type(mesh).__name__}")
        if kernel_basis not in KERNEL_BASES:
            raise ValueError(f"kernel_basis must be one of {KERNEL_BASES}, got {kernel_basis!r}")
        self.mesh = mesh
        self.dim = mesh.dim
        self.n_channels = check_int(n_channels, "n_channels", 1)
        self.n_classes = check_int(n_classes, "n_classes", 1)
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.activation = get_activation(activation)
        self.opening_activation = (
            None if opening_activation is None else get_activation(opening_activation)
        )
        self.kernel_basis = kernel_basis
        reference = mesh.h if reference_spacing is None else reference_spacing
        self.reference_spacing = _per_axis_spacing(reference, self.dim, "reference_spacing")
        # D(l) = diag(l^|m|): block entries beta -> physical coefficients alpha = D(l) beta
        multi_indices = np.array(derivative_basis(self.dim).multi_indices)
        self._coefficient_scales = np.prod(
            np.array(self.reference_spacing) ** multi_indices, axis=1
        )
        # stencil weights = kernel_matrix @ block entries (identity for raw stencils)
        matrix = (
            np.eye(3**self.dim)
            if kernel_basis == "stencil"
            else basis_matrix(self.dim, mesh.h) * self._coefficient_scales
        )
        matrix.setflags(write=False)
        self.kernel_matrix = matrix

    # ------------------------------------------------------------------ description
    def __repr__(self) -> str:
        opening = None if self.opening_activation is None else self.opening_activation.name
        return (
            f"CNNProblem(mesh={self.mesh!r}, n_channels={self.n_channels}, "
            f"n_classes={self.n_classes}, in_channels={self.in_channels}, "
            f"activation={self.activation.name!r}, opening_activation={opening!r}, "
            f"kernel_basis={self.kernel_basis!r}, reference_spacing={self.reference_spacing}, "
            f"loss={self.loss!r})"
        )

    def with_mesh(self, mesh: Mesh) -> CNNProblem:
        """The same network (channels, activations, basis, loss) on another mesh."""
        if not isinstance(mesh, Mesh) or mesh.dim != self.dim:
            raise ValueError(f"mesh must be a {self.dim}D pdecontrol.mesh.Mesh, got {mesh!r}")
        opening = None if self.opening_activation is None else self.opening_activation.name
        return CNNProblem(
            mesh,
            self.n_channels,
            self.n_classes,
            in_channels=self.in_channels,
            activation=self.activation.name,
            opening_activation=opening,
            kernel_basis=self.kernel_basis,
            reference_spacing=self.reference_spacing,
            loss=self.loss,
        )

    def coarsen(self) -> CNNProblem:
        """The same network on ``mesh.coarsen()`` (``H = 2h``)."""
        return self.with_mesh(self.mesh.coarsen())

    def refine(self) -> CNNProblem:
        """The same network on ``mesh.refine()`` (``h = H/2``)."""
        return self.with_mesh(self.mesh.refine())

    @property
    def kernel_entry_shape(self) -> tuple:
        """Trailing shape of one kernel in the layout: ``(3,)*dim`` or ``(3**dim,)``."""
        return (3,) * self.dim if self.kernel_basis == "stencil" else (3**self.dim,)

    # ------------------------------------------------------------------ layout
    def layout(self, n_steps: int) -> ParameterLayout:
        """The :class:`~pdecontrol.control.ParameterLayout` for ``n_steps`` residual layers."""
        C, kernel = self.n_channels, self.kernel_entry_shape
        return ParameterLayout(
            n_steps,
            controls={"K": (C, C) + kernel, "b": (C,)},
            static={
                "K0": (C, self.in_channels) + kernel,
                "b0": (C,),
                "W": (self.n_classes, C) + self.mesh.shape,
                "c": (self.n_classes,),
            },
            block_weights={"W": self.mesh.cell_volume},
        )

    def n_steps_of(self, x, name: str = "x") -> int:
        """Number of residual layers of a flat parameter vector ``x`` for this network.

        Raises ``ValueError`` if no layout of this problem has the length of ``x`` (e.g. a
        vector built for another mesh or channel count).
        """
        x = np.asarray(x)
        per_step = self.layout(1).size
        static = sum(int(np.prod(s)) for s in self.layout(1).static_shapes.values())
        step_size = per_step - static
        if x.ndim != 1 or x.size <= static or (x.size - static) % step_size:
            raise ValueError(
                f"{name} (shape {x.shape}) is not a parameter vector of {self!r}: its length must "
                f"be {static} + n_steps * {step_size}. Was it built for another mesh or channel "
                "count? Move it with problems.cnn.transfer (restrict_network / prolong_network)."
            )
        return (x.size - static) // step_size

    def parameters(self, x, name: str = "x") -> Parameters:
        """Validated structured view (:class:`~pdecontrol.control.Parameters`) of a flat vector."""
        x = check_finite(as_float_array(x, name, dtype=np.float64), name)
        return self.layout(self.n_steps_of(x, name)).unflatten(x, name)

    def initial_parameters(
        self, n_steps: int, seed, *, kernel_scale: float = 1.0, opening_scale: float = 1.0
    ) -> np.ndarray:
        """Seeded random kernels, zero biases and classifier: a flat vector of :meth:`layout`.

        Kernel weights are N(0, s^2) stencil weights with ``s = kernel_scale / sqrt(C 3^d)``
        (residual layers) and ``s = opening_scale / sqrt(C_in 3^d)`` (opening), so ``K y`` has
        roughly the size of ``y``; in the derivative basis the same stencils are converted to
        coefficients (the same seed gives the same network in both bases). ``W`` and ``c`` are
        zero: solve for them with :class:`problems.cnn.classifier.ClassifierSolver`.
        """
        check_positive(kernel_scale, "kernel_scale")
        check_positive(opening_scale, "opening_scale")
        rng = np.random.default_rng(seed)
        layout = self.layout(n_steps)
        params = layout.zeros()
        taps = 3**self.dim
        stencil = (3,) * self.dim
        C = self.n_channels
        K = kernel_scale / np.sqrt(C * taps) * rng.standard_normal((n_steps, C, C) + stencil)
        K0 = (
            opening_scale
            / np.sqrt(self.in_channels * taps)
            * rng.standard_normal((C, self.in_channels) + stencil)
        )
        params["K"][...] = self.stencils_to_block(K)
        params["K0"][...] = self.stencils_to_block(K0)
        return params.flat

    # ------------------------------------------------------------------ kernel basis
    def block_to_stencils(self, block: np.ndarray) -> np.ndarray:
        """Stencil weights ``(..., 3, ..., 3)`` of a kernel block (dtype kept)."""
        if self.kernel_basis == "stencil":
            return block
        matrix = self.kernel_matrix.astype(block.dtype, copy=False)
        return (block @ matrix.T).reshape(block.shape[:-1] + (3,) * self.dim)

    def stencils_to_block(self, stencils: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`block_to_stencils` (``beta = D(l)^-1 B(h)^-1 s``, derivative basis)."""
        if self.kernel_basis == "stencil":
            return stencils
        alpha = stencil_to_coefficients(stencils, self.mesh.h, self.dim)
        return alpha / self._coefficient_scales.astype(alpha.dtype)

    def stencil_cotangent_to_block(self, stencil_bar: np.ndarray) -> np.ndarray:
        """Transpose of :meth:`block_to_stencils`: ``kernel_matrix^T s_bar``."""
        if self.kernel_basis == "stencil":
            return stencil_bar
        flat = stencil_bar.reshape(stencil_bar.shape[: -self.dim] + (3**self.dim,))
        return flat @ self.kernel_matrix.astype(stencil_bar.dtype, copy=False)

    # ------------------------------------------------------------------ data
    def check_images(self, images, name: str = "images") -> np.ndarray:
        """``images`` as ``(N, C_in, *mesh.shape)`` (``(N, *mesh.shape)`` accepted if ``C_in = 1``).

        Raises ``ValueError`` for a shape that does not fit the mesh, non-finite values or a pixel
        larger than :data:`MAX_PIXEL` in magnitude, ``TypeError`` for non-numeric or integer
        input (8-bit images are refused, not scaled: divide them by 255 first). The dtype is
        kept (float32 stays float32).
        """
        if np.asarray(images).dtype.kind in "uib":
            raise TypeError(
                f"{name} have the integer dtype {np.asarray(images).dtype}; convert them to "
                "floating point scaled to about [0, 1] first (8-bit images: images / 255)")
        images = check_finite(as_float_array(images, name), name)
        largest = float(np.max(np.abs(images))) if images.size else 0.0
        if largest > MAX_PIXEL:
            raise ValueError(
                f"{name} must be scaled to about [0, 1]: their largest |value| is {largest:.3g} "
                f"(at most {MAX_PIXEL:g} is accepted; larger values overflow the states); divide "
                "them by their maximum")
        full = (self.in_channels,) + self.mesh.shape
        if self.in_channels == 1 and images.shape[1:] == self.mesh.shape:
            images = images.reshape((images.shape[0],) + full)
        if images.ndim != self.dim + 2 or images.shape[1:] != full or images.shape[0] < 1:
            raise ValueError(
                f"{name} must have shape (n_examples, {self.in_channels}, "
                f"{', '.join(map(str, self.mesh.shape))}) for {self.mesh!r} with "
                f"{self.in_channels} input channel(s), got {images.shape}; restrict or crop the "
                "images to the mesh"
            )
        return images

    def one_hot(self, labels, name: str = "labels") -> np.ndarray:
        """One-hot targets ``(N, n_classes)``, float64, of integer labels in ``[0, n_classes)``."""
        labels = np.asarray(labels)
        if (
            labels.ndim != 1
            or labels.size == 0
            or not (
                np.issubdtype(labels.dtype, np.integer)
                or (np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)))
            )
        ):
            raise ValueError(
                f"{name} must be a non-empty 1-D array of integer class indices, "
                f"got dtype {labels.dtype} shape {labels.shape}"
            )
        labels = labels.astype(np.int64)
        if labels.min() < 0 or labels.max() >= self.n_classes:
            raise ValueError(
                f"{name} must lie in [0, {self.n_classes}) (n_classes = {self.n_classes}), "
                f"got range [{labels.min()}, {labels.max()}]"
            )
        return np.eye(self.n_classes)[labels]

    # ------------------------------------------------------------------ residual layers
    def linearize(self, y, control, static, t):
        """``(sigma(K y + b), ResidualLinearization)``: one fused pass, reused by the sweeps."""
        K = self.block_to_stencils(control["K"])
        return residual_linearize(
            y, K, control["b"], dt=1.0, activation=self.activation, skip=False
        )

    def rhs(self, y, control, static, t):
        """``sigma(K y + b)`` alone: the same fused pass without storing ``sigma'`` (a forward
        solve that keeps no linearisation, e.g. for values or features)."""
        return residual_step(y, self.block_to_stencils(control["K"]), control["b"], dt=1.0,
                             activation=self.activation, skip=False)

    def euler_step(self, y, control, static, t, dt):
        """``y + dt sigma(K y + b)`` in one fused pass (the skip connection and the scaling in
        the convolution's epilogue): the numbers of :meth:`rhs` and a separate add, with one
        pass over the states fewer."""
        return residual_step(y, self.block_to_stencils(control["K"]), control["b"], dt=dt,
                             activation=self.activation, skip=True)

    def rhs_tangent(self, y, control, static, t, dy, dcontrol, dstatic, cache=None):
        if cache is None:
            cache = self.linearize(y, control, static, t)[1]
        dK = self.block_to_stencils(np.asarray(dcontrol["K"], dtype=y.dtype))
        return residual_tangent(cache, dy, dK, np.asarray(dcontrol["b"], dtype=y.dtype))

    def rhs_adjoint(self, y, control, static, t, f_bar, cache=None):
        if cache is None:
            cache = self.linearize(y, control, static, t)[1]
        y_bar, K_bar, b_bar = residual_adjoint(cache, np.asarray(f_bar, dtype=y.dtype))
        return y_bar, {"K": self.stencil_cotangent_to_block(K_bar), "b": b_bar}, {}

    # ------------------------------------------------------------------ opening layer
    def _opening(self, data, static):
        """``(y0, sigma0'(a))`` with ``a = K0 x + b0`` (derivative None for a linear opening)."""
        images = self.check_images(data, "data")
        a = conv(images, self.block_to_stencils(static["K0"]), static["b0"])
        if self.opening_activation is None:
            return a, None
        return self.opening_activation.value_and_derivative(a)

    def _opening_derivative(self, data, static):
        """``sigma0'(a)`` of :meth:`_opening`, or None for a linear opening (then no convolution
        is computed)."""
        if self.opening_activation is None:
            return None
        return self._opening(data, static)[1]

    def initial_state(self, data, static):
        return self._opening(data, static)[0]

    def initial_state_tangent(self, data, static, dstatic):
        images = self.check_images(data, "data")
        dK0 = self.block_to_stencils(np.asarray(dstatic["K0"], dtype=images.dtype))
        da = conv(images, dK0, np.asarray(dstatic["b0"], dtype=images.dtype))
        derivative = self._opening_derivative(images, static)
        return da if derivative is None else derivative * da

    def initial_state_adjoint(self, data, static, y0_bar):
        images = self.check_images(data, "data")
        derivative = self._opening_derivative(images, static)
        a_bar = np.asarray(y0_bar, dtype=images.dtype)
        if derivative is not None:
            a_bar = derivative * a_bar
        K0_bar = conv_kernel_gradient(images, np.ascontiguousarray(a_bar))
        return {"K0": self.stencil_cotangent_to_block(K0_bar), "b0": bias_gradient(a_bar)}

    # ------------------------------------------------------------------ classifier
    def _flat(self, y):
        return y.reshape(y.shape[0], -1)

    # The classifier's products run on one BLAS thread: they are small next to the
    # convolutions, and after a multi-threaded BLAS call OpenBLAS's idle threads spin beside the
    # kernels that follow (outside training, the accuracy on 20,000 MNIST images took 1.6-1.7 s
    # with two BLAS threads here, 0.8 s with one; pdecontrol.ops.threads).
    def output(self, y_final, static):
        W = static["W"].reshape(self.n_classes, -1)
        h_d = y_final.dtype.type(self.mesh.cell_volume)
        with blas_threads(1):
            return h_d * (self._flat(y_final) @ W.T) + static["c"]

    def output_tangent(self, y_final, static, dy_final, dstatic):
        W = static["W"].reshape(self.n_classes, -1)
        dW = np.asarray(dstatic["W"], dtype=y_final.dtype).reshape(self.n_classes, -1)
        h_d = y_final.dtype.type(self.mesh.cell_volume)
        with blas_threads(1):
            products = self._flat(dy_final) @ W.T + self._flat(y_final) @ dW.T
        return h_d * products + np.asarray(dstatic["c"], dtype=y_final.dtype)

    def output_adjoint(self, y_final, static, z_bar):
        z_bar = np.asarray(z_bar, dtype=y_final.dtype)
        W = static["W"].reshape(self.n_classes, -1)
        h_d = y_final.dtype.type(self.mesh.cell_volume)
        with blas_threads(1):
            y_bar = (h_d * (z_bar @ W)).reshape(y_final.shape)
            W_bar = (h_d * (z_bar.T @ self._flat(y_final))).reshape(static["W"].shape)
        return y_bar, {"W": W_bar, "c": z_bar.sum(axis=0)}


# ---------------------------------------------------------------------- functional and prediction
def cnn_functional(
    problem: CNNProblem,
    images,
    labels,
    n_steps: int,
    *,
    final_time=None,
    stepper="euler",
    regularizers=(),
    dtype=np.float64,
    chunk_size=None,
    checkpoint_every=None,
) -> ControlFunctional:
    """The training objective of ``problem`` on labelled images (a ReducedFunctional).

    Parameters
    ----------
    problem : CNNProblem
    images : array_like, shape (N, C_in, *mesh.shape) (or (N, *mesh.shape) for C_in = 1)
    labels : array_like of int, shape (N,)
        Class indices in ``[0, n_classes)``; one-hot encoded as targets.
    n_steps : int
        Residual layers.
    final_time : float, optional
        ``T``; default ``n_steps`` (``dt = 1``, the plain ResNet).
    stepper, regularizers, dtype, chunk_size, checkpoint_every
        As in :class:`pdecontrol.control.ControlFunctional`.
    """
    if not isinstance(problem, CNNProblem):
        raise TypeError(f"problem must be a CNNProblem, got {type(problem).__name__}")
    images = problem.check_images(images)
    targets = problem.one_hot(labels)
    if targets.shape[0] != images.shape[0]:
        raise ValueError(
            f"labels must have one entry per image: {images.shape[0]} images, "
            f"{targets.shape[0]} labels"
        )
    layout = problem.layout(n_steps)
    final_time = float(layout.n_steps) if final_time is None else final_time
    return ControlFunctional(
        problem,
        layout,
        images,
        targets,
        final_time=final_time,
        stepper=stepper,
        regularizers=regularizers,
        dtype=dtype,
        chunk_size=chunk_size,
        checkpoint_every=checkpoint_every,
    )


def check_cnn_functional(functional):
    """``functional`` if it is a ``ControlFunctional`` of a :class:`CNNProblem`; else
    ``TypeError`` (one validator for every function that takes the CNN's functional)."""
    if not (
        isinstance(functional, ControlFunctional) and isinstance(functional.problem, CNNProblem)
    ):
        raise TypeError(
            "functional must be a ControlFunctional of a CNNProblem (see cnn_functional), "
            f"got {type(functional).__name__}"
        )
    return functional


def predict(functional: ControlFunctional, x, images=None, *, batch_size: int = 1000) -> np.ndarray:
    """Class scores ``z`` (float64, ``(N, n_classes)``) of the network ``x``.

    ``images`` default to the functional's own data; other images (e.g. a validation set) run
    through the same network, stepper, final time and dtype. ``batch_size`` bounds the number of
    examples held in memory at once. The predicted class is ``argmax(z, axis=1)``.
    """
    functional = check_cnn_functional(functional)
    batch_size = check_int(batch_size, "batch_size", 1)
    if images is not None:
        problem = functional.problem
        images = problem.check_images(images)
        functional = ControlFunctional(
            problem,
            functional.layout,
            images,
            np.zeros((images.shape[0], problem.n_classes)),
            final_time=functional.final_time,
            stepper=functional.stepper,
            dtype=functional.dtype,
        )
    n = functional.n_examples
    return np.concatenate(
        [
            np.asarray(
                functional.forward(x, np.arange(i, min(i + batch_size, n)),
                                   final_states=False).outputs, np.float64
            )
            for i in range(0, n, batch_size)
        ]
    )


def accuracy(
    functional: ControlFunctional, x, images=None, labels=None, *, batch_size: int = 1000
) -> float:
    """Fraction of correctly classified examples (the functional's own data by default).

    With ``images`` the ``labels`` (integer classes) are required; without, the functional's
    one-hot targets are used.
    """
    functional = check_cnn_functional(functional)
    if (images is None) != (labels is None):
        raise ValueError("pass both images and labels, or neither (to use the functional's data)")
    if labels is None:
        truth = np.argmax(functional.targets, axis=1)
    else:
        truth = np.argmax(functional.problem.one_hot(labels), axis=1)
    scores = predict(functional, x, images, batch_size=batch_size)
    if scores.shape[0] != truth.shape[0]:
        raise ValueError(
            f"labels must have one entry per image: {scores.shape[0]} images, "
            f"{truth.shape[0]} labels"
        )
    return float(np.mean(np.argmax(scores, axis=1) == truth))
