"""The trade-off charts, the AP grid and a run's curves as Plotly figures, built from store frames (see
``numbers``), with no Streamlit in them; the factor effects' figures are ``effect_charts``.

Conventions: box AP in AP points on the y axis, every other figure in its display unit (the vocabulary's,
``ablation.vocabulary``: its axis title, scale and precision); DCN off blue, on red; own runs are circles,
imported logs diamonds and the published model-zoo numbers large open stars, so a reference point is never
mistaken for one of ours; the hover decodes the attention code into its factors. Each point carries its
run's key (sweep, cell, run_id, source) as ``customdata``, so a selection in the dashboard leads to the run.
A point that is a cell's replicates at their mean (``numbers.replicate_means``) has error bars of its 95%
confidence interval and says in its hover how many runs it is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ablation import vocabulary
from ablation.analysis.numbers import HALF_SUFFIX, describe_code
from ablation.model.codes import AttentionCode

if TYPE_CHECKING:
    import plotly.graph_objects as go
    from pandas import DataFrame

__all__ = [
    "KEY_COLUMNS",
    "ap_heatmap",
    "curves_figure",
    "number",
    "tradeoff_figure",
]

KEY_COLUMNS = ("sweep", "cell", "run_id", "source")
DCN_COLOURS = {False: "#1f77b4", True: "#d62728"}
SOURCE_MARKERS = {
    "run": ("circle", "own runs", 9),
    "log": ("diamond", "imported logs", 10),
    "reference": ("star-open", "model zoo (published)", 16),
}
_LABELLED_POINTS = 64  # code labels beside the points up to this many


def tradeoff_figure(
    points: DataFrame,
    x: str,
    front: DataFrame | None = None,
    memory_kind: str | None = None,
    webgl: bool = True,
) -> go.Figure:
    """Box AP against ``x`` (a 'tradeoff' metric of the vocabulary, by name or column), one point per row of
    ``points``, with the Pareto ``front`` (rows of the same frame) drawn as a line. Rows with no AP or no
    ``x`` are not drawn. The points are WebGL traces (Scattergl), or SVG ones (Scatter) with ``webgl``
    False, as the report draws them.

    Up to 64 points, each is labelled with its code; beyond, only the front's points are (a label per point
    would cover the chart) and the others say what they are on hover.

    Where ``points`` has half-widths of confidence intervals (the ``bbox_mAP_ci`` and ``<x>_ci`` columns of
    ``numbers.replicate_means``), a trace with one draws them as error bars (``error_y`` for AP, ``error_x``
    for ``x``), none where a point has no interval (one run); without them the chart has no error bars.
    """
    import plotly.graph_objects as go

    across, box = vocabulary.metric(x), vocabulary.metric("bbox_mAP")
    x = across.column
    title = across.axis_title
    if memory_kind:
        title = f"{title[:-1]}, {vocabulary.memory_label(memory_kind)})" if title.endswith(")") else title
    figure = go.Figure()
    drawn = points.dropna(subset=[x, "bbox_mAP"])
    label = len(drawn) <= _LABELLED_POINTS
    hovers = np.array(_hovers(drawn, x), dtype=object)
    sources = drawn["source"].to_numpy(dtype=object, na_value=None)
    dcns = drawn["dcn"].fillna(False).to_numpy(dtype=bool)
    for source, (symbol, name, size) in SOURCE_MARKERS.items():
        for dcn, colour in DCN_COLOURS.items():
            mask = (sources == source) & (dcns == dcn)
            if not mask.any():
                continue
            group = drawn[mask]
            figure.add_trace(
                (go.Scattergl if webgl else go.Scatter)(
                    x=(group[x].astype(float) * across.scale).tolist(),
                    y=(group["bbox_mAP"].astype(float) * box.scale).tolist(),
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
                    hovertext=hovers[mask].tolist(),
                    hoverinfo="text",
                    **_error_bars(group, x, colour),
                )
            )
    if front is not None and not front.empty:
        line = front.dropna(subset=[x, "bbox_mAP"]).sort_values(x)
        figure.add_trace(
            go.Scatter(
                x=(line[x].astype(float) * across.scale).tolist(),
                y=(line["bbox_mAP"].astype(float) * box.scale).tolist(),
                mode="lines" if label else "lines+text",
                text=None if label else [c if isinstance(c, str) else "" for c in line["code"]],
                textposition="top left",
                name="Pareto frontier",
                line={"dash": "dash", "color": "#555", "shape": "hv" if across.higher_is_better else "vh"},
                hoverinfo="skip",
            )
        )
    figure.update_layout(
        xaxis_title=title,
        yaxis_title=box.axis_title,
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 30, "l": 10, "r": 10},
        height=520,
    )
    return figure


def _error_bars(group: DataFrame, x: str, colour: str) -> dict[str, Any]:
    """The ``error_y`` (AP) and ``error_x`` (``x``) of a trace, from the group's half-width columns where
    one holds a value; a point without one gets no bar."""
    bars: dict[str, Any] = {}
    for key, column in (("error_y", "bbox_mAP"), ("error_x", x)):
        scale = vocabulary.metric(column).scale
        halves = [number(v) for v in group.get(column + HALF_SUFFIX, [])]
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


def _hovers(frame: DataFrame, x: str) -> list[str]:
    """Each row's hover text (:func:`_hover`), from the columns a hover shows only."""
    figures = (vocabulary.metric("bbox_mAP"), *vocabulary.metrics("tradeoff"))
    wanted = [
        *_HOVER_COLUMNS,
        *(c for f in figures for c in (f.column, f.column + HALF_SUFFIX)),
    ]
    shown = frame[[c for c in dict.fromkeys(wanted) if c in frame.columns]]
    return [_hover(row, x) for row in shown.to_dict("records")]


