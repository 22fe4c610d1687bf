"""A sweep's report: one self-contained HTML file that opens offline, in any browser, with no server.

What it holds, from the store's runs of one sweep (``latest_runs``: the latest finished run of each seed of
each cell): a title with the sweep, the date and how many runs and cells, then first the verdict on box AP
(which effects are resolved from noise, and what seeds would resolve the rest); the trade-off charts the
dashboard draws (``Runs.tradeoff_axes``: box AP against fps, training memory per memory kind, GFLOPs and
the GPU-hours of a cell's jobs over all attempts, CPU-hours on a CPU grid, with the Pareto frontier and,
with replicates, error bars of the 95% interval of a cell's mean); the factor effects of
``effects.analyse`` with their intervals (main effects on box AP, fps, memory per kind and GFLOPs, and the
half-normal plot of the effects on box AP), each with the sentence saying how it was estimated; and the
results table, the rows ``ablation export --sweep NAME`` gives (over 64 rows: the best cell of each code and
DCN setting first, all of it in a collapsed ``<details>``; where a run has a cost, ``--cost``'s columns and
each sweep's total). A figure not finite or out of its valid range is read as missing, named under the title.

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
from typing import TYPE_CHECKING

import pandas as pd

from ablation import __version__, vocabulary
from ablation.analysis import effect_charts, figures
from ablation.analysis.effects import FactorialAnalysis
from ablation.analysis.effects_text import method, sections, verdict
from ablation.analysis.numbers import pareto_front
from ablation.analysis.runs import Analysis, Runs
from ablation.errors import InputError
from ablation.fsio import write_atomic
from ablation.model.codes import factor_legend
from ablation.results.latest import column_values, latest_runs
from ablation.results.select import select
from ablation.results.table import CONFIG, ResultsTable, TableOptions

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["Report", "build_report", "report_path", "write_report"]
_SUMMARY_OVER = 64  # a results table of more rows is summarised first, the whole of it in a <details>
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1rem 2rem 3rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .verdict { background: #eef4fb; padding: 0.5rem 0.8rem; }
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
details > summary { cursor: pointer; color: #555; margin: 0.8rem 0; }
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
    verdict: tuple[str, ...] = ()  # its first words: the verdict on box AP, one per source
    dropped: tuple[str, ...] = ()  # a line per figure read as missing: not finite, or out of its range


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
    missing; its configs' paths relative to the report's folder."""
    report = build_report(frame, sweep, sources, now, relative_to=path.parent)
    write_atomic(path, report.html)
    return report


def build_report(
    frame: pd.DataFrame,
    sweep: str,
    sources: Sequence[str] | None = None,
    now: datetime | None = None,
    relative_to: Path | None = None,
) -> Report:
    """The report of the runs of ``sweep`` in ``frame`` (a store frame), of ``sources`` (None: all); configs
    shown relative to ``relative_to`` (None: the working directory).

    A sweep the frame has no run of, or no finished run of (of those sources), raises InputError naming it
    and the sweeps there are."""
    chosen = Runs(select(frame, sweeps=[sweep], sources=sources))  # unknown sweep: InputError naming others
    runs = chosen.latest
    if runs.empty:
        finished = sorted(
            {str(v) for v in column_values(latest_runs(select(frame, sources=sources)), "sweep")}
        )
        of = f" from source {', '.join(sources)}" if sources else ""
        held = (
            f"no finished run{of} ({_count(len(chosen.frame), 'run')}, none done)"
            if len(chosen.frame)
            else f"no run{of}"
        )
        raise InputError(
            f"sweep {sweep!r} has {held} in the store; sweeps with finished runs{of}: "
            f"{', '.join(finished) or 'none'}"
        )
    points = chosen.cells
    designs = {source: chosen.where("source", source).analyses() for source in chosen.sources}
    page = _Page()
    page.tradeoffs(chosen)
    page.effects(designs)
    page.table(chosen.table(TableOptions(relative_to=relative_to, cost=chosen.costed)))
    title, said = _title(sweep, runs, points, chosen.sources, now or datetime.now(UTC)), _verdict(designs)
    title += "".join(f'\n<p class="verdict">{_e(words)}</p>' for words in said)
    title += "".join(f'\n<p class="note">{_e(line)}</p>' for line in chosen.dropped)  # read as missing
    return Report(page.html(sweep, title), sweep, len(runs), len(points), page.charts, said, chosen.dropped)


