"""The results table, laid out as mmdetection's READMEs lay theirs out, exported as markdown, CSV or LaTeX.

``results_table`` turns a store frame (``Store(path).read().frame()``, narrowed with ``select``) into a
``ResultsTable``; ``render`` writes that table in one of ``FORMATS``.

Which runs are shown: only runs with status ``done``; of several runs of one replicate of a cell (same
sweep, source, cell and seed) only the latest, by ``finished`` (a run with no ``finished`` counts as the
oldest; on a tie the last ``run_id`` wins), and of a cell's replicates only those of its current config
(the ``cell_id`` of its newest run). The rule is :func:`ablation.results.latest.latest_runs`, which the
dashboard shares. ``ResultsTable.left_out`` counts every other run of the frame.

A row is a cell of a sweep from one source: its replicates (one run per seed of ``[grid] seeds``; one run
for an unseeded sweep) aggregated by :func:`ablation.results.replicates.replicate_groups`. When every row
holds one run the table is mmdetection's layout, exactly as without replicates. When some row holds more:

* an ``n`` column (the row's runs) follows ``box AP``;
* box AP, AP50..APl and fps show the mean and its spread, ``42.1 ± 0.3``: the half-width of the mean's 95%
  confidence interval (Student's t, n-1 degrees of freedom), or with ``TableOptions.spread = "sd"`` the
  sample standard deviation; a figure only one run has shows that value alone;
* the other figures (memory, GFLOPs, parameters, seconds) are means; the text columns and Config are the first
  run's (the lowest seed).

Columns, in this order (the bracketed ones only when asked for, or when needed)::

    [Sweep] [Source] Backbone | Attention Component | DCN | Lr schd | [axes...] | Mem (GB) | Inf time (fps) |
    box AP [n] [Δ box AP] [AP50 | AP75 | APs | APm | APl] [GFLOPs | Params (M)]
    [Train (s) | Test (s) | fps (s) | FLOPs (s)] Config

``Sweep`` appears when the frame holds runs of more than one sweep, ``Source`` when it holds runs of more
than one source (else two rows of one cell would read alike). Each axis of ``[grid.axes]`` that some shown
row has a value on gets a column, in the order of the axes' dotted names, headed by the shortest dotted
ending of its name that no other shown axis ends with (``kv_stride``); it shows the row's value as TOML
writes it (a list as its JSON text), ``-`` where the axis does not vary the row (the attention settings of
0000). ``Δ box AP`` (``TableOptions.baseline``) is a row's box AP minus that of its baseline row: the shown
row with the baseline code in the same sweep and source with the same DCN setting and the same value on
every axis that both rows have a value on (and, where such rows exist, the same backbone and schedule; of
several, the one that holds the row's very value, a null for a null, on the most axes); a row with no such
baseline, or several, shows ``-``, the baseline row itself +0.0. When both rows hold two
or more runs, Δ carries Welch's 95% interval (``+0.3 ± 0.4``), with `` (ns)`` appended when the interval
contains 0; else it is the difference of the means alone. Rows are ordered by sweep, attention code, DCN off
before on, then backbone, schedule, source, the axes' values (numbers by value; no value last) and the cell.

Display: AP figures in percent to one decimal (0.400 -> 40.0), memory and fps to one decimal, memory
measured as the process' CPU peak RSS marked ``(CPU RSS)`` so it is never read as a CUDA figure, GFLOPs to
one decimal, parameters in millions to two, a spread to the decimals of its figure; anything missing shows
as ``-``. A config under the current directory is shown relative to it.

Formats: ``markdown`` is a centred, padded table whose pipes line up (``|`` in a value is escaped), and
below a table with spreads, after a blank line, one line saying what ± is; ``csv`` has the same headers
with unrounded values in the table's units (percent, GB, img/s, GFLOPs, millions), the config as a plain
path or address and missing values as empty fields (the memory column is the bare number there: its kind
does not survive); a column with spreads becomes two, ``<header>`` (the mean) and ``<header> ±`` (the
half-width or sd, empty where there is none); ``latex`` is a booktabs ``tabular`` of the rounded values,
LaTeX's special characters escaped and ± as ``$\\pm$``, without the Config column (papers do not link
configs).

``select`` narrows a frame to sweeps, sources, axis values (``where``: an axis column by its dotted name or
a dotted ending, and a value's text as TOML reads it, a bare word a string; rows the axis does not vary
stay) and seeds (unseeded rows stay).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ablation.errors import InputError
from ablation.grid.axes import command_line_value, short_names
from ablation.model.codes import AttentionCode
from ablation.results.records import SOURCES, is_axis_column
from ablation.run.result_file import TIMINGS

if TYPE_CHECKING:
    from pandas import DataFrame

    from ablation.results.replicates import Estimate, ReplicateGroup

__all__ = ["FORMATS", "SPREADS", "ResultsTable", "TableOptions", "render", "results_table", "select"]

FORMATS = ("markdown", "csv", "latex")
SPREADS = ("ci", "sd")  # what ± shows: the half-width of the mean's 95% interval, or the sample sd

MISSING = "-"
CPU_RSS = "cpu_peak_rss"
CONFIG = "Config"
DELTA = "Δ box AP"
COUNT = "n"
PLUS_MINUS = "±"
NOT_RESOLVED = " (ns)"
# Columns whose values are text (left-aligned in LaTeX); every other column holds numbers.
_TEXT_COLUMNS = ("Sweep", "Source", "Backbone", "Attention Component", "DCN", "Lr schd", CONFIG)
_BREAKDOWN = (
    ("AP50", "bbox_mAP_50"),
    ("AP75", "bbox_mAP_75"),
    ("APs", "bbox_mAP_s"),
    ("APm", "bbox_mAP_m"),
    ("APl", "bbox_mAP_l"),
)
# The seconds of a job's stages: training, the test, the fps measurement, the FLOPs count.
_TIMING = tuple(zip(("Train (s)", "Test (s)", "fps (s)", "FLOPs (s)"), TIMINGS, strict=True))
_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "Δ": r"$\Delta$",
    PLUS_MINUS: r"$\pm$",
}
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


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    """What the table shows beyond mmdetection's columns."""

    breakdown: bool = False  # AP50, AP75, APs, APm, APl
    complexity: bool = False  # GFLOPs and Params (M)
    timing: bool = False  # the seconds of the job's stages: training, test, fps measurement, FLOPs count
    baseline: str | None = None  # an attention code such as '0000': add "Δ box AP" against it
    spread: str = "ci"  # what ± shows for replicates: "ci" (95% interval of the mean) or "sd"


