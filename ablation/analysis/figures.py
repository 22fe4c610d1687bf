"""The dashboard's Plotly figures, built from store frames (see ``numbers``) and from the factorial analysis
(``effects.analyse``), with no Streamlit in them.

Conventions: box AP in percent on the y axis; DCN off blue, on red; own runs are circles, imported logs
diamonds and the published model-zoo numbers large open stars, so a reference point is never mistaken for
one of ours; the hover decodes the attention code into its factors. Each point carries its run's key
(sweep, cell, run_id, source) as ``customdata``, so a selection in the dashboard leads to the run. A point
that is a cell's replicates at their mean (``numbers.replicate_means``) has error bars of its 95% confidence
interval and says in its hover how many runs it is.

The effects' figures (:func:`effects_figure`, :func:`interactions_figure`, :func:`half_normal_figure`) take
a ``FactorialAnalysis`` and draw each effect with its interval where the method gives one; their colours
mean better or worse for the metric (``effects.HIGHER_IS_BETTER``), not the sign, and an effect whose
interval holds 0 is marked as not resolved from noise. Each says its method (``analysis.description``)
in its subtitle. ``name``, ``unit`` and ``scale`` (METRIC_UNITS has the dashboard's) turn the store's unit
into the one shown: box AP x 100 in AP points, FLOPs x 1e-9 in GFLOPs.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablation.analysis.effects import HIGHER_IS_BETTER, FactorialAnalysis, half_normal
from ablation.analysis.numbers import HALF_SUFFIX, describe_code
from ablation.model.codes import AttentionCode

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from pandas import DataFrame

__all__ = [
    "AXES",
    "KEY_COLUMNS",
    "METRIC_UNITS",
    "VERDICTS",
    "ap_heatmap",
    "curves_figure",
    "effects_figure",
    "half_normal_figure",
    "interactions_figure",
    "null_slope",
    "tradeoff_figure",
    "verdict",
]

KEY_COLUMNS = ("sweep", "cell", "run_id", "source")
# x-axis column -> (title, whether higher is better)
AXES = {
    "fps": ("inference speed (img/s, batch 1)", True),
    "memory_gb": ("training memory (GB)", False),
    "flops": ("GFLOPs (one test image)", False),
}
MEMORY_TITLES = {"cuda_peak_allocated": "CUDA peak allocated", "cpu_peak_rss": "CPU peak RSS"}
DCN_COLOURS = {False: "#1f77b4", True: "#d62728"}
SOURCE_MARKERS = {
    "run": ("circle", "own runs", 9),
    "log": ("diamond", "imported logs", 10),
    "reference": ("star-open", "model zoo (published)", 16),
}
_LABELLED_POINTS = 64  # code labels beside the points up to this many


def _scale(column: str) -> float:
    return 1e-9 if column == "flops" else 1.0


def tradeoff_figure(
    points: DataFrame, x: str, front: DataFrame | None = None, memory_kind: str | None = None
) -> go.Figure:
    """Box AP against ``x`` (a key of AXES), one point per row of ``points``, with the Pareto ``front``
    (rows of the same frame) drawn as a line. Rows with no AP or no ``x`` are not drawn.

    Where ``points`` has half-widths of confidence intervals (the ``bbox_mAP_ci`` and ``<x>_ci`` columns of
    ``numbers.replicate_means``), a trace with one draws them as error bars (``error_y`` for AP, ``error_x``
    for ``x``), none where a point has no interval (one run); without them the chart has no error bars.
    """
    import plotly.graph_objects as go

    title, _ = AXES[x]
    if x == "memory_gb" and memory_kind:
        title = f"training memory (GB, {MEMORY_TITLES.get(memory_kind, memory_kind)})"
    figure = go.Figure()
    drawn = points.dropna(subset=[x, "bbox_mAP"])
    label = len(drawn) <= _LABELLED_POINTS
    for source, (symbol, name, size) in SOURCE_MARKERS.items():
        for dcn, colour in DCN_COLOURS.items():
            group = drawn[(drawn["source"] == source) & (drawn["dcn"].fillna(False) == dcn)]
            if group.empty:
                continue
            figure.add_trace(
                go.Scattergl(
                    x=(group[x].astype(float) * _scale(x)).tolist(),
                    y=(group["bbox_mAP"].astype(float) * 100).tolist(),
                    mode="markers+text" if label else "markers",
                    text=[str(c) for c in group["code"]] if label else None,
                    textposition="top center",
                    name=f"{name}, DCN {'on' if dcn else 'off'}",
                    marker={
                        "symbol": symbol,
                        "size": size,
                        "color": colour,
                        "line": {"width": 1, "color": "#222"},
                    },
                    customdata=group[list(KEY_COLUMNS)].astype(str).values.tolist(),
                    hovertext=[_hover(row, x) for row in group.to_dict("records")],
                    hoverinfo="text",
                    **_error_bars(group, x, colour),
                )
            )
    if front is not None and not front.empty:
        line = front.dropna(subset=[x, "bbox_mAP"]).sort_values(x)
        figure.add_trace(
            go.Scatter(
                x=(line[x].astype(float) * _scale(x)).tolist(),
                y=(line["bbox_mAP"].astype(float) * 100).tolist(),
                mode="lines",
                name="Pareto frontier",
                line={"dash": "dash", "color": "#555", "shape": "hv" if AXES[x][1] else "vh"},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        xaxis_title=title,
        yaxis_title="box AP (%)",
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 30, "l": 10, "r": 10},
        height=520,
    )
    return figure


def _error_bars(group: DataFrame, x: str, colour: str) -> dict[str, Any]:
    """The ``error_y`` (AP) and ``error_x`` (``x``) of a trace, from the group's half-width columns where
    one holds a value; a point without one gets no bar."""
    bars: dict[str, Any] = {}
    for key, column, scale in (("error_y", "bbox_mAP", 100.0), ("error_x", x, _scale(x))):
        halves = [_number(v) for v in group.get(column + HALF_SUFFIX, [])]
        if any(h is not None for h in halves):
            bars[key] = {
                "type": "data",
                "array": [None if h is None else h * scale for h in halves],
                "visible": True,
                "color": colour,
                "thickness": 1.2,
                "width": 3,
            }
    return bars


def _hover(row: dict[str, Any], x: str) -> str:
    code = describe_code(_text(row.get("code")), _flag(row.get("dcn")))
    ap = _number(row.get("bbox_mAP"))
    n = _number(row.get("n"))
    parts = [
        f"<b>{code}</b>",
        f"{row.get('sweep')} / {row.get('cell')} ({row.get('source')})",
        f"box AP {ap * 100:.1f}{_plus_minus(row, 'bbox_mAP', 100.0)}" if ap is not None else "box AP -",
    ]
    if n is not None and n > 1:
        seeds = _text(row.get("seeds"))
        parts.append(f"mean of n = {n:.0f} runs" + (f" (seeds {seeds})" if seeds else "") + ", ± 95% CI")
    module, implementation = _text(row.get("attention_module")), _text(row.get("attention_impl"))
    if module:
        parts.append(f"attention: {module}" + (f" ({implementation})" if implementation else ""))
    for column, unit, scale in (("fps", "img/s", 1.0), ("memory_gb", "GB", 1.0), ("flops", "GFLOPs", 1e-9)):
        value = _number(row.get(column))
        if value is not None:
            parts.append(f"{value * scale:.1f}{_plus_minus(row, column, scale)} {unit}")
    return "<br>".join(parts)


def _plus_minus(row: dict[str, Any], column: str, scale: float) -> str:
    """' ± 0.4' from the row's half-width of ``column``; '' without one."""
    half = _number(row.get(column + HALF_SUFFIX))
    return "" if half is None else f" ± {half * scale:.1f}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _flag(value: Any) -> bool | None:
    try:
        return None if value is None or value != value else bool(value)
    except (TypeError, ValueError):  # pandas' NA
        return None


