"""One row of the results store: what one run of one cell measured, wherever it came from.

A run is keyed by (sweep, cell, run_id). ``source`` says where its figures come from: ``run`` (a cell's own
result file, or a work_dir that mmengine's tools/train.py and tools/test.py wrote), ``log`` (an imported
mmdet 2.x ``.log.json``) or ``reference`` (the published model-zoo numbers in experiments/reference/).

The compute a run cost (``attempts``, ``gpu_hours``, ``cpu_hours``, ``wall_hours``: the vocabulary's 'cost'
figures, over every attempt of the run's jobs) is known only for a cell run by ``ablation launch``; an
imported log, a model-zoo entry or a plain mmengine work_dir has none (None).

Figures are as mmdet reports them: box AP and its breakdown as fractions (0.400 is 40.0 AP), memory in GB
(MB / 1024) together with its kind, fps in images per second at batch 1. A figure nobody measured is None,
never 0. Every metric and stage of ``ablation.vocabulary`` has a field here (tests/test_vocabulary.py ties
them), so a harvested figure always reaches the store.

Each figure declares the values it can hold once (``vocabulary.Range``: a Metric's or a Stage's ``valid``,
or the ``valid`` of a field's metadata here, for epochs and iterations). A non-finite or out-of-range figure
(``fps`` inf, a negative memory, a box AP of 1.5) is not a measurement: ``RunRecord.drop_bad_figures``,
``screen_figures`` (a store table) and ``screen_frame`` (a store frame) set it to missing and say so, one
line per figure naming the run, the figure, its value and its valid range, so that every reader computes the
rest.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ablation import vocabulary
from ablation.errors import BadFigureWarning
from ablation.grid.identity import CellIdentity
from ablation.model.codes import FACTORS, AttentionCode
from ablation.run.cost import Cost
from ablation.run.result_file import MEMORY_KINDS, METRICS, STATUSES
from ablation.vocabulary import NON_NEGATIVE, STAGES, Range

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "KEY",
    "SCREEN_LINES",
    "SOURCES",
    "VERSIONED",
    "RunRecord",
    "figure_ranges",
    "is_axis_column",
    "screen_figures",
    "screen_frame",
]

KEY = ("sweep", "cell", "run_id")
SOURCES = ("run", "log", "reference")
# The packages whose versions a run records, each in its own column "<name>_version".
VERSIONED = ("torch", "mmcv", "mmdet", "mmengine", "ablation")


@dataclass(kw_only=True)
class RunRecord(CellIdentity):
    """A run: its cell (``CellIdentity``), its id and source, its outcome and its figures."""

    run_id: str
    source: str
    cell_id: str | None = (
        None  # the cell's id, which its replicates share: runs of one config (all but the seed)
    )
    status: str = "done"
    bbox_mAP: float | None = None
    bbox_mAP_50: float | None = None
    bbox_mAP_75: float | None = None
    bbox_mAP_s: float | None = None
    bbox_mAP_m: float | None = None
    bbox_mAP_l: float | None = None
    fps: float | None = None
    device: str | None = None  # what the fps was measured on
    memory_gb: float | None = None
    memory_kind: str | None = None
    flops: float | None = None
    params: int | None = None
    epochs: int | None = field(default=None, metadata={"valid": NON_NEGATIVE})
    iterations: int | None = field(default=None, metadata={"valid": NON_NEGATIVE})
    train_s: float | None = (
        None  # seconds of the job's stages (vocabulary.STAGES): training, test, fps, FLOPs
    )
    test_s: float | None = None
    fps_s: float | None = None
    flops_s: float | None = None
    # the compute of the run's jobs over all their attempts (vocabulary's 'cost' metrics; None: not known)
    attempts: int | None = None
    gpu_hours: float | None = None  # None where no attempt had a GPU
    cpu_hours: float | None = None
    wall_hours: float | None = None
    error: str | None = None
    log_tail: str | None = None
    config: str | None = None  # the config's path or address
    config_hash: str | None = None
    torch_version: str | None = None
    mmcv_version: str | None = None
    mmdet_version: str | None = None
    mmengine_version: str | None = None
    ablation_version: str | None = None
    git_commit: str | None = None
    host: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    origin: str | None = None  # the file (or folder) the figures were read from
    url: str | None = None  # where the published model and log are
    # The four factors of ``code``, derived from it (never given).
    query_key_content: bool | None = field(default=None, init=False)
    query_content_position: bool | None = field(default=None, init=False)
    key_content: bool | None = field(default=None, init=False)
    relative_position: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        for name in KEY:
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"a run needs a non-empty {name}")
        _one_of("source", self.source, SOURCES)
        _one_of("status", self.status, STATUSES)
        _one_of("memory_kind", self.memory_kind, (None, *MEMORY_KINDS))
        if self.code is not None:
            flags = AttentionCode.parse(self.code).flags  # raises BadCodeError on a bad code
            for factor in FACTORS:
                setattr(self, factor.key, flags[factor.key])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from a store row; axis columns go back into ``axes``, derived and unknown columns are
        left out."""
        given = {f.name for f in fields(cls) if f.init} - {"axes"}
        axes = {k: v for k, v in data.items() if is_axis_column(k) and v is not None}
        return cls(**{k: v for k, v in data.items() if k in given}, axes=axes)

    def row(self) -> dict[str, Any]:
        """The store's columns of this run: every field but ``axes``, then one column per axis, named by
        its dotted setting name, holding a plain value (a list as its JSON text)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "axes"}
        for name, value in self.axes.items():
            row[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
        return row

    def set_metrics(self, metrics: Mapping[str, float | None]) -> None:
        """Set the box AP columns from a {metric: value} mapping (missing: None)."""
        for name in METRICS:
            self._set(name, metrics.get(name))

    def set_timings(self, timings: Mapping[str, float]) -> None:
        """Set the seconds of the job's stages (``vocabulary.STAGES``) from a result file's timings."""
        for stage in STAGES:
            self._set(stage.column, timings.get(stage.column))

    def set_cost(self, cost: Cost | None) -> None:
        """Set the vocabulary's 'cost' figures (attempts, GPU-, CPU- and wall hours) from the ``Cost`` of the
        run's jobs, each read from the Cost's attribute of the figure's column; None: all missing."""
        for figure in vocabulary.metrics("cost"):
            self._set(figure.column, None if cost is None else getattr(cost, figure.column))

    def _set(self, name: str, value: object) -> None:
        """Set a figure's field; a name of the vocabulary without a field here is an error, never dropped."""
        if name not in _FIELDS:
            raise TypeError(f"RunRecord has no field {name!r}: add it (and bump the store's schema)")
        setattr(self, name, value)

    def versions(self, versions: Mapping[str, str]) -> None:
        """Set the ``<package>_version`` columns from a {package: version} mapping."""
        for name in VERSIONED:
            setattr(self, f"{name}_version", versions.get(name))

    def drop_bad_figures(self) -> list[str]:
        """Set every figure that is not a finite number in its valid range (``figure_ranges``) to None; a
        line per figure dropped, naming this run, the figure, its value and its valid range."""
        lines = []
        for name, valid in figure_ranges().items():
            value = getattr(self, name, None)
            if value is not None and not _holds(value, valid):
                lines.append(_dropped(f"{self.sweep}/{self.cell}/{self.run_id}", name, value, valid))
                setattr(self, name, None)
        return lines


