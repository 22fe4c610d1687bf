"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ablation.grid.axes import Axis
    from ablation.grid.cells import Cell

__all__ = ["grid_columns", "markdown_table", "text_table"]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns two spaces apart, a rule under the header, no trailing spaces."""
    cells = [[str(h) for h in headers]] + [[str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; '|' inside a value is escaped."""

    def line(values: Sequence[object]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(r) for r in rows)])


def grid_columns(
    cells: Sequence[Cell], axes: Sequence[Axis]
) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """The headers and, per cell, the values of the grid's extra axes ('-' where an axis does not vary the
    cell) and of its seed, for the axes and seeds that ``cells`` have (none: no columns)."""
    shown = [a for a in axes if any(c.varied_by(a) for c in cells)]
    seeded = any(c.seed is not None for c in cells)
    headers = (*(a.short for a in shown), *(("seed",) if seeded else ()))
    values = [
        (
            *("-" if not c.varied_by(a) else a.shown(c.value(a)) for a in shown),
            *((str(c.seed),) if seeded else ()),
        )
        for c in cells
    ]
    return headers, values
