"""Extra axes of a grid: any setting of a sweep, by its dotted name, with the values the grid crosses.

``[grid.axes]`` maps a setting's dotted name to a list of values (the keys may be quoted,
``"model.attention.kv_stride" = [1, 2, 4]``, or nested tables; both read the same)::

    [grid.axes]
    "model.attention.kv_stride" = [1, 2, 4]
    "model.attention.stages" = [[false, false, true, true], [false, false, false, true]]
    "overrides.model.train_cfg.rcnn.sampler.num" = [64, 128]

An axis is a setting of a section whose field says ``axes=True`` in its metadata (the sweep declares which:
what a cell's config holds), or any config key under ``[overrides]``. Each value is checked as the setting
itself is (its type, then the settings class' own rules), so a bad value is one line naming the axis and
the value. A sub-table may say, with ``varies`` in its metadata, which cells it applies to at all (the
attention plugin's settings: cells with attention; DCN's: cells with DCN): an axis there varies only those
cells, and the others run once, without a value on that axis.

An axis' value is written into cell names as a short label (``kv-stride-2``, ``stages-c4-c5``), which
``labels`` makes unique.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ablation.errors import InputError, SweepFileError
from ablation.grid import schema

__all__ = [
    "MAX_DEPTH",
    "OVERRIDES",
    "Axis",
    "apply",
    "command_line_value",
    "labels",
    "parse_axes",
    "parse_value",
    "plain",
    "short_names",
]

OVERRIDES = "overrides"  # the free table of config keys; any key under it can be an axis
MAX_DEPTH = 32  # how deep [overrides] and [grid.axes] may nest tables (a config nests far less)
_STAGES = tuple[bool, bool, bool, bool]
_UNSAFE = re.compile(r"[^A-Za-z0-9.]+")


@dataclass(frozen=True)
class Axis:
    """One extra axis: the setting's dotted name, its values (as the settings hold them: tuples for lists),
    and which cells it varies (``varies``: None for all, else the name of a cell predicate of ``Cell``)."""

    name: str
    values: tuple[Any, ...]
    varies: str | None = None
    hint: Any = None  # the setting's type (None under [overrides]: any config value)
    short: str = ""  # the shortest end of the name that tells it from the grid's other axes (``kv_stride``)

    def shown(self, value: Any) -> str:
        """A value as tables and names write it: ``2``, ``c4-c5`` (stages), ``on``."""
        return _value_label(value, self.hint)


def named(names: Sequence[str], text: str) -> list[str]:
    """The dotted axis names that ``text`` names: the one it equals, else those it is the dotted end of
    (``kv_stride``, ``attention.kv_stride``). The one rule for ``where`` on the grid and on the store."""
    exact = [name for name in names if name == text]
    return exact or [name for name in names if name.endswith("." + text)]


def parse_axes(settings: Any, table: Mapping[str, Any]) -> tuple[Axis, ...]:
    """The axes of ``table`` (``[grid.axes]``, parsed TOML) for the settings instance ``settings`` (the sweep
    file's top-level settings), each value checked. Raises ``SweepFileError`` naming the axis."""
    axes = []
    for name, raw in _flatten(table):
        where = f"[grid.axes] {name}"
        if name.count(".") > MAX_DEPTH:
            parts = name.count(".") + 1
            raise SweepFileError(f"{where[:80]}...: {parts} dotted parts; at most {MAX_DEPTH + 1}")
        hint, varies = _resolve(type(settings), name, where)
        if not isinstance(raw, list) or not raw:
            raise SweepFileError(f"{where}: expected a non-empty list of values, got {_kind(raw)}")
        values = tuple(_convert(item, hint, f"{where}[{i}]") for i, item in enumerate(raw))
        if len(set(map(_canonical, values))) != len(values):
            raise SweepFileError(f"{where}: a value is listed twice")
        for i, value in enumerate(values):
            try:
                apply(settings, {name: value})
            except InputError as error:
                raise SweepFileError(f"{where}[{i}]: {error}") from None
        axes.append(Axis(name=name, values=values, varies=varies, hint=hint))
    shorts = short_names([a.name for a in axes])
    return tuple(dataclasses.replace(a, short=shorts[a.name]) for a in axes)


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Each dotted axis name's heading in tables and names: its shortest ending (by dotted parts) that no
    other of ``names`` ends with; ``model.attention.kv_stride`` alone is 'kv_stride', beside
    ``model.dcn.kv_stride`` it is 'attention.kv_stride'."""
    shown = {}
    for name in names:
        parts = name.split(".")
        ends = (".".join(parts[-n:]) for n in range(1, len(parts) + 1))
        others = [other for other in names if other != name]
        shown[name] = next((e for e in ends if not any(o == e or o.endswith("." + e) for o in others)), name)
    return shown


def _flatten(table: Mapping[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """Dotted name -> value: quoted dotted keys and nested tables alike."""
    if depth > MAX_DEPTH:
        raise SweepFileError(f"[grid.axes] {prefix[:80]}...: tables nest more than {MAX_DEPTH} deep")
    items = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.extend(_flatten(value, f"{name}.", depth + 1))
        else:
            items.append((name, value))
    return items


def _resolve(cls: type[Any], name: str, where: str) -> tuple[Any, str | None]:
    """The type hint of the setting ``name`` and the ``varies`` rule of the tables on its way; None as the
    hint for a key under [overrides]."""
    parts = name.split(".")
    top = {f.name: f for f in dataclasses.fields(cls)}
    allowed = [n for n, f in top.items() if f.metadata.get("axes")]
    first = top.get(parts[0])
    if first is None or not (first.metadata.get("axes") or parts[0] == OVERRIDES):
        sections = ", ".join(f"[{n}]" for n in allowed)
        why = f"[{parts[0]}] is shared by every cell of a sweep" if first is not None else "no such setting"
        raise SweepFileError(
            f"{where}: {why}; an axis is a setting of {sections} or a config key under [{OVERRIDES}] "
            f"(see `ablation sweeps --schema`)"
        )
    if parts[0] == OVERRIDES:
        if len(parts) < 2 or not all(p.isidentifier() for p in parts[1:]):
            raise SweepFileError(f"{where}: name a config key under [{OVERRIDES}], e.g. {OVERRIDES}.model.x")
        return None, None
    current: Any = cls
    varies = None
    for i, part in enumerate(parts):
        if not schema.is_table(current):
            raise SweepFileError(f"{where}: {'.'.join(parts[:i])} is a setting, not a table")
        fields = {f.name: f for f in dataclasses.fields(current)}
        if part not in fields:
            known = [".".join([*parts[:i], n]) for n in fields]
            close = difflib.get_close_matches(name, _settings(cls, allowed), n=1)
            hint = f"did you mean {close[0]}?" if close else f"settings there: {', '.join(known)}"
            raise SweepFileError(f"{where}: no such setting; {hint}")
        varies = fields[part].metadata.get("varies", varies)
        current = typing.get_type_hints(current)[part]
    if schema.is_table(current) or typing.get_origin(current) is dict:
        raise SweepFileError(f"{where}: a table, not a setting; name one of its settings")
    return current, varies


def _settings(cls: type[Any], sections: Sequence[str]) -> list[str]:
    """Every dotted setting name under ``sections`` (for suggestions)."""
    names = []
    for key, _, _ in schema.describe(cls):
        if key.split(".")[0] in sections and not key.startswith("["):
            names.append(key)
    return names


def _convert(raw: Any, hint: Any, where: str) -> Any:
    if hint is None:  # a config value: plain values and lists of them, lists frozen as tuples
        if isinstance(raw, dict):
            raise SweepFileError(f"{where}: a table; under [{OVERRIDES}] an axis value is a value or a list")
        return _frozen(raw)
    return schema.convert(raw, hint, where)


def _frozen(value: Any) -> Any:
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def apply(settings: Any, values: Mapping[str, Any]) -> Any:
    """``settings`` with the axis ``values`` (dotted name -> value) set, each table rebuilt so that its own
    checks run (``InputError`` when one fails). Values under [overrides] are merged into a copy of it."""
    for name, value in values.items():
        settings = _replace(settings, name.split("."), value)
    return settings


def _replace(table: Any, parts: list[str], value: Any) -> Any:
    head, rest = parts[0], parts[1:]
    if head == OVERRIDES and not dataclasses.is_dataclass(getattr(table, head)):
        return dataclasses.replace(table, **{head: _merged(getattr(table, head), rest, plain(value))})
    inner = value if not rest else _replace(getattr(table, head), rest, value)
    return dataclasses.replace(table, **{head: inner})


def _merged(table: dict[str, Any], parts: list[str], value: Any, done: str = "") -> dict[str, Any]:
    """``table`` (the [overrides] so far) with the axis' ``value`` at the key ``parts``; ``InputError`` where
    it would replace a value [overrides] (or another axis) gives, or a table of them."""
    copy = dict(table)
    head, rest = parts[0], parts[1:]
    key = f"{done}{head}"
    inner = copy.get(head)
    if head in copy and (not rest or not isinstance(inner, dict)):
        shown = "a table" if isinstance(inner, dict) else repr(inner)
        raise InputError(
            f"[overrides] {key} = {shown} is not a table, so the axis cannot set a key under it; keep one"
            if rest
            else f"[overrides] {key} is given too ({shown}); give it once, in [overrides] or as an axis"
        )
    copy[head] = _merged(inner if isinstance(inner, dict) else {}, rest, value, f"{key}.") if rest else value
    return copy


def plain(value: Any) -> Any:
    """An axis value as JSON and configs hold it: tuples as lists."""
    return [plain(v) for v in value] if isinstance(value, tuple) else value


def command_line_value(text: str) -> Any:
    """A value as given on the command line (``--where kv_stride=2``): a TOML value (``2``, ``0.01``,
    ``true``, ``[false, true, true, true]``), else the text itself (a bare word, a table, a date)."""
    import tomllib

    try:
        raw = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string
    return raw if isinstance(raw, bool | int | float | str | list) else text


def parse_value(axis: Axis, text: str) -> Any:
    """The value of ``axis`` that ``text`` (from the command line: ``command_line_value``) names."""
    raw = command_line_value(text)
    try:
        return _convert(raw, axis.hint, axis.name)
    except SweepFileError:
        return _frozen(raw) if isinstance(raw, list) else raw


@functools.cache  # an axis' labels are asked for once per cell name
def labels(axis: Axis) -> dict[Any, str]:
    """Each value's label in cell names: the setting's name and the value, '-' between and '_' kept for
    mmdet's separator (``kv-stride-2``, ``stages-c4-c5``, ``pretrained-off``). Two values with one label
    (strings that differ only in characters a file name cannot hold) are a ``SweepFileError``."""
    found: dict[Any, str] = {}
    seen: dict[str, Any] = {}
    for value in axis.values:
        label = f"{axis.short.replace('_', '-').replace('.', '-')}-{axis.shown(value)}"
        if label in seen:
            raise SweepFileError(
                f"[grid.axes] {axis.name}: values {seen[label]!r} and {value!r} would give cells one name "
                f"({label}); make them differ in letters or digits"
            )
        seen[label] = value
        found[value] = label
    return found


def _value_label(value: Any, hint: Any) -> str:
    if hint == _STAGES:  # ResNet stages c2..c5, as mmdet's names write them: 'c4-c5', or 'c2.c4'
        names = [f"c{i + 2}" for i, on in enumerate(value) if on]
        contiguous = len(names) > 1 and int(names[-1][1]) - int(names[0][1]) == len(names) - 1
        return f"{names[0]}-{names[-1]}" if contiguous else ".".join(names)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ".".join(_value_label(v, None) for v in value) or "none"
    if isinstance(value, (int, float)):
        return str(value)  # digits, '.', a leading '-'
    return _UNSAFE.sub("-", str(value)).strip("-") or "none"


def _kind(raw: Any) -> str:
    return "a table" if isinstance(raw, dict) else f"{raw!r}"
