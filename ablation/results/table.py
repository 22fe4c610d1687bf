"""The results table, laid out as mmdetection's READMEs lay theirs out: ``results_table`` turns a store frame
(narrowed with :func:`ablation.results.select.select`) into a ``ResultsTable``, which
:mod:`ablation.results.export` writes as markdown, CSV or LaTeX and the report as HTML.

Which runs are shown: :func:`ablation.results.latest.latest_runs` (the latest done run of each seed of each
cell, of the cell's current config); ``ResultsTable.left_out`` counts every other run of the frame. A row is
a cell of a sweep from one source: its replicates aggregated by
:func:`ablation.results.replicates.replicate_groups`. When some row holds more than one run:

* an ``n`` column (the row's runs) follows ``box AP``;
* the figures with an interval (``Metric.interval``: box AP and its breakdown, fps) show the mean and its
  spread, ``42.1 ± 0.3``: the half-width of the mean's 95% confidence interval (Student's t), or with
  ``TableOptions.spread = "sd"`` the sample standard deviation; a figure only one run has shows that value;
* the other figures are means; the text columns and Config are the first run's (the lowest seed).

Columns, in this order (bracketed: only when asked for or needed); the figures' headers, units, scales and
precision are the vocabulary's (:mod:`ablation.vocabulary`), so a new metric there appears here::

    [Sweep] [Source] Backbone | Attention Component | DCN | Lr schd | [axes...] | <'main' metrics>
    [Mem kind] [n] [Δ box AP] [<'breakdown' metrics>] [<'complexity' metrics>] [<stages>] [<'cost' metrics>]
    Config

The 'cost' metrics (``TableOptions.cost``: attempts, GPU-, CPU- and wall hours) are a row's sums over its
runs, with a total per sweep (``totals``; :mod:`ablation.results.costs`).

``Sweep`` appears when the frame holds runs of more than one sweep, ``Source`` when of more than one source.
Each axis of ``[grid.axes]`` that some shown row has a value on gets a column headed by the shortest
dotted ending of its name that no other axis ends with, ``-`` where the axis does not vary the row.
``Mem kind`` names what the memory figure measured (the vocabulary's label), so a CUDA peak is never read
as a CPU RSS. ``Δ box AP`` (``TableOptions.baseline``) is a row's box AP minus that of its baseline row:
the shown row with the baseline code in the same sweep and source with the same DCN setting and the same
value on every axis both rows have a value on (of several: the same backbone and schedule, then the one
holding the row's very value on the most axes); with replicates on both sides it carries Welch's 95%
interval, `` (ns)`` when that interval holds 0; with one run on a side, no interval: `` †``
(``NO_INTERVAL``), which the note explains, with box AP's seed-to-seed sd where some row has replicates.
Rows are ordered by sweep, attention code, DCN off before on, backbone, schedule, source, the axes' values
and the cell.

Values: ``rows`` holds the display strings; ``values`` the same numbers rounded as shown (what CSV writes),
text as text. A config's path is shown relative to ``TableOptions.relative_to`` (the folder the store is
in, so that a report or table written there links to it).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ablation import vocabulary
from ablation.errors import InputError
from ablation.grid.axes import short_names
from ablation.model.codes import AttentionCode
from ablation.results.costs import cost_cell, cost_notes
from ablation.results.records import SOURCES
from ablation.results.replicates import SPREADS, ReplicateGroup, difference, replicate_groups
from ablation.results.select import axis_text, column
from ablation.vocabulary import MISSING, PLUS_MINUS, Metric, memory_label

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = [
    "CONFIG",
    "COUNT",
    "DELTA",
    "MEMORY_KIND",
    "NO_INTERVAL",
    "PLUS_MINUS",
    "ResultsTable",
    "TableOptions",
    "results_table",
]

CONFIG = "Config"
DELTA = "Δ box AP"
COUNT = "n"
MEMORY_KIND = "Mem kind"
NOT_RESOLVED = " (ns)"
NO_INTERVAL = " †"  # after a difference with no interval: a side of it has one run
TEXT_COLUMNS = ("Sweep", "Source", "Backbone", "Attention Component", "DCN", "Lr schd", MEMORY_KIND, CONFIG)
_NOTES = {
    "ci": f"{PLUS_MINUS}: half-width of the 95% confidence interval of the mean of a row's n runs "
    "(Student's t, n-1 degrees of freedom); figures are means of the runs that have them, without "
    f"{PLUS_MINUS} where one run has.",
    "sd": f"{PLUS_MINUS}: sample standard deviation of a row's n runs (n-1 in the denominator); figures are "
    f"means of the runs that have them, without {PLUS_MINUS} where one run has.",
}
_DELTA_NOTE = (
    f" {DELTA} {PLUS_MINUS}: half-width of Welch's 95% interval of the difference to the baseline row's "
    f"mean;{NOT_RESOLVED}: the interval contains 0."
)
_NO_INTERVAL_NOTE = f"{NO_INTERVAL.strip()}: no interval, a side of the difference has one run"


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    """What the table shows beyond mmdetection's columns."""

    breakdown: bool = False  # the 'breakdown' metrics: AP50, AP75, APs, APm, APl
    complexity: bool = False  # the 'complexity' metrics: GFLOPs and Params (M)
    timing: bool = False  # the seconds of the job's stages (vocabulary.STAGES)
    baseline: str | None = None  # an attention code such as '0000': add "Δ box AP" against it
    spread: str = "ci"  # what ± shows for replicates: "ci" (95% interval of the mean) or "sd"
    relative_to: Path | None = None  # configs are shown relative to this folder (None: the working dir)
    cost: bool = False  # the 'cost' metrics, a row's sums over its runs, and each sweep's total


