"""The numbers behind the dashboard, computed from store frames (``Store(path).read().frame()``) with
pandas and numpy: Pareto fronts, a cell's replicates at their mean with its confidence interval, the
factors of the 2^4 x 2 grid, the AP grid, and the seed and axis columns of a table. The factorial analysis
itself (effects with their intervals) is ``ablation.analysis.effects``; a run's training curves, read from its
logs, are ``ablation.results.curves``.

Frames are as ``ReadResult.frame`` returns them (nullable ``boolean``/``Int64``/``string`` columns, float
columns with NaN, tz-aware UTC timestamps); frames built by hand from ``dataclasses.asdict(RunRecord)`` work
as well. Figures stay in the store's units here (box AP a fraction: 0.400 is 40.0 AP) except in
:func:`ap_grid`, which gives box AP in its display unit, AP points.

Which runs count is :func:`ablation.results.latest.latest_runs`, the rule the exported tables share: the
latest done run of each replicate (seed) of each cell. The replicates of a cell are the rows sharing its
sweep, source and cell: :func:`replicate_means` gives each cell once, at the mean of its replicates, with the
95% confidence interval's half-width (``ablation.results.replicates``); the AP grid averages a cell's
replicates first, so a cell run with three seeds counts once, as a cell run once does.

The factors are the four attention factors of the code and DCN (:data:`FACTOR_COLUMNS`, named by
:func:`factor_label`). A row whose code or DCN setting is unknown is left out of the AP grid. Memory figures
of different kinds (CUDA peak allocated, CPU peak RSS) measure different things: a computation on
``memory_gb`` over rows holding more than one kind raises ValueError rather than mix them (a memory figure
with no kind recorded counts as no kind).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ablation import vocabulary
from ablation.errors import BadCodeError
from ablation.grid.axes import short_names
from ablation.model.codes import ALL_CODES, FACTORS, AttentionCode
from ablation.results.latest import column_values
from ablation.results.records import is_axis_column, screen_frame
from ablation.results.replicates import GROUP, ReplicateGroup, replicate_groups

__all__ = [
    "FACTOR_COLUMNS",
    "GRID_COLUMNS",
    "HALF_SUFFIX",
    "ap_grid",
    "axis_columns",
    "cell_means",
    "check_one_memory_kind",
    "describe_code",
    "factor_label",
    "memory_kinds",
    "pareto_front",
    "replicate_columns",
    "replicate_means",
    "tradeoff_axes",
]

# The five two-level factors of the grid: the code's four attention factors in bit order, then DCN.
FACTOR_COLUMNS: tuple[str, ...] = (*(f.key for f in FACTORS), "dcn")
GRID_COLUMNS = ("off", "on")  # ap_grid's columns: DCN off, DCN on
HALF_SUFFIX = "_ci"  # the column of a figure's half-width: bbox_mAP_ci

_DCN_LABEL = "deformable convolution"
_LABELS = {**{f.key: f.name for f in FACTORS}, "dcn": _DCN_LABEL}
_MEMORY = "memory_gb"

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


# --- reading columns as numpy arrays, whatever their dtype ------------------------------------------------


def _floats(frame: pd.DataFrame, column: str, required: bool = True) -> FloatArray:
    """A numeric column as floats, missing values NaN. No such column: ValueError naming it if ``required``,
    else all NaN."""
    if column not in frame.columns:
        if not required:
            return np.full(len(frame), np.nan)
        have = ", ".join(str(c) for c in frame.columns) or "none"
        raise ValueError(f"the frame has no column {column!r}; its columns: {have}")
    values: FloatArray = frame[column].to_numpy(dtype=np.float64, na_value=np.nan)
    return values


def _flags(frame: pd.DataFrame, column: str) -> tuple[BoolArray, BoolArray]:
    """(known, on) of a boolean column: whether each row has a value, and whether that value is true."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool), np.zeros(len(frame), dtype=bool)
    series = frame[column]
    known: BoolArray = series.notna().to_numpy(dtype=bool)
    on: BoolArray = series.fillna(False).astype(bool).to_numpy(dtype=bool)
    return known, on & known


