"""The status of a sweep's cells as a table: a row per cell with its grid values, its state, its progress
and the figures of its result file that the vocabulary shows in the status table ('status' metrics, in
their display units: box AP in AP points). ``ablation status``, ``ablation run``'s ending, the dashboard's
Status page and ``ablation.status()`` all show this one table."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablation import vocabulary
from ablation.grid.axes import Axis
from ablation.grid.cells import Cell
from ablation.run.result_file import CellResult
from ablation.vocabulary import CELL_STATES, MISSING

if TYPE_CHECKING:  # launching loads submitit and the job; plan's summary needs neither
    from ablation.run.launch import CellStatus

__all__ = [
    "LIST_AT_MOST",
    "breakdown",
    "figures",
    "grid_columns",
    "headers",
    "progress",
    "rows",
    "summary",
    "table",
]

LIST_AT_MOST = 100  # the terminal lists the cells of a grid up to this size; above, ``breakdown`` first
_TRAIN_LINE = re.compile(rb"Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]")
_TAIL_BYTES = 65536


def headers() -> tuple[str, ...]:
    """The figures' headers: the name of each 'status' metric of the vocabulary."""
    return tuple(m.name for m in vocabulary.metrics("status"))


def figures(result: CellResult | None) -> tuple[str, ...]:
    """A result's 'status' figures in their display units and precision; memory with its kind's label, so
    that a CUDA peak and a CPU RSS never read as the same figure; MISSING where there is none."""
    return tuple(_figure(result, m) for m in vocabulary.metrics("status"))


def _figure(result: CellResult | None, metric: vocabulary.Metric) -> str:
    value = None if result is None else _stored(result, metric.column)
    if value is None:
        return MISSING
    shown = metric.format(metric.display(value))
    if metric.column == "memory_gb" and result is not None:
        return f"{shown} {vocabulary.memory_label(result.memory_kind)}"
    return shown


def _stored(result: CellResult, column: str) -> float | None:
    """A result file's figure in the store's unit (its memory is in MB there, GB in the store)."""
    if column in result.metrics:
        return result.metrics[column]
    if column == "memory_gb":
        return None if result.memory_mb is None or result.memory_kind is None else result.memory_mb / 1024
    value: Any = getattr(result, column, None)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def progress(work_dir: Path) -> str:
    """'epoch 2 iter 5/8' from the last training line of the newest mmengine log, or '-'."""
    logs = sorted(work_dir.glob("*/*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return MISSING
    with logs[-1].open("rb") as log:
        log.seek(max(0, logs[-1].stat().st_size - _TAIL_BYTES))
        found = _TRAIN_LINE.findall(log.read())
    if not found:
        return "starting"
    epoch, done, total = (int(x) for x in found[-1])
    return f"epoch {epoch} iter {done}/{total}"


def table(
    states: Sequence[CellStatus], axes: Sequence[Axis] = ()
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The status table: its headers (cell, code, dcn, the grid's axes and seed, state, progress, then the
    figures) and rows."""
    extra, values = grid_columns([s.planned.cell for s in states], axes)
    head = ("cell", "code", "dcn", *extra, "state", "progress", *headers())
    return head, [(*row[:3], *more, *row[3:]) for row, more in zip(rows(states), values, strict=True)]


def rows(states: Sequence[CellStatus]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for s in states:
        result = s.result if s.result is not None and s.state in ("done", "failed", "running") else None
        cell = s.planned.cell
        where = progress(Path(s.submission.work_dir)) if s.state == "running" and s.submission else MISSING
        found.append((s.name, str(cell.code), "on" if cell.dcn else "off", s.state, where, *figures(result)))
    return found


def summary(states: Sequence[CellStatus]) -> str:
    """'32 cells: 30 done, 2 failed', states in their natural order; with seeds, '96 runs of 32 cells: ...'
    (a cell's replicates are its runs)."""
    counts = Counter(s.state for s in states)
    parts = ", ".join(f"{counts[state]} {state}" for state in CELL_STATES if counts[state])
    if not states:
        return "no cells"
    cells = _count(len({s.planned.config.cell_name for s in states}), "cell")
    if any(s.planned.cell.seed is not None for s in states):
        return f"{_count(len(states), 'run')} of {cells}: {parts}"
    return f"{cells}: {parts}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def grid_columns(
    cells: Sequence[Cell], axes: Sequence[Axis]
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The headers and, per cell, the values of the grid's extra axes ('-' where an axis does not vary the
    cell) and of its seed, for the axes and seeds that ``cells`` have (none: no columns)."""
    shown = [a for a in axes if any(c.varied_by(a) for c in cells)]
    seeded = any(c.seed is not None for c in cells)
    head = (*(a.short for a in shown), *(("seed",) if seeded else ()))
    values = [
        (
            *("-" if not c.varied_by(a) else a.shown(c.value(a)) for a in shown),
            *((str(c.seed),) if seeded else ()),
        )
        for c in cells
    ]
    return head, values


def breakdown(
    cells: Sequence[Cell], axes: Sequence[Axis], states: Sequence[str] | None = None
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """A grid too big to list cell by cell, summed up: how many of ``cells`` (runs, with seeds) have each
    code, DCN setting, value of each axis ('-': cells the axis does not vary) and seed, and with ``states``
    (each cell's), how many of those are in each state (the states present, in their natural order)."""
    extra, values = grid_columns(cells, axes)
    counts: dict[str, dict[str, Counter[str]]] = {by: {} for by in ("code", "dcn", *extra)}
    for i, (cell, more) in enumerate(zip(cells, values, strict=True)):
        keys = (
            ("code", str(cell.code)),
            ("dcn", "on" if cell.dcn else "off"),
            *zip(extra, more, strict=True),
        )
        for by, value in keys:
            counted = counts[by].setdefault(value, Counter())
            counted[""] += 1
            if states is not None:
                counted[states[i]] += 1
    present = [state for state in CELL_STATES if states is not None and state in states]
    noun = "runs" if any(c.seed is not None for c in cells) else "cells"
    rows = [
        (by, value, str(n[""]), *(str(n[state]) for state in present))
        for by, found in counts.items()
        for value, n in found.items()
    ]
    return ("by", "value", noun, *present), rows