# --- the factorial analysis (``effects.analyse``) ---------------------------------------------------------

# An effect's verdict -> (its colour, its legend's words); ``{name}`` is the metric's name.
VERDICTS = {
    "better": ("#2ca02c", "improves {name} (resolved from noise)"),
    "worse": ("#d62728", "worsens {name} (resolved from noise)"),
    "unresolved": ("#9e9e9e", "not resolved from noise (its interval holds 0)"),
    "no interval": ("#8c9fb8", "no interval (no error estimate)"),
}
# A metric -> (its name for people, its unit, the scale from the store's unit to it)
METRIC_UNITS = {
    "bbox_mAP": ("box AP", "AP points", 100.0),
    "fps": ("fps", "img/s", 1.0),
    "memory_gb": ("memory", "GB", 1.0),
    "flops": ("GFLOPs", "GFLOPs", 1e-9),
}
_ORDER_WORDS = {1: "Main effects", 2: "Two-factor interactions"}
_UNRESOLVED_PATTERN = "/"
_CAPTION_WIDTH = 95  # characters per line of a figure's note on its method
_TICK_WIDTH = 18  # characters per line of a factor's name on an axis
_LABELLED = 3  # a half-normal plot with no resolved effect names its largest ones, this many


def verdict(analysis: FactorialAnalysis, effect: float | None, resolved: Any) -> str:
    """An effect's key of VERDICTS: 'no interval' (resolved NA, or no estimate), 'unresolved', or, resolved,
    'better' or 'worse' by the metric's direction (HIGHER_IS_BETTER), not by the sign."""
    if effect is None or resolved is None or pd.isna(resolved):
        return "no interval"
    if not bool(resolved):
        return "unresolved"
    try:
        higher = HIGHER_IS_BETTER[analysis.metric]
    except KeyError:
        known = ", ".join(HIGHER_IS_BETTER)
        raise ValueError(f"no better direction known for {analysis.metric!r}; metrics: {known}") from None
    return "better" if (effect > 0) == higher else "worse"


