"""Planning: the cells of a sweep, each with its name, id and rendered config file.

Configs go to ``<root>/<sweep>/configs/<cell name>.py``. Planning is idempotent: the same sweep file gives the
same files (left untouched) and the same ids, and planning a subset leaves the other cells' files alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ablation.errors import SweepFileError
from ablation.fsio import write_atomic
from ablation.grid.axes import plain
from ablation.grid.cells import EVERY_CELL, Cell, Selection, select
from ablation.grid.identity import CellIdentity, backbone_label
from ablation.grid.render import RenderedConfig, render, resolve_base
from ablation.grid.sweep import Sweep

__all__ = ["Plan", "PlannedCell", "cell_identity", "plan", "sweep_dir"]


@dataclass(frozen=True)
class PlannedCell:
    config: RenderedConfig
    path: Path
    identity: CellIdentity

    @property
    def cell(self) -> Cell:
        return self.config.cell

    @property
    def name(self) -> str:
        """The config's (and job's) name: the cell's, with the seed of a replicate."""
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
        broken = sorted(
            {
                str(p.cell.code)
                for p in self.cells
                if p.cell.code.breaks_stock_mmcv and p.identity.attention_module == "mmcv"
            }
        )
        if broken:
            return (
                f"mmcv's stock GeneralizedAttention crashes on non-square feature maps for codes "
                f"{', '.join(broken)} (mmdetection issue #8179); set [model.attention] module = "
                f'"ablation" to run them',
            )
        return ()

    def write(self) -> None:
        """Write every cell's config where it goes (again only where it differs). Configs are made again
        whenever they differ, so no fsync each (see ``write_atomic``)."""
        for p in self.cells:
            write_atomic(p.path, p.config.text(self.sweep), durable=False)


def cell_identity(sweep: Sweep, cell: Cell, name: str) -> CellIdentity:
    """The identity a cell's job, result file and store row carry (``name``: the cell's, without a seed)."""
    sweep = sweep.for_cell(cell)
    attention = sweep.model.attention
    module = None if cell.code.is_baseline else attention.module
    return CellIdentity(
        sweep=sweep.name,
        cell=name,
        seed=cell.seed,
        axes={axis: plain(value) for axis, value in cell.axes},
        code=str(cell.code),
        dcn=cell.dcn,
        backbone=backbone_label(sweep.model.backbone),
        schedule=sweep.schedule.name,
        dataset=sweep.dataset.name,
        attention_module=module,
        # which implementation of ablation's own module computes the cell (None: not ablation's module)
        attention_impl=attention.implementation if module == "ablation" else None,
    )


def sweep_dir(root: Path, sweep: Sweep) -> Path:
    """The folder that holds everything of one sweep."""
    return root / sweep.name


def plan(sweep: Sweep, root: Path, selection: Selection = EVERY_CELL, write: bool = True) -> Plan:
    """Render and write the configs of the sweep's cells (those of ``selection``); ``write=False`` only
    tells where they go."""
    cells = select(sweep.cells, selection, sweep.axes)
    bases = {sweep.model.base_config: resolve_base(sweep)}
    directory = sweep_dir(root, sweep)
    planned = []
    rendered: dict[tuple[object, ...], tuple[RenderedConfig, CellIdentity]] = {}  # a cell's replicates share
    for cell in cells:
        done = rendered.get((cell.code, cell.dcn, cell.axes))
        if done is None:
            cell_sweep = sweep.for_cell(cell)
            given = cell_sweep.model.base_config  # an axis may change it: each base is resolved once
            if given not in bases:
                bases[given] = resolve_base(cell_sweep)
            config = render(sweep, cell, bases[given])
            identity = cell_identity(sweep, cell, config.cell_name)
            rendered[(cell.code, cell.dcn, cell.axes)] = config, identity
        else:
            config = done[0].replicate(cell)
            identity = dataclasses.replace(done[1], seed=cell.seed, axes=dict(done[1].axes))
        planned.append(PlannedCell(config, directory / "configs" / f"{config.name}.py", identity))
    _check_names(sweep, planned)  # every cell rendered and checked before the first file is written
    result = Plan(sweep=sweep, directory=directory, cells=tuple(planned))
    if write:
        result.write()
    return result


# The longest config (and job, and run folder) name: a file name holds 255 bytes, and a name is written
# with suffixes (``.py``, a temporary ``.<name>.py.<8 hex>.tmp``, a replicate's ``_seed<N>``).
MAX_NAME_BYTES = 200


def _check_names(sweep: Sweep, planned: list[PlannedCell]) -> None:
    """One name per id and one id per name: two cells under different names that train and measure the
    same (an axis of a setting that only names cells) would be counted as two; names that fit a file name."""
    names: dict[str, str] = {}
    ids: dict[str, str] = {}
    for p in planned:
        size = len(p.name.encode())
        if size > MAX_NAME_BYTES:
            raise SweepFileError(
                f"{sweep.path}: cell name {p.name[:60]}... is {size} bytes long, and names files: at most "
                f"{MAX_NAME_BYTES}; shorten [model] detector, backbone or neck, [schedule] name, [dataset] "
                "name or the axis values"
            )
        other = names.setdefault(p.cell_id, p.config.cell_name)
        if other != p.config.cell_name:
            raise SweepFileError(
                f"{sweep.path}: cells {other} and {p.config.cell_name} would get one id ({p.cell_id}): their "
                "configs and runs are the same; drop the axis that only renames them"
            )
        known = ids.setdefault(p.name, p.cell_id)
        if known != p.cell_id:
            raise SweepFileError(
                f"{sweep.path}: two cells named {p.name} with ids {known} and {p.cell_id}; make the axis "
                "values differ in letters or digits"
            )
