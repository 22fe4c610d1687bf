"""The factor effects as text: ``ablation effects`` prints them in a terminal (markdown), as CSV or as LaTeX,
and the report's effects tables hold the same rows (:func:`effects_rows`), so the numbers agree wherever
they are read.

A section per analysis (a metric, memory once per memory kind, of one sweep and source): its title with the
metric's display unit, the method sentence, the main effects, the settings' effects (an axis nested within
the cells it is set on), the two-factor interactions and the settings' interactions (``SECTIONS``), each with
its 95% interval and whether it is resolved from noise, then where the error came from: Lenth's PSE, margin of
error (ME) and simultaneous margin (SME), or the ANOVA table (sums of squares in the display unit squared).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ablation import vocabulary
from ablation.analysis.effects import FactorialAnalysis
from ablation.analysis.figures import number
from ablation.analysis.runs import Analysis
from ablation.errors import InputError

__all__ = [
    "EFFECT_FORMATS",
    "EFFECT_HEADERS",
    "SECTIONS",
    "effects_rows",
    "method",
    "render_effects",
    "sections",
]

EFFECT_FORMATS = ("markdown", "csv", "latex")
EFFECT_HEADERS = ("factor", "effect", "95% interval", "resolved")
# The sections of an analysis's effects, in order: (order, kind, heading).
SECTIONS = (
    (1, "factor", "Main effects"),
    (1, "setting", "Settings' effects (a level against the first, within the cells the setting is set on)"),
    (2, "factor", "Two-factor interactions"),
    (2, "setting", "Settings' interactions (with the factors, and with each other)"),
)


def method(analysis: FactorialAnalysis) -> str:
    """The analysis's method sentence, with the factors it left out and the setting terms it could not
    separate."""
    words = [(analysis.description or analysis.method).rstrip(".") + "."]
    if analysis.aliased:
        pairs = "; ".join(f"{a} moves with {b}" for a, b in analysis.aliased.items())
        words.append(f"Left out as aliased: {pairs}.")
    if analysis.inseparable:
        words.append(
            f"Left out, not separable from the terms before them with these runs: "
            f"{', '.join(analysis.inseparable)}."
        )
    return " ".join(words)


def effects_rows(
    analysis: FactorialAnalysis, order: int = 1, kind: str | None = "factor"
) -> list[tuple[str, str, str, str]]:
    """The effects of ``order`` (and ``kind``: 'factor', 'setting', None for both) as text: (factor, effect,
    its 95% interval, resolved: yes/no/-) in the metric's display unit and precision, at least two
    decimals."""
    figure = analysis.figure

    def signed(value: Any) -> str:
        found = number(value)
        if found is None:
            return vocabulary.MISSING
        return figure.format(found, signed=True, digits=max(2, figure.digits(found)))

    found = []
    effects = analysis.effects
    chosen = effects[(effects["order"] == order) & ((effects["kind"] == kind) if kind else True)]
    for row in chosen.to_dict("records"):
        low, high = number(row["low"]), number(row["high"])
        interval = vocabulary.MISSING if low is None or high is None else f"{signed(low)} to {signed(high)}"
        resolved = row["resolved"]
        verdict = (
            vocabulary.MISSING if resolved is None or resolved is pd.NA else ("yes" if resolved else "no")
        )
        found.append((str(row["label"]), signed(row["effect"]), interval, verdict))
    return found


def sections(analysis: FactorialAnalysis) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    """The analysis's effects as text, section by section (SECTIONS), the empty ones left out."""
    found = [(words, effects_rows(analysis, order, kind)) for order, kind, words in SECTIONS]
    return [(words, rows) for words, rows in found if rows]


def error_lines(analysis: FactorialAnalysis) -> list[str]:
    """Where the error came from, in the display unit: Lenth's PSE, ME and SME, or nothing (the ANOVA is a
    table of its own)."""
    found = analysis.lenth
    if found is None:
        return []
    unit = analysis.figure.unit
    return [
        f"Lenth's method over m = {found.m} effects: PSE {found.pse:.3g} {unit}, margin of error ME "
        f"{found.me:.3g} {unit} (t with {found.df:.3g} df), simultaneous margin SME {found.sme:.3g} {unit}."
    ]


def render_effects(sections: Sequence[tuple[str, Analysis]], fmt: str) -> str:
    """The analyses (each with a heading: its sweep and source) in ``fmt`` (one of EFFECT_FORMATS)."""
    if fmt == "markdown":
        return "\n".join(_markdown(heading, a) for heading, a in sections)
    if fmt == "csv":
        return _csv(sections)
    if fmt == "latex":
        return "\n".join(_latex(heading, a) for heading, a in sections)
    raise InputError(f"format: {fmt!r} is unknown; formats: {', '.join(EFFECT_FORMATS)}", argument="format")


def _title(heading: str, analysis: Analysis) -> str:
    kind = f", {vocabulary.memory_label(analysis.memory_kind)}" if analysis.memory_kind else ""
    return f"{heading}: effects on {analysis.metric.name} ({analysis.metric.unit}{kind})"


def _markdown(heading: str, analysis: Analysis) -> str:
    result = analysis.result
    out = [f"## {_title(heading, analysis)}", "", method(result), ""]
    for words, rows in sections(result):
        out += [f"{words}:", "", _md_table(EFFECT_HEADERS, rows), ""]
    out += [line + "\n" for line in error_lines(result)]
    if result.anova is not None:
        out += ["ANOVA (type 2 sums of squares):", "", _md_table(*_anova(result)), ""]
    return "\n".join(out)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(r) for r in rows)])


def _anova(result: FactorialAnalysis) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The ANOVA table as text: term, sum_sq, df, F, PR(>F)."""
    table = result.anova if result.anova is not None else pd.DataFrame()
    headers = ("term", *(str(c) for c in table.columns))
    rows = [
        (str(term), *(_g(v) for v in values))
        for term, values in zip(table.index, table.itertuples(index=False), strict=True)
    ]
    return headers, rows


def _csv(sections: Sequence[tuple[str, Analysis]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        (
            "design",
            "metric",
            "unit",
            "order",
            "factor",
            "within",
            "effect",
            "low",
            "high",
            "resolved",
            "method",
        )
    )
    for heading, analysis in sections:
        result = analysis.result
        for row in result.effects.to_dict("records"):
            resolved = row["resolved"]
            writer.writerow(
                (
                    heading,
                    analysis.name,
                    analysis.metric.unit,
                    row["order"],
                    row["label"],
                    row["within"],
                    *(_g(row[k]) for k in ("effect", "low", "high")),
                    "" if resolved is None or resolved is pd.NA else ("yes" if resolved else "no"),
                    result.method,
                )
            )
    return buffer.getvalue()


def _latex(heading: str, analysis: Analysis) -> str:
    from ablation.results.export import latex_escape

    rows = [row for _, found in sections(analysis.result) for row in found]
    out = [r"\begin{table}", r"\centering", f"\\caption{{{latex_escape(_title(heading, analysis))}. "
           f"{latex_escape(method(analysis.result))}}}", r"\begin{tabular}{lrrl}", r"\toprule"]  # fmt: skip
    out.append(" & ".join(latex_escape(h) for h in EFFECT_HEADERS) + r" \\")
    out.append(r"\midrule")
    out += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def _g(value: Any) -> str:
    """A number to four significant digits (empty for none): what CSV and the ANOVA table show."""
    found = number(value)
    return "" if found is None else f"{found:.4g}"
