"""A sweep's report: one self-contained HTML file that opens offline, in any browser, with no server.

What it holds, from the store's runs of one sweep (``latest_runs``: the latest finished run of each seed of
each cell): a title with the sweep, the date and how many runs and cells; the trade-off charts the
dashboard draws (box AP against fps, against training memory per memory kind, against GFLOPs, with the
Pareto frontier and, with replicates, error bars of the 95% interval of a cell's mean); the factor effects
of ``effects.analyse`` with their intervals (main effects on box AP, fps, memory per kind and GFLOPs, and
the half-normal plot of the effects on box AP), each with the sentence saying how it was estimated; and the
results table, the rows ``ablation export --sweep NAME`` gives.

Self-contained: plotly.js is embedded once, inline, in the head; each chart is a div and a script calling
it; the style sheet is inline. Nothing in the file loads anything from anywhere (plotly.js's own text names
some addresses, SVG namespaces and the map tiles of charts not drawn here, that it never asks for). The
trade-off charts are the dashboard's figures drawn as SVG rather than WebGL (Scatter for Scattergl): a
report is read on any machine and printed, and SVG draws without a GPU.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablation import __version__
from ablation.analysis import figures
from ablation.analysis.effects import FactorialAnalysis, analyse
from ablation.analysis.numbers import pareto_front, replicate_means
from ablation.errors import InputError
from ablation.fsio import write_atomic
from ablation.model.codes import factor_legend
from ablation.results.export import CONFIG, ResultsTable, TableOptions, results_table, select
from ablation.results.latest import column_values, latest_runs
from ablation.results.records import SOURCES

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["EFFECT_METRICS", "Report", "build_report", "report_path", "write_report"]

# The metrics whose effects the report shows, in order, and the decimals of their effects in its tables
# (their names, units and scales are figures.METRIC_UNITS').
EFFECT_METRICS = {"bbox_mAP": 2, "fps": 2, "memory_gb": 3, "flops": 2}
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1rem 2rem 3rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; margin-top: 2.5rem; }
.meta, .method, .note, .legend { color: #555; } .method { font-style: italic; }
.legend { background: #f6f6f6; border-left: 4px solid #999; padding: 0.5rem 0.8rem; }
.swatches { list-style: none; padding: 0; margin: 0.3rem 0 0; display: flex; flex-wrap: wrap; gap: 1.2rem; }
.swatch { display: inline-block; width: 0.9rem; height: 0.9rem; margin-right: 0.4rem; vertical-align: -0.1rem;
          border: 1px solid #444; }
nav a { margin-right: 1rem; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: center; }
th { background: #f0f0f0; } td.text { text-align: left; }
.chart { margin: 0.5rem 0 1.5rem; }
@media print { .chart { break-inside: avoid; } nav { display: none; } }
"""


@dataclass(frozen=True)
class Report:
    """A sweep's report: its HTML, and what is in it."""

    html: str
    sweep: str
    runs: int  # the runs counted (the latest finished run of each seed of each cell)
    cells: int
    charts: int  # the Plotly charts in it


def report_path(store: Path, sweep: str) -> Path:
    """Where ``ablation run`` writes a sweep's report: beside the store,
    ``<store's parent>/<sweep>-report.html`` (a character of the name that cannot be in a file name becomes
    ``_``)."""
    return store.parent / f"{re.sub(r'[^A-Za-z0-9._-]', '_', sweep)}-report.html"