def effects_figure(
    analysis: FactorialAnalysis, name: str | None = None, unit: str = "", scale: float = 1.0, order: int = 1
) -> go.Figure:
    """A bar per effect of ``order`` (1: the main effects, 2: the two-factor interactions) of the analysis,
    at effect x ``scale``, with error bars to its interval where it has one. The colour says better or
    worse for the metric, not the sign (VERDICTS): green an effect resolved from noise that improves it, red
    one that worsens it, grey and hatched one not resolved (its text '+0.14 (not resolved)'), a neutral blue
    one without interval ('+0.14 (no interval)'); one trace per verdict, named for the legend. The method
    (``analysis.description``) is the subtitle and in every bar's hover."""
    import plotly.graph_objects as go

    name = name or METRIC_UNITS.get(analysis.metric, (analysis.metric,))[0]
    rows = analysis.effects[analysis.effects["order"] == order]
    labels = [str(v) for v in rows["label"]]
    bars: dict[str, list[dict[str, Any]]] = {key: [] for key in VERDICTS}
    for row in rows.to_dict("records"):
        value, low, high = (_scaled(row.get(c), scale) for c in ("effect", "low", "high"))
        key = verdict(analysis, value, row.get("resolved"))
        if key != "no interval" and (low is None or high is None):
            key = "no interval"
        bars[key].append({**row, "value": value, "low_s": low, "high_s": high})
    figure = go.Figure()
    for key, drawn in bars.items():
        if not drawn:
            continue
        colour, legend = VERDICTS[key]
        trace: dict[str, Any] = {}
        if key != "no interval":
            trace["error_y"] = {
                "type": "data",
                "symmetric": False,
                "array": [b["high_s"] - b["value"] for b in drawn],
                "arrayminus": [b["value"] - b["low_s"] for b in drawn],
                "visible": True,
                "color": "#333",
                "thickness": 1.2,
                "width": 6,
            }
        figure.add_trace(
            go.Bar(
                x=[str(b["label"]) for b in drawn],
                y=[b["value"] for b in drawn],
                name=legend.format(name=name),
                text=[_bar_text(b["value"], key) for b in drawn],
                textposition="auto",
                showlegend=True,
                marker={
                    "color": colour,
                    "line": {"width": 1, "color": "#444"},
                    "pattern": {"shape": _UNRESOLVED_PATTERN if key == "unresolved" else ""},
                },
                hovertext=[_effect_hover(b, unit, analysis) for b in drawn],
                hoverinfo="text",
                **trace,
            )
        )
    suffix = f" ({unit})" if unit else ""
    title = f"{_ORDER_WORDS.get(order, f'Order-{order} interactions')} on {name}{suffix}"
    note = analysis.description if labels else f"No effect of this order: {analysis.description}"
    _frame(figure, title, note, legend=True)
    figure.update_layout(
        barmode="overlay",
        xaxis={"categoryorder": "array", "categoryarray": labels, **_ticks(labels, _TICK_WIDTH - 6)},
        yaxis_title=f"effect on {name}{suffix}",
    )
    figure.add_hline(y=0, line={"color": "#444", "width": 1})
    return figure


