"""Explicit Runge-Kutta time stepping with exact discrete tangent and adjoint sweeps.

One generic stepper, :class:`RungeKutta`, parameterised by a Butcher tableau ``(a, b, c)``
(``a`` strictly lower triangular). With ``dt = T / n_steps``, ``t_j = j dt`` and the controls
``theta_j`` constant over step ``j``::

    Y_i = y_j + dt * sum_{k<i} a_ik F_k,     F_i = f(Y_i, theta_j, static, t_j + c_i dt),
    y_{j+1} = y_j + dt * sum_i b_i F_i.

:data:`FORWARD_EULER` (the ResNet), :data:`EXPLICIT_MIDPOINT` (RK2) and :data:`RK4` are
instances. The tangent sweep is the chain rule of this recursion (forward mode) and the adjoint
sweep its exact transpose (reverse mode), so gradients are the gradients of the *discrete*
objective. :func:`integrate` returns a :class:`Trajectory` that stores every state, or only
every ``checkpoint_every``-th state and recomputes each segment during the adjoint sweep
(bounded memory; the two modes give identical derivatives). With ``store_linearization=True``
it also keeps the step linearisations (stage states, ``problem.linearize`` caches) so that
repeated sweeps (Gauss-Newton products) do not recompute them.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._validation import as_float_array, check_positive
from ..ops.elementwise import add_scaled
from ._accumulate import accumulate
from .problem import ControlProblem

__all__ = ["RungeKutta", "FORWARD_EULER", "EXPLICIT_MIDPOINT", "RK4", "Trajectory", "integrate",
           "get_stepper"]


def _combine(y, scale, coefficients, vectors):
    """``y + scale * sum_k coefficients[k] * vectors[k]``, skipping zero coefficients
    (``y=None``: the sum alone; at least one coefficient must then be nonzero).

    A new array, made read-only: states and stages are stored and handed to the problem, which
    must not modify them. Each term is one fused pass (:func:`pdecontrol.ops.add_scaled`).
    """
    out, base = None, y
    for coefficient, vector in zip(coefficients, vectors, strict=True):
        if coefficient != 0.0:
            out = add_scaled(base, scale * coefficient, vector, out=out)
            base = out
    if out is None:
        out = y.copy()
    out.flags.writeable = False
    return out


def _read_only(array: np.ndarray) -> np.ndarray:
    view = np.asarray(array).view()
    view.flags.writeable = False
    return view


def _read_only_cache(cache):
    """A linearisation cache with its arrays read-only (an array, or a tuple/list/dict of them).

    Caches are handed back to several tangent and adjoint sweeps, which must not modify them.
    Other objects are returned as they are.
    """
    if isinstance(cache, np.ndarray):
        return _read_only(cache)
    if type(cache) in (tuple, list):
        return type(cache)(_read_only_cache(item) for item in cache)
    if type(cache) is dict:
        return {key: _read_only_cache(item) for key, item in cache.items()}
    return cache


class RungeKutta:
    """Explicit Runge-Kutta method given by its Butcher tableau.

    Parameters
    ----------
    a : array_like, shape (s, s)
        Stage coefficients, strictly lower triangular (explicit method).
    b : array_like, shape (s,)
        Weights of the stage slopes in the update.
    c : array_like, shape (s,), optional
        Stage times as fractions of ``dt``; default the row sums of ``a``.
    name : str
        Readable name.
    """

    def __init__(self, a, b, c=None, name: str = "Runge-Kutta"):
        a = np.atleast_2d(as_float_array(a, "a", dtype=np.float64))
        b = np.atleast_1d(as_float_array(b, "b", dtype=np.float64))
        n_stages = b.shape[0]
        if b.ndim != 1 or a.shape != (n_stages, n_stages):
            raise ValueError(f"Butcher tableau: a must be ({n_stages}, {n_stages}) for b of length "
                             f"{n_stages}, got a {a.shape}, b {b.shape}")
        if np.any(np.triu(a) != 0):
            raise ValueError("Butcher tableau: a must be strictly lower triangular "
                             "(explicit method)")
        c = a.sum(axis=1) if c is None else as_float_array(c, "c", dtype=np.float64)
        if c.shape != (n_stages,):
            raise ValueError(f"Butcher tableau: c must have shape ({n_stages},), got {c.shape}")
        self.a, self.b, self.c, self.name = a, b, c, name
        self.n_stages = n_stages
        self._forward_euler = n_stages == 1 and b[0] == 1.0

    def __repr__(self) -> str:
        return f"RungeKutta({self.name!r}, stages={self.n_stages})"

    # ------------------------------------------------------------------ forward
    def step(self, problem: ControlProblem, y, control, static, t: float, dt: float):
        """One step ``y_j -> y_{j+1}`` (calls ``problem.rhs`` once per stage; forward Euler
        calls ``problem.euler_step``, which a problem may fuse)."""
        if not dt > 0:
            raise ValueError(f"time step dt must be > 0, got {dt}; use final_time > 0 and "
                             "n_steps >= 1")
        if self._forward_euler:
            out = problem.euler_step(y, control, static, t, dt)
            if not isinstance(out, np.ndarray) or out.shape != np.shape(y):
                raise ValueError(f"{type(problem).__name__}.euler_step must return an array of "
                                 f"the state's shape {np.shape(y)}, got "
                                 f"{getattr(out, 'shape', type(out).__name__)}")
            out.flags.writeable = False
            return out
        slopes = []
        for i in range(self.n_stages):
            stage = _combine(y, dt, self.a[i, :i], slopes) if i else y
            slopes.append(problem.rhs(stage, control, static, t + self.c[i] * dt))
        return _combine(y, dt, self.b, slopes)

    def next_state(self, linearization, y, dt: float):
        """``y_{j+1}`` from the step's linearisation (with its slopes) and ``y_j``."""
        return _combine(y, dt, self.b, linearization[1])

    def compact(self, linearization):
        """What tangent and adjoint steps use, to be kept between sweeps: ``(stages, None,
        caches)`` (the slopes are dropped)."""
        stages, _, caches = linearization
        return stages, None, caches

    def linearize(self, problem: ControlProblem, y, control, static, t: float, dt: float):
        """Stage states, slopes and caches of one step: ``(stages, slopes, caches)`` lists.

        Calls ``problem.linearize`` once per stage; array caches are made read-only.
        ``step_tangent`` and ``step_adjoint`` use the stages and caches only (``slopes`` may
        be ``None``).
        """
        stages, slopes, caches = [], [], []
        for i in range(self.n_stages):
            stage = _combine(y, dt, self.a[i, :i], slopes) if i else y
            slope, cache = problem.linearize(stage, control, static, t + self.c[i] * dt)
            stages.append(stage)
            slopes.append(slope)
            caches.append(_read_only_cache(cache))
        return stages, slopes, caches

    # ------------------------------------------------------------------ derivatives
    def step_tangent(self, problem, linearization, control, static, t, dt, dy, dcontrol, dstatic):
        """Tangent of one step: ``dy_{j+1}`` from ``dy_j`` and the parameter directions."""
        stages, _, caches = linearization
        dslopes = []
        for i in range(self.n_stages):
            dstage = _combine(dy, dt, self.a[i, :i], dslopes) if i else dy
            dslopes.append(problem.rhs_tangent(stages[i], control, static, t + self.c[i] * dt,
                                               dstage, dcontrol, dstatic, cache=caches[i]))
        return _combine(dy, dt, self.b, dslopes)

    def step_adjoint(self, problem, linearization, control, static, t, dt, y_bar,
                     control_bar: dict, static_bar: dict):
        """Transpose of :meth:`step_tangent`; returns ``y_bar_j``, adds into the two dicts."""
        stages, _, caches = linearization
        stage_bars = [None] * self.n_stages
        y_prev_bar = y_bar.copy()
        for i in reversed(range(self.n_stages)):
            terms = [(self.b[i], y_bar)] + [(self.a[m, i], stage_bars[m])
                                            for m in range(i + 1, self.n_stages)]
            terms = [(coefficient, vector) for coefficient, vector in terms
                     if coefficient != 0.0 and vector is not None]
            if not terms:
                continue
            coefficients, vectors = zip(*terms, strict=True)
            slope_bar = _combine(None, dt, coefficients, vectors)
            stage_bar, c_bar, s_bar = problem.rhs_adjoint(
                stages[i], control, static, t + self.c[i] * dt, slope_bar, cache=caches[i])
            stage_bars[i] = stage_bar
            y_prev_bar += stage_bar
            accumulate(control_bar, c_bar)
            accumulate(static_bar, s_bar)
        return y_prev_bar


