"""Planning: the cells of a sweep, each with its name, id and rendered config file.

Configs go to ``<root>/<sweep>/configs/<cell name>.py``. Planning is idempotent: the same sweep file gives the
same files (left untouched) and the same ids, and planning a subset leaves the other cells' files alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .codes import AttentionCode
from .fsio import write_atomic
from .grid import Cell, select
from .render import RenderedConfig, render, resolve_base
from .sweep import Sweep

__all__ = ["Plan", "PlannedCell", "plan", "sweep_dir"]


@dataclass(frozen=True)
class PlannedCell:
    config: RenderedConfig
    path: Path

    @property
    def cell(self) -> Cell:
        return self.config.cell

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def cell_id(self) -> str:
        return self.config.cell_id


@dataclass(frozen=True)
class Plan:
    sweep: Sweep
    directory: Path
    cells: tuple[PlannedCell, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know before running these cells."""
        broken = sorted({str(p.cell.code) for p in self.cells if p.cell.code.breaks_stock_mmcv})
        if self.sweep.model.attention.module == "mmcv" and broken:
            return (
                f"mmcv's stock GeneralizedAttention crashes on non-square feature maps for codes "
                f"{', '.join(broken)} (mmdetection issue #8179); set [model.attention] module = "
                f'"ablation" to run them',
            )
        return ()


def sweep_dir(root: Path, sweep: Sweep) -> Path:
    """The folder that holds everything of one sweep."""
    return root / sweep.name


def plan(
    sweep: Sweep,
    root: Path,
    codes: Iterable[AttentionCode] | None = None,
    dcn: bool | None = None,
    write: bool = True,
) -> Plan:
    """Render and write the configs of the sweep's cells (those with ``codes`` and ``dcn`` when given);
    ``write=False`` only tells where they go."""
    cells = select(sweep.cells, codes, dcn)
    base, _ = resolve_base(sweep)
    directory = sweep_dir(root, sweep)
    planned = []
    for cell in cells:
        config = render(sweep, cell, base)
        path = directory / "configs" / f"{config.name}.py"
        if write:
            write_atomic(path, config.text(sweep))
        planned.append(PlannedCell(config, path))
    return Plan(sweep=sweep, directory=directory, cells=tuple(planned))