def write_report(
    frame: pd.DataFrame,
    sweep: str,
    path: Path,
    sources: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Write the report of ``sweep`` (see :func:`build_report`) to ``path`` atomically, its folder made if
    missing."""
    report = build_report(frame, sweep, sources, now)
    write_atomic(path, report.html)
    return report


def build_report(
    frame: pd.DataFrame,
    sweep: str,
    sources: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of the runs of ``sweep`` in ``frame`` (a store frame), of ``sources`` (None: all).

    A sweep the frame has no run of, or no finished run of (of those sources), raises InputError naming it
    and the sweeps there are."""
    chosen = select(frame, sweeps=[sweep], sources=sources)  # an unknown sweep: InputError naming the others
    runs = latest_runs(chosen)
    if runs.empty:
        finished = sorted(
            {str(v) for v in column_values(latest_runs(select(frame, sources=sources)), "sweep")}
        )
        of = f" from source {', '.join(sources)}" if sources else ""
        held = (
            f"no finished run{of} ({_count(len(chosen), 'run')}, none done)" if len(chosen) else f"no run{of}"
        )
        raise InputError(
            f"sweep {sweep!r} has {held} in the store; sweeps with finished runs{of}: "
            f"{', '.join(finished) or 'none'}"
        )
    points = replicate_means(runs)
    page = _Page()
    page.tradeoffs(runs, points)
    page.effects(runs)
    page.table(results_table(chosen, TableOptions()))
    present = [s for s in SOURCES if _equals(runs, "source", s).any()]
    title = _title(sweep, runs, points, present, now or datetime.now(UTC))
    return Report(
        html=page.html(sweep, title), sweep=sweep, runs=len(runs), cells=len(points), charts=page.charts
    )


# --- the page ----------------------------------------------------------------------------------------------


def _title(sweep: str, runs: pd.DataFrame, points: pd.DataFrame, sources: list[str], now: datetime) -> str:
    replicated = bool((points["n"] > 1).any())
    finished = (
        pd.to_datetime(runs["finished"], utc=True, errors="coerce").dropna() if "finished" in runs else None
    )
    when = ""
    if finished is not None and not finished.empty:
        first, last = (f"{t:%Y-%m-%d}" for t in (finished.min(), finished.max()))
        when = f"; runs finished {first}" + (f" to {last}" if last != first else "")
    cells = _count(len(points), "cell")
    counted = (
        f"{len(runs)} runs of {cells} (the latest finished run of each seed of each cell)"
        if replicated
        else f"{cells}, one run each (its latest finished run)"
    )
    return (
        f'<h1>Sweep {_e(sweep)}</h1>\n<p class="meta">Written {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC by '
        f"ablation {_e(__version__)}: {_e(counted)}, from source{'s' if len(sources) > 1 else ''} "
        f'{_e(", ".join(sources))}{_e(when)}.</p>\n<p class="meta">{_e(factor_legend())}</p>'
    )


class _Page:
    """The sections of the report as HTML, and the charts in them."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.charts = 0

    def html(self, sweep: str, title: str) -> str:
        import plotly.offline

        nav = (
            '<nav><a href="#tradeoffs">Trade-offs</a><a href="#effects">Factor effects</a>'
            '<a href="#results">Results table</a></nav>'
        )
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en">',
                "<head>",
                '<meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                f"<title>ablation report: {_e(sweep)}</title>",
                f"<style>{_STYLE}</style>",
                f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>',
                "</head>",
                "<body>",
                title,
                nav,
                *self.parts,
                "</body>",
                "</html>",
                "",
            ]
        )

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def chart(self, figure: go.Figure, name: str) -> None:
        """A Plotly figure as a div (id ``name``) and its script; plotly.js is in the page's head."""
        self.charts += 1
        div = figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            include_mathjax=False,
            div_id=name,
            config={"displaylogo": False, "responsive": True},
        )
        self.add(f'<div class="chart">{div}</div>')

    # --- trade-offs ----------------------------------------------------------------------------------------

    def tradeoffs(self, runs: pd.DataFrame, points: pd.DataFrame) -> None:
        replicated = bool((points["n"] > 1).any())
        which = (
            "A cell run with several seeds is one point at the mean of its runs, with bars of the 95% "
            "confidence interval of that mean"
            if replicated
            else "One point per cell"
        )
        self.add(
            '<section id="tradeoffs">',
            "<h2>Accuracy against efficiency</h2>",
            f'<p class="note">{which}. Colour: DCN (blue off, red on); circles: own runs, diamonds: '
            "imported logs, open stars: the published model zoo. Dashed: the Pareto frontier. Hover over a "
            "point for its cell.</p>",
        )
        self.add("<h3>Box AP against inference speed</h3>")
        self._tradeoff(points, "fps")
        kinds = [k for k in figures.MEMORY_TITLES if _equals(runs, "memory_kind", k).any()]
        if not kinds:
            self.add(
                "<h3>Box AP against training memory</h3>", '<p class="note">No run has a memory figure.</p>'
            )
        for kind in kinds:  # never one axis for a CUDA peak and a CPU RSS
            self.add(f"<h3>Box AP against training memory: {_e(figures.MEMORY_TITLES[kind])}</h3>")
            self._tradeoff(replicate_means(runs[_equals(runs, "memory_kind", kind)]), "memory_gb", kind)
        self.add("<h3>Box AP against GFLOPs</h3>")
        self._tradeoff(points, "flops")
        self.add("</section>")

    def _tradeoff(self, points: pd.DataFrame, x: str, memory_kind: str | None = None) -> None:
        drawn = points.dropna(subset=[x, "bbox_mAP"])
        if drawn.empty:
            self.add(f'<p class="note">No cell has both a box AP and a {_e(figures.AXES[x][0])} figure.</p>')
            return
        front = pareto_front(points, x, higher_x_is_better=figures.AXES[x][1])
        figure = _as_svg(figures.tradeoff_figure(points, x, front, memory_kind))
        figure.update_layout(margin={"l": 70}, yaxis={"automargin": True})  # room for the AP ticks
        self.chart(figure, "tradeoff-" + "-".join(p for p in (x, memory_kind) if p))

    # --- factor effects ------------------------------------------------------------------------------------

    def effects(self, runs: pd.DataFrame) -> None:
        """The factor effects of each source's runs (a factorial analysis is of one design: one source)."""
        present = [s for s in SOURCES if _equals(runs, "source", s).any()]
        designs = {source: _analyses(runs[_equals(runs, "source", source)]) for source in present}
        self.add('<section id="effects">', "<h2>Factor effects</h2>")
        if all(a.main().empty for analyses in designs.values() for _, _, a in analyses):
            reasons = dict.fromkeys(_method(a) for analyses in designs.values() for _, _, a in analyses)
            self.add(f'<p class="note">No factor effects to show: {_e(" ".join(reasons))}</p>', "</section>")
            return
        self.add(_legend())
        for source, analyses in designs.items():
            suffix = f"-{source}" if len(present) > 1 else ""
            if suffix:
                self.add(f'<h3 id="effects{suffix}" class="source">Runs of source {_e(source)}</h3>')
            for metric, kind, analysis in analyses:
                self._effects(analysis, suffix, kind)
                if metric == "bbox_mAP":
                    self._half_normal(analysis, suffix)
            if not any(metric == "memory_gb" for metric, _, _ in analyses):
                self.add("<h3>Main effects on memory</h3>", '<p class="note">No run has a memory figure.</p>')
        self.add("</section>")

    def _effects(self, analysis: FactorialAnalysis, suffix: str, kind: str | None) -> None:
        metric = analysis.metric
        name, unit, scale = figures.METRIC_UNITS[metric]
        shown = f"{name} ({figures.MEMORY_TITLES[kind]})" if kind else name
        self.add(f"<h3>Main effects on {_e(shown)}</h3>", f'<p class="method">{_e(_method(analysis))}</p>')
        main = analysis.main()
        if not main.empty:
            figure = figures.effects_figure(analysis, name=shown, unit=unit, scale=scale)
            self.chart(figure, f"effects{suffix}-{metric}" + (f"-{kind}" if kind else ""))
            self.add(_effects_table(main, unit, scale, EFFECT_METRICS[metric]))

    def _half_normal(self, analysis: FactorialAnalysis, suffix: str) -> None:
        name, unit, scale = figures.METRIC_UNITS["bbox_mAP"]
        if analysis.effects.dropna(subset=["effect"]).empty:
            return
        self.add(
            "<h3>Half-normal plot of the effects on box AP</h3>",
            '<p class="note">Every estimated effect (main effects and interactions) by size against its '
            "half-normal quantile: effects that are noise lie on a line through the origin, real ones stand "
            "off it.</p>",
        )
        self.chart(
            figures.half_normal_figure(analysis, name=name, unit=unit, scale=scale), f"half-normal{suffix}"
        )

    # --- the results table ---------------------------------------------------------------------------------

    def table(self, table: ResultsTable) -> None:
        self.add(
            '<section id="results">',
            "<h2>Results table</h2>",
            '<p class="note">The rows of <code>ablation export --sweep</code>: mmdetection\'s README layout, '
            "a row per cell, ordered by attention code then DCN.</p>",
            _html_table(table),
        )
        if table.note:
            self.add(f'<p class="note">{_e(table.note)}</p>')
        if table.left_out:
            self.add(
                f'<p class="note">{_count(table.left_out, "run")} of the sweep not '
                "shown: not done, superseded by a later run of the same seed, or of an older config of their "
                "cell.</p>"
            )
        self.add("</section>")