@dataclass(frozen=True)
class ResultsTable:
    """The table: its headers, the display strings and the same cells as rounded numbers (text as text),
    and for a table with replicates the spreads that CSV writes in their own columns."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    values: tuple[tuple[object, ...], ...]
    left_out: int  # runs of the frame not shown: not done, superseded, or of an older config of their cell
    axes: tuple[str, ...] = ()  # the headers of the axis columns
    # per row and column: the ± of the value (half-width or sd, rounded as shown; None where there is none);
    # () without replicates
    spreads: tuple[tuple[float | None, ...], ...] = ()
    spread_headers: tuple[str, ...] = ()  # the columns that carry a spread (CSV: "<header> ±" after each)
    note: str | None = None  # what ± is: the line below the markdown table
    no_interval: tuple[bool, ...] | None = None  # per row: whether its Δ is marked NO_INTERVAL (None: no Δ)
    caption: str = ""  # which runs: sweeps, datasets, runs and cells (LaTeX's caption)
    cost_note: str | None = None  # with the cost columns: what they hold, and each sweep's total
    totals: tuple[tuple[object, ...], ...] = ()  # with them: a row per sweep, its totals (CSV's last rows)

    def numeric(self, header: str) -> bool:
        """Whether a column holds numbers (right-aligned in LaTeX)."""
        return header not in TEXT_COLUMNS and header not in self.axes

    def best_rows(self) -> tuple[int, ...]:
        """A summary of a long table: the row with the highest box AP (as shown; the first of a tie, or of
        rows without one) of each sweep, source, attention code and DCN setting, in the table's order."""
        keys = [
            self.headers.index(h)
            for h in ("Sweep", "Source", "Attention Component", "DCN")
            if h in self.headers
        ]
        ap = self.headers.index(vocabulary.metric("bbox_mAP").header)
        best: dict[tuple[str, ...], int] = {}
        for i, (shown, values) in enumerate(zip(self.rows, self.values, strict=True)):
            key = tuple(shown[k] for k in keys)
            held = best.get(key)
            if held is None or _higher(values[ap], self.values[held][ap]):
                best[key] = i
        return tuple(sorted(best.values()))

    def only(self, rows: Sequence[int]) -> ResultsTable:
        """The table with only these rows (indices, in this order); the rest as it is."""
        return replace(
            self,
            rows=tuple(self.rows[i] for i in rows),
            values=tuple(self.values[i] for i in rows),
            spreads=tuple(self.spreads[i] for i in rows) if self.spreads else (),
            no_interval=None if self.no_interval is None else tuple(self.no_interval[i] for i in rows),
        )


