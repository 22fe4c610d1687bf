"""The factor effects' Plotly figures, from a ``FactorialAnalysis`` (``effects.analyse``), with no Streamlit
in them: :func:`effects_figure` (a bar per effect), :func:`setting_figure` (a bar per effect of one setting,
an axis nested within the cells it is set on, and its interactions), :func:`interactions_figure` (a heatmap
of the factors' two-factor interactions) and :func:`half_normal_figure`.

Each draws an effect with its interval where the method gives one, in the metric's display unit (the
analysis works in it: box AP in AP points); the colours mean better or worse for the metric (the
vocabulary's ``higher_is_better``), not the sign, and an effect whose interval holds 0 is marked as not
resolved from noise. Each says its method (``analysis.description``) in its subtitle.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablation.analysis.design import Setting
from ablation.analysis.effects import FactorialAnalysis, half_normal
from ablation.analysis.figures import number

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "VERDICTS",
    "effects_figure",
    "half_normal_figure",
    "interactions_figure",
    "null_slope",
    "setting_figure",
    "verdict",
]

# An effect's verdict -> (its colour, its legend's words); ``{name}`` is the metric's name.
VERDICTS = {
    "better": ("#2ca02c", "improves {name} (resolved from noise)"),
    "worse": ("#d62728", "worsens {name} (resolved from noise)"),
    "unresolved": ("#9e9e9e", "not resolved from noise (its interval holds 0)"),
    "no interval": ("#8c9fb8", "no interval (no error estimate)"),
}
_ORDER_WORDS = {1: "Main effects", 2: "Two-factor interactions"}
_UNRESOLVED_PATTERN = "/"
_CAPTION_WIDTH = 95  # characters per line of a figure's note on its method
_TICK_WIDTH = 18  # characters per line of a factor's name on an axis
_LABELLED = 3  # a half-normal plot with no resolved effect names its largest ones, this many


def verdict(analysis: FactorialAnalysis, effect: float | None, resolved: Any) -> str:
    """An effect's key of VERDICTS: 'no interval' (resolved NA, or no estimate), 'unresolved', or, resolved,
    'better' or 'worse' by the metric's direction (its ``higher_is_better``), not by the sign."""
    if effect is None or resolved is None or pd.isna(resolved):
        return "no interval"
    if not bool(resolved):
        return "unresolved"
    higher = analysis.figure.higher_is_better
    if higher is None:
        raise ValueError(f"{analysis.figure.name} has no better direction")
    return "better" if (effect > 0) == higher else "worse"


def effects_figure(analysis: FactorialAnalysis, name: str | None = None, order: int = 1) -> go.Figure:
    """A bar per factor effect of ``order`` (1: the main effects, 2: the two-factor interactions) of the
    analysis, in its metric's unit, named ``name`` (default: the metric's name), with error bars to its
    interval where it has one. The colour says better or worse for the metric, not the sign (VERDICTS): green
    an effect resolved from noise that improves it, red one that worsens it, grey and hatched one not
    resolved (its text '+0.14 (not resolved)'), a neutral blue one without interval ('+0.14 (no
    interval)'); one trace per verdict, named for the legend. The method (``analysis.description``) is the
    subtitle and in every bar's hover."""
    name = name or analysis.figure.name
    effects = analysis.effects
    rows = effects[(effects["order"] == order) & (effects["kind"] == "factor")]
    words = _ORDER_WORDS.get(order, f"Order-{order} interactions")
    return _bars(analysis, rows, name, words, empty="No effect of this order")


def setting_figure(analysis: FactorialAnalysis, setting: Setting, name: str | None = None) -> go.Figure:
    """A bar per effect of ``setting`` (each level against its first, within the cells it is set on) and per
    interaction of it with a factor or another setting, drawn as :func:`effects_figure` draws."""
    name = name or analysis.figure.name
    words = f"Effects of {setting.label} (within {setting.within})"
    return _bars(analysis, analysis.of_setting(setting), name, words, empty=f"No effect of {setting.label}")


def _bars(analysis: FactorialAnalysis, rows: pd.DataFrame, name: str, words: str, empty: str) -> go.Figure:
    """The bar chart of effects ``rows`` of the analysis, titled ``words`` on ``name``."""
    import plotly.graph_objects as go

    unit = analysis.figure.unit
    labels = [str(v) for v in rows["label"]]
    bars: dict[str, list[dict[str, Any]]] = {key: [] for key in VERDICTS}
    for row in rows.to_dict("records"):
        value, low, high = (number(row.get(c)) for c in ("effect", "low", "high"))
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
    title = f"{words} on {name}{suffix}"
    note = analysis.description if labels else f"{empty}: {analysis.description}"
    _frame(figure, title, note, legend=True)
    figure.update_layout(
        barmode="overlay",
        xaxis={"categoryorder": "array", "categoryarray": labels, **_ticks(labels, _TICK_WIDTH - 6)},
        yaxis_title=f"effect on {name}{suffix}",
    )
    figure.add_hline(y=0, line={"color": "#444", "width": 1})
    return figure


def half_normal_figure(analysis: FactorialAnalysis, name: str | None = None) -> go.Figure:
    """The half-normal plot of the analysis's effects (``effects.half_normal``): |effect| against
    its half-normal quantile, each point named by its term in its hover; the resolved ones highlighted and
    labelled (without any, the 3 largest), and the line the null effects lie about, through
    the origin with the slope of an effect's standard error under no effect: Lenth's PSE for the ``lenth``
    method, the OLS standard error of an effect otherwise; no line without one."""
    import plotly.graph_objects as go

    name, unit = name or analysis.figure.name, analysis.figure.unit
    points = half_normal(analysis)
    sizes = [float(v) for v in points["size"]]
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
                    f"<b>{points['label'][i]}</b><br>effect {_signed(float(points['effect'][i]))}"
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
                y=[0.0, top * slope],
                mode="lines",
                name=f"null effects: |effect| = quantile x {words} ({_signed(slope)[1:]}"
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
    errors = [float(v) for v in analysis.effects["se"] if number(v) is not None]
    if not errors:
        return None, ""
    return float(np.median(errors)), "the OLS standard error of an effect"


def interactions_figure(analysis: FactorialAnalysis, name: str | None = None) -> go.Figure:
    """The two-factor interactions of the analysis (``analysis.interactions()``) as a symmetric heatmap over
    its factors (diagonal empty), in its metric's unit; each cell's text the effect and the half-width of
    its interval ('+0.50<br>± 0.21'), in parentheses when the interval holds 0 (not resolved from noise),
    the effect alone without interval. Blue is better for the metric, red worse."""
    import plotly.graph_objects as go

    name, unit = name or analysis.figure.name, analysis.figure.unit
    labels = [f.label for f in analysis.factors]
    index = {f.column: i for i, f in enumerate(analysis.factors)}
    z: list[list[float | None]] = [[None] * len(labels) for _ in labels]
    text = [[""] * len(labels) for _ in labels]
    hover = [[""] * len(labels) for _ in labels]
    for row in analysis.interactions().to_dict("records"):
        a, b = (index[c] for c in str(row["term"]).split(":"))
        value, low, high = (number(row.get(c)) for c in ("effect", "low", "high"))
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
            reversescale=analysis.figure.higher_is_better is False,
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
    p = number(bar.get("p"))
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
