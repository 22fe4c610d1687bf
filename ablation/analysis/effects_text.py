"""The factor effects as text: ``ablation effects`` prints them in a terminal (markdown), as CSV or as LaTeX,
and the report's effects tables hold the same rows (:func:`effects_rows`), so the numbers agree wherever
they are read.

A section per analysis (a metric, memory once per memory kind, of one sweep and source): its title with the
metric's display unit, in markdown the verdict, the method sentence, the main effects, the settings' effects
(an axis nested within the cells it is set on), the two-factor interactions and the settings' interactions
(``SECTIONS``), each with its 95% interval and whether it is resolved from noise, then where the error came
from: Lenth's PSE, margin of error (ME) and simultaneous margin (SME), or the ANOVA table (sums of squares in
the display unit squared).

The verdict (:func:`verdict`): a few sentences a newcomer reads first, saying which effects the runs resolve
from noise, the margin the others are within, and about how many seeds per cell would resolve the largest of
those; the report, the dashboard's Factor effects page and ``ablation effects`` open with it.
"""

from __future__ import annotations

import csv
import io
import math
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
    "verdict",
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
        return _shown(figure, value, signed=True)

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


# The effects a verdict counts, in order: (order, kind, singular, plural); the first group the analysis has
# is its headline, named effect by effect, the others counted. Order 2 stands for every interaction.
_VERDICT_GROUPS = (
    (1, "factor", "main effect", "main effects"),
    (1, "setting", "setting's effect", "settings' effects"),
    (2, None, "interaction", "interactions"),
)
_NAMED = 3  # the resolved effects a verdict names of a group other than its headline, the largest first


def verdict(analysis: FactorialAnalysis, name: str | None = None) -> str:
    """A few sentences a newcomer reads first, on ``name`` (the metric's name unless told): how many of the
    factors' main effects (else the settings' effects) the runs resolve from noise at the analysis's level,
    each resolved one with its margin (its interval's half-width: a t interval's, or Lenth's ME), the margin
    the others are within and the largest of them; how many settings' effects and interactions are resolved;
    and, for the largest unresolved main effect, about how many seeds per cell would resolve it
    (:func:`seeds_needed`). Without intervals: why, and with one run per cell, that seeds would give them.
    Nothing estimated: the analysis's reason, or ''."""
    figure = analysis.figure
    name = f"{name or figure.name} ({figure.unit})"
    effects = analysis.effects.dropna(subset=["effect"])
    groups = []
    for order, kind, one, many in _VERDICT_GROUPS:
        rows = effects[(effects["order"] >= 2) if order == 2 else (effects["order"] == 1)]
        rows = rows[rows["kind"] == kind] if kind else rows
        if not rows.empty:
            largest_first = rows["effect"].abs().sort_values(ascending=False, kind="stable").index
            groups.append((one, many, rows.loc[largest_first]))
    if not groups:
        reason = analysis.reason.rstrip(".")
        return f"No effect on {name} could be estimated: {reason}." if reason else ""
    (one, many, rows), others = groups[0], groups[1:]
    counted = f"the one {one}" if len(rows) == 1 else f"the {len(rows)} {many}"
    if rows["resolved"].isna().all():
        reason = analysis.reason.rstrip(".") or analysis.method
        words = [
            f"On {name}, {counted} {'has' if len(rows) == 1 else 'have'} no interval, so no effect can be "
            f"told from noise: {reason}. The largest is {_named(figure, rows.iloc[0], margin=False)}."
        ]
        if analysis.runs_per_cell[1] <= 1:
            words.append(
                "With one run per cell, run every cell with two or more seeds ([grid] seeds) to measure the "
                "noise."
            )
        return " ".join(words)
    resolved = rows["resolved"].fillna(False).to_numpy(dtype=bool)
    found, rest = rows[resolved], rows[~resolved]
    level = f"{analysis.level:.0%}"
    if rest.empty:
        verb = "is" if len(rows) == 1 else "are"
        all_of = counted if len(rows) == 1 else f"{_all(len(rows)).lower()} {many}"
        words = [f"On {name}, {all_of} {verb} resolved from noise at {level}: {_listed(figure, found)}."]
    else:
        largest = _named(figure, rest.iloc[0], margin=False)
        if found.empty:
            words = [
                f"On {name}, none of {counted} is resolved from noise at {level}: every difference here is "
                f"within the noise of {_margins(figure, rest)} (the largest: {largest})."
            ]
        else:
            verb = "is" if len(found) == 1 else "are"
            other = (
                f"The other one, {largest}, is"
                if len(rest) == 1
                else f"The other {len(rest)} ({_names(rest)}; the largest: {largest}) are"
            )
            words = [
                f"On {name}, {len(found)} of {len(rows)} {many} {verb} resolved from noise at {level}: "
                f"{_listed(figure, found)}. {other} within the margin of {_margins(figure, rest)}."
            ]
    words += [_counted(figure, one, many, group, analysis.level) for one, many, group in others]
    if not rest.empty:
        words.append(_seeds_words(analysis, rest.iloc[0]))
    return " ".join(w for w in words if w)


