"""Cells' states and figures as the rows of the tables the CLI prints."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ablation.cli.table import grid_columns
from ablation.grid.axes import Axis
from ablation.run.launch import STATES, CellStatus
from ablation.run.result_file import CellResult

__all__ = ["HEADER", "memory", "progress", "rows", "summary", "table"]

HEADER = ("cell", "code", "dcn", "state", "progress", "AP", "AP50", "fps", "memory", "GFLOPs", "params")
_TRAIN_LINE = re.compile(rb"Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]")
_TAIL_BYTES = 65536
_MEMORY_KIND = {"cuda_peak_allocated": "CUDA peak", "cpu_peak_rss": "CPU RSS"}


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def memory(result: CellResult) -> str:
    """Memory in GB with its kind, so that a CUDA peak and a CPU RSS never read as the same figure."""
    if result.memory_mb is None or result.memory_kind is None:
        return "-"
    return f"{result.memory_mb / 1024:.2f} GB {_MEMORY_KIND[result.memory_kind]}"


def progress(work_dir: Path) -> str:
    """'epoch 2 iter 5/8' from the last training line of the newest mmengine log, or '-'."""
    logs = sorted(work_dir.glob("*/*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return "-"
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
    """The status table: its headers (``HEADER`` with the grid's axes and seed after dcn) and rows."""
    extra, values = grid_columns([s.planned.cell for s in states], axes)
    headers = (*HEADER[:3], *extra, *HEADER[3:])
    return headers, [(*row[:3], *more, *row[3:]) for row, more in zip(rows(states), values, strict=True)]


def rows(states: Sequence[CellStatus]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = []
    for s in states:
        r = s.result if s.result is not None and s.state in ("done", "failed", "running") else None
        figures = (
            (
                _figure(r.ap, ".3f"),
                _figure(r.metrics.get("bbox_mAP_50"), ".3f"),
                _figure(r.fps, ".2f"),
                memory(r),
                _figure(None if r.flops is None else r.flops / 1e9, ".1f"),
                "-" if r.params is None else f"{r.params / 1e6:.1f}M",
            )
            if r is not None
            else ("-",) * 6
        )
        cell = s.planned.cell
        where = progress(Path(s.submission.work_dir)) if s.state == "running" and s.submission else "-"
        table.append((s.name, str(cell.code), "on" if cell.dcn else "off", s.state, where, *figures))
    return table


def summary(states: Sequence[CellStatus]) -> str:
    """'32 cells: 30 done, 2 failed', states in their natural order; with seeds, '96 runs of 32 cells: ...'
    (a cell's replicates are its runs)."""
    counts = Counter(s.state for s in states)
    parts = ", ".join(f"{counts[state]} {state}" for state in STATES if counts[state])
    if not states:
        return "no cells"
    cells = _count(len({s.planned.config.cell_name for s in states}), "cell")
    if any(s.planned.cell.seed is not None for s in states):
        return f"{_count(len(states), 'run')} of {cells}: {parts}"
    return f"{cells}: {parts}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