def memory_kinds(frame: pd.DataFrame) -> list[str]:
    """The memory_kinds of the rows with a memory figure (a missing kind is none), sorted."""
    present = ~np.isnan(_floats(frame, _MEMORY, required=False))
    return sorted({str(k) for k in column_values(frame, "memory_kind")[present] if k is not None})


def check_one_memory_kind(frame: pd.DataFrame) -> None:
    """ValueError if the rows with a memory figure hold more than one memory_kind (a missing kind is none)."""
    kinds = memory_kinds(frame)
    if len(kinds) > 1:
        raise ValueError(
            f"the rows mix memory kinds ({', '.join(kinds)}); pass the rows of one memory_kind, a CUDA peak "
            "and a CPU RSS are not comparable"
        )


# --- a cell's replicates -----------------------------------------------------------------------------------


def replicate_means(frame: pd.DataFrame, groups: Sequence[ReplicateGroup] | None = None) -> pd.DataFrame:
    """The cells of ``latest_runs(frame)``, one row each (its replicates: ``replicates.replicate_groups``), in
    the order the cells first appear: the row of the cell's first run (by seed), each metric of the vocabulary
    at the mean over the replicates that have it (NaN when none has), then the columns ``n`` (runs), ``seeds``
    (text: '0, 1, 2'; '' for an unseeded run) and, for the metrics with an interval (``Metric.interval``),
    ``<column>_ci``: the half-width of the mean's 95% confidence interval (``Estimate.half()``; NaN with fewer
    than two values). A cell with one run is that run's row as it is. A cell whose runs hold more than one
    memory_kind has no memory figure (NaN, kind None) rather than a mean of two kinds. ``groups``: the frame's
    ``replicate_groups`` where the caller has them already."""
    groups = replicate_groups(frame) if groups is None else groups
    if not groups:
        cells = frame.iloc[0:0].copy()
    else:  # the groups' own frame: its first run's row, one read for all the groups
        cells = groups[0].columns.frame.iloc[[g.members[0] for g in groups]].copy()
    means = [m.column for m in vocabulary.METRICS if m.column in frame.columns]
    intervals = [m.column for m in vocabulary.METRICS if m.interval]
    estimates = {
        column: [g.estimate(column) for g in groups] for column in dict.fromkeys((*means, *intervals))
    }
    for column in means:
        if column in cells.columns:
            cells[column] = np.array([math.nan if e is None else e.mean for e in estimates[column]])
    mixed = [g.n > 1 and len(_kinds_of(g)) > 1 for g in groups]
    if any(mixed) and _MEMORY in cells.columns:
        cells[_MEMORY] = np.where(mixed, np.nan, _floats(cells, _MEMORY))
        kinds = column_values(cells, "memory_kind")
        cells["memory_kind"] = [None if m else k for m, k in zip(mixed, kinds, strict=True)]
    cells["n"] = np.array([g.n for g in groups], dtype=np.int64)
    cells["seeds"] = [", ".join(str(s) for s in g.seeds if s is not None) for g in groups]
    for column in intervals:
        halves = [None if e is None else e.half() for e in estimates[column]]
        cells[column + HALF_SUFFIX] = np.array(
            [math.nan if h is None else h for h in halves], dtype=np.float64
        )
    return cells


def _kinds_of(group: ReplicateGroup) -> set[str]:
    """The memory kinds of a group's runs that have a memory figure (``memory_kinds`` of its rows)."""
    memory, kinds = group.columns.plain(_MEMORY), group.columns.plain("memory_kind")
    return {
        str(kind)
        for kind, figure in ((kinds[i], memory[i]) for i in group.members)
        if kind is not None and isinstance(figure, int | float) and not math.isnan(figure)
    }