FORWARD_EULER = RungeKutta([[0.0]], [1.0], name="forward Euler")
EXPLICIT_MIDPOINT = RungeKutta([[0.0, 0.0], [0.5, 0.0]], [0.0, 1.0], name="explicit midpoint")
RK4 = RungeKutta([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0],
                  [0.0, 0.0, 1.0, 0.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6], name="classic RK4")

_STEPPERS = {"euler": FORWARD_EULER, "forward_euler": FORWARD_EULER, "midpoint": EXPLICIT_MIDPOINT,
             "rk2": EXPLICIT_MIDPOINT, "rk4": RK4}


#: Names of implicit steppers (a new :class:`~pdecontrol.control.implicit.ThetaMethod` with sparse
#: LU per call: each holds its own factorization cache).
_IMPLICIT = {"backward_euler": 1.0, "crank_nicolson": 0.5}


def get_stepper(stepper):
    """A stepper: a :class:`RungeKutta` or :class:`~pdecontrol.control.implicit.ThetaMethod`
    instance, or a name: ``'euler'``, ``'midpoint'`` (``'rk2'``), ``'rk4'`` (explicit),
    ``'backward_euler'``, ``'crank_nicolson'`` (implicit, sparse LU)."""
    from .implicit import ThetaMethod

    if isinstance(stepper, (RungeKutta, ThetaMethod)):
        return stepper
    if isinstance(stepper, str) and stepper.lower() in _STEPPERS:
        return _STEPPERS[stepper.lower()]
    if isinstance(stepper, str) and stepper.lower() in _IMPLICIT:
        return ThetaMethod(_IMPLICIT[stepper.lower()], name=stepper.lower().replace("_", " "))
    raise ValueError(f"stepper must be a RungeKutta, a ThetaMethod or one of "
                     f"{sorted(_STEPPERS) + sorted(_IMPLICIT)}, got {stepper!r}")