_FIELDS = frozenset(f.name for f in fields(RunRecord))


_FIELD_RANGES = {f.name: f.metadata["valid"] for f in fields(RunRecord) if "valid" in f.metadata}
SCREEN_LINES = 20  # a screen names this many dropped figures, then says how many more


def figure_ranges() -> dict[str, Range]:
    """Every figure's valid range by its store column: the vocabulary's metrics and stages (read when
    called, so a figure added there is screened too) and the fields here that declare one."""
    ranges = {m.column: m.valid for m in vocabulary.METRICS}
    ranges.update({s.column: s.valid for s in vocabulary.STAGES})
    ranges.update(_FIELD_RANGES)
    return ranges


def _holds(value: object, valid: Range) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return valid.holds(float(value))
    except OverflowError:  # an integer beyond any float
        return False


def _dropped(run: str, name: str, value: object, valid: Range) -> str:
    """The line saying a figure of a run was left out, and why."""
    finite = isinstance(value, int) and not isinstance(value, bool)
    finite = finite or (isinstance(value, float) and math.isfinite(value))
    why = "is out of range" if finite else "is not a finite number"
    return f"{run}: {name} = {value!r} {why} (valid: {valid}); left out, read as missing"


def _more(lines: list[str], total: int) -> list[str]:
    """The first SCREEN_LINES lines, then one saying how many more were dropped."""
    if total <= SCREEN_LINES:
        return lines
    return [
        *lines[:SCREEN_LINES],
        f"and {total - SCREEN_LINES} more figures left out as not finite or out of range",
    ]


def _run_names(rows: list[dict[str, Any]]) -> list[str]:
    return ["/".join(str(row.get(k, "?")) for k in KEY) for row in rows]