def half_normal_figure(
    analysis: FactorialAnalysis, name: str | None = None, unit: str = "", scale: float = 1.0
) -> go.Figure:
    """The half-normal plot of the analysis's effects (``effects.half_normal``): |effect| x ``scale`` against
    its half-normal quantile, each point named by its term in its hover; the resolved ones highlighted and
    labelled (without any, the 3 largest), and the line the null effects lie about, through
    the origin with the slope of an effect's standard error under no effect: Lenth's PSE for the ``lenth``
    method, the OLS standard error of an effect otherwise; no line without one."""
    import plotly.graph_objects as go

    name = name or METRIC_UNITS.get(analysis.metric, (analysis.metric,))[0]
    points = half_normal(analysis)
    sizes = [float(v) * abs(scale) for v in points["size"]]
    # named beside the point: the resolved effects, or without any the largest few
    resolved = [v is True for v in points["resolved"].astype(object)]
    labelled = {i for i, r in enumerate(resolved) if r} or set(
        range(max(0, len(points) - _LABELLED), len(points))
    )
    figure = go.Figure()
    groups = {
        "resolved from noise": ("#d62728", 12, resolved),
        "not resolved": ("#7f7f7f", 9, [v is False for v in points["resolved"].astype(object)]),
        "no interval": (
            "#8c9fb8",
            9,
            [v is not True and v is not False for v in points["resolved"].astype(object)],
        ),
    }
    for legend, (colour, size, chosen) in groups.items():
        where = [i for i, pick in enumerate(chosen) if pick]
        if not where:
            continue
        texts = [str(points["label"][i]) if i in labelled else "" for i in where]
        figure.add_trace(
            go.Scatter(
                x=[float(points["quantile"][i]) for i in where],
                y=[sizes[i] for i in where],
                mode="markers+text",
                name=legend,
                text=texts,
                textposition=["top left" if n % 2 else "bottom left" for n in range(len(where))],
                showlegend=True,
                marker={"color": colour, "size": size, "line": {"width": 1, "color": "#222"}},
                hovertext=[
                    f"<b>{points['label'][i]}</b><br>effect {_signed(float(points['effect'][i]) * scale)}"
                    f"{f' {unit}' if unit else ''}<br>{legend}"
                    for i in where
                ],
                hoverinfo="text",
            )
        )
    slope, words = null_slope(analysis)
    if slope is not None and len(points):
        top = float(points["quantile"].max()) * 1.05
        figure.add_trace(
            go.Scatter(
                x=[0.0, top],
                y=[0.0, top * slope * abs(scale)],
                mode="lines",
                name=f"null effects: |effect| = quantile x {words} ({_signed(slope * abs(scale))[1:]}"
                f"{f' {unit}' if unit else ''})",
                line={"dash": "dash", "color": "#555"},
                hoverinfo="skip",
            )
        )
    suffix = f" ({unit})" if unit else ""
    note = analysis.description if len(points) else f"No effect to plot: {analysis.description}"
    _frame(figure, f"Half-normal plot of the effects on {name}", note, legend=True)
    figure.update_layout(xaxis_title="half-normal quantile", yaxis_title=f"|effect| on {name}{suffix}")
    return figure


