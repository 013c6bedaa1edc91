"""An embedded, resolution-free volume set: ten classes of smooth random 3D shapes.

The 3D counterpart of :mod:`problems.cnn.data.synthetic`, with the same conventions (the shared
pieces are in :mod:`problems.cnn.data._resolution_free`): every example is a continuous function
``f(x, y, z)`` on the domain ``[0, 1)^3`` (zero outside), drawn once from a seed and sampled at
the nodes ``(i / n, j / n, k / n)`` of any resolution ``n`` (:meth:`SyntheticVolumes.render`,
``n^3`` voxels). The parameters do not depend on ``n``: one seed gives the same examples at every
resolution, and full-weighting restriction of a fine rendering approximates the coarse rendering.

An example of class ``c`` is::

    f(p) = (1 - noise) * contrast * shape_c(u, v, w)
           + noise * window(p) * (1 + field(p)) / 2

* ``(u, v, w) = Q^T (p - centre) / s``: local coordinates, ``Q`` a uniformly random rotation
  (:attr:`SyntheticVolumes.rotation`), ``s`` the scale (the shape fits in the unit ball).
* ``shape_c`` in ``[0, 1]``: ``(1 - tanh(d / EDGE_WIDTH)) / 2`` of the signed distance ``d``
  (physical units, negative inside) to the shape's surface, so the edges have the same physical
  width at every resolution; the two textures (``stripes``, ``checker``) are cosines of period
  proportional to ``s`` inside a soft ball.
* ``field``: a smooth random field in ``[-1, 1]`` of :data:`N_NOISE_MODES` plane waves;
  ``window(p) = sin(pi x)^2 sin(pi y)^2 sin(pi z)^2`` makes the background vanish at the boundary.

Hence ``0 <= f <= 1``. Volumes are stored as ``images`` with dims ``("example", "z", "y", "x")``
(:func:`problems.cnn.data.images_dataset`); row ``[:, k, j, i]`` is the node ``(i, j, k) / n``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ._resolution_free import (
    EDGE_WIDTH,
    POSITION_JITTER,
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

__all__ = ["VOLUME_CLASSES", "SyntheticVolumes", "draw_volumes", "make_volumes"]


# Each shape maps local coordinates (u, v, w), the variation xi in [0, 1) and the scale s (both
# shaped to broadcast against u) to values in [0, 1]. Signed distances in local units are
# multiplied by s to become physical lengths before smoothing.
def _ball(u, v, w, xi, s):
    return soft(s * (norm(u, v, w) - (0.55 + 0.4 * xi)))


def _shell(u, v, w, xi, s):
    return soft(s * (np.abs(norm(u, v, w) - 0.7) - (0.12 + 0.1 * xi)))


def _cube(u, v, w, xi, s):
    half = 0.45 + 0.12 * xi
    return soft(s * box_distance((u, v, w), (half, half, half)))


def _cross(u, v, w, xi, s):
    arm = 0.15 + 0.1 * xi
    return soft(s * np.minimum(np.minimum(box_distance((u, v, w), (0.9, arm, arm)),
                                          box_distance((u, v, w), (arm, 0.9, arm))),
                               box_distance((u, v, w), (arm, arm, 0.9))))


def _rod(u, v, w, xi, s):
    """A cylinder along ``u``."""
    return soft(s * box_distance((u, norm(v, w)), (0.9, 0.18 + 0.12 * xi)))


def _slab(u, v, w, xi, s):
    """A flat disk, thin along ``w``."""
    return soft(s * box_distance((norm(u, v), w), (0.85, 0.12 + 0.1 * xi)))


def _torus(u, v, w, xi, s):
    return soft(s * (norm(norm(u, v) - 0.65, w) - (0.15 + 0.1 * xi)))


def _two_balls(u, v, w, xi, s):
    radius = 0.35 + 0.1 * xi
    offset = 0.95 - radius
    return soft(s * (np.minimum(norm(u - offset, v, w), norm(u + offset, v, w)) - radius))


def _stripes(u, v, w, xi, s):
    period = 0.45 + 0.15 * xi
    inside = soft(s * (norm(u, v, w) - 0.95))
    return inside * (0.5 + 0.5 * np.cos(2 * np.pi * u / period))


def _checker(u, v, w, xi, s):
    period = 0.6 + 0.2 * xi
    inside = soft(s * (norm(u, v, w) - 0.95))
    waves = np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period)
    return inside * (0.5 + 0.5 * waves * np.cos(2 * np.pi * w / period))


_SHAPES = {
    "ball": _ball,
    "shell": _shell,
    "cube": _cube,
    "cross": _cross,
    "rod": _rod,
    "slab": _slab,
    "torus": _torus,
    "two_balls": _two_balls,
    "stripes": _stripes,
    "checker": _checker,
}
#: Names of the ten shape classes, in label order.
VOLUME_CLASSES = tuple(_SHAPES)


def _random_rotations(rng, n: int) -> np.ndarray:
    """``n`` rotation matrices ``(n, 3, 3)``, uniform on SO(3) (normalised Gaussian quaternions);
    column ``i`` is local axis ``i`` in ``(x, y, z)``."""
    q = rng.standard_normal((n, 4))
    a, b, c, d = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack([
        np.stack([a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)], -1),
        np.stack([2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)], -1),
        np.stack([2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d], -1),
    ], axis=1)


@dataclass(frozen=True, eq=False)
class SyntheticVolumes:
    """The parameters of a set of synthetic volumes; evaluate or render them at any resolution.

    Build it with :func:`draw_volumes`. All lengths are physical (domain ``[0, 1)^3``).

    Attributes
    ----------
    labels : ndarray of int64, shape (n_examples,)
        Class index into ``class_names``.
    class_names : tuple of str
        The classes drawn, a subset of :data:`VOLUME_CLASSES`.
    center : ndarray, shape (n_examples, 3)
        Shape centre ``(x, y, z)``.
    scale : ndarray, shape (n_examples,)
        Radius of the ball holding the shape.
    rotation : ndarray, shape (n_examples, 3, 3)
        Orthogonal, determinant 1: column ``i`` is the shape's local axis ``i`` in ``(x, y, z)``.
    contrast : ndarray, shape (n_examples,)
        Shape amplitude.
    variation : ndarray, shape (n_examples,)
        Within-class shape parameter in ``[0, 1)`` (shell thickness, rod radius, ...).
    wavevectors : ndarray, shape (n_examples, N_NOISE_MODES, 3)
        Background plane-wave vectors ``(k_x, k_y, k_z)``, radians per unit length.
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
    rotation: np.ndarray
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

    def _evaluate_block(self, rows: slice, z, y, x) -> np.ndarray:
        """``f`` of the examples ``rows`` on the tensor grid ``z x y x x``, ``(m, nz, ny, nx)``."""
        col = (slice(None), None, None, None)
        scale = self.scale[rows][col]
        offsets = (x[None, None, None, :] - self.center[rows, 0][col],
                   y[None, None, :, None] - self.center[rows, 1][col],
                   z[None, :, None, None] - self.center[rows, 2][col])
        rotation = self.rotation[rows]
        local = tuple(sum(rotation[:, axis, i][col] * offsets[axis] for axis in range(3)) / scale
                      for i in range(3))
        shape = evaluate_patterns(_SHAPES, self.class_names, self.labels[rows], local,
                                  self.variation[rows][col], scale)
        return compose(shape, self.contrast[rows][col], self.noise,
                       background(self.wavevectors[rows], self.amplitudes[rows], (z, y, x)))

    def evaluate(self, x, y, z, dtype=np.float64) -> np.ndarray:
        """Evaluate every example on the tensor grid of the 1-D coordinates ``z x y x x``.

        Parameters
        ----------
        x, y, z : array_like, shapes (nx,), (ny,), (nz,)
            Physical coordinates (any points; outside ``[0, 1]`` the functions are ~0).
        dtype : floating dtype
            dtype of the result (computed in float64).

        Returns
        -------
        ndarray, shape (n_examples, nz, ny, nx)
            ``f(x[i], y[j], z[k])`` at ``[:, k, j, i]``, values in ``[0, 1]``.
        """
        axes = tuple(np.asarray(t, dtype=np.float64) for t in (z, y, x))
        if any(t.ndim != 1 for t in axes):
            raise ValueError(
                "x, y and z must be 1-D coordinate arrays, got shapes "
                f"{[t.shape for t in axes[::-1]]}")
        return evaluate_blocked(self.n_examples, axes, self._evaluate_block,
                                _check_float_dtype(dtype))

    def render(self, resolution: int, dtype=np.float32) -> xr.Dataset:
        """Sample every example at the nodes ``i / n`` of an ``n x n x n`` mesh.

        Returns
        -------
        xarray.Dataset
            The image-set layout of :mod:`problems.cnn.data.images` with ``images`` dims
            ``("example", "z", "y", "x")``, ``source`` naming the seed, attrs ``seed``, ``noise``
            and ``edge_width``.

        Raises
        ------
        ValueError
            If ``resolution < 4``.
        """
        nodes = render_nodes(resolution)
        return images_dataset(
            self.evaluate(nodes, nodes, nodes, dtype=dtype), self.labels,
            class_names=self.class_names, dtype=dtype,
            source=f"pdecontrol synthetic volumes (seed={self.seed}, noise={self.noise})",
            attrs={"seed": self.seed, "noise": self.noise, "edge_width": EDGE_WIDTH},
        )