def screen_figures(table: pa.Table) -> tuple[pa.Table, list[str]]:
    """A store table with every figure that is not a finite number in its valid range set to null, and a
    line per figure nulled (``drop_bad_figures``' lines; the first SCREEN_LINES, then how many more).
    Vectorised, and meant for a whole table at once (its cost is per column and per chunk, not per row): a
    table with nothing to drop is returned as it is, in well under a millisecond for 10,000 runs in one
    chunk (a cache's read), and a few tens of milliseconds for 10,000 runs in 10,000 chunks (as many files
    read afresh)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lines: list[str] = []
    total = 0
    for name, valid in figure_ranges().items():
        if name not in table.column_names:
            continue
        column = table[name]
        floating = pa.types.is_floating(column.type)
        if not floating and not pa.types.is_integer(column.type):
            continue  # not a number column: the store's schema check says so, not this
        if _all_valid(column, valid, floating):  # two aggregates: the common case, and fast
            continue
        low = pc.greater(column, valid.low) if valid.above else pc.greater_equal(column, valid.low)
        ok = pc.and_(low, pc.less_equal(column, valid.high)) if math.isfinite(valid.high) else low
        if floating:
            ok = pc.and_(ok, pc.is_finite(column))  # NaN and inf
        bad = pc.fill_null(pc.invert(ok), False)
        where = pc.indices_nonzero(bad)
        total += len(where)
        named = where[: max(0, SCREEN_LINES - len(lines))]
        if len(named):
            keys = table.select([k for k in KEY if k in table.column_names]).take(named).to_pylist()
            values = column.take(named).to_pylist()
            lines += [_dropped(r, name, v, valid) for r, v in zip(_run_names(keys), values, strict=True)]
        nulled = pc.if_else(bad, pa.scalar(None, column.type), column)
        table = table.set_column(table.column_names.index(name), name, nulled)
    return table, _more(lines, total)


def _all_valid(column: pa.ChunkedArray, valid: Range, floating: bool) -> bool:
    """Whether every value of a store column is null or valid, from its least and greatest value (and, for
    floats, its sum, which is NaN where a value is NaN or where inf meets -inf)."""
    import pyarrow.compute as pc

    least, most = pc.min_max(column).values()
    if not least.is_valid:  # no value at all
        return True
    if floating and not math.isfinite(pc.sum(column).as_py()):
        return False
    return valid.holds(least.as_py()) and valid.holds(most.as_py())


def screen_frame(frame: pd.DataFrame, warn: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """``screen_figures`` for a store frame (pandas, as ``Store.read().frame()`` gives it, or made by hand):
    every figure that is not a finite number in its valid range set to missing, and the lines saying so,
    each also a ``BadFigureWarning`` with ``warn`` (what a reader given a frame directly does). NaN is
    pandas' missing value, so only a value that is not NaN is named. The frame itself is returned when
    nothing is dropped."""
    import numpy as np
    import pandas as pd

    lines: list[str] = []
    total, copied = 0, False
    for name, valid in figure_ranges().items():
        if name not in frame.columns:
            continue
        given = frame[name]
        if given.dtype.kind == "f":  # the common case: a float column, NaN missing
            numbers = given.to_numpy()
            present = ~np.isnan(numbers)
        else:  # a nullable integer column, or one made by hand (None, strings)
            present = given.notna().to_numpy(dtype=bool)
            numbers = pd.to_numeric(given, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(invalid="ignore"):
            low = numbers > valid.low if valid.above else numbers >= valid.low
            ok = np.isfinite(numbers) & low & (numbers <= valid.high)
        bad = present & ~ok
        if not bad.any():
            continue
        where = np.flatnonzero(bad)
        total += len(where)
        for i in where[: max(0, SCREEN_LINES - len(lines))]:
            row = {k: frame[k].iat[i] for k in KEY if k in frame.columns}
            lines.append(_dropped(_run_names([row])[0], name, _plain(given.iat[i]), valid))
        if not copied:
            frame, copied = frame.copy(), True
        frame[name] = given.mask(bad)
    lines = _more(lines, total)
    for line in lines if warn else ():
        warnings.warn(line, BadFigureWarning, stacklevel=3)
    return frame, lines


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def is_axis_column(name: str) -> bool:
    """Whether a store column holds an axis of a sweep's grid: axes are named by a setting's dotted name
    (``model.attention.kv_stride``), and no other column has a dot."""
    return "." in name


def _one_of(name: str, value: object, valid: tuple[object, ...]) -> None:
    if value not in valid:
        raise ValueError(f"bad {name} {value!r}; valid: {', '.join(map(str, valid))}")
