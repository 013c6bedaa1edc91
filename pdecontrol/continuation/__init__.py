"""Space and time continuation: run a problem through stages, resumably, with work accounting.

* :class:`Stage`, :class:`Schedule` - which level of the mesh hierarchy, how many time steps,
  which optimiser and how long (:mod:`~pdecontrol.continuation.schedule`);
* :class:`ContinuationProblem`, :class:`StageSetup` - what a problem supplies: the objective of a
  stage and how parameters move between stages (:mod:`~pdecontrol.continuation.problem`);
* :class:`WorkMeter` - work in fine-level units through evaluation observers
  (:mod:`~pdecontrol.continuation.work`);
* :func:`run_continuation`, :class:`ContinuationResult` - the driver: one labelled history, a
  resume state written after every row (:mod:`~pdecontrol.continuation.driver`,
  :mod:`~pdecontrol.continuation.state`).

See ``docs/continuation.md``.
"""

from .driver import HISTORY_FORMAT, RUN_STATUSES, ContinuationResult, run_continuation
from .problem import ContinuationProblem, StageSetup
from .schedule import Schedule, Stage, per_stage
from .state import RunState, load_run_state, save_run_state
from .work import WorkMeter

__all__ = [
    "Stage",
    "Schedule",
    "per_stage",
    "ContinuationProblem",
    "StageSetup",
    "WorkMeter",
    "run_continuation",
    "ContinuationResult",
    "RUN_STATUSES",
    "HISTORY_FORMAT",
    "RunState",
    "load_run_state",
    "save_run_state",
]
