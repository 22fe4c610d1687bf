"""The status of a sweep's cells as a table: a row per cell with its grid values, its state, its progress
and the figures of its result file that the vocabulary shows in the status table ('status' metrics, in
their display units: box AP in AP points). ``ablation status``, ``ablation run``'s ending, the dashboard's
Status page and ``ablation.status()`` all show this one table."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablation import vocabulary
from ablation.grid.axes import Axis
from ablation.grid.cells import Cell
from ablation.run.cost import Cost
from ablation.run.eta import (
    CellProgress,
    SweepEta,
    Tracked,
    after_training_s,
    cell_progress,
    newest_log,
    parallelism,
    sweep_eta,
)
from ablation.run.result_file import CellResult
from ablation.vocabulary import CELL_STATES, MISSING

if TYPE_CHECKING:  # launching loads submitit and the job; plan's summary needs neither
    from ablation.run.launch import CellStatus

__all__ = [
    "LIST_AT_MOST",
    "breakdown",
    "cost_line",
    "duration",
    "eta_line",
    "figures",
    "grid_columns",
    "headers",
    "progress",
    "rows",
    "summary",
    "sweep_lines",
    "table",
]

LIST_AT_MOST = 100  # the terminal lists the cells of a grid up to this size; above, ``breakdown`` first


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
    return _progress_text(work_dir, cell_progress(work_dir))


def _progress_text(work_dir: Path, found: CellProgress | None) -> str:
    if found is not None:
        return found.text
    return MISSING if newest_log(work_dir) is None else "starting"


def table(
    states: Sequence[CellStatus], axes: Sequence[Axis] = ()
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The status table: its headers (cell, code, dcn, the grid's axes and seed, state, progress, s/it and
    time left of a running cell, then the figures) and rows."""
    extra, values = grid_columns([s.planned.cell for s in states], axes)
    head = ("cell", "code", "dcn", *extra, "state", "progress", "s/it", "left", *headers())
    return head, [(*row[:3], *more, *row[3:]) for row, more in zip(rows(states), values, strict=True)]


def rows(states: Sequence[CellStatus]) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    rest = after_training_s(states)  # what follows training, by the done cells
    for s in states:
        result = s.result if s.result is not None and s.state in ("done", "failed", "running") else None
        cell = s.planned.cell
        where: tuple[str, ...] = (MISSING, MISSING, MISSING)
        if s.state == "running" and s.submission:
            folder = Path(s.submission.work_dir)
            at = cell_progress(folder, rest)
            where = (_progress_text(folder, at), *_speed(at))
        found.append((s.name, str(cell.code), "on" if cell.dcn else "off", s.state, *where, *figures(result)))
    return found


def _speed(at: CellProgress | None) -> tuple[str, str]:
    """A running cell's seconds per iteration and time left ('-': not known yet)."""
    if at is None:
        return MISSING, MISSING
    per = MISSING if at.s_per_iter is None else f"{at.s_per_iter:.3g}"
    return per, MISSING if at.left_s is None else duration(at.left_s)


def duration(seconds: float) -> str:
    """'45s', '3m', '1h20m', '2d4h': a time left, to the unit that matters."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{round(s / 60)}m"
    if s < 86400:
        h, m = divmod(round(s / 60), 60)
        return f"{h}h{m:02d}m" if m else f"{h}h"
    d, h = divmod(round(s / 3600), 24)
    return f"{d}d{h}h" if h else f"{d}d"


def sweep_lines(states: Sequence[Tracked], array_parallelism: int | None) -> list[str]:
    """The lines under a sweep's summary: when it should finish (``eta_line``) and what it costs
    (``cost_line``), those that can be told. ``array_parallelism``: the sweep's, for cells on Slurm."""
    eta = sweep_eta(states, parallelism(states, array_parallelism))
    return [line for line in (eta_line(eta), cost_line(eta)) if line is not None]


def eta_line(eta: SweepEta) -> str | None:
    """'expected to finish in ~1h20m (at 14:05 CET), 2 running at once, 6 waiting', or that it cannot be
    told yet; None when no cell is running or pending (planned cells are named, not counted: they do not
    start by themselves)."""
    if not eta.running and not eta.pending:
        return None
    at_once = f" (up to {eta.at_once} at once)" if eta.at_once > eta.running else " at once"
    waiting = f", {eta.planned} not launched" if eta.planned else ""
    cells = f"{eta.running} running{at_once}, {eta.pending} waiting{waiting}"
    if eta.left_s is None or eta.finish is None:
        return f"finish not known yet (no cell has finished or logged its time left), {cells}"
    return f"expected to finish in ~{duration(eta.left_s)} (at {_clock(eta.finish)}), {cells}"


def _clock(moment: datetime.datetime) -> str:
    """A moment in local time: '14:05 CET', with its date when it is not today."""
    local = moment.astimezone()
    today = datetime.datetime.now(local.tzinfo).date()
    return local.strftime("%H:%M %Z" if local.date() == today else "%Y-%m-%d %H:%M %Z")


def cost_line(eta: SweepEta) -> str | None:
    """'compute so far: 12 attempts, 3.4 GPU-hours, 27.1 CPU-hours, 5.2 h wall; still to run: ~2.1
    GPU-hours (6 cells' worth at the done cells' mean)'; None when no cost is known or no job has started."""
    if eta.spent is None or not eta.spent.attempts:  # no job has started
        return None
    line = f"compute so far: {_count(eta.spent.attempts, 'attempt')}, {_hours(eta.spent)}"
    if eta.to_spend is not None and eta.cells_left > 0:
        cells = f"{eta.cells_left:.1f}".removesuffix(".0")
        gpu = eta.to_spend.gpu_hours
        left = f"{_h(gpu)} GPU-hours" if gpu is not None else f"{_h(eta.to_spend.cpu_hours)} CPU-hours"
        worth = "1 cell's" if cells == "1" else f"{cells} cells'"
        line += f"; still to run: ~{left} ({worth} worth at the done cells' mean)"
    return line


def _hours(cost: Cost) -> str:
    gpu = "" if cost.gpu_hours is None else f"{_h(cost.gpu_hours)} GPU-hours, "
    return f"{gpu}{_h(cost.cpu_hours)} CPU-hours, {_h(cost.wall_hours)} h wall"


def _h(hours: float) -> str:
    """Hours to a tenth, or to two figures below 0.1 (a small grid's minutes are not 0.0)."""
    return f"{hours:.1f}" if hours >= 0.1 or hours == 0 else f"{hours:.2g}"


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
