"""What the resolution-free synthetic sets share: images (:mod:`.synthetic`), volumes
(:mod:`.volumes`).

An example is a continuous function on the domain ``[0, 1)^d`` (``d`` = 2 or 3, zero outside)::

    f(p) = (1 - noise) * contrast * pattern(local(p)) + noise * window(p) * (1 + field(p)) / 2

drawn once from a seed (:func:`draw_parameters`) and sampled at the nodes ``i / n`` of any
resolution ``n`` (:func:`render_nodes`). This module holds the pieces that do not depend on
``d``: the anti-aliased edge :func:`soft`, signed distances (:func:`norm`, :func:`box_distance`),
the boundary window, the random background field of plane waves, the draw of the parameters
every example has (label, centre, scale, contrast, variation, background), the argument checks
and the blocked evaluation on a tensor grid. Coordinates of a tensor grid are listed per array
axis, slowest first (``(y, x)`` in 2D, ``(z, y, x)`` in 3D); centres and wavevectors per
physical axis, ``x`` first.
"""
from __future__ import annotations

import functools
import numbers

import numpy as np

from pdecontrol._validation import check_int
from pdecontrol.mesh import Mesh

__all__ = [
    "EDGE_WIDTH",
    "N_NOISE_MODES",
    "MAX_NOISE_FREQUENCY",
    "SCALE_RANGE",
    "POSITION_JITTER",
    "CONTRAST_RANGE",
    "MARGIN",
    "soft",
    "norm",
    "box_distance",
    "boundary_window",
    "background",
    "compose",
    "check_classes",
    "draw_parameters",
    "evaluate_blocked",
    "evaluate_patterns",
    "render_nodes",
]

#: Width (physical length, domain side = 1) of the anti-aliased edges of the shapes.
EDGE_WIDTH = 1.0 / 64
#: Number of random plane waves in the background field of each example.
N_NOISE_MODES = 6
#: Largest background frequency, in cycles per unit length (per axis).
MAX_NOISE_FREQUENCY = 3.0
#: Range of the example scale ``s`` (radius of the ball holding the pattern, physical units).
SCALE_RANGE = (0.2, 0.32)
#: Default fraction of the free room over which a pattern's centre is drawn (see draw_parameters).
POSITION_JITTER = 0.25
#: Range of the pattern contrast.
CONTRAST_RANGE = (0.5, 1.0)
#: Smallest distance between a pattern's ball and the domain boundary.
MARGIN = 4 * EDGE_WIDTH
#: Values rendered in one vectorised block (bounds the temporary memory).
BLOCK_VALUES = 1 << 20


def soft(distance):
    """Anti-aliased indicator of ``distance < 0`` with edges of width ``EDGE_WIDTH``."""
    return 0.5 * (1.0 - np.tanh(distance / EDGE_WIDTH))


def norm(*components):
    """Euclidean norm of the broadcast ``components``: ``np.hypot`` of two (the values the image
    set has always had), the square root of the sum of squares of more (8x faster than hypot)."""
    if len(components) == 2:
        return np.hypot(*components)
    return np.sqrt(sum(c * c for c in components))


def box_distance(coordinates, halves):
    """Signed distance (local units) to the box ``|coordinates[i]| <= halves[i]`` (any dim)."""
    q = [np.abs(c) - half for c, half in zip(coordinates, halves, strict=True)]
    outside = norm(*[np.maximum(qi, 0.0) for qi in q])
    return outside + np.minimum(functools.reduce(np.maximum, q), 0.0)


def boundary_window(t: np.ndarray) -> np.ndarray:
    """``sin(pi t)^2`` on ``[0, 1]``, zero outside (1-D, physical coordinates)."""
    return np.where((t >= 0) & (t <= 1), np.sin(np.pi * t) ** 2, 0.0)


def background(wavevectors, amplitudes, axes) -> np.ndarray:
    """``window(p) * (1 + field(p)) / 2`` of ``m`` examples on a tensor grid, in ``[0, 1]``.

    Parameters
    ----------
    wavevectors : ndarray, shape (m, N_NOISE_MODES, d)
        Plane-wave vectors per physical axis (``k_x`` first), radians per unit length.
    amplitudes : complex ndarray, shape (m, N_NOISE_MODES)
        ``sum(abs(amplitudes), axis=1) == 1``, so ``field = Re sum_k a_k e^{i k.p}`` is in
        ``[-1, 1]``.
    axes : sequence of d 1-D arrays
        Grid coordinates per array axis, slowest first (``(y, x)``, ``(z, y, x)``).

    Returns
    -------
    ndarray, shape (m, *sizes)
    """
    dim = len(axes)
    # Plane waves are separable: the leading axes' factors are multiplied out, the last axis
    # enters by a batched matmul.
    factors = [np.exp(1j * wavevectors[:, :, dim - 1 - a, None] * t) for a, t in enumerate(axes)]
    lead = amplitudes[:, :, None] * factors[0]
    for factor in factors[1:-1]:
        lead = (lead[:, :, :, None] * factor[:, :, None, :]).reshape(lead.shape[:2] + (-1,))
    lead = lead.transpose(0, 2, 1)
    # the real part of the complex product by two real products (a complex matmul is slower)
    field = np.matmul(lead.real, factors[-1].real) - np.matmul(lead.imag, factors[-1].imag)
    field = field.reshape((field.shape[0],) + tuple(t.size for t in axes))
    window = functools.reduce(np.multiply.outer, [boundary_window(t) for t in axes])
    return window * (0.5 + 0.5 * field)


