"""Which runs count, the rule that the exported tables and the dashboard share: only runs with status
``done``; of several runs of one cell (same sweep, source and cell) only the latest by ``finished`` (a run
with no ``finished`` counts as the oldest; on a tie the last ``run_id`` wins, and on a tie of both the row
that comes later in the frame). Frames are store frames (``Store(path).read().frame()``) or built by hand
from records.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["ObjectArray", "column_values", "latest_runs"]

ObjectArray = npt.NDArray[np.object_]
_GROUP = ("sweep", "source", "cell")  # one cell of one sweep, from one source


def column_values(frame: pd.DataFrame, column: str) -> ObjectArray:
    """The column's values with every kind of missing value as None (all None if there is no such column)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    values: ObjectArray = frame[column].to_numpy(dtype=object, na_value=None)
    return values


def _recency(frame: pd.DataFrame) -> npt.NDArray[np.int64]:
    """``finished`` as an integer that orders runs in time, a missing one (NaT) the smallest of all."""
    if "finished" not in frame.columns:
        return np.full(len(frame), np.iinfo(np.int64).min, dtype=np.int64)
    column = frame["finished"]
    if not pd.api.types.is_datetime64_any_dtype(column.dtype):
        # objects: datetimes (naive ones read as UTC, as export did); anything else counts as missing
        column = pd.to_datetime(
            pd.Series([v if isinstance(v, datetime) else None for v in column], dtype=object),
            utc=True,
            errors="coerce",
        )
    elif getattr(column.dt, "tz", None) is None:
        column = column.dt.tz_localize("UTC")
    naive = column.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    when: npt.NDArray[np.int64] = naive.to_numpy().view(np.int64)  # NaT is int64's minimum
    return when


def latest_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The done runs of ``frame``, one per (sweep, source, cell): the latest by ``finished`` (NaT counts as
    the oldest; ties: the last ``run_id``, then the later row). Rows keep the frame's order and index."""
    done: npt.NDArray[np.bool_] = column_values(frame, "status") == "done"
    positions = np.flatnonzero(done)
    if positions.size == 0:
        return frame.iloc[0:0]
    run_ids = ["" if v is None else str(v) for v in column_values(frame, "run_id")[positions]]
    order = pd.DataFrame(
        {
            **{name: column_values(frame, name)[positions] for name in _GROUP},
            "when": _recency(frame)[positions],
            "run_id": pd.Series(run_ids, dtype=object),
            "position": positions,
        }
    )
    order = order.sort_values(["when", "run_id", "position"])
    kept = order.drop_duplicates(list(_GROUP), keep="last")["position"].to_numpy()
    return frame.iloc[np.sort(kept)]