def cell_means(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per cell (the rows sharing sweep, source and cell: its replicates), in the order the cells
    first appear: the cell's first row, each of ``metrics`` replaced by the mean over the replicates that
    have it (NaN when none has). Unlike :func:`replicate_means` it takes the rows as given (no
    ``latest_runs``). A frame whose cells have one row each (or that lacks those columns) comes back as it
    is."""
    if frame.empty or not set(GROUP) <= set(frame.columns) or not frame.duplicated(list(GROUP)).any():
        return frame
    group = frame.groupby(list(GROUP), dropna=False, sort=False).ngroup().to_numpy()
    cells = frame[~frame.duplicated(list(GROUP))].copy()
    for metric in metrics:
        values = _floats(frame, metric)
        present = ~np.isnan(values)
        sums = np.bincount(group, weights=np.where(present, values, 0.0), minlength=len(cells))
        counts = np.bincount(group, weights=present.astype(np.float64), minlength=len(cells))
        with np.errstate(invalid="ignore", divide="ignore"):
            cells[metric] = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
    return cells


# --- labels -----------------------------------------------------------------------------------------------


def factor_label(column: str) -> str:
    """A factor column's name for people: the attention factor's name, 'deformable convolution' for dcn."""
    try:
        return _LABELS[column]
    except KeyError:
        raise ValueError(f"unknown factor {column!r}; factors: {', '.join(FACTOR_COLUMNS)}") from None


@functools.lru_cache(maxsize=256)  # a chart's thousands of hovers hold 32 cells
def describe_code(code: str | None, dcn: bool | None) -> str:
    """A cell decoded for a hover: '1010 + DCN: query-key content, key content only',
    '0000: no attention (plain baseline)'. ' + DCN' only when dcn is true; a missing or bad code says so."""
    suffix = " + DCN" if dcn else ""
    if code is None:
        return f"no code{suffix}: attention unknown"
    try:
        description = AttentionCode.parse(code).description
    except BadCodeError:
        return f"{code}{suffix}: not an attention code"
    return f"{code}{suffix}: {description}"


# --- seeds and axes in tables ----------------------------------------------------------------------------


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The axis columns of a store frame (``is_axis_column``: dotted setting names) that hold a value in some
    row, sorted by name (the order of the exported tables' axis columns)."""
    return sorted(str(c) for c in frame.columns if is_axis_column(str(c)) and frame[c].notna().any())


def replicate_columns(frame: pd.DataFrame, taken: Sequence[str] = ()) -> pd.DataFrame:
    """The seed and axis columns of a table of runs, one row per row of ``frame`` (same index): a column per
    axis column of ``frame`` that holds a value (:func:`axis_columns`), headed by its short name
    (:func:`short_names`; by its dotted name where the short one is among ``taken``, the table's other
    headings), then 'seed' (Int64) where some row has a seed. What no row has gets no column. A list value
    (a run's ``axes`` as ``CellResult`` holds them) is shown as its JSON text, as the store holds it."""
    names = axis_columns(frame)
    heading = {n: short if short not in taken else n for n, short in short_names(names).items()}
    columns: dict[str, Any] = {heading[name]: _shown(frame[name]) for name in names}
    if "seed" in frame.columns and frame["seed"].notna().any():
        columns["seed"] = pd.array(column_values(frame, "seed"), dtype="Int64")
    return pd.DataFrame(columns, index=frame.index)


def _shown(column: pd.Series) -> pd.Series:
    """An axis column for a table: a typed store column as it is; values in objects with lists as their JSON
    text, all of them as text if they are of more than one type (a table's column holds one)."""
    if column.dtype != object:
        return column
    values = [
        json.dumps(v) if isinstance(v, list | tuple | dict) else v
        for v in column.to_numpy(dtype=object, na_value=None)
    ]
    if len({type(v) for v in values if v is not None}) > 1:
        values = [None if v is None else str(v) for v in values]
    return pd.Series(values, index=column.index, dtype=object)


# --- trade-offs -------------------------------------------------------------------------------------------


def pareto_front(
    frame: pd.DataFrame, x: str, y: str = "bbox_mAP", higher_x_is_better: bool = True
) -> pd.DataFrame:
    """The rows that no other row dominates, sorted by ``x`` ascending (then ``y``).

    A row dominates another if it is at least as good on both ``x`` and ``y`` and better on one; higher
    ``y`` is better, higher ``x`` too unless ``higher_x_is_better`` is False (memory_gb, flops). Rows with NaN
    in ``x`` or ``y`` are ignored; identical points dominate neither each other, so all of them are kept.
    ``x == 'memory_gb'`` over rows of more than one memory_kind raises ValueError.
    """
    if x == _MEMORY or y == _MEMORY:
        check_one_memory_kind(frame)
    xs, ys = _floats(frame, x), _floats(frame, y)
    valid = np.flatnonzero(~np.isnan(xs) & ~np.isnan(ys))
    if valid.size == 0:
        return frame.iloc[0:0]
    goodness = xs[valid] if higher_x_is_better else -xs[valid]
    heights = ys[valid]
    # Per distinct x (best first): the highest y there, and the highest y at any strictly better x.
    levels, group = np.unique(-goodness, return_inverse=True)  # levels ascending = best x first
    best_here = np.full(levels.size, -np.inf)
    np.maximum.at(best_here, group, heights)
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(best_here)[:-1]))
    keep = (heights == best_here[group]) & (heights > best_before[group])
    kept = valid[keep]
    order = np.lexsort((ys[kept], xs[kept]))
    return frame.iloc[kept[order]]