@dataclass(frozen=True)
class ResultsTable:
    """The table: its headers, the rounded display strings and the same cells unrounded (a mean, for a row
    of replicates), and for a table with replicates the spreads that CSV writes in their own columns."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    values: tuple[tuple[object, ...], ...]
    left_out: int  # runs of the frame not shown: not done, superseded, or of an older config of their cell
    axes: tuple[str, ...] = ()  # the headers of the axis columns
    # per row and column: the ± of the value (half-width or sd; None where there is none); () without
    # replicates
    spreads: tuple[tuple[float | None, ...], ...] = ()
    spread_headers: tuple[str, ...] = ()  # the columns that carry a spread (CSV: "<header> ±" after each)
    note: str | None = None  # what ± is: the line below the markdown table


def select(
    frame: DataFrame,
    sweeps: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    where: Sequence[tuple[str, str]] = (),
    seeds: Sequence[int] | None = None,
) -> DataFrame:
    """The frame's runs of these sweeps and sources (None: all), with these axis values (``where``: (axis,
    value text) pairs; a row the axis does not vary stays) and of these seeds (None: all; an unseeded row
    stays). An unknown source, a sweep the frame has no run of, an axis that names no axis column or
    several, a value no run has on it, or a seed no run has, raises InputError naming the valid ones."""
    if sources is not None:
        for source in sources:
            if source not in SOURCES:
                raise InputError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    present = sorted({str(v) for v in _column(frame, "sweep") if v is not None})
    if sweeps is not None:
        for sweep in sweeps:
            if sweep not in present:
                have = ", ".join(present) if present else "none"
                raise InputError(f"unknown sweep {sweep!r}; sweeps in the store: {have}")
    keep = [
        (sweeps is None or sweep in sweeps) and (sources is None or source in sources)
        for sweep, source in zip(_column(frame, "sweep"), _column(frame, "source"), strict=True)
    ]
    for name, text in where:
        column, wanted = _axis_condition(frame, name, text)
        found = _column(frame, column)
        keep = [k and (v is None or _same_value(v, wanted)) for k, v in zip(keep, found, strict=True)]
    if seeds is not None:
        from ablation.results.latest import seed_of

        held = sorted({seed for v in _column(frame, "seed") if (seed := seed_of(v)) is not None})
        missing = sorted(set(seeds) - set(held))
        if missing:
            have = ", ".join(map(str, held)) if held else "none (no run is seeded)"
            raise InputError(
                f"--seeds: seed {', '.join(map(str, missing))} not in the store; seeds in the store: {have}"
            )
        found = _column(frame, "seed")
        keep = [k and (v is None or seed_of(v) in seeds) for k, v in zip(keep, found, strict=True)]
    return frame[keep]


def _axis_condition(frame: DataFrame, name: str, text: str) -> tuple[str, object]:
    """The axis column that ``name`` names (its dotted name, or a dotted ending) and the value ``text``
    names (a TOML value; a bare word: a string)."""
    axes = sorted(str(c) for c in frame.columns if is_axis_column(str(c)))
    matching = [a for a in axes if a == name] or [a for a in axes if a.endswith("." + name)]
    if len(matching) != 1:
        held = ", ".join(axes) or "none (no run has an axis of [grid.axes])"
        which = "names several axis columns" if matching else "is not an axis column of the store"
        raise InputError(f"--where {name}={text}: {name!r} {which}; axis columns in the store: {held}")
    (column,) = matching
    value = command_line_value(text)
    found = [v for v in _column(frame, column) if v is not None]
    if not any(_same_value(v, value) for v in found):
        shown = ", ".join(sorted({_axis_text(v) for v in found})) or "none"
        raise InputError(f"--where {name}={text}: no run has this value of {column}; its values: {shown}")
    return column, value


def _same_value(stored: object, wanted: object) -> bool:
    """Whether a store's axis value is ``wanted`` (a parsed TOML value): lists by their JSON text, a bool
    only as a bool, and a value a mixed column holds as text by that text."""
    if isinstance(wanted, list | dict):
        return isinstance(stored, str) and _json_equal(stored, wanted)
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, str) and not isinstance(wanted, str):
        return stored == json.dumps(wanted)
    return stored == wanted


def _json_equal(text: str, value: object) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False


def results_table(frame: DataFrame, options: TableOptions = TableOptions()) -> ResultsTable:
    """The shown runs of ``frame`` as a table, a row per cell (see the module's docstring for the rules)."""
    from ablation.results.replicates import replicate_groups  # loads pandas, which export itself need not

    if options.spread not in SPREADS:
        raise InputError(f"unknown spread {options.spread!r}; valid spreads: {', '.join(SPREADS)}")
    baseline = AttentionCode.parse(options.baseline).bits if options.baseline is not None else None
    groups = replicate_groups(frame)
    lines = [_Line(g) for g in groups]
    axes = sorted({n for g in groups for n, v in g.axes.items() if v is not None})
    lines.sort(key=lambda line: _order(line, axes))
    several_sweeps = len(set(_column(frame, "sweep"))) > 1
    several_sources = len(set(_column(frame, "source"))) > 1
    replicated = any(g.n > 1 for g in groups)
    spread = options.spread if replicated else None

    columns: list[tuple[str, Cell]] = []
    if several_sweeps:
        columns.append(("Sweep", _text("sweep")))
    if several_sources:
        columns.append(("Source", _text("source")))
    columns += [
        ("Backbone", _text("backbone")),
        ("Attention Component", _text("code")),
        ("DCN", _dcn),
        ("Lr schd", _text("schedule")),
    ]
    axis_headers = short_names(axes)
    columns += [(axis_headers[name], _axis(name)) for name in axes]
    columns += [
        ("Mem (GB)", _memory),
        ("Inf time (fps)", _number("fps", ".1f", spread=spread)),
        ("box AP", _number("bbox_mAP", ".1f", times=100.0, spread=spread)),
    ]
    if replicated:
        columns.append((COUNT, lambda line: (str(line.group.n), line.group.n, None)))
    if baseline is not None:
        bases = [line for line in lines if line.get("code") == baseline]
        columns.append((DELTA, lambda line: _delta(line, bases, axes, replicated)))
    if options.breakdown:
        columns += [
            (header, _number(metric, ".1f", times=100.0, spread=spread)) for header, metric in _BREAKDOWN
        ]
    if options.complexity:
        columns += [
            ("GFLOPs", _number("flops", ".1f", per=1e9)),
            ("Params (M)", _number("params", ".2f", per=1e6)),
        ]
    if options.timing:
        columns += [(header, _number(stage, ".1f")) for header, stage in _TIMING]
    columns.append((CONFIG, _config))

    cells = [[cell(line) for _, cell in columns] for line in lines]
    headers = tuple(header for header, _ in columns)
    spread_headers = tuple(h for h in headers if replicated and _carries_spread(h))
    note = None
    if replicated:
        note = _NOTES[options.spread] + (_DELTA_NOTE if baseline is not None else "")
    return ResultsTable(
        headers=headers,
        rows=tuple(tuple(shown for shown, _, _ in row) for row in cells),
        values=tuple(tuple(value for _, value, _ in row) for row in cells),
        left_out=len(frame) - sum(g.n for g in groups),
        axes=tuple(axis_headers[name] for name in axes),
        spreads=tuple(tuple(half for _, _, half in row) for row in cells) if replicated else (),
        spread_headers=spread_headers,
        note=note,
    )


def _carries_spread(header: str) -> bool:
    """Whether a column of a table with replicates has spreads (whichever rows have one, so that CSV's
    columns depend only on the options)."""
    return header in ("Inf time (fps)", "box AP", DELTA, *(h for h, _ in _BREAKDOWN))


def render(table: ResultsTable, fmt: str) -> str:
    """The table in ``fmt`` (one of FORMATS), ending in a newline."""
    if fmt == "markdown":
        return _markdown(table)
    if fmt == "csv":
        return _csv(table)
    if fmt == "latex":
        return _latex(table)
    raise InputError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


# --- reading the frame ----------------------------------------------------------------------------------


def _column(frame: DataFrame, name: str) -> list[object]:
    from ablation.results.latest import scalar  # loads pandas, which export itself need not

    if name not in frame.columns:
        return [None] * len(frame)
    return [scalar(v) for v in frame[name].tolist()]


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
    return 1, 0.0, _axis_text(value)


def _axis_text(value: object) -> str:
    """An axis value as TOML writes it: true/false, numbers, a list as its JSON text, a string bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- cells: each column's (display string, unrounded value, spread) of a row ----------------------------

Cell = Callable[[_Line], tuple[str, object, float | None]]


def _text(name: str) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        value = line.get(name)
        return (MISSING, None, None) if value is None else (str(value), str(value), None)

    return cell


def _axis(name: str) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        value = line.get(name)
        if value is None:
            return MISSING, None, None
        shown = _axis_text(value)
        return shown, value if isinstance(value, int | float) and not isinstance(value, bool) else shown, None

    return cell


def _dcn(line: _Line) -> tuple[str, object, float | None]:
    value = line.get("dcn")
    if value is None:
        return MISSING, None, None
    flag = "Y" if value else "N"
    return flag, flag, None


def _scaled(
    found: Estimate | None, spec: str, times: float = 1.0, per: float = 1.0, spread: str | None = None
) -> tuple[str, object, float | None]:
    """A figure's mean (scaled into the table's unit), with ``spread`` its ± where it has one."""
    if found is None:
        return MISSING, None, None
    scaled = found.mean * times / per
    half = found.half(spread) if spread is not None else None
    if half is None:
        return format(scaled, spec), scaled, None
    half = half * times / per
    return f"{format(scaled, spec)} {PLUS_MINUS} {format(half, spec)}", scaled, half


def _number(name: str, spec: str, times: float = 1.0, per: float = 1.0, spread: str | None = None) -> Cell:
    def cell(line: _Line) -> tuple[str, object, float | None]:
        return _scaled(line.group.estimate(name), spec, times, per, spread)

    return cell


def _memory(line: _Line) -> tuple[str, object, float | None]:
    shown, value, _ = _scaled(line.group.estimate("memory_gb"), ".1f")
    if value is not None and line.get("memory_kind") == CPU_RSS:
        shown += " (CPU RSS)"
    return shown, value, None


def _delta(
    line: _Line, bases: list[_Line], axes: Sequence[str], replicated: bool
) -> tuple[str, object, float | None]:
    from ablation.results.replicates import difference

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
    ap = line.group.values("bbox_mAP")
    base = pick[0].group.values("bbox_mAP") if len(pick) == 1 else []
    if not ap or not base:
        return MISSING, None, None
    if pick[0] is line:  # the baseline itself
        return "+0.0", 0.0, None
    found = difference(ap, base)
    delta = 100.0 * found.mean
    shown = format(delta, "+.1f")
    shown = "+0.0" if shown == "-0.0" else shown
    half = found.half("ci") if replicated else None
    if half is None:
        return shown, delta, None
    half *= 100.0
    return f"{shown} {PLUS_MINUS} {half:.1f}" + ("" if found.resolved else NOT_RESOLVED), delta, half


def _same_axis(a: object, b: object) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _config(line: _Line) -> tuple[str, object, float | None]:
    value = line.get("config")
    if value is None or not str(value):
        return MISSING, None, None
    target = str(value)
    if "://" not in target:
        path = Path(target)
        if path.is_absolute():
            with contextlib.suppress(ValueError):  # not under the current directory: keep it whole
                target = path.relative_to(Path.cwd()).as_posix()
    link = f"<{target}>" if any(c in target for c in " \t()<>") else target
    return f"[config]({link})", target, None


# --- formats ---------------------------------------------------------------------------------------------


def _markdown(table: ResultsTable) -> str:
    lines = [[cell.replace("|", "\\|") for cell in line] for line in (table.headers, *table.rows)]
    widths = [max(3, *(len(line[i]) for line in lines)) for i in range(len(table.headers))]

    def join(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    out = [join([c.center(w) for c, w in zip(lines[0], widths, strict=True)])]
    out.append(join([":" + "-" * (w - 2) + ":" for w in widths]))
    out += [join([c.center(w) for c, w in zip(line, widths, strict=True)]) for line in lines[1:]]
    if table.note:  # a blank line first: a line right below a table would read as one of its rows
        out += ["", table.note]
    return "\n".join(out) + "\n"


def _csv(table: ResultsTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    carries = [header in table.spread_headers for header in table.headers]
    headers: list[str] = []
    for header, spread in zip(table.headers, carries, strict=True):
        headers += [header, f"{header} {PLUS_MINUS}"] if spread else [header]
    writer.writerow(headers)
    for i, row in enumerate(table.values):
        halves = table.spreads[i] if table.spreads else (None,) * len(row)
        fields: list[object] = []
        for value, half, spread in zip(row, halves, carries, strict=True):
            fields.append("" if value is None else value)
            if spread:
                fields.append("" if half is None else half)
        writer.writerow(fields)
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex(table: ResultsTable) -> str:
    keep = [i for i, header in enumerate(table.headers) if header != CONFIG]
    text = (*_TEXT_COLUMNS, *table.axes)
    spec = "".join("l" if table.headers[i] in text else "r" for i in keep)

    def line(cells: Sequence[str]) -> str:
        return " & ".join(_latex_escape(cells[i]) for i in keep) + r" \\"

    out = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", line(table.headers), r"\midrule"]
    out += [line(row) for row in table.rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"