def compose(pattern, contrast, noise: float, background_values) -> np.ndarray:
    """``(1 - noise) * contrast * pattern + noise * background`` (``contrast`` broadcast)."""
    return (1 - noise) * contrast * pattern + noise * background_values


def check_classes(classes, all_names: tuple) -> tuple:
    """The class names chosen by ``classes`` (names or indices into ``all_names``; ``None``: all).

    Raises ``ValueError`` for an unknown class, an index out of range, a repeat or no class.
    """
    if classes is None:
        return all_names
    if isinstance(classes, (str, numbers.Integral)):
        classes = [classes]
    names = []
    for entry in classes:
        if isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
            if not 0 <= entry < len(all_names):
                raise ValueError(
                    f"classes: index {entry} is out of range 0..{len(all_names) - 1}"
                )
            entry = all_names[entry]
        if entry not in all_names:
            raise ValueError(
                f"classes: unknown class {entry!r}; choose names from {list(all_names)} "
                "or their indices"
            )
        names.append(entry)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"classes must list distinct classes, at least one, got {list(classes)}")
    return tuple(names)


def draw_parameters(n_examples: int, seed: int, n_classes: int, dim: int, *, noise: float,
                    position_jitter: float, orientation) -> dict:
    """Draw the parameters every example has, from ``numpy.random.default_rng(seed)``.

    Classes are balanced: ``n_examples // n_classes`` each, the first ``n_examples % n_classes``
    one more, in random order. The centre is drawn uniformly over ``position_jitter`` of the room
    the pattern's ball leaves (per axis, around the domain centre).

    Parameters
    ----------
    orientation : callable
        ``orientation(rng, n_examples)`` draws the rotations (called after the centres, so the
        order of the draws, hence the examples of a seed, is fixed).

    Returns
    -------
    dict
        ``labels`` (int64), ``scale``, ``center`` ``(n, dim)``, ``orientation`` (what the
        callable returned), ``contrast``, ``variation`` (``[0, 1)``), ``wavevectors``
        ``(n, N_NOISE_MODES, dim)``, ``amplitudes``, ``noise``, ``seed``.

    Raises
    ------
    ValueError
        If ``n_examples < 1``, ``seed < 0``, ``noise`` is outside ``[0, 1)`` or
        ``position_jitter`` outside ``[0, 1]``.
    """
    n_examples = check_int(n_examples, "n_examples", 1)
    seed = check_int(seed, "seed", 0)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < 1:
        raise ValueError(f"noise must be a number in [0, 1), got {noise!r}")
    if (isinstance(position_jitter, bool) or not isinstance(position_jitter, numbers.Real)
            or not 0 <= position_jitter <= 1):
        raise ValueError(f"position_jitter must be a number in [0, 1], got {position_jitter!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_examples) % n_classes).astype(np.int64)
    scale = rng.uniform(*SCALE_RANGE, n_examples)
    room = position_jitter * (1 - 2 * (MARGIN + scale))
    center = 0.5 + room[:, None] * (rng.uniform(size=(n_examples, dim)) - 0.5)
    rotation = orientation(rng, n_examples)
    contrast = rng.uniform(*CONTRAST_RANGE, n_examples)
    variation = rng.uniform(size=n_examples)
    frequencies = rng.uniform(-MAX_NOISE_FREQUENCY, MAX_NOISE_FREQUENCY,
                              (n_examples, N_NOISE_MODES, dim))
    amplitudes = rng.standard_normal((n_examples, N_NOISE_MODES, 2)) @ np.array([1, 1j])
    amplitudes /= np.abs(amplitudes).sum(axis=1, keepdims=True)
    return {"labels": labels, "scale": scale, "center": center, "orientation": rotation,
            "contrast": contrast, "variation": variation,
            "wavevectors": 2 * np.pi * frequencies, "amplitudes": amplitudes,
            "noise": float(noise), "seed": seed}


def evaluate_blocked(n_examples: int, axes, evaluate_block, dtype) -> np.ndarray:
    """``evaluate_block(rows, *axes)`` over blocks of examples, into one array.

    ``axes`` are the 1-D grid coordinates per array axis (float64); the result has shape
    ``(n_examples, *sizes)`` and ``dtype``; each block holds about :data:`BLOCK_VALUES` values.
    """
    sizes = tuple(t.size for t in axes)
    out = np.empty((n_examples,) + sizes, dtype=dtype)
    block = max(1, BLOCK_VALUES // max(1, int(np.prod(sizes))))
    for start in range(0, n_examples, block):
        rows = slice(start, start + block)
        out[rows] = evaluate_block(rows, *axes)
    return out


def render_nodes(resolution: int) -> np.ndarray:
    """The node coordinates ``i / n`` of one axis of resolution ``n`` (``ValueError`` if n < 4)."""
    n = check_int(resolution, "resolution", 4)
    (nodes,) = Mesh((n,)).node_coordinates()
    return nodes


def evaluate_patterns(patterns: dict, class_names: tuple, labels, local, variation, scale):
    """Each example's pattern ``patterns[class_names[label]](*local, variation, scale)``.

    ``local`` are the local coordinates, arrays of shape ``(m, *sizes)``; ``variation`` and
    ``scale`` broadcast against them. Returns an array of that shape (float64).
    """
    pattern = np.empty(local[0].shape)
    for label in np.unique(labels):
        chosen = labels == label
        pattern[chosen] = patterns[class_names[label]](
            *(c[chosen] for c in local), variation[chosen], scale[chosen])
    return pattern