def draw_volumes(n_examples: int, seed: int, *, classes=None, noise: float = 0.3,
                 position_jitter: float = POSITION_JITTER) -> SyntheticVolumes:
    """Draw the parameters of ``n_examples`` synthetic volumes from ``seed`` (no resolution).

    Parameters
    ----------
    n_examples : int
        Number of examples, >= 1. Classes are balanced: ``n_examples // n_classes`` each, the
        first ``n_examples % n_classes`` classes (in ``classes`` order) one more, in random order.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same examples.
    classes : sequence of str or int, optional
        Subset of :data:`VOLUME_CLASSES` (names or indices) in label order; default all ten.
    noise : float
        Weight of the smooth random background, in ``[0, 1)``.
    position_jitter : float
        Fraction, in ``[0, 1]``, of the room left by the shape's ball over which its centre is
        drawn uniformly (per axis, around the domain centre).

    Raises
    ------
    ValueError
        If ``n_examples < 1``, ``noise`` is outside ``[0, 1)``, ``position_jitter`` outside
        ``[0, 1]`` or a class is unknown.
    """
    class_names = check_classes(classes, VOLUME_CLASSES)
    drawn = draw_parameters(n_examples, seed, len(class_names), 3, noise=noise,
                            position_jitter=position_jitter, orientation=_random_rotations)
    return SyntheticVolumes(class_names=class_names, rotation=drawn.pop("orientation"), **drawn)


def make_volumes(n_examples: int, resolution: int, seed: int, *, classes=None,
                 noise: float = 0.3, position_jitter: float = POSITION_JITTER,
                 dtype=np.float32) -> xr.Dataset:
    """Draw ``n_examples`` volumes from ``seed`` and render them at ``resolution`` (``n^3``).

    Shorthand for ``draw_volumes(...).render(resolution, dtype)``; the same seed at two
    resolutions gives the same examples.
    """
    examples = draw_volumes(n_examples, seed, classes=classes, noise=noise,
                            position_jitter=position_jitter)
    return examples.render(resolution, dtype)