def _analyses(rows: pd.DataFrame) -> list[tuple[str, str | None, FactorialAnalysis]]:
    """(metric, memory kind, analysis) of each of EFFECT_METRICS over the runs of one design; memory once
    per memory kind, over the runs of that kind (none without a memory figure)."""
    found: list[tuple[str, str | None, FactorialAnalysis]] = []
    for metric in EFFECT_METRICS:
        if metric != "memory_gb":
            found.append((metric, None, analyse(rows, metric)))
            continue
        for kind in (k for k in figures.MEMORY_TITLES if _equals(rows, "memory_kind", k).any()):
            found.append((metric, kind, analyse(rows[_equals(rows, "memory_kind", kind)], metric)))
    return found


def _legend() -> str:
    """What the effects' charts show, and their colours' key (figures.VERDICTS)."""
    swatches = "".join(
        f'<li><span class="swatch" style="background:{_e(colour)}"></span>'
        f"{_e(words.format(name='the metric'))}</li>"
        for colour, words in figures.VERDICTS.values()
    )
    return (
        '<div class="legend"><p>Each bar is a main effect: the mean at the factor\'s high level (on) minus '
        "the mean at its low level (off), in the metric's unit, with its 95% interval as the error bar. The "
        "colour says better or worse, not the sign: higher box AP and fps, lower memory and GFLOPs are "
        "better. <b>Not resolved from noise</b>: an effect whose interval contains 0 (grey, hatched, marked "
        '"not resolved"; "no" in the table under its chart) cannot be told from no effect at all.</p>'
        f'<ul class="swatches">{swatches}</ul></div>'
    )