def _higher(value: object, than: object) -> bool:
    """Whether a shown number is higher than another (a missing one is lower than any)."""
    if not isinstance(value, int | float):
        return False
    return not isinstance(than, int | float) or value > than


def results_table(
    frame: DataFrame, options: TableOptions = TableOptions(), groups: Sequence[ReplicateGroup] | None = None
) -> ResultsTable:
    """The shown runs of ``frame`` as a table, a row per cell (see the module's docstring for the rules);
    ``groups``: the frame's ``replicate_groups`` where the caller has them already."""
    if options.spread not in SPREADS:
        raise InputError(f"unknown spread {options.spread!r}; valid spreads: {', '.join(SPREADS)}")
    baseline = AttentionCode.parse(options.baseline).bits if options.baseline is not None else None
    groups = replicate_groups(frame) if groups is None else groups
    lines = [_Line(g) for g in groups]
    axes = sorted({n for g in groups for n, v in g.axes.items() if v is not None})
    lines.sort(key=lambda line: _order(line, axes))
    replicated = any(g.n > 1 for g in groups)
    spread = options.spread if replicated else None

    columns: list[tuple[str, Cell]] = []
    for name, header in (("sweep", "Sweep"), ("source", "Source")):
        if len(set(column(frame, name))) > 1:
            columns.append((header, _text(name)))
    columns += [
        ("Backbone", _text("backbone")),
        ("Attention Component", _text("code")),
        ("DCN", _dcn),
        ("Lr schd", _text("schedule")),
    ]
    axis_headers = short_names(axes)
    columns += [(axis_headers[name], _axis(name)) for name in axes]
    for metric in vocabulary.metrics("main"):
        columns.append((metric.header, _figure(metric, spread)))
        if metric.column == "memory_gb" and any(line.group.values("memory_gb") for line in lines):
            columns.append((MEMORY_KIND, lambda line: _plain(memory_label(_str(line.get("memory_kind"))))))
    if replicated:
        columns.append((COUNT, lambda line: (str(line.group.n), line.group.n, None)))
    if baseline is not None:
        bases = [line for line in lines if line.get("code") == baseline]
        columns.append((DELTA, lambda line: _delta(line, bases, axes, replicated)))
    for role, wanted in (("breakdown", options.breakdown), ("complexity", options.complexity)):
        if wanted:
            columns += [(m.header, _figure(m, spread)) for m in vocabulary.metrics(role)]
    if options.timing:
        columns += [(stage.header, _seconds(stage.column)) for stage in vocabulary.STAGES]
    if options.cost:
        columns += [(m.header, _cost(m)) for m in vocabulary.metrics("cost")]
    columns.append((CONFIG, _config(options.relative_to)))

    cells = [[cell(line) for _, cell in columns] for line in lines]
    headers = tuple(header for header, _ in columns)
    costed = cost_notes(frame, headers) if options.cost else (None, ())
    spread_headers = tuple(h for h in headers if replicated and _carries_spread(h))
    note = _NOTES[options.spread] + (_DELTA_NOTE if baseline is not None else "") if replicated else None
    marked = None
    if baseline is not None:
        marked = tuple(row[headers.index(DELTA)][0].endswith(NO_INTERVAL) for row in cells)
        if any(marked):
            note = " ".join(n for n in (note, _no_interval_note(groups)) if n)
    return ResultsTable(
        headers=headers,
        rows=tuple(tuple(shown for shown, _, _ in row) for row in cells),
        values=tuple(tuple(value for _, value, _ in row) for row in cells),
        left_out=len(frame) - sum(g.n for g in groups),
        axes=tuple(axis_headers[name] for name in axes),
        spreads=tuple(tuple(half for _, _, half in row) for row in cells) if replicated else (),
        spread_headers=spread_headers,
        note=note,
        no_interval=marked,
        caption=_caption(groups),
        cost_note=costed[0],
        totals=costed[1],
    )