def null_slope(analysis: FactorialAnalysis) -> tuple[float | None, str]:
    """The standard error of an effect under no effect, in the metric's unit, and its name: Lenth's PSE
    (``lenth``), else the OLS standard error of an effect (the median over the effects: they are equal in a
    balanced design); (None, '') without one."""
    if analysis.lenth is not None:
        return analysis.lenth.pse, "Lenth's pseudo standard error"
    errors = [float(v) for v in analysis.effects["se"] if _number(v) is not None]
    if not errors:
        return None, ""
    return float(np.median(errors)), "the OLS standard error of an effect"


def interactions_figure(
    analysis: FactorialAnalysis, name: str | None = None, unit: str = "", scale: float = 1.0
) -> go.Figure:
    """The two-factor interactions of the analysis (``analysis.interactions()``) as a symmetric heatmap over
    its factors (diagonal empty), at effect x ``scale``; each cell's text the effect and the half-width of
    its interval ('+0.50<br>± 0.21'), in parentheses when the interval holds 0 (not resolved from noise),
    the effect alone without interval. Blue is better for the metric, red worse."""
    import plotly.graph_objects as go

    name = name or METRIC_UNITS.get(analysis.metric, (analysis.metric,))[0]
    labels = [f.label for f in analysis.factors]
    index = {f.column: i for i, f in enumerate(analysis.factors)}
    z: list[list[float | None]] = [[None] * len(labels) for _ in labels]
    text = [[""] * len(labels) for _ in labels]
    hover = [[""] * len(labels) for _ in labels]
    for row in analysis.interactions().to_dict("records"):
        a, b = (index[c] for c in str(row["term"]).split(":"))
        value, low, high = (_scaled(row.get(c), scale) for c in ("effect", "low", "high"))
        key = verdict(analysis, value, row.get("resolved"))
        shown = "" if value is None else _signed(value)
        if low is not None and high is not None and value is not None:
            shown = f"{shown}<br>± {_signed((high - low) / 2)[1:]}"
        z[a][b] = z[b][a] = value
        text[a][b] = text[b][a] = f"({shown})" if key == "unresolved" else shown
        hover[a][b] = hover[b][a] = _effect_hover(
            {**row, "value": value, "low_s": low, "high_s": high}, unit, analysis
        )
    suffix = f" ({unit})" if unit else ""
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=labels,
            colorscale="RdBu",
            reversescale=not HIGHER_IS_BETTER.get(analysis.metric, True),
            zmid=0,
            text=text,
            texttemplate="%{text}",
            hovertext=hover,
            hoverinfo="text",
            textfont={"size": 11},
            colorbar={"title": {"text": unit or name}, "thickness": 14},
        )
    )
    note = (
        "In parentheses: not resolved from noise (the interval holds 0). " + analysis.description
        if labels
        else f"No interaction: {analysis.description}"
    )
    _frame(figure, f"Two-factor interactions on {name}{suffix}", note, legend=False)
    figure.update_layout(xaxis=_ticks(labels, _TICK_WIDTH - 7), yaxis=_ticks(labels))
    return figure


def _scaled(value: Any, scale: float) -> float | None:
    number = _number(value)
    return None if number is None else number * scale


def _signed(value: float) -> str:
    """'+0.14', '-2.00'; small numbers with two significant digits ('+0.0012') rather than as 0, down to
    0.0001 ('+0.00' below)."""
    return f"{value:+.2g}" if 1e-4 <= abs(value) < 0.01 else f"{value:+.2f}"


def _bar_text(value: float | None, key: str) -> str:
    if value is None:
        return "no estimate"
    marks = {"unresolved": " (not resolved)", "no interval": " (no interval)"}
    return _signed(value) + marks.get(key, "")