# --- the page ----------------------------------------------------------------------------------------------


def _title(sweep: str, runs: pd.DataFrame, points: pd.DataFrame, sources: list[str], now: datetime) -> str:
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
        if (points["n"] > 1).any()
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

    def tradeoffs(self, runs: Runs) -> None:
        which = (
            "A cell run with several seeds is one point at the mean of its runs, with bars of the 95% "
            "confidence interval of that mean"
            if runs.replicated
            else "One point per cell"
        )
        self.add(
            '<section id="tradeoffs">',
            "<h2>Accuracy against efficiency</h2>",
            f'<p class="note">{which}. Colour: DCN (blue off, red on); circles: own runs, diamonds: '
            "imported logs, open stars: the published model zoo. Dashed: the Pareto frontier. Hover over a "
            "point for its cell.</p>",
        )
        for across in runs.tradeoff_axes:  # GPU-hours, or CPU-hours on a CPU grid
            heading = f"<h3>Box AP against {_e(across.axis_title.split(' (')[0])}"
            if across.column != "memory_gb":
                self.add(heading + "</h3>")
                self._tradeoff(runs.cells, across)
                continue
            if not runs.memory_kinds:
                self.add(heading + "</h3>", '<p class="note">No run has a memory figure.</p>')
            for kind in runs.memory_kinds:  # never one axis for a CUDA peak and a CPU RSS
                self.add(f"{heading}: {_e(vocabulary.memory_label(kind))}</h3>")
                self._tradeoff(runs.where("memory_kind", kind).cells, across, kind)
        self.add("</section>")

    def _tradeoff(
        self, points: pd.DataFrame, across: vocabulary.Metric, memory_kind: str | None = None
    ) -> None:
        x = across.column
        drawn = points.dropna(subset=[x, "bbox_mAP"]) if x in points else points.iloc[0:0]
        if drawn.empty:
            self.add(f'<p class="note">No cell has both a box AP and a {_e(across.axis_title)} figure.</p>')
            return
        front = pareto_front(points, x, higher_x_is_better=bool(across.higher_is_better))
        figure = figures.tradeoff_figure(points, x, front, memory_kind, webgl=False)
        figure.update_layout(margin={"l": 70}, yaxis={"automargin": True})  # room for the AP ticks
        self.chart(figure, "tradeoff-" + "-".join(p for p in (x, memory_kind) if p))

    # --- factor effects ------------------------------------------------------------------------------------

    def effects(self, designs: dict[str, list[Analysis]]) -> None:
        """The factor effects of each source's runs (a factorial analysis is of one design: one source)."""
        self.add('<section id="effects">', "<h2>Factor effects</h2>")
        if all(a.result.main().empty for analyses in designs.values() for a in analyses):
            reasons = dict.fromkeys(method(a.result) for analyses in designs.values() for a in analyses)
            self.add(f'<p class="note">No factor effects to show: {_e(" ".join(reasons))}</p>', "</section>")
            return
        self.add(_legend())
        for source, analyses in designs.items():
            suffix = f"-{source}" if len(designs) > 1 else ""
            if suffix:
                self.add(f'<h3 id="effects{suffix}" class="source">Runs of source {_e(source)}</h3>')
            for analysis in analyses:
                self._effects(analysis, suffix)
                if analysis.metric.column == "bbox_mAP":
                    self._half_normal(analysis.result, suffix)
            if not any(a.metric.column == "memory_gb" for a in analyses):
                self.add("<h3>Main effects on memory</h3>", '<p class="note">No run has a memory figure.</p>')
        self.add("</section>")

    def _effects(self, analysis: Analysis, suffix: str) -> None:
        result, kind = analysis.result, analysis.memory_kind
        self.add(f"<h3>Main effects on {_e(analysis.name)}</h3>")
        self.add(f'<p class="method">{_e(method(result))}</p>')
        chart = f"effects{suffix}-{result.metric}" + (f"-{kind}" if kind else "")
        if not result.main().empty:
            self.chart(effect_charts.effects_figure(result, name=analysis.name), chart)
        for setting in result.settings:
            figure = effect_charts.setting_figure(result, setting, name=analysis.name)
            self.chart(figure, f"{chart}-{setting.term}")
        if not result.effects.empty:
            self.add(_effects_table(result))

    def _half_normal(self, analysis: FactorialAnalysis, suffix: str) -> None:
        if analysis.effects.dropna(subset=["effect"]).empty:
            return
        self.add(
            "<h3>Half-normal plot of the effects on box AP</h3>",
            '<p class="note">Every estimated effect (main effects and interactions) by size against its '
            "half-normal quantile: effects that are noise lie on a line through the origin, real ones stand "
            "off it.</p>",
        )
        self.chart(effect_charts.half_normal_figure(analysis), f"half-normal{suffix}")

    # --- the results table ---------------------------------------------------------------------------------

    def table(self, table: ResultsTable) -> None:
        self.add(
            '<section id="results">',
            "<h2>Results table</h2>",
            '<p class="note">The rows of <code>ablation export --sweep</code>: mmdetection\'s README layout, '
            "a row per cell, ordered by attention code then DCN.</p>",
        )
        if len(table.rows) <= _SUMMARY_OVER:
            self.add(_html_table(table))
        else:  # a summary first, the whole table on request
            best = table.best_rows()
            self.add(
                f'<p class="note">The best cell (highest box AP) of each attention code and DCN setting: '
                f"{_count(len(best), 'row')} of {len(table.rows)}, all of them below.</p>",
                _html_table(table.only(best), "summary"),
                f"<details><summary>All {len(table.rows)} rows</summary>",
                _html_table(table),
                "</details>",
            )
        self.add(*(f'<p class="note">{_e(note)}</p>' for note in (table.note, table.cost_note) if note))
        if table.left_out:
            self.add(
                f'<p class="note">{_count(table.left_out, "run")} of the sweep not shown: not done, '
                "superseded by a later run of the same seed, or of an older config of their cell.</p>"
            )
        self.add("</section>")