class Trajectory:
    """A forward solve of the state equation, kept for tangent and adjoint sweeps.

    Built by :func:`integrate`. Holds every state ``y_0 .. y_n`` (``checkpoint_every=None``)
    or only ``y_0, y_k, y_2k, ...`` and ``y_n``; in the latter case the adjoint sweep recomputes
    one segment of ``k`` states at a time from its checkpoint.

    With ``store_linearization=True`` step linearisations (stage states and the caches of
    ``problem.linearize``; the slopes are dropped once the next state is formed) are kept and
    reused instead of being recomputed by every sweep:

    * all states stored: the forward solve calls ``problem.linearize`` instead of ``rhs`` and
      keeps every step's linearisation; tangent and adjoint sweeps call neither. Memory grows
      by ``s - 1`` stage states and ``s`` caches per step (``s`` stages; forward Euler: one
      cache per step).
    * checkpointing: nothing more is kept between sweeps; the adjoint sweep recomputes each
      segment with ``linearize`` and keeps the segment's ``k`` linearisations, instead of
      recomputing its states with ``rhs`` and linearising each step again.

    Derivatives are those of the default mode, bit for bit when ``problem.linearize`` returns
    the same ``f`` as ``problem.rhs``.

    Attributes
    ----------
    final_state : ndarray
        ``y_n``, shape ``(batch, *state_shape)``.
    stored_states : int
        States held between sweeps.
    peak_states : int
        Largest number of states held at once so far (stored + one recomputed segment).
    recomputed_steps : int
        Forward steps recomputed from checkpoints so far.
    stored_linearizations : int
        Step linearisations held between sweeps (``n_steps`` or 0).
    peak_linearizations : int
        Largest number of step linearisations held at once so far: the stored ones, a
        recomputed segment's, or the single one a sweep is using.
    """

    def __init__(self, problem, stepper, y0, controls, static, final_time, n_steps,
                 checkpoint_every, store_linearization=False, keep_steps=()):
        self.problem, self.stepper = problem, stepper
        self.controls, self.static = controls, static
        self.n_steps = n_steps
        self.dt = final_time / n_steps
        self.checkpoint_every = checkpoint_every
        self.store_linearization = bool(store_linearization)
        keep_all = self.store_linearization and checkpoint_every is None
        interval = checkpoint_every or 1
        y = _read_only(y0)
        self._states = {0: y}
        self._linearizations = {}
        for j in range(n_steps):
            linearization = None
            if keep_all:
                linearization = self._linearize(j, y)
                self._linearizations[j] = self.stepper.compact(linearization)
            y = self._next_state(j, y, linearization)
            if (j + 1) % interval == 0 or j + 1 == n_steps or j + 1 in keep_steps:
                self._states[j + 1] = y
        self.final_state = y
        self.stored_states = len(self._states)
        self.peak_states = self.stored_states
        self.recomputed_steps = 0
        self.stored_linearizations = len(self._linearizations)
        self.peak_linearizations = self.stored_linearizations

    def time(self, step: int) -> float:
        """Start time ``t_j = j dt`` of step ``j``."""
        return step * self.dt

    def state(self, step: int) -> np.ndarray:
        """``y_j`` of a stored step (every step without checkpointing; with it, the checkpoints,
        the final state and the ``keep_steps`` of :func:`integrate`)."""
        try:
            return self._states[step]
        except KeyError:
            raise ValueError(f"the state of step {step} is not stored; pass keep_steps to "
                             "integrate to keep it") from None

    def control_at(self, step: int) -> dict:
        """Controls of step ``j`` (views)."""
        return {name: value[step] for name, value in self.controls.items()}

    def _linearize(self, step, y):
        """Linearisation of step ``j`` at its start state ``y``: the stored one, or a fresh one."""
        linearization = self._linearizations.get(step)
        if linearization is not None:
            return linearization
        return self.stepper.linearize(self.problem, y, self.control_at(step), self.static,
                                      self.time(step), self.dt)

    def _next_state(self, step, y, linearization=None):
        """``y_{j+1}`` from ``y_j``: stored, else from the linearisation's slopes, else one step."""
        stored = self._states.get(step + 1)
        if stored is not None:
            return stored
        if linearization is not None:
            return self.stepper.next_state(linearization, y, self.dt)
        return self.stepper.step(self.problem, y, self.control_at(step), self.static,
                                 self.time(step), self.dt)

    def _hold(self, states: int, linearizations: int):
        """Record that ``states`` / ``linearizations`` beyond the stored ones are held now."""
        self.peak_states = max(self.peak_states, self.stored_states + states)
        self.peak_linearizations = max(self.peak_linearizations,
                                       self.stored_linearizations + linearizations)

    def _linearizations_forward(self):
        """Yield ``(j, linearization)`` for j = 0..n-1 (next state from the slopes, no
        recompute)."""
        self._hold(0, 0 if self._linearizations else 1)
        y = self._states[0]
        for j in range(self.n_steps):
            linearization = self._linearize(j, y)
            yield j, linearization
            if j + 1 < self.n_steps:
                y = self._next_state(j, y, linearization)

    def _segment(self, start: int, stop: int):
        """Start states of steps ``start..stop-1`` (recomputed from the checkpoint ``y_start``)
        and their linearisations where stored or kept (``store_linearization``), else ``None``."""
        states, linearizations = [self._states[start]], []
        for j in range(start, stop):
            keep = self.store_linearization or j in self._linearizations
            linearization = self._linearize(j, states[-1]) if keep else None
            linearizations.append(None if linearization is None
                                  else self.stepper.compact(linearization))
            if j + 1 < stop:
                self.recomputed_steps += (j + 1) not in self._states
                states.append(self._next_state(j, states[-1], linearization))
        kept = sum(j not in self._linearizations for j in range(start, stop))
        self._hold(len(states) - 1, kept if self.store_linearization else 1)
        return states, linearizations

    def _linearizations_reverse(self):
        """Yield ``(j, linearization)`` for j = n-1..0, recomputing segments from checkpoints."""
        interval = self.checkpoint_every or 1
        for start in reversed(range(0, self.n_steps, interval)):
            stop = min(start + interval, self.n_steps)
            states, linearizations = self._segment(start, stop)
            for j in reversed(range(start, stop)):
                y, linearization = states.pop(), linearizations.pop()
                yield j, self._linearize(j, y) if linearization is None else linearization

    def tangent(self, dy0, dcontrols: dict, dstatic: dict, at_steps=None):
        """Tangent sweep for the initial-state direction and parameter directions: ``dy_n``, or
        with ``at_steps`` (step indices) the dict ``step -> dy_step``."""
        at = None if at_steps is None else set(at_steps)
        found = {} if at is None or 0 not in at else {0: dy0}
        dy = dy0
        for j, linearization in self._linearizations_forward():
            dy = self.stepper.step_tangent(self.problem, linearization, self.control_at(j),
                                           self.static, self.time(j), self.dt, dy,
                                           {k: v[j] for k, v in dcontrols.items()}, dstatic)
            if at is not None and j + 1 in at:
                found[j + 1] = dy
        return dy if at is None else found

    def adjoint(self, final_state_bar=None, *, sources=None):
        """Adjoint sweep for the cotangent of ``y_n``, or of several states: ``sources`` maps
        step indices to cotangents of ``y_step`` (e.g. the adjoints of observations at several
        times), each added when the sweep reaches its step.

        Returns
        -------
        y0_bar : ndarray
            Cotangent of ``y_0`` (compute dtype).
        controls_bar : dict
            name -> float64 array ``(n_steps, *step_shape)``.
        static_bar : dict
            name -> float64 array.
        """
        if (final_state_bar is None) == (sources is None):
            raise ValueError("give the cotangent of the final state or sources (one of them)")
        sources = {self.n_steps: final_state_bar} if sources is None else dict(sources)
        unknown = [step for step in sources if not 0 <= step <= self.n_steps]
        if unknown:
            raise ValueError(f"sources at steps {unknown} lie outside 0..{self.n_steps}")
        controls_bar = {k: np.zeros(v.shape) for k, v in self.controls.items()}
        static_bar = {k: np.zeros(np.shape(v)) for k, v in self.static.items()}
        y_bar = sources.get(self.n_steps)
        if y_bar is None:
            y_bar = np.zeros_like(self.final_state)
        for j, linearization in self._linearizations_reverse():
            step_bar = {k: np.zeros(v.shape[1:]) for k, v in self.controls.items()}
            y_bar = self.stepper.step_adjoint(self.problem, linearization, self.control_at(j),
                                              self.static, self.time(j), self.dt, y_bar,
                                              step_bar, static_bar)
            for name, value in step_bar.items():
                controls_bar[name][j] = value
            if j in sources:
                y_bar = y_bar + sources[j]
        return y_bar, controls_bar, static_bar


