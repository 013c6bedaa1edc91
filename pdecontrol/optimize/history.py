"""Per-iteration records of an optimiser, returned as an :class:`xarray.Dataset`."""

from __future__ import annotations

import numbers

import numpy as np
import xarray as xr

__all__ = ["History", "WALL_TIME"]

WALL_TIME = "wall_time"
"""Name of the cumulative wall-clock column (seconds); the only column that is not reproducible."""


class History:
    """Collects one row of named scalars per iteration.

    Rows may hold different keys (a step length has no value at the final iterate, a callback may
    report only sometimes); missing entries become NaN in float columns and ``""`` in string
    columns. Integer columns stay integers when no row is missing them.
    """

    def __init__(self):
        self._rows: list[dict] = []

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def rows(self) -> list[dict]:
        """The rows so far (copies)."""
        return [dict(row) for row in self._rows]

    def append(self, row: dict) -> None:
        """Add the row of iteration ``len(self)``; values are scalars (numbers, bools or str)."""
        for key, value in row.items():
            if not isinstance(value, (numbers.Number, str, np.bool_)):
                raise TypeError(
                    f"history entry {key!r} must be a scalar number or string, "
                    f"got {type(value).__name__}"
                )
        self._rows.append(dict(row))

    def to_dataset(self, attrs: dict | None = None) -> xr.Dataset:
        """The rows as a Dataset with dimension ``iteration`` (0 = the initial point)."""
        keys: list[str] = []
        for row in self._rows:
            keys.extend(k for k in row if k not in keys)
        data = {}
        for key in keys:
            values = [row.get(key) for row in self._rows]
            present = [v for v in values if v is not None]
            if all(isinstance(v, str) for v in present):
                column = np.array(["" if v is None else v for v in values], dtype=str)
            elif len(present) == len(values) and all(
                isinstance(v, (numbers.Integral, np.bool_)) for v in present
            ):
                column = np.array(values, dtype=np.int64)
            else:
                column = np.array(
                    [np.nan if v is None else float(v) for v in values], dtype=np.float64
                )
            data[key] = ("iteration", column)
        return xr.Dataset(
            data, coords={"iteration": np.arange(len(self._rows))}, attrs=dict(attrs or {})
        )