def seeds_needed(now: int, margin: float, effect: float) -> int | None:
    """About how many runs per cell would resolve an effect of size ``effect`` that ``now`` runs per cell
    leave within ``margin`` (its interval's half-width): the half-width shrinks as 1/sqrt(runs per cell), so
    ceil(now * (margin / |effect|)^2), and at least one more than now; None for an effect of 0."""
    if effect == 0 or not math.isfinite(margin) or not math.isfinite(effect):
        return None
    return max(now + 1, math.ceil(now * (margin / abs(effect)) ** 2))


def _seeds_words(analysis: FactorialAnalysis, row: pd.Series) -> str:
    """'To resolve an effect of 0.40 (key content only) would take about 7 seeds per cell (now 2).'"""
    now = analysis.runs_per_cell[0]
    needed = seeds_needed(now, _half(row), float(row["effect"]))
    if needed is None:
        return ""
    size = _sized(analysis.figure, abs(float(row["effect"])))
    if not float(size):  # 0 as shown: a rounding error of an effect of 0, which no seeds resolve
        return ""
    return (
        f"To resolve an effect of {size} ({row['label']}) would take about {needed} seeds per cell "
        f"(now {now})."
    )


def _counted(figure: vocabulary.Metric, one: str, many: str, rows: pd.DataFrame, level: float) -> str:
    """A group other than the headline, counted: 'None of the 26 interactions is resolved.', '1 of the 2
    settings' effects is resolved: kv_stride 1→2 -0.60 (±0.20).', and how many would be by chance alone where
    that is one or more (each null effect's interval excludes 0 with probability 1 - level)."""
    resolved = rows["resolved"].fillna(False).to_numpy(dtype=bool)
    n, found = len(rows), rows[resolved]
    if n == 1:
        return (
            f"The one {one} is resolved: {_listed(figure, found)}."
            if len(found)
            else f"The one {one} is not resolved."
        )
    if found.empty:
        return f"None of the {n} {many} is resolved."
    shown = _listed(figure, found.iloc[:_NAMED], more=len(found) - _NAMED)
    chance = round(n * (1.0 - level))
    if chance:
        shown += f"; were none of them real, about {chance} would be resolved by chance alone"
    if len(found) == n:
        return f"{_all(n)} {many} are resolved: {shown}."
    return f"{len(found)} of the {n} {many} {'is' if len(found) == 1 else 'are'} resolved: {shown}."


def _listed(figure: vocabulary.Metric, rows: pd.DataFrame, more: int = 0) -> str:
    """'DCN +1.80 (±0.60) and key content only +0.90 (±0.60)', with 'and 2 more' for ``more``."""
    items = [_named(figure, row) for _, row in rows.iterrows()]
    if more > 0:
        items.append(f"{more} more")
    return _and(items)


def _named(figure: vocabulary.Metric, row: pd.Series, margin: bool = True) -> str:
    """An effect by its label, with its margin: 'key content only +0.90 (±0.60)'."""
    effect = f"{row['label']} {_sized(figure, row['effect'], signed=True)}"
    return f"{effect} ({vocabulary.PLUS_MINUS}{_sized(figure, _half(row))})" if margin else effect


def _names(rows: pd.DataFrame) -> str:
    return _and([str(label) for label in rows["label"]])


def _margins(figure: vocabulary.Metric, rows: pd.DataFrame) -> str:
    """The margin of the rows' effects with the unit, '±0.60 AP points', or their range where they differ."""
    halves = [h for h in (_half(row) for _, row in rows.iterrows()) if math.isfinite(h)]
    ends = (
        dict.fromkeys(_sized(figure, h) for h in (min(halves), max(halves)))
        if halves
        else [vocabulary.MISSING]
    )
    return " to ".join(f"{vocabulary.PLUS_MINUS}{end}" for end in ends) + f" {figure.unit}"


def _half(row: pd.Series) -> float:
    """An effect's margin: its interval's half-width (a t interval's, or Lenth's ME)."""
    return (float(row["high"]) - float(row["low"])) / 2.0


def _all(n: int) -> str:
    return "Both" if n == 2 else f"All {n}"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _shown(figure: vocabulary.Metric, value: Any, signed: bool = False) -> str:
    """An effect, an end of its interval or a margin in the figure's display unit and precision, at least two
    decimals; MISSING for none."""
    found = number(value)
    if found is None:
        return vocabulary.MISSING
    return figure.format(found, signed=signed, digits=max(2, figure.digits(found)))


def _sized(figure: vocabulary.Metric, value: Any, signed: bool = False) -> str:
    """A verdict's effect or margin: as the effects tables show it, with a significant digit where two more
    decimals give one (a margin of 0.004 reads ±0.004, not ±0.00; a rounding error of 1e-16, +0.0000)."""
    found = number(value)
    if not found:
        return _shown(figure, value, signed)
    shown = max(2, figure.digits(found))
    digits = min(max(shown, -math.floor(math.log10(abs(found)))), shown + 2)
    return figure.format(found, signed=signed, digits=digits)


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
    said = verdict(result, analysis.name)
    out = [f"## {_title(heading, analysis)}", "", *([said, ""] if said else []), method(result), ""]
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