def _verdict(designs: dict[str, list[Analysis]]) -> tuple[str, ...]:
    """The verdict on box AP of each source's design (``effects_text.verdict``): the report's first words."""
    said = [(s, verdict(a.result)) for s in designs for a in designs[s] if a.metric.column == "bbox_mAP"]
    of = "Runs of source {}: " if len(said) > 1 else ""
    return tuple(of.format(s) + words for s, words in said if words)


def _legend() -> str:
    """What the effects' charts show, and their colours' key (figures.VERDICTS)."""
    swatches = "".join(
        f'<li><span class="swatch" style="background:{_e(colour)}"></span>'
        f"{_e(words.format(name='the metric'))}</li>"
        for colour, words in effect_charts.VERDICTS.values()
    )
    return (
        '<div class="legend"><p>Each bar is a main effect: the mean at the factor\'s high level (on) minus '
        "the mean at its low level (off), in the metric's unit, with its 95% interval as the error bar. The "
        "colour says better or worse, not the sign: higher box AP and fps, lower memory and GFLOPs are "
        "better. <b>Not resolved from noise</b>: an effect whose interval contains 0 (grey, hatched, marked "
        '"not resolved"; "no" in the table under its chart) cannot be told from no effect at all.</p>'
        f'<ul class="swatches">{swatches}</ul></div>'
    )


def _effects_table(analysis: FactorialAnalysis) -> str:
    rows = []
    for words, found in sections(analysis):
        rows.append(f'<tr><th colspan="4" class="text">{_e(words)}</th></tr>')
        rows += [
            f'<tr><td class="text">{_e(label)}</td><td>{effect}</td><td>{interval}</td>'
            f"<td>{resolved}</td></tr>"
            for label, effect, interval, resolved in found
        ]
    head = (
        f"<tr><th>factor</th><th>effect ({_e(analysis.figure.unit)})</th><th>95% interval</th>"
        "<th>resolved</th></tr>"
    )
    return f'<table class="effects">{head}{"".join(rows)}</table>'


def _html_table(table: ResultsTable, kind: str = "results") -> str:
    """The results table as HTML (its class ``kind``), every value escaped; the Config column as the
    config's path (text, no link)."""
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
    return f'<table class="{kind}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
