"""Which runs count, the rule that the exported tables and the dashboard share: only runs with status
``done``; of several runs of one replicate of a cell (same sweep, source, cell and seed; a null seed is one
replicate, the unseeded run) only the latest by ``finished`` (a run with no ``finished`` counts as the
oldest; on a tie the last ``run_id`` wins, and on a tie of both the row that comes later in the frame). Then,
of a cell's replicates (same sweep, source and cell), only those of its current config: the ones whose
``cell_id`` is that of the newest run (by the same order) of the cell that has a ``cell_id``; runs with a
null ``cell_id`` (imported, reference, older store files) are kept whatever it is. Replicates of an older
config of a cell so never mix with the current ones. Frames are store frames (``Store(path).read().frame()``)
or built by hand from records.
"""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["GROUP", "ObjectArray", "column_values", "latest_runs", "plain_values", "scalar", "seed_of"]

ObjectArray = npt.NDArray[np.object_]
GROUP = ("sweep", "source", "cell")  # one cell of one sweep, from one source: its replicates


def column_values(frame: pd.DataFrame, column: str) -> ObjectArray:
    """The column's values with every kind of missing value as None (all None if there is no such column)."""
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    values: ObjectArray = frame[column].to_numpy(dtype=object, na_value=None)
    return values


def plain_values(frame: pd.DataFrame, column: str) -> list[object]:
    """The column's values as plain Python (:func:`scalar`'s: every kind of missing value None; all None if
    there is no such column). A typed column's are that already: only an object column's are converted one
    by one."""
    values = column_values(frame, column)
    if column in frame.columns and frame[column].dtype != object:
        return values.tolist()  # type: ignore[no-any-return]
    return [scalar(v) for v in values]


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
    """The done runs of ``frame``, one per (sweep, source, cell, seed): the latest by ``finished`` (NaT counts
    as the oldest; ties: the last ``run_id``, then the later row); of those, per (sweep, source, cell), only
    the ones whose ``cell_id`` is that of the newest one with a ``cell_id`` (a null ``cell_id`` is always
    kept). Rows keep the frame's order and index."""
    done: npt.NDArray[np.bool_] = column_values(frame, "status") == "done"
    positions = np.flatnonzero(done)
    if positions.size == 0:
        return frame.iloc[0:0]
    run_ids = ["" if v is None else str(v) for v in column_values(frame, "run_id")[positions]]
    # plain objects, None for every kind of null: no column is inferred as float or pandas' str
    plain = {
        name: pd.Series(np.array(plain_values(frame, name), dtype=object)[positions], dtype=object)
        for name in (*GROUP, "seed", "cell_id")
    }
    order = pd.DataFrame(
        {
            **plain,
            "when": _recency(frame)[positions],
            "run_id": pd.Series(run_ids, dtype=object),
            "position": positions,
        }
    )
    order = order.sort_values(["when", "run_id", "position"])
    order = order.drop_duplicates([*GROUP, "seed"], keep="last")  # the latest run of each replicate
    newest = order[order["cell_id"].notna()].drop_duplicates(list(GROUP), keep="last")
    current = dict(zip(_keys(newest), newest["cell_id"], strict=True))
    keys = _keys(order)
    keep = [
        cell_id is None or current.get(key) == cell_id
        for key, cell_id in zip(keys, order["cell_id"], strict=True)
    ]
    kept = order["position"].to_numpy()[np.array(keep, dtype=bool)]
    return frame.iloc[np.sort(kept)]


def _keys(order: pd.DataFrame) -> list[tuple[object, ...]]:
    """Each row's (sweep, source, cell)."""
    return list(zip(*(order[name].tolist() for name in GROUP), strict=True))


def scalar(value: object) -> object:
    """A frame's value as plain Python: numpy scalars unwrapped, every kind of missing value None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def seed_of(value: object) -> int | None:
    """A frame's seed as an int (a float in a frame built by hand, where nulls made the column float); None
    for an unseeded run."""
    found = scalar(value)
    return None if found is None else int(float(str(found)))
