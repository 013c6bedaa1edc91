"""Named parameter blocks of a control problem and their flat float64 view.

A control problem has two kinds of parameter blocks:

* **control blocks**, one value per time step, stored with a leading ``n_steps`` axis
  (e.g. the kernels ``K`` of shape ``(n_steps, C, C, 3, 3)``); the value is constant over a step;
* **static blocks**, time independent (e.g. the opening kernel or the classifier ``W``).

Every block carries a scalar inner-product weight (``h**d`` for grid functions such as ``W``,
1 for stencils). :class:`ParameterLayout` maps between the structured :class:`Parameters`
and the flat float64 vector that optimisers see (:class:`pdecontrol.ReducedFunctional`).
Flat order: control blocks in the order given, then static blocks, each block C-contiguous.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from .._validation import as_float_array, check_finite, check_positive

__all__ = ["ParameterLayout", "Parameters", "refine_in_time", "time_interpolation_matrix"]


def _check_block_shape(shape, name: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape of block {name!r} must be a tuple of ints, got {shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"shape of block {name!r} must have positive lengths, got {shape}")
    return shape


class ParameterLayout:
    """Shapes, order and inner-product weights of the parameter blocks of a control problem.

    Parameters
    ----------
    n_steps : int
        Number of time steps; every control block has a leading axis of this length.
    controls : dict[str, tuple]
        Per-step control blocks: name -> shape of ONE step's value (without the step axis).
    static : dict[str, tuple], optional
        Time-independent blocks: name -> shape.
    block_weights : dict[str, float], optional
        Positive inner-product weight per block (default 1 for every block).

    Examples
    --------
    >>> layout = ParameterLayout(4, controls={"K": (2, 2), "b": (2,)}, static={"W": (3, 2)},
    ...                          block_weights={"W": 0.25})
    >>> layout.size, layout.shapes["K"]
    (30, (4, 2, 2))
    >>> p = layout.zeros(); p["b"][:] = 1.0
    >>> layout.flatten(p)[16:24]
    array([1., 1., 1., 1., 1., 1., 1., 1.])
    """

    def __init__(self, n_steps: int, controls: dict, static: dict | None = None,
                 block_weights: dict | None = None):
        if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
        static = {} if static is None else dict(static)
        controls = dict(controls)
        clash = set(controls) & set(static)
        if clash:
            raise ValueError(f"block names must be unique; {sorted(clash)} are both control and "
                             "static")
        if not controls and not static:
            raise ValueError("a ParameterLayout needs at least one control or static block")
        block_weights = {} if block_weights is None else dict(block_weights)
        unknown = set(block_weights) - set(controls) - set(static)
        if unknown:
            raise ValueError(f"block_weights names unknown blocks {sorted(unknown)}; "
                             f"blocks are {list(controls) + list(static)}")
        self.n_steps = int(n_steps)
        self.control_shapes = {k: _check_block_shape(s, k) for k, s in controls.items()}
        self.static_shapes = {k: _check_block_shape(s, k) for k, s in static.items()}
        self.block_weights = {k: check_positive(block_weights.get(k, 1.0), f"block_weights[{k!r}]")
                              for k in list(self.control_shapes) + list(self.static_shapes)}
        self.shapes = {k: (self.n_steps,) + s for k, s in self.control_shapes.items()}
        self.shapes.update(self.static_shapes)
        self.slices = {}
        start = 0
        for name, shape in self.shapes.items():
            stop = start + int(np.prod(shape))
            self.slices[name] = slice(start, stop)
            start = stop
        self.size = start

    # ------------------------------------------------------------------ structure
    @property
    def names(self) -> list[str]:
        """All block names in flat order (controls first)."""
        return list(self.shapes)

    @property
    def weights(self) -> np.ndarray:
        """Per-entry inner-product weights, shape ``(size,)``, float64."""
        w = np.empty(self.size)
        for name, sl in self.slices.items():
            w[sl] = self.block_weights[name]
        return w

    def with_n_steps(self, n_steps: int) -> ParameterLayout:
        """The same blocks and weights with a different number of time steps."""
        return ParameterLayout(n_steps, self.control_shapes, self.static_shapes, self.block_weights)

    def __eq__(self, other) -> bool:
        return (isinstance(other, ParameterLayout) and self.n_steps == other.n_steps
                and self.control_shapes == other.control_shapes
                and self.static_shapes == other.static_shapes
                and self.block_weights == other.block_weights)

    def __repr__(self) -> str:
        return (f"ParameterLayout(n_steps={self.n_steps}, controls={self.control_shapes}, "
                f"static={self.static_shapes}, size={self.size})")

    # ------------------------------------------------------------------ conversion
    def unflatten(self, x, name: str = "x") -> Parameters:
        """Structured view of a flat vector of length :attr:`size` (no copy for float64 input).

        The blocks are reshaped views of ``x``, so writing to them writes to ``x``.
        """
        x = as_float_array(x, name, dtype=np.float64)
        if x.ndim != 1 or x.shape[0] != self.size:
            raise ValueError(f"{name} must be a flat vector of length {self.size} for {self!r}, "
                             f"got shape {x.shape}")
        return Parameters(self, x)

    def flatten(self, params) -> np.ndarray:
        """Flat float64 vector of ``params`` (a :class:`Parameters` of this layout or a dict).

        For :class:`Parameters` of this layout the underlying vector itself is returned (no copy).
        """
        if isinstance(params, Parameters) and params.layout == self:
            return params.flat
        return self.from_blocks(params).flat

    def from_blocks(self, blocks: Mapping, name: str = "params") -> Parameters:
        """Copy a mapping name -> array into new :class:`Parameters`, validating every block.

        Raises ``ValueError`` naming the block for a missing/unknown block, a wrong shape or a
        non-finite entry.
        """
        missing = [k for k in self.shapes if k not in blocks]
        unknown = [k for k in blocks if k not in self.shapes]
        if missing or unknown:
            raise ValueError(f"{name} must hold exactly the blocks {self.names}; "
                             f"missing {missing}, unknown {unknown}")
        out = self.zeros()
        for block, shape in self.shapes.items():
            value = as_float_array(blocks[block], f"{name}[{block!r}]")
            if value.shape != shape:
                kind = "control" if block in self.control_shapes else "static"
                raise ValueError(f"{name}[{block!r}] ({kind} block) must have shape {shape}, "
                                 f"got {value.shape}")
            out[block][...] = check_finite(value, f"{name}[{block!r}]")
        return out

    def zeros(self) -> Parameters:
        """New all-zero :class:`Parameters`."""
        return Parameters(self, np.zeros(self.size))

    def random(self, rng: np.random.Generator, scale=1.0) -> Parameters:
        """New :class:`Parameters` with independent N(0, scale**2) entries.

        ``scale`` is a float for every block or a dict name -> float (missing names: 0).
        """
        out = self.zeros()
        for block, shape in self.shapes.items():
            s = scale.get(block, 0.0) if isinstance(scale, Mapping) else scale
            if s:
                out[block][...] = s * rng.standard_normal(shape)
        return out


class Parameters(Mapping):
    """Structured parameters: a read/write mapping block name -> array view into :attr:`flat`.

    Control blocks have shape ``(n_steps, *step_shape)``; :meth:`control_at` gives one step.
    Create them with :meth:`ParameterLayout.zeros`, :meth:`~ParameterLayout.unflatten` or
    :meth:`~ParameterLayout.from_blocks`.
    """

    def __init__(self, layout: ParameterLayout, flat: np.ndarray):
        self.layout = layout
        self.flat = flat
        self._blocks = {name: flat[sl].reshape(layout.shapes[name])
                        for name, sl in layout.slices.items()}

    def __getitem__(self, name):
        try:
            return self._blocks[name]
        except KeyError:
            raise KeyError(f"no parameter block {name!r}; blocks are {self.layout.names}") from None

    def __iter__(self):
        return iter(self._blocks)

    def __len__(self):
        return len(self._blocks)

    @property
    def controls(self) -> dict:
        """Control blocks, name -> array of shape ``(n_steps, *step_shape)``."""
        return {k: self._blocks[k] for k in self.layout.control_shapes}

    @property
    def static(self) -> dict:
        """Static blocks, name -> array."""
        return {k: self._blocks[k] for k in self.layout.static_shapes}

    def control_at(self, step: int) -> dict:
        """The controls of one time step, name -> view of shape ``step_shape``."""
        return {k: self._blocks[k][step] for k in self.layout.control_shapes}

    def copy(self) -> Parameters:
        """A deep copy (new flat vector)."""
        return Parameters(self.layout, self.flat.copy())

    def __repr__(self) -> str:
        return f"Parameters({', '.join(f'{k}: {v.shape}' for k, v in self._blocks.items())})"


def time_interpolation_matrix(n_old: int, n_new: int) -> np.ndarray:
    """Matrix ``M`` of shape ``(n_new, n_old)`` moving per-step controls to a new time grid.

    Controls are piecewise constant on the steps of a uniform grid of ``[0, T]``; the new
    value of step ``k`` is the linear interpolant of the old values at the step midpoints
    ``(j + 1/2) T / n_old``, evaluated at ``(k + 1/2) T / n_new`` (constant beyond the first
    and last midpoints). Independent of ``T``.
    """
    old_mid = (np.arange(n_old) + 0.5) / n_old
    new_mid = (np.arange(n_new) + 0.5) / n_new
    return np.stack([np.interp(new_mid, old_mid, column) for column in np.eye(n_old)], axis=1)


def refine_in_time(params: Parameters, n_steps_new: int) -> Parameters:
    """Move :class:`Parameters` to ``n_steps_new`` time steps (shallow-to-deep continuation).

    Control blocks are interpolated with :func:`time_interpolation_matrix`; static blocks are
    copied. Returns new Parameters on ``params.layout.with_n_steps(n_steps_new)``.
    """
    if not isinstance(params, Parameters):
        raise TypeError(f"params must be Parameters, got {type(params).__name__}")
    layout = params.layout.with_n_steps(n_steps_new)
    matrix = time_interpolation_matrix(params.layout.n_steps, layout.n_steps)
    out = layout.zeros()
    for name, value in params.controls.items():
        out[name][...] = np.tensordot(matrix, value, axes=(1, 0))
    for name, value in params.static.items():
        out[name][...] = value
    return out