def _method(analysis: FactorialAnalysis) -> str:
    """The analysis's method sentence, with the factors it left out."""
    words = [(analysis.description or analysis.method).rstrip(".") + "."]
    if analysis.aliased:
        pairs = "; ".join(f"{a} moves with {b}" for a, b in analysis.aliased.items())
        words.append(f"Left out as aliased: {pairs}.")
    if analysis.blocks:
        words.append(f"Blocks: {', '.join(analysis.blocks)}.")
    return " ".join(words)


def _effects_table(main: pd.DataFrame, unit: str, scale: float, decimals: int) -> str:
    rows = []
    for row in main.to_dict("records"):
        effect, low, high = (_scaled(row[k], scale) for k in ("effect", "low", "high"))
        interval = "-" if low is None or high is None else f"{low:+.{decimals}f} to {high:+.{decimals}f}"
        resolved = row["resolved"]
        verdict = "-" if resolved is None or resolved is pd.NA else ("yes" if resolved else "no")
        shown = "-" if effect is None else f"{effect:+.{decimals}f}"
        rows.append(
            f'<tr><td class="text">{_e(str(row["label"]))}</td><td>{shown}</td><td>{interval}</td>'
            f"<td>{verdict}</td></tr>"
        )
    head = f"<tr><th>factor</th><th>effect ({_e(unit)})</th><th>95% interval</th><th>resolved</th></tr>"
    return f'<table class="effects">{head}{"".join(rows)}</table>'


def _html_table(table: ResultsTable) -> str:
    """The results table as HTML, every value escaped; the Config column as the config's path (text, no
    link)."""
    config = table.headers.index(CONFIG) if CONFIG in table.headers else None
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = []
    for shown, values in zip(table.rows, table.values, strict=True):
        cells = []
        for i, text in enumerate(shown):
            if i == config and values[i] is not None:
                cells.append(f'<td class="text"><code>{_e(str(values[i]))}</code></td>')
            else:
                cells.append(f"<td>{_e(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# --- helpers -----------------------------------------------------------------------------------------------


def _as_svg(figure: go.Figure) -> go.Figure:
    """The figure with its WebGL scatter traces drawn as SVG ones, the rest unchanged."""
    import plotly.graph_objects as go

    spec: dict[str, Any] = figure.to_plotly_json()
    for trace in spec["data"]:
        if trace.get("type") == "scattergl":
            trace["type"] = "scatter"
    return go.Figure(spec)


def _equals(frame: pd.DataFrame, column: str, value: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Which rows hold ``value`` in ``column`` (a missing value never does)."""
    return np.array([v == value for v in column_values(frame, column)], dtype=bool)


def _scaled(value: Any, scale: float) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number * scale


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
