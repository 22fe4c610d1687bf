"""Which runs of a store frame a table, a chart or an analysis takes: ``select`` narrows a frame to sweeps,
sources, axis values and seeds.

``where`` holds (axis, value text) pairs: an axis column by its dotted name or a dotted ending (the grid's
rule, :func:`ablation.grid.axes.named`) and a value's text as TOML reads it (a bare word: a string); rows
the axis does not vary (the attention settings of 0000) stay. An unseeded row stays whatever ``seeds`` are.
Errors name the argument (``where``, ``seeds``, ``sweeps``, ``sources``) and the values the frame holds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ablation.errors import InputError
from ablation.grid.axes import command_line_value, named
from ablation.results.latest import plain_values, seed_of
from ablation.results.records import SOURCES, is_axis_column

if TYPE_CHECKING:
    from pandas import DataFrame

__all__ = ["axis_text", "column", "same_axis_value", "select"]


def select(
    frame: DataFrame,
    sweeps: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    where: Sequence[tuple[str, str]] = (),
    seeds: Sequence[int] | None = None,
) -> DataFrame:
    """The frame's runs of these sweeps and sources (None: all), with these axis values (``where``: (axis,
    value text) pairs; a row the axis does not vary stays) and of these seeds (None: all; an unseeded row
    stays). An unknown source, a sweep the frame has no run of, an axis that names no axis column or
    several, a value no run has on it, or a seed no run has, raises InputError naming the valid ones."""
    if sources is not None:
        for source in sources:
            if source not in SOURCES:
                raise InputError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    present = sorted({str(v) for v in column(frame, "sweep") if v is not None})
    if sweeps is not None:
        for sweep in sweeps:
            if sweep not in present:
                have = ", ".join(present) if present else "none"
                raise InputError(f"unknown sweep {sweep!r}; sweeps in the store: {have}")
    keep = [
        (sweeps is None or sweep in sweeps) and (sources is None or source in sources)
        for sweep, source in zip(column(frame, "sweep"), column(frame, "source"), strict=True)
    ]
    for name, text in where:
        axis, wanted = _axis_condition(frame, name, text)
        found = column(frame, axis)
        keep = [k and (v is None or same_axis_value(v, wanted)) for k, v in zip(keep, found, strict=True)]
    if seeds is not None:
        held = sorted({seed for v in column(frame, "seed") if (seed := seed_of(v)) is not None})
        missing = sorted(set(seeds) - set(held))
        if missing:
            have = ", ".join(map(str, held)) if held else "none (no run is seeded)"
            raise InputError(
                f"seeds: seed {', '.join(map(str, missing))} not in the store; seeds in the store: {have}",
                argument="seeds",
            )
        found = column(frame, "seed")
        keep = [k and (v is None or seed_of(v) in seeds) for k, v in zip(keep, found, strict=True)]
    return frame[keep]


def column(frame: DataFrame, name: str) -> list[object]:
    """A column's values as plain Python, every kind of missing value None (all None without the column)."""
    return plain_values(frame, name)


def _axis_condition(frame: DataFrame, name: str, text: str) -> tuple[str, object]:
    """The axis column that ``name`` names and the value ``text`` names (a TOML value; a bare word: a
    string)."""
    axes = sorted(str(c) for c in frame.columns if is_axis_column(str(c)))
    matching = named(axes, name)
    if len(matching) != 1:
        held = ", ".join(axes) or "none (no run has an axis of [grid.axes])"
        which = "names several axis columns" if matching else "is not an axis column of the store"
        raise InputError(
            f"where {name}={text}: {name!r} {which}; axis columns in the store: {held}", argument="where"
        )
    (axis,) = matching
    value = command_line_value(text)
    found = [v for v in column(frame, axis) if v is not None]
    if not any(same_axis_value(v, value) for v in found):
        shown = ", ".join(sorted({axis_text(v) for v in found})) or "none"
        raise InputError(
            f"where {name}={text}: no run has this value of {axis}; its values: {shown}", argument="where"
        )
    return axis, value


def same_axis_value(stored: object, wanted: object) -> bool:
    """Whether a store's axis value is ``wanted`` (a parsed TOML value): lists by their JSON text, a bool
    only as a bool, and a value a mixed column holds as text by that text."""
    if isinstance(wanted, list | dict):
        return isinstance(stored, str) and _json_equal(stored, wanted)
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, str) and not isinstance(wanted, str):
        return stored == json.dumps(wanted)
    return stored == wanted


def _json_equal(text: str, value: object) -> bool:
    try:
        return bool(json.loads(text) == value)
    except ValueError:
        return False


def axis_text(value: object) -> str:
    """An axis value as TOML writes it: true/false, numbers, a list as its JSON text, a string bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