def _cost(metric: Metric) -> Cell:
    return lambda line: cost_cell(line.group, metric)


def _no_interval_note(groups: Sequence[ReplicateGroup]) -> str:
    """What NO_INTERVAL means, with the seed-to-seed sd of a run's box AP where some row has replicates:
    pooled over those rows (their variances weighted by n - 1), as the runs measure it, never assumed."""
    box = vocabulary.metric("bbox_mAP")
    found = [(e.n - 1, e.sd) for g in groups if (e := g.estimate(box.column)) and e.sd is not None]
    if not found:
        return f"{_NO_INTERVAL_NOTE}; no row has replicates to tell the seed-to-seed noise of {box.name}."
    sd = box.display(math.sqrt(sum(d * s * s for d, s in found) / sum(d for d, _ in found)))
    return (
        f"{_NO_INTERVAL_NOTE}; the seed-to-seed sd of a run's {box.name}, pooled over the rows with "
        f"replicates, is {box.format(sd, digits=max(2, box.digits(sd)))} {box.unit}."
    )


def _carries_spread(header: str) -> bool:
    """Whether a column of a table with replicates has spreads (whichever rows have one, so that CSV's
    columns depend only on the options)."""
    return header == DELTA or any(m.header == header and m.interval for m in vocabulary.METRICS)


def _caption(groups: Sequence[ReplicateGroup]) -> str:
    """'Sweep study on dataset synthetic: 32 runs of 32 cells.'"""

    def named(key: str, one: str, several: str) -> str:
        found = sorted({str(g.identity.get(key)) for g in groups if g.identity.get(key) is not None})
        if not found:
            return ""
        return f"{one if len(found) == 1 else several} {', '.join(found)}"

    where = " on ".join(
        p for p in (named("sweep", "Sweep", "Sweeps"), named("dataset", "dataset", "datasets")) if p
    )
    runs = sum(g.n for g in groups)
    counted = f"{runs} run{'' if runs == 1 else 's'} of {len(groups)} cell{'' if len(groups) == 1 else 's'}"
    return f"{where}: {counted}." if where else f"{counted[0].upper()}{counted[1:]}."


# --- a row -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Line:
    """A row of the table: one replicate group."""

    group: ReplicateGroup

    def get(self, name: str) -> object:
        """The group's identity value, else its first run's value, of column ``name`` (None: missing)."""
        identity = self.group.identity
        return identity[name] if name in identity else self.group.first(name)


def _order(line: _Line, axes: Sequence[str]) -> tuple[object, ...]:
    dcn = line.get("dcn")
    source = line.get("source")
    return (
        str(line.get("sweep") or ""),
        line.get("code") is None,
        str(line.get("code") or ""),
        0 if dcn is False else 1 if dcn is True else 2,
        str(line.get("backbone") or ""),
        str(line.get("schedule") or ""),
        SOURCES.index(source) if source in SOURCES else len(SOURCES),
        *(_axis_order(line.get(name)) for name in axes),
        str(line.get("cell") or ""),
    )


def _axis_order(value: object) -> tuple[int, float, str]:
    """Numbers by value, then text (bools and lists by their text), then no value."""
    if value is None:
        return 2, 0.0, ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return 0, float(value), ""
    return 1, 0.0, axis_text(value)


# --- cells: each column's (display string, value as shown, spread) of a row --------------------------------

