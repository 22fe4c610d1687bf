"""The results table, laid out as mmdetection's READMEs lay theirs out, exported as markdown, CSV or LaTeX.

``results_table`` turns a store frame (``Store(path).read().frame()``, narrowed with ``select``) into a
``ResultsTable``; ``render`` writes that table in one of ``FORMATS``.

Which runs are shown: only runs with status ``done``; of several runs of one cell (same sweep, source and
cell) only the latest, by ``finished`` (a run with no ``finished`` counts as the oldest; on a tie the last
``run_id`` wins). The rule is :func:`ablation.results.latest.latest_runs`, which the dashboard shares.
``ResultsTable.left_out`` counts every other run of the frame.

Columns, in this order (the bracketed ones only when asked for, or when needed)::

    [Sweep] [Source] Backbone | Attention Component | DCN | Lr schd | Mem (GB) | Inf time (fps) | box AP
    [Δ box AP] [AP50 | AP75 | APs | APm | APl] [GFLOPs | Params (M)] Config

``Sweep`` appears when the frame holds runs of more than one sweep, ``Source`` when it holds runs of more
than one source (else two rows of one cell would read alike). ``Δ box AP`` (``TableOptions.baseline``) is a
row's box AP minus that of the shown row with the baseline code in the same sweep and source with the same
DCN setting (and, where such rows exist, the same backbone and schedule); the baseline row itself shows
+0.0, a row with no such baseline ``-``. Rows are ordered by sweep, attention code, DCN off before on, then
backbone, schedule and source.

Display: AP figures in percent to one decimal (0.400 -> 40.0), memory and fps to one decimal, memory
measured as the process' CPU peak RSS marked ``(CPU RSS)`` so it is never read as a CUDA figure, GFLOPs to
one decimal, parameters in millions to two; anything missing shows as ``-``. A config under the current
directory is shown relative to it.

Formats: ``markdown`` is a centred, padded table whose pipes line up (``|`` in a value is escaped);
``csv`` has the same headers with unrounded values in the table's units (percent, GB, img/s, GFLOPs,
millions), the config as a plain path or address and missing values as empty fields (the memory column is
the bare number there: its kind does not survive); ``latex`` is a booktabs ``tabular`` of the rounded
values, LaTeX's special characters escaped, without the Config column (papers do not link configs).
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ablation.errors import InputError
from ablation.model.codes import AttentionCode
from ablation.results.records import SOURCES

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = ["FORMATS", "ResultsTable", "TableOptions", "render", "results_table", "select"]

FORMATS = ("markdown", "csv", "latex")

MISSING = "-"
CPU_RSS = "cpu_peak_rss"
CONFIG = "Config"
DELTA = "Δ box AP"
# Columns whose values are text (left-aligned in LaTeX); every other column holds numbers.
_TEXT_COLUMNS = ("Sweep", "Source", "Backbone", "Attention Component", "DCN", "Lr schd", CONFIG)
_BREAKDOWN = (
    ("AP50", "bbox_mAP_50"),
    ("AP75", "bbox_mAP_75"),
    ("APs", "bbox_mAP_s"),
    ("APm", "bbox_mAP_m"),
    ("APl", "bbox_mAP_l"),
)
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
}

Row = dict[str, object]
Cell = Callable[[Row], tuple[str, object]]  # a column: a run -> (display string, unrounded value)


@dataclass(frozen=True)
class TableOptions:
    """What the table shows beyond mmdetection's columns."""

    breakdown: bool = False  # AP50, AP75, APs, APm, APl
    complexity: bool = False  # GFLOPs and Params (M)
    baseline: str | None = None  # an attention code such as '0000': add "Δ box AP" against it


@dataclass(frozen=True)
class ResultsTable:
    """The table: its headers, the rounded display strings and the same cells unrounded."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    values: tuple[tuple[object, ...], ...]
    left_out: int  # runs of the frame not shown: not done, or superseded by a later run of their cell


def select(
    frame: DataFrame, sweeps: Sequence[str] | None = None, sources: Sequence[str] | None = None
) -> DataFrame:
    """The frame's runs of these sweeps and sources (None: all). An unknown source, or a sweep the frame has
    no run of, raises InputError naming the valid ones."""
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
    return frame[keep]


def results_table(frame: DataFrame, options: TableOptions = TableOptions()) -> ResultsTable:
    """The shown runs of ``frame`` as a table (see the module's docstring for the rules)."""
    from ablation.results.latest import latest_runs  # loads pandas, which export itself need not

    baseline = AttentionCode.parse(options.baseline).bits if options.baseline is not None else None
    shown = _records(latest_runs(frame))
    shown.sort(key=_order)
    several_sweeps = len(set(_column(frame, "sweep"))) > 1
    several_sources = len(set(_column(frame, "source"))) > 1

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
        ("Mem (GB)", _memory),
        ("Inf time (fps)", _number("fps", ".1f")),
        ("box AP", _number("bbox_mAP", ".1f", times=100.0)),
    ]
    if baseline is not None:
        bases = [r for r in shown if r.get("code") == baseline]
        columns.append((DELTA, lambda r: _delta(r, bases)))
    if options.breakdown:
        columns += [(header, _number(metric, ".1f", times=100.0)) for header, metric in _BREAKDOWN]
    if options.complexity:
        columns += [
            ("GFLOPs", _number("flops", ".1f", per=1e9)),
            ("Params (M)", _number("params", ".2f", per=1e6)),
        ]
    columns.append((CONFIG, _config))

    cells = [[cell(r) for _, cell in columns] for r in shown]
    return ResultsTable(
        headers=tuple(header for header, _ in columns),
        rows=tuple(tuple(shown_value for shown_value, _ in row) for row in cells),
        values=tuple(tuple(value for _, value in row) for row in cells),
        left_out=len(frame) - len(shown),
    )


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
    if name not in frame.columns:
        return [None] * len(frame)
    return [_scalar(v) for v in frame[name].tolist()]


