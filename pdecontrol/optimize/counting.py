"""Counting the evaluations of a reduced functional: an observer (:mod:`pdecontrol.functional`)."""

from __future__ import annotations

from ..functional import EVALUATION_KINDS

__all__ = ["EvaluationCounter", "COUNT_COLUMNS"]

#: History column of each counted kind (building a Gauss-Newton operator is not a column: its
#: cost is the forward solve it holds).
COUNT_COLUMNS = {
    "value": "n_value_evaluations",
    "gradient": "n_gradient_evaluations",
    "gauss_newton_product": "n_gauss_newton_products",
}


class EvaluationCounter:
    """Counts the evaluations announced by the functionals it observes, by kind.

    ``functional.observe(EvaluationCounter())``; every solver counts its own evaluations this way.
    An evaluation counts once, however many functionals it calls inside. ``paused`` (a bool)
    stops counting, e.g. while a run monitors its progress.

    Attributes
    ----------
    counts : dict
        kind (:data:`pdecontrol.functional.EVALUATION_KINDS`) -> number of evaluations.
    """

    def __init__(self):
        self.counts = dict.fromkeys(EVALUATION_KINDS, 0)
        self.paused = False

    def before(self, evaluation) -> None:
        if not self.paused:
            self.counts[evaluation.kind] += 1

    def history_columns(self) -> dict:
        """The counts under their history column names (:data:`COUNT_COLUMNS`)."""
        return {column: self.counts[kind] for kind, column in COUNT_COLUMNS.items()}

    def get_state(self) -> dict:
        """The counts (a copy), for resuming."""
        return dict(self.counts)

    def set_state(self, state: dict) -> None:
        """Restore counts from :meth:`get_state`."""
        unknown = set(state) - set(EVALUATION_KINDS)
        if unknown:
            raise ValueError(f"unknown evaluation kinds {sorted(unknown)} in a saved count")
        self.counts = dict.fromkeys(EVALUATION_KINDS, 0)
        self.counts.update({kind: int(n) for kind, n in state.items()})