_HOVER_COLUMNS = (
    "code",
    "dcn",
    "n",
    "seeds",
    "sweep",
    "cell",
    "source",
    "attention_module",
    "attention_impl",
)


def _hover(row: dict[str, Any], x: str) -> str:
    code = describe_code(_text(row.get("code")), _flag(row.get("dcn")))
    n = number(row.get("n"))
    parts = [
        f"<b>{code}</b>",
        f"{row.get('sweep')} / {row.get('cell')} ({row.get('source')})",
        f"box AP {_shown(row, vocabulary.metric('bbox_mAP'))}",
    ]
    if n is not None and n > 1:
        seeds = _text(row.get("seeds"))
        parts.append(f"mean of n = {n:.0f} runs" + (f" (seeds {seeds})" if seeds else "") + ", ± 95% CI")
    module, implementation = _text(row.get("attention_module")), _text(row.get("attention_impl"))
    if module:
        parts.append(f"attention: {module}" + (f" ({implementation})" if implementation else ""))
    for figure in vocabulary.metrics("tradeoff"):
        if number(row.get(figure.column)) is not None:
            parts.append(f"{_shown(row, figure)} {figure.unit}")
    return "<br>".join(parts)


def _shown(row: dict[str, Any], figure: vocabulary.Metric) -> str:
    """A row's figure in its display unit and precision, with ' ± 0.4' from the row's half-width where it has
    one; '-' without a value."""
    value = number(row.get(figure.column))
    if value is None:
        return vocabulary.MISSING
    half = number(row.get(figure.column + HALF_SUFFIX))
    return figure.format_spread(figure.display(value), None if half is None else figure.display(half))


def number(value: Any) -> float | None:
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


def ap_heatmap(grid: DataFrame) -> go.Figure:
    """Box AP (AP points) of the 16 codes x DCN; a missing cell stays empty, labelled 'missing', never 0."""
    import plotly.graph_objects as go

    z = [[number(v) for v in row] for row in grid.to_numpy().tolist()]
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
            y=(val["bbox_mAP"].astype(float) * vocabulary.metric("bbox_mAP").scale).tolist(),
            name="box AP",
            mode="lines+markers",
        ),
        row=1,
        col=2,
    )
    figure.update_xaxes(title_text="iteration", row=1, col=1)
    figure.update_xaxes(title_text="epoch", row=1, col=2)
    figure.update_yaxes(title_text=vocabulary.metric("bbox_mAP").axis_title, row=1, col=2)
    figure.update_layout(height=360, margin={"t": 40})
    return figure
