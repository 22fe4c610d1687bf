"""Cells of the study's grid: one attention code crossed with DCN off or on.

A cell holds only its position on the grid's axes. New axes (a seed, kv_stride, ...) become new fields with
a default that keeps today's cells, and therefore today's names and ids, unchanged.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ablation.errors import InputError
from ablation.model.codes import AttentionCode

__all__ = ["Cell", "expand", "select"]


@dataclass(frozen=True, order=True)
class Cell:
    code: AttentionCode
    dcn: bool

    def backbone_tag(self, dcn_stages: Sequence[bool]) -> str:
        """What the cell adds to the backbone part of its name, following mmdetection's config names.

        '-attn0010', '-attn0010-dcn'; the baselines keep mmdet's own names: '' and '-dconv-c3-c5'.
        """
        if self.code.is_baseline:
            return f"-dconv-{_stage_range(dcn_stages)}" if self.dcn else ""
        return f"-attn{self.code}" + ("-dcn" if self.dcn else "")

    @property
    def axes(self) -> dict[str, str | bool]:
        """The cell's value on each axis, e.g. {'code': '0010', 'dcn': True}."""
        return {"code": str(self.code), "dcn": self.dcn}


def _stage_range(stages: Sequence[bool]) -> str:
    """'c3-c5' for ResNet stages (F, T, T, T); stages are c2..c5."""
    names = [f"c{i + 2}" for i, on in enumerate(stages) if on]
    return f"{names[0]}-{names[-1]}" if len(names) > 1 else names[0]


def expand(codes: Iterable[AttentionCode], dcn: Iterable[bool]) -> tuple[Cell, ...]:
    """The product of the axes, sorted: by code, then DCN off before on."""
    return tuple(sorted(Cell(code, d) for code, d in itertools.product(codes, dcn)))


def select(
    cells: Sequence[Cell], codes: Iterable[AttentionCode] | None = None, dcn: bool | None = None
) -> tuple[Cell, ...]:
    """The cells with one of ``codes`` (all when None) and the given DCN setting (both when None).

    Asking for a code that the grid does not hold is an error that lists the grid's codes.
    """
    grid_codes = sorted({c.code for c in cells})
    if codes is not None:
        wanted = set(codes)
        missing = sorted(wanted - set(grid_codes))
        if missing:
            plural = "s" if len(missing) > 1 else ""
            raise InputError(
                f"code{plural} {', '.join(map(str, missing))} not in this sweep's grid; "
                f"its codes: {', '.join(map(str, grid_codes))}"
            )
    picked = tuple(c for c in cells if (codes is None or c.code in wanted) and (dcn is None or c.dcn == dcn))
    if not picked:
        raise InputError(f"no cell with dcn={'on' if dcn else 'off'} in this sweep's grid")
    return picked