def _records(frame: DataFrame) -> list[Row]:
    """The frame's rows as dicts of plain Python values; every kind of missing value becomes None."""
    names = [str(name) for name in frame.columns]
    columns = [_column(frame, name) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if names else []


def _scalar(value: object) -> object:
    if value is None:
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__ == "numpy":
        value = item()
    if isinstance(value, float) and math.isnan(value):
        return None
    import pandas as pd

    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _order(record: Row) -> tuple[object, ...]:
    dcn = record.get("dcn")
    source = record.get("source")
    return (
        str(record.get("sweep") or ""),
        record.get("code") is None,
        str(record.get("code") or ""),
        0 if dcn is False else 1 if dcn is True else 2,
        str(record.get("backbone") or ""),
        str(record.get("schedule") or ""),
        SOURCES.index(source) if source in SOURCES else len(SOURCES),
        str(record.get("cell") or ""),
    )


# --- cells: each column's (display string, unrounded value) of a run -------------------------------------


def _text(name: str) -> Cell:
    def cell(record: Row) -> tuple[str, object]:
        value = record.get(name)
        return (MISSING, None) if value is None else (str(value), str(value))

    return cell


def _dcn(record: Row) -> tuple[str, object]:
    value = record.get("dcn")
    if value is None:
        return MISSING, None
    flag = "Y" if value else "N"
    return flag, flag


def _scaled(value: object, spec: str, times: float = 1.0, per: float = 1.0) -> tuple[str, object]:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return MISSING, None
    scaled = float(value) * times / per
    return format(scaled, spec), scaled


def _number(name: str, spec: str, times: float = 1.0, per: float = 1.0) -> Cell:
    def cell(record: Row) -> tuple[str, object]:
        return _scaled(record.get(name), spec, times, per)

    return cell


def _memory(record: Row) -> tuple[str, object]:
    shown, value = _scaled(record.get("memory_gb"), ".1f")
    if value is not None and record.get("memory_kind") == CPU_RSS:
        shown += " (CPU RSS)"
    return shown, value


def _delta(record: Row, bases: list[Row]) -> tuple[str, object]:
    group = [
        b
        for b in bases
        if (b.get("sweep"), b.get("source"), b.get("dcn"))
        == (record.get("sweep"), record.get("source"), record.get("dcn"))
    ]
    same = [
        b
        for b in group
        if (b.get("backbone"), b.get("schedule")) == (record.get("backbone"), record.get("schedule"))
    ]
    pick = same or group
    ap = record.get("bbox_mAP")
    base = pick[0].get("bbox_mAP") if len(pick) == 1 else None
    if not isinstance(ap, int | float) or not isinstance(base, int | float):
        return MISSING, None
    delta = 100.0 * (float(ap) - float(base))
    shown = format(delta, "+.1f")
    return ("+0.0" if shown == "-0.0" else shown), delta


def _config(record: Row) -> tuple[str, object]:
    value = record.get("config")
    if value is None or not str(value):
        return MISSING, None
    target = str(value)
    if "://" not in target:
        path = Path(target)
        if path.is_absolute():
            with contextlib.suppress(ValueError):  # not under the current directory: keep it whole
                target = path.relative_to(Path.cwd()).as_posix()
    link = f"<{target}>" if any(c in target for c in " \t()<>") else target
    return f"[config]({link})", target


# --- formats ---------------------------------------------------------------------------------------------


def _markdown(table: ResultsTable) -> str:
    lines = [[cell.replace("|", "\\|") for cell in line] for line in (table.headers, *table.rows)]
    widths = [max(3, *(len(line[i]) for line in lines)) for i in range(len(table.headers))]

    def join(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    out = [join([c.center(w) for c, w in zip(lines[0], widths, strict=True)])]
    out.append(join([":" + "-" * (w - 2) + ":" for w in widths]))
    out += [join([c.center(w) for c, w in zip(line, widths, strict=True)]) for line in lines[1:]]
    return "\n".join(out) + "\n"


def _csv(table: ResultsTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.headers)
    for row in table.values:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex(table: ResultsTable) -> str:
    keep = [i for i, header in enumerate(table.headers) if header != CONFIG]
    spec = "".join("l" if table.headers[i] in _TEXT_COLUMNS else "r" for i in keep)

    def line(cells: Sequence[str]) -> str:
        return " & ".join(_latex_escape(cells[i]) for i in keep) + r" \\"

    out = [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", line(table.headers), r"\midrule"]
    out += [line(row) for row in table.rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"