def tradeoff_axes(points: pd.DataFrame) -> tuple[vocabulary.Metric, ...]:
    """The x axes that box AP is drawn against for these points (store rows or cells), in the vocabulary's
    order: its 'tradeoff' metrics, of the 'cost' ones among them only one, the first that some point has a
    value of (GPU-hours; on a CPU grid, where no run has GPU-hours, CPU-hours), else the first (a chart
    then says no cell has it). The report and the dashboard both draw these."""
    costs = [m for m in vocabulary.metrics("tradeoff") if "cost" in m.roles]
    held = [m for m in costs if not np.isnan(_floats(points, m.column, required=False)).all()]
    cost = held[0] if held else costs[0] if costs else None
    return tuple(m for m in vocabulary.metrics("tradeoff") if "cost" not in m.roles or m is cost)


# --- the AP grid -----------------------------------------------------------------------------------------


def ap_grid(frame: pd.DataFrame) -> pd.DataFrame:
    """Box AP in AP points (the vocabulary's display unit) of every cell of the grid: index the 16 codes
    '0000'..'1111' in order (named 'code'), columns 'off' and 'on' (DCN; named 'dcn').

    A cell that no row has, or whose rows all lack AP, is NaN, never 0. Rows without a code or a DCN setting
    are left out. A cell's replicates are averaged first (:func:`cell_means`); where several cells share a
    slot of the grid (several sweeps, sources, backbones or axis values given), the value is the mean of
    their APs (the cells with an AP), each cell counted once however many seeds it ran with. An AP that is
    not a finite number in its valid range is read as missing, with a ``BadFigureWarning`` naming it.
    """
    frame = cell_means(screen_frame(frame, warn=True)[0], ("bbox_mAP",))
    codes = [code.bits for code in ALL_CODES]
    row_of = {code: i for i, code in enumerate(codes)}
    known, on = _flags(frame, "dcn")
    index = np.array(
        [row_of.get(c, -1) if isinstance(c, str) else -1 for c in column_values(frame, "code")],
        dtype=np.int64,
    )
    ap = _floats(frame, "bbox_mAP", required=False)
    used = known & (index >= 0) & ~np.isnan(ap)
    slot = index[used] * 2 + on[used].astype(np.int64)
    counts = np.bincount(slot, minlength=2 * len(codes)).astype(np.float64)
    sums = np.bincount(slot, weights=ap[used], minlength=2 * len(codes))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = vocabulary.metric("bbox_mAP").scale
        means = np.where(counts > 0, scale * sums / np.where(counts > 0, counts, 1.0), np.nan)
    return pd.DataFrame(
        means.reshape(len(codes), 2),
        index=pd.Index(codes, name="code"),
        columns=pd.Index(list(GRID_COLUMNS), name="dcn"),
    )
