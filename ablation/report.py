"""Cells' states and figures as the rows of the tables the CLI prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .launch import STATES, CellStatus
from .results import CellResult

__all__ = ["HEADER", "memory", "rows", "summary"]

HEADER = ("cell", "code", "dcn", "state", "AP", "AP50", "fps", "memory", "GFLOPs", "params")
_MEMORY_KIND = {"cuda_peak_allocated": "CUDA peak", "cpu_peak_rss": "CPU RSS"}


def _figure(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def memory(result: CellResult) -> str:
    """Memory in GB with its kind, so that a CUDA peak and a CPU RSS never read as the same figure."""
    if result.memory_mb is None or result.memory_kind is None:
        return "-"
    return f"{result.memory_mb / 1024:.2f} GB {_MEMORY_KIND[result.memory_kind]}"


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
        table.append((s.name, str(cell.code), "on" if cell.dcn else "off", s.state, *figures))
    return table


def summary(states: Sequence[CellStatus]) -> str:
    """'32 cells: 30 done, 2 failed', states in their natural order."""
    counts = Counter(s.state for s in states)
    parts = ", ".join(f"{counts[state]} {state}" for state in STATES if counts[state])
    return f"{len(states)} cell{'s' if len(states) != 1 else ''}: {parts}" if states else "no cells"
