"""An embedded, resolution-free image set: ten classes of smooth random patterns.

Every example is a continuous function ``f(x, y)`` on the image domain ``[0, 1)^2`` (zero
outside), drawn once from a seed and then sampled at the nodes ``(i / n, j / n)`` of any
resolution ``n`` (:meth:`SyntheticExamples.render`). The example parameters do not depend on
``n``, so one seed gives the same examples at every resolution, and full-weighting restriction of
a fine rendering approximates the coarse rendering (with an error that falls as ``n`` grows).

An example of class ``c`` is::

    f(x, y) = (1 - noise) * contrast * pattern_c(u, v)
              + noise * window(x, y) * (1 + field(x, y)) / 2

* ``(u, v)``: local coordinates, the point ``(x, y)`` shifted by the example's centre, rotated by
  its angle and divided by its scale ``s`` (the pattern fits in the unit disk ``|(u, v)| <= 1``).
* ``pattern_c`` in ``[0, 1]``: a shape with anti-aliased edges, ``(1 - tanh(d / EDGE_WIDTH)) / 2``
  of the signed distance ``d`` (physical units, negative inside) to its outline; so the edge width
  :data:`EDGE_WIDTH` is a physical length, the same at every resolution. The two textures
  (``stripes``, ``checker``) are cosines of period proportional to ``s`` inside a soft disk.
* ``field``: a smooth random field in ``[-1, 1]``, a normalised sum of :data:`N_NOISE_MODES`
  random plane waves (up to :data:`MAX_NOISE_FREQUENCY` cycles per unit length).
* ``window(x, y) = sin(pi x)^2 sin(pi y)^2`` makes the background vanish at the domain boundary,
  consistently with grid functions being zero outside (the shapes stay inside by construction).

Hence ``0 <= f <= 1`` for every example: the documented value range. The pieces shared with the
3D volume set (:mod:`problems.cnn.data.volumes`) are in :mod:`problems.cnn.data._resolution_free`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ._resolution_free import (
    CONTRAST_RANGE,
    EDGE_WIDTH,
    MAX_NOISE_FREQUENCY,
    N_NOISE_MODES,
    POSITION_JITTER,
    SCALE_RANGE,
    background,
    box_distance,
    check_classes,
    compose,
    draw_parameters,
    evaluate_blocked,
    evaluate_patterns,
    norm,
    render_nodes,
    soft,
)
from .images import _check_float_dtype, images_dataset

__all__ = [
    "SYNTHETIC_CLASSES",
    "EDGE_WIDTH",
    "N_NOISE_MODES",
    "MAX_NOISE_FREQUENCY",
    "SCALE_RANGE",
    "CONTRAST_RANGE",
    "POSITION_JITTER",
    "SyntheticExamples",
    "draw_synthetic",
    "make_synthetic",
]


def _box(u, v, half_u, half_v):
    """Signed distance (local units) to the box ``|u| <= half_u, |v| <= half_v``."""
    return box_distance((u, v), (half_u, half_v))


def _triangle(u, v, circumradius):
    """Signed distance (local units) to an equilateral triangle centred at 0, a vertex up in v."""
    k = np.sqrt(3.0)
    half_side = circumradius * k / 2
    pu = np.abs(u) - half_side
    pv = v + half_side / k
    fold = pu + k * pv > 0
    pu, pv = np.where(fold, (pu - k * pv) / 2, pu), np.where(fold, (-k * pu - pv) / 2, pv)
    pu = pu - np.clip(pu, -2 * half_side, 0.0)
    return -np.hypot(pu, pv) * np.sign(pv)


# Each pattern maps local coordinates (u, v), the variation xi in [0, 1) and the scale s (both
# shaped to broadcast against u) to values in [0, 1]. Signed distances in local units are
# multiplied by s to become physical lengths before smoothing.
def _disk(u, v, xi, s):
    return soft(s * (norm(u, v) - (0.55 + 0.4 * xi)))


def _ring(u, v, xi, s):
    return soft(s * (np.abs(norm(u, v) - 0.7) - (0.12 + 0.1 * xi)))


def _square(u, v, xi, s):
    return soft(s * (np.abs(_box(u, v, 0.6, 0.6)) - (0.08 + 0.06 * xi)))


def _cross(u, v, xi, s):
    arm = 0.15 + 0.1 * xi
    return soft(s * np.minimum(_box(u, v, 0.9, arm), _box(u, v, arm, 0.9)))


def _stripes(u, v, xi, s):
    period = 0.45 + 0.15 * xi
    inside = soft(s * (norm(u, v) - 0.95))
    return inside * (0.5 + 0.5 * np.cos(2 * np.pi * u / period))


def _checker(u, v, xi, s):
    period = 0.6 + 0.2 * xi
    inside = soft(s * (norm(u, v) - 0.95))
    return inside * (0.5 + 0.5 * np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period))


def _triangle_pattern(u, v, xi, s):
    return soft(s * _triangle(u, v, 0.8 + 0.15 * xi))


def _two_blobs(u, v, xi, s):
    radius = 0.35 + 0.1 * xi
    offset = 0.95 - radius
    return soft(s * np.minimum(np.hypot(u - offset, v), np.hypot(u + offset, v)) - s * radius)


def _crescent(u, v, xi, s):
    shift = 0.35 + 0.15 * xi
    return soft(s * np.maximum(norm(u, v) - 0.9, 0.75 - np.hypot(u - shift, v)))


def _bar(u, v, xi, s):
    return soft(s * _box(u, v, 0.9, 0.15 + 0.1 * xi))


_PATTERNS = {
    "disk": _disk,
    "ring": _ring,
    "square": _square,
    "cross": _cross,
    "stripes": _stripes,
    "checker": _checker,
    "triangle": _triangle_pattern,
    "two_blobs": _two_blobs,
    "crescent": _crescent,
    "bar": _bar,
}
#: Names of the ten pattern classes, in label order.
SYNTHETIC_CLASSES = tuple(_PATTERNS)


@dataclass(frozen=True, eq=False)
class SyntheticExamples:
    """The parameters of a set of synthetic examples; evaluate or render them at any resolution.

    Build it with :func:`draw_synthetic`. All lengths are physical (domain ``[0, 1)^2``).

    Attributes
    ----------
    labels : ndarray of int64, shape (n_examples,)
        Class index into ``class_names``.
    class_names : tuple of str
        The classes drawn, a subset of :data:`SYNTHETIC_CLASSES`.
    center : ndarray, shape (n_examples, 2)
        Pattern centre ``(x, y)``.
    scale : ndarray, shape (n_examples,)
        Radius of the disk holding the pattern.
    angle : ndarray, shape (n_examples,)
        Rotation of the pattern, radians.
    contrast : ndarray, shape (n_examples,)
        Pattern amplitude, in :data:`CONTRAST_RANGE`.
    variation : ndarray, shape (n_examples,)
        Within-class shape parameter in ``[0, 1)`` (ring thickness, stripe period, ...).
    wavevectors : ndarray, shape (n_examples, N_NOISE_MODES, 2)
        Background plane-wave vectors ``(k_x, k_y)``, radians per unit length.
    amplitudes : complex ndarray, shape (n_examples, N_NOISE_MODES)
        Background wave amplitudes and phases, ``sum(abs(amplitudes), axis=1) == 1``.
    noise : float
        Weight of the background field, in ``[0, 1)``.
    seed : int
        The seed the parameters were drawn from.
    """

    labels: np.ndarray
    class_names: tuple
    center: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    contrast: np.ndarray
    variation: np.ndarray
    wavevectors: np.ndarray
    amplitudes: np.ndarray
    noise: float
    seed: int

    @property
    def n_examples(self) -> int:
        """Number of examples."""
        return self.labels.shape[0]

    def _evaluate_block(self, rows: slice, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``f`` of the examples ``rows`` on the tensor grid ``y x x``, shape ``(m, ny, nx)``."""
        col = (slice(None), None, None)
        scale = self.scale[rows][col]
        cos, sin = np.cos(self.angle[rows])[col], np.sin(self.angle[rows])[col]
        dx = x[None, None, :] - self.center[rows, 0][col]
        dy = y[None, :, None] - self.center[rows, 1][col]
        u = (cos * dx + sin * dy) / scale
        v = (cos * dy - sin * dx) / scale
        pattern = evaluate_patterns(_PATTERNS, self.class_names, self.labels[rows], (u, v),
                                    self.variation[rows][col], scale)
        return compose(pattern, self.contrast[rows][col], self.noise,
                       background(self.wavevectors[rows], self.amplitudes[rows], (y, x)))

    def evaluate(self, x, y, dtype=np.float64) -> np.ndarray:
        """Evaluate every example on the tensor grid of the 1-D coordinates ``y`` x ``x``.

        Parameters
        ----------
        x, y : array_like, shape (nx,) and (ny,)
            Physical coordinates (any points; outside ``[0, 1]`` the functions are ~0).
        dtype : floating dtype
            dtype of the result (computed in float64).

        Returns
        -------
        ndarray, shape (n_examples, ny, nx)
            ``f(x[j], y[i])`` at ``[:, i, j]``, values in ``[0, 1]``.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or y.ndim != 1:
            raise ValueError(
                f"x and y must be 1-D coordinate arrays, got shapes {x.shape} and {y.shape}"
            )
        return evaluate_blocked(self.n_examples, (y, x),
                                lambda rows, y, x: self._evaluate_block(rows, x, y),
                                _check_float_dtype(dtype))

    def render(self, resolution: int, dtype=np.float32) -> xr.Dataset:
        """Sample every example at the nodes ``i / n`` of an ``n x n`` mesh (``n = resolution``).

        Returns
        -------
        xarray.Dataset
            The image-set layout of :mod:`problems.cnn.data.images`, ``source`` naming the seed,
            attrs ``seed``, ``noise`` and ``edge_width``.

        Raises
        ------
        ValueError
            If ``resolution < 4``.
        """
        nodes = render_nodes(resolution)
        return images_dataset(
            self.evaluate(nodes, nodes, dtype=dtype), self.labels,
            class_names=self.class_names, dtype=dtype,
            source=f"pdecontrol synthetic patterns (seed={self.seed}, noise={self.noise})",
            attrs={"seed": self.seed, "noise": self.noise, "edge_width": EDGE_WIDTH},
        )


def draw_synthetic(n_examples: int, seed: int, *, classes=None, noise: float = 0.3,
                   position_jitter: float = POSITION_JITTER) -> SyntheticExamples:
    """Draw the parameters of ``n_examples`` synthetic examples from ``seed`` (no resolution).

    Parameters
    ----------
    n_examples : int
        Number of examples, >= 1. Classes are balanced: ``n_examples // n_classes`` each, the
        first ``n_examples % n_classes`` classes (in ``classes`` order) one more, in random order.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same examples.
    classes : sequence of str or int, optional
        Subset of :data:`SYNTHETIC_CLASSES` (names or indices) in label order; default all ten.
    noise : float
        Weight of the smooth random background, in ``[0, 1)``.
    position_jitter : float
        Fraction, in ``[0, 1]``, of the room left by the pattern's disk over which its centre is
        drawn uniformly (per axis, around the domain centre). 0 centres every pattern (as MNIST
        centres its digits); 1 lets it reach the margin anywhere in the domain.

    Raises
    ------
    ValueError
        If ``n_examples < 1``, ``noise`` is outside ``[0, 1)``, ``position_jitter`` outside
        ``[0, 1]`` or a class is unknown.
    """
    class_names = check_classes(classes, SYNTHETIC_CLASSES)
    drawn = draw_parameters(n_examples, seed, len(class_names), 2, noise=noise,
                            position_jitter=position_jitter,
                            orientation=lambda rng, n: rng.uniform(0, 2 * np.pi, n))
    return SyntheticExamples(class_names=class_names, angle=drawn.pop("orientation"), **drawn)


def make_synthetic(n_examples: int, resolution: int, seed: int, *, classes=None,
                   noise: float = 0.3, position_jitter: float = POSITION_JITTER,
                   dtype=np.float32) -> xr.Dataset:
    """Draw ``n_examples`` synthetic examples from ``seed`` and render them at ``resolution``.

    Shorthand for ``draw_synthetic(n_examples, seed, classes=classes, noise=noise,
    position_jitter=position_jitter).render(resolution, dtype)``; see those for the parameters.
    The same seed at two resolutions gives the same examples.
    """
    examples = draw_synthetic(n_examples, seed, classes=classes, noise=noise,
                              position_jitter=position_jitter)
    return examples.render(resolution, dtype)