def _effect_hover(bar: dict[str, Any], unit: str, analysis: FactorialAnalysis) -> str:
    value, low, high = bar["value"], bar["low_s"], bar["high_s"]
    unit = f" {unit}" if unit else ""
    parts = [f"<b>{bar['label']}</b>", "effect " + ("-" if value is None else f"{_signed(value)}{unit}")]
    if low is not None and high is not None:
        parts.append(f"{analysis.level:.0%} interval [{_signed(low)}, {_signed(high)}]{unit}")
    p = _number(bar.get("p"))
    if p is not None:
        parts.append(f"p = {p:.3g}")
    if bar.get("simultaneous") is True:
        parts.append("resolved simultaneously over all effects")
    parts.append("<br>".join(textwrap.wrap(analysis.description, 80)))
    return "<br>".join(parts)


def _frame(figure: go.Figure, title: str, note: str, legend: bool) -> None:
    """The title, ``note`` (the method) wrapped as its subtitle, the legend above the plot, and room for
    them."""
    lines = textwrap.wrap(note, _CAPTION_WIDTH) or [""]
    figure.update_layout(
        title={
            "text": title,
            "subtitle": {"text": "<br>".join(lines), "font": {"size": 11, "color": "#555"}},
            "x": 0,
            "xanchor": "left",
            "yref": "container",
            "y": 1,
            "yanchor": "top",
            "pad": {"t": 10},
        },
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        margin={"t": 60 + 14 * len(lines) + (45 if legend else 0), "l": 10, "r": 10},
        height=480 + 14 * len(lines),
    )
    figure.update_yaxes(automargin=True)  # room for the tick labels and the axis title beside them


def _ticks(labels: list[str], width: int = _TICK_WIDTH) -> dict[str, Any]:
    """An axis of categories ``labels`` whose tick texts wrap at ``width`` characters, so long factor names
    need no slant."""
    wrapped = ["<br>".join(textwrap.wrap(label, width)) or label for label in labels]
    return {"tickmode": "array", "tickvals": labels, "ticktext": wrapped, "tickangle": 0}


def ap_heatmap(grid: DataFrame) -> go.Figure:
    """Box AP (%) of the 16 codes x DCN; a missing cell stays empty and is labelled 'missing', never 0."""
    import plotly.graph_objects as go

    z = [[_number(v) for v in row] for row in grid.to_numpy().tolist()]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"DCN {c}" for c in grid.columns],
            y=[f"{code} {AttentionCode(str(code)).label}" for code in grid.index],
            colorscale="Viridis",
            text=[["missing" if v is None else f"{v:.1f}" for v in row] for row in z],
            texttemplate="%{text}",
            colorbar={"title": "box AP"},
            hoverongaps=True,
        )
    )
    figure.update_layout(height=640, margin={"t": 20}, yaxis={"autorange": "reversed"})
    return figure


def curves_figure(train: DataFrame, val: DataFrame) -> go.Figure:
    """Training loss and learning rate per iteration, and validation box AP per epoch."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=1, cols=2, subplot_titles=("training", "validation"), specs=[[{"secondary_y": True}, {}]]
    )
    iters = train["iter"].astype(float).tolist()
    figure.add_trace(go.Scatter(x=iters, y=train["loss"].astype(float).tolist(), name="loss"), row=1, col=1)
    figure.add_trace(
        go.Scatter(x=iters, y=train["lr"].astype(float).tolist(), name="lr", line={"dash": "dot"}),
        row=1,
        col=1,
        secondary_y=True,
    )
    figure.add_trace(
        go.Scatter(
            x=val["epoch"].astype(float).tolist(),
            y=(val["bbox_mAP"].astype(float) * 100).tolist(),
            name="box AP",
            mode="lines+markers",
        ),
        row=1,
        col=2,
    )
    figure.update_xaxes(title_text="iteration", row=1, col=1)
    figure.update_xaxes(title_text="epoch", row=1, col=2)
    figure.update_yaxes(title_text="box AP (%)", row=1, col=2)
    figure.update_layout(height=360, margin={"t": 40})
    return figure