Cell = Callable[[_Line], tuple[str, object, float | None]]


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _plain(text: str) -> tuple[str, object, float | None]:
    return (MISSING, None, None) if text == MISSING else (text, text, None)


def _text(name: str) -> Cell:
    return lambda line: _plain(_str(line.get(name)) or MISSING)


def _axis(name: str) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        value = line.get(name)
        if value is None:
            return MISSING, None, None
        shown = axis_text(value)
        return shown, value if isinstance(value, int | float) and not isinstance(value, bool) else shown, None

    return cell


def _dcn(line: _Line) -> tuple[str, object, float | None]:
    value = line.get("dcn")
    return _plain(MISSING if value is None else "Y" if value else "N")


def _figure(metric: Metric, spread: str | None) -> Cell:
    """A metric's mean in its display unit and precision, with its ± where it has an interval."""

    def cell(line: _Line) -> tuple[str, object, float | None]:
        found = line.group.estimate(metric.column)
        if found is None:
            return MISSING, None, None
        mean = metric.display(found.mean)
        digits = metric.digits(mean)
        half = found.half(spread) if spread is not None and metric.interval else None
        half = None if half is None else metric.display(half)
        rounded = None if half is None else round(half, digits)
        return metric.format_spread(mean, half), round(mean, digits), rounded

    return cell


def _seconds(name: str) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        found = line.group.estimate(name)
        return (MISSING, None, None) if found is None else (f"{found.mean:.1f}", round(found.mean, 1), None)

    return cell


def _delta(
    line: _Line, bases: list[_Line], axes: Sequence[str], replicated: bool
) -> tuple[str, object, float | None]:
    box = vocabulary.metric("bbox_mAP")
    group = [
        b
        for b in bases
        if (b.get("sweep"), b.get("source"), b.get("dcn"))
        == (line.get("sweep"), line.get("source"), line.get("dcn"))
        and all(
            b.get(name) is None or line.get(name) is None or _same_axis(b.get(name), line.get(name))
            for name in axes
        )
    ]
    same = [
        b
        for b in group
        if (b.get("backbone"), b.get("schedule")) == (line.get("backbone"), line.get("schedule"))
    ]
    pick = same or group
    if len(pick) > 1 and axes:  # the one that holds the row's very value on the most axes (null for null)
        scores = [sum(_same_axis(b.get(name), line.get(name)) for name in axes) for b in pick]
        pick = [b for b, score in zip(pick, scores, strict=True) if score == max(scores)]
    ap = line.group.values(box.column)
    base = pick[0].group.values(box.column) if len(pick) == 1 else []
    if not ap or not base:
        return MISSING, None, None
    if pick[0] is line:  # the baseline itself
        return box.format(0.0, signed=True), 0.0, None
    found = difference(ap, base)
    delta = box.display(found.mean)
    digits = box.digits(delta)
    shown = box.format(delta, signed=True, digits=digits)
    half = found.half("ci") if replicated else None
    if half is None:
        return shown + NO_INTERVAL, round(delta, digits), None
    half = box.display(half)
    resolved = "" if found.resolved else NOT_RESOLVED
    return f"{shown} {PLUS_MINUS} {half:.{digits}f}{resolved}", round(delta, digits), round(half, digits)


def _same_axis(a: object, b: object) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _config(relative_to: Path | None) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        value = line.get("config")
        if value is None or not str(value):
            return MISSING, None, None
        target = str(value)
        if "://" not in target and Path(target).is_absolute():
            base = (relative_to if relative_to is not None else Path.cwd()).resolve()
            with contextlib.suppress(ValueError):  # another drive (Windows): keep it whole
                target = Path(os.path.relpath(target, base)).as_posix()
            if relative_to is None and target.startswith(".."):  # not under the working directory
                target = str(value)
        link = f"<{target}>" if any(c in target for c in " \t()<>") else target
        return f"[config]({link})", target, None

    return cell
