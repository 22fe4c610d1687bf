"""The compute a table's runs cost (``TableOptions.cost``, ``ablation export --cost``): a column per 'cost'
figure of the vocabulary (attempts, GPU-hours, CPU-hours, wall hours; each over every attempt of a run's
jobs), holding a row's SUM over its shown runs (its replicates, not their mean: what the cell cost), and per
sweep a total over every run of it in the selection, failed and superseded ones included (their compute
was spent too). A run ablation did not launch (an imported log, the model zoo, a plain mmengine work_dir)
has no cost: a row of such runs shows ``-``, and a sum is over the runs that have the figure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ablation import vocabulary
from ablation.results.replicates import ReplicateGroup
from ablation.results.select import column
from ablation.vocabulary import MISSING, Metric

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = [
    "COST_NOTE",
    "SweepTotal",
    "cost_cell",
    "cost_notes",
    "shown_sum",
    "sweep_totals",
    "totals_note",
]

SweepTotal = tuple[str, int, dict[str, float | None]]  # a sweep, its runs, and its total per cost column
COST_NOTE = (
    f"{', '.join(m.header for m in vocabulary.metrics('cost'))}: the compute of a row's runs over every "
    "attempt of their jobs (requeues, time-outs and node failures included), summed over the row's runs; "
    f"{MISSING} where no run of the row has it (not launched by ablation, or no GPU)."
)


def shown_sum(metric: Metric, total: float | None) -> tuple[str, object, float | None]:
    """A sum as the table shows it: the figure's precision, a whole number without decimals."""
    if total is None:
        return MISSING, None, None
    value = metric.display(total)
    digits = metric.digits(value)
    rounded = round(value) if digits == 0 else round(value, digits)
    return metric.format(value, digits=digits), rounded, None


def _sum(values: list[float]) -> float | None:
    return math.fsum(values) if values else None


def cost_cell(group: ReplicateGroup, metric: Metric) -> tuple[str, object, float | None]:
    """A row's cell of a 'cost' figure: the sum over its runs that have it."""
    return shown_sum(metric, _sum(group.values(metric.column)))


def sweep_totals(frame: DataFrame) -> tuple[SweepTotal, ...]:
    """Per sweep of ``frame`` (every run, any status), in name order: its run count and each 'cost'
    figure's total over its runs that have it (None: none has)."""
    sweeps = [str(s) for s in column(frame, "sweep")]
    figures = {m.column: column(frame, m.column) for m in vocabulary.metrics("cost")}
    totals = []
    for sweep in sorted(set(sweeps)):
        rows = [i for i, s in enumerate(sweeps) if s == sweep]
        sums = {}
        for name, values in figures.items():
            held = [values[i] for i in rows]
            sums[name] = _sum(
                [float(v) for v in held if isinstance(v, int | float) and not isinstance(v, bool)]
            )
        totals.append((sweep, len(rows), sums))
    return tuple(totals)


def totals_note(totals: tuple[SweepTotal, ...]) -> str:
    """A line per sweep: 'Sweep study, all its 6 runs: 8 attempts, 1.2 GPU-h, ...'."""
    lines = []
    for sweep, runs, sums in totals:
        said = [(m, shown_sum(m, sums[m.column])[0]) for m in vocabulary.metrics("cost")]
        shown = [f"no {m.name}" if text == MISSING else f"{text} {m.unit}" for m, text in said]
        counted = f"its {runs} runs" if runs != 1 else "its one run"
        lines.append(
            f"Cost of sweep {sweep} (all {counted}, failed and superseded included): {', '.join(shown)}."
        )
    return " ".join(lines)


def cost_notes(frame: DataFrame, headers: tuple[str, ...]) -> tuple[str, tuple[tuple[object, ...], ...]]:
    """The cost note of a table of ``frame``'s runs with these ``headers`` (what the cost columns hold, and
    each sweep's total) and its totals as rows of the table's values, a row per sweep (CSV's last rows: the
    sweep named in the first column, its totals in the cost columns, the rest empty)."""
    totals = sweep_totals(frame)
    rows = []
    for sweep, _, sums in totals:
        found = {m.header: shown_sum(m, sums[m.column])[1] for m in vocabulary.metrics("cost")}
        rows.append(
            tuple(f"total of sweep {sweep}" if i == 0 else found.get(h) for i, h in enumerate(headers))
        )
    return f"{COST_NOTE} {totals_note(totals)}", tuple(rows)