def integrate(problem: ControlProblem, stepper, y0, controls: dict, static: dict, *,
              final_time: float, n_steps: int, checkpoint_every: int | None = None,
              store_linearization: bool = False, keep_steps=()) -> Trajectory:
    """Solve ``dy/dt = f`` on ``[0, final_time]`` with ``n_steps`` steps of ``stepper``.

    Parameters
    ----------
    problem : ControlProblem
    stepper : RungeKutta or str
    y0 : ndarray, shape (batch, *state_shape)
    controls : dict
        name -> array of shape ``(n_steps, *step_shape)``.
    static : dict
        name -> array.
    final_time : float
        ``T > 0``; the step is ``dt = T / n_steps``.
    n_steps : int
        ``>= 1``.
    checkpoint_every : int, optional
        Store every k-th state only (``None``: store all).
    store_linearization : bool
        Keep step linearisations for reuse by the sweeps (see :class:`Trajectory`): with all
        states stored, every step's linearisation (computed by the forward solve); with
        checkpointing, one segment's at a time during the adjoint sweep.
    keep_steps : sequence of int
        Steps whose states are stored whatever the checkpointing (e.g. observation times).
    """
    if not isinstance(problem, ControlProblem):
        raise TypeError(f"problem must be a ControlProblem, got {type(problem).__name__}")
    stepper = get_stepper(stepper)
    final_time = check_positive(final_time, "final_time")
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, numbers.Integral)
            or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every must be None (store all states) or an integer >= 1, "
                         f"got {checkpoint_every!r}")
    for name, value in controls.items():
        if np.shape(value)[:1] != (n_steps,):
            raise ValueError(f"control block {name!r} must have a leading axis of length "
                             f"n_steps={n_steps}, got shape {np.shape(value)}")
    if not isinstance(store_linearization, (bool, np.bool_)):
        raise TypeError(f"store_linearization must be True or False, got {store_linearization!r}")
    keep_steps = frozenset(int(step) for step in keep_steps)
    if any(not 0 <= step <= n_steps for step in keep_steps):
        raise ValueError(f"keep_steps must lie in 0..n_steps={n_steps}, got {sorted(keep_steps)}")
    return Trajectory(problem, stepper, y0, controls, static, final_time, int(n_steps),
                      None if checkpoint_every is None else int(checkpoint_every),
                      store_linearization, keep_steps)
