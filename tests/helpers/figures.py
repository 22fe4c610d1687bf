"""Reading an effects chart as a person does: its bars, their error bars and colours."""

from __future__ import annotations

from typing import Any


def bars(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """An effects figure's bars (its dict, as Plotly or the dashboard's chart gives it) by label: y, the
    ends of its error bar (None without one), colour, text, and the legend of its trace."""
    drawn: dict[str, dict[str, Any]] = {}
    for trace in figure["data"]:
        if trace["type"] != "bar":
            continue
        error = trace.get("error_y")
        for i, label in enumerate(trace["x"]):
            y = trace["y"][i]
            drawn[label] = {
                "y": y,
                "interval": None if error is None else (y - error["arrayminus"][i], y + error["array"][i]),
                "colour": trace["marker"]["color"],
                "text": trace["text"][i],
                "legend": trace["name"],
            }
    return drawn


def hue(colour: str) -> str:
    """'green', 'red', 'grey' or 'other': which a #rrggbb colour reads as."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    if max(r, g, b) - min(r, g, b) < 24:
        return "grey"
    if g > r + 40 and g > b + 40:
        return "green"
    if r > g + 40 and r > b + 40:
        return "red"
    return "other"
