"""Cells of the study's grid: one attention code crossed with DCN off or on, with the values of the sweep's
extra axes that vary it (``axes``) and, with ``[grid] seeds``, one replicate per seed.

A cell holds only its position on the grid's axes. With no extra axis and no seeds, a cell is a code and a
DCN setting, and its name and id are those it had before axes existed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ablation.errors import InputError
from ablation.grid.axes import Axis, named, parse_value
from ablation.model.codes import AttentionCode

__all__ = ["EVERY_CELL", "Cell", "Selection", "expand", "select"]


@dataclass(frozen=True)
class Cell:
    code: AttentionCode
    dcn: bool
    axes: tuple[tuple[str, Any], ...] = ()  # (dotted setting, value) of each extra axis that varies the cell
    seed: int | None = None  # the replicate; None: one unseeded run

    def backbone_tag(self, dcn_stages: Sequence[bool]) -> str:
        """What the cell adds to the backbone part of its name, following mmdetection's config names.

        '-attn0010', '-attn0010-dcn'; the baselines keep mmdet's own names: '' and '-dconv-c3-c5'.
        """
        if self.code.is_baseline:
            return f"-dconv-{_stage_range(dcn_stages)}" if self.dcn else ""
        return f"-attn{self.code}" + ("-dcn" if self.dcn else "")

    @property
    def attention(self) -> bool:
        """Whether the cell has the attention plugin (the ``varies`` rule of its settings' axes)."""
        return not self.code.is_baseline

    def varied_by(self, axis: Axis) -> bool:
        """Whether ``axis`` varies this cell: every axis does, but those of a table that applies only to
        some cells (``Axis.varies`` names the predicate: ``attention``, ``dcn``)."""
        return axis.varies is None or bool(getattr(self, axis.varies))

    def value(self, axis: Axis) -> Any:
        """The cell's value on ``axis`` (None where the axis does not vary it)."""
        return dict(self.axes).get(axis.name)


def _stage_range(stages: Sequence[bool]) -> str:
    """'c3-c5' for ResNet stages (F, T, T, T); stages are c2..c5."""
    names = [f"c{i + 2}" for i, on in enumerate(stages) if on]
    return f"{names[0]}-{names[-1]}" if len(names) > 1 else names[0]


def expand(
    codes: Iterable[AttentionCode],
    dcn: Iterable[bool],
    axes: Sequence[Axis] = (),
    seeds: Sequence[int] | None = None,
) -> tuple[Cell, ...]:
    """The product of the axes, in order: by code, DCN off before on, each extra axis' values as listed
    (only the axes that vary the cell), then the seeds as listed."""
    cells: list[Cell] = []
    for code, d in itertools.product(sorted(codes), sorted(dcn)):
        varying = [a for a in axes if Cell(code, d).varied_by(a)]
        for values in itertools.product(*(a.values for a in varying)):
            position = tuple((a.name, v) for a, v in zip(varying, values, strict=True))
            cells.extend(Cell(code, d, position, seed) for seed in (seeds if seeds else (None,)))
    return tuple(cells)


@dataclass(frozen=True)
class Selection:
    """Which cells a command takes: codes (None: all), DCN (None: both), axis values (``where``: axis name or
    the end of it -> the text of a value, as ``--where kv_stride=2`` gives it) and seeds (None: all)."""

    codes: tuple[AttentionCode, ...] | None = None
    dcn: bool | None = None
    where: tuple[tuple[str, str], ...] = ()
    seeds: tuple[int, ...] | None = None


EVERY_CELL = Selection()


def select(cells: Sequence[Cell], selection: Selection, axes: Sequence[Axis] = ()) -> tuple[Cell, ...]:
    """The cells of ``selection``. A cell that an axis of ``where`` does not vary (the 0000 cells, for an
    attention setting) is kept: it belongs to every value of that axis. Asking for a code, an axis, a value or
    a seed that the grid does not hold is an ``InputError`` that lists what it holds."""
    grid_codes = sorted({c.code for c in cells})
    wanted = set(selection.codes) if selection.codes is not None else None
    if wanted is not None:
        missing = sorted(wanted - set(grid_codes))
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise InputError(
                f"code{plural} {', '.join(map(str, missing))} not in this sweep's grid; "
                f"its codes: {', '.join(map(str, grid_codes))}"
            )
    conditions = [_condition(axes, name, text) for name, text in selection.where]
    seeds = _seeds(cells, selection.seeds)
    picked = tuple(
        c
        for c in cells
        if (wanted is None or c.code in wanted)
        and (selection.dcn is None or c.dcn == selection.dcn)
        and all(not c.varied_by(axis) or c.value(axis) == value for axis, value in conditions)
        and (seeds is None or c.seed in seeds)
    )
    if not picked:
        if selection.dcn is not None and not any(c.dcn == selection.dcn for c in cells):
            raise InputError(f"no cell with dcn={'on' if selection.dcn else 'off'} in this sweep's grid")
        raise InputError("no cell of this sweep's grid is selected by these options")
    return picked


def _condition(axes: Sequence[Axis], name: str, text: str) -> tuple[Axis, Any]:
    matching = named([a.name for a in axes], name)
    if len(matching) != 1:
        held = ", ".join(a.name for a in axes) or "none ([grid.axes] is empty)"
        which = "names several axes" if matching else "is not an axis of this sweep's grid"
        raise InputError(f"where {name}={text}: {name!r} {which}; its axes: {held}", argument="where")
    axis = next(a for a in axes if a.name == matching[0])
    value = parse_value(axis, text)
    if value in axis.values:
        return axis, value
    by_label = [v for v in axis.values if axis.shown(v) == text]  # as the tables show it: c4-c5, on
    if by_label:
        return axis, by_label[0]
    shown = ", ".join(axis.shown(v) for v in axis.values)
    raise InputError(
        f"where {name}={text}: not a value of {axis.name}; its values: {shown}", argument="where"
    )


def _seeds(cells: Sequence[Cell], seeds: tuple[int, ...] | None) -> set[int | None] | None:
    if seeds is None:
        return None
    held = sorted({c.seed for c in cells if c.seed is not None})
    if not held:
        raise InputError(
            "seeds: this sweep's grid has no seeds (set [grid] seeds = [0, 1, 2])", argument="seeds"
        )
    missing = sorted(set(seeds) - set(held))
    if missing:
        raise InputError(
            f"seeds: seed {', '.join(map(str, missing))} not in this sweep's grid; its seeds: "
            f"{', '.join(map(str, held))}",
            argument="seeds",
        )
    return set(seeds)
