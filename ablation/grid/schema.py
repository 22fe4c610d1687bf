"""Typed settings tables: dataclasses that read themselves from TOML tables and document themselves.

A settings class is a frozen dataclass whose fields carry ``doc`` in their metadata. ``build`` turns a parsed
TOML table into an instance, rejecting unknown keys (listing the valid ones) and values of the wrong type, so
that each setting is declared exactly once: here, with its type, default and documentation.
Nested dataclass fields are sub-tables. Field metadata may also hold ``aliases``: string values that stand for
a whole value (``codes = "all"``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar, Union

from ablation.errors import InputError, SweepFileError

__all__ = ["build", "convert", "describe", "free_table", "is_table", "nested", "setting"]

T = TypeVar("T")


def setting(default: Any, doc: str, **metadata: Any) -> Any:
    """A dataclass field with a default and its one-line documentation."""
    return dataclasses.field(default=default, metadata={"doc": doc, **metadata})


def free_table(doc: str, **metadata: Any) -> Any:
    """A sub-table of any keys and values, defaulting to empty (``[overrides]``)."""
    return dataclasses.field(default_factory=dict, metadata={"doc": doc, **metadata})


def nested(cls: type[Any], doc: str, **metadata: Any) -> Any:
    """A sub-table field, defaulting to the sub-table's own defaults. ``metadata`` may say ``axes=True`` (its
    settings can be axes of a grid) or ``varies=...`` (which cells its settings apply to: see ``axes``)."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, **metadata})


def is_table(cls: Any) -> bool:
    """Whether ``cls`` is a settings class: a dataclass whose every field is documented with ``setting``."""
    return (
        isinstance(cls, type)
        and dataclasses.is_dataclass(cls)
        and all("doc" in f.metadata for f in dataclasses.fields(cls))
    )


def build(cls: type[T], table: Any, where: str = "") -> T:
    """An instance of the settings class ``cls`` from a TOML table; ``where`` names the table in errors."""
    if not isinstance(table, dict):
        raise SweepFileError(f"{_at(where)}expected a table, got {_kind(table)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise SweepFileError(
            f"{_at(where)}unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for key, raw in table.items():
        path = f"{where}.{key}" if where else key
        aliases = fields[key].metadata.get("aliases", {})
        values[key] = (
            aliases[raw] if isinstance(raw, str) and raw in aliases else convert(raw, hints[key], path)
        )
    try:
        return cls(**values)
    except InputError as error:
        raise SweepFileError(f"{_at(where)}{error}") from None


def convert(raw: Any, hint: Any, path: str) -> Any:
    """A TOML value as the type ``hint`` holds it (lists as tuples); ``SweepFileError`` naming ``path``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):  # only `X | None` is used; TOML has no null, so raw is an X
        (hint,) = (a for a in args if a is not type(None))
        return convert(raw, hint, path)
    if is_table(hint):
        return build(hint, raw, path)
    if origin is dict:  # free-form: any TOML table, kept as it is
        if not isinstance(raw, dict):
            raise SweepFileError(f"{path}: expected a table, got {_kind(raw)}")
        return raw
    if origin is tuple:
        if not isinstance(raw, list):
            raise SweepFileError(f"{path}: expected a list, got {_kind(raw)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(convert(item, args[0], f"{path}[{i}]") for i, item in enumerate(raw))
        if len(raw) != len(args):
            raise SweepFileError(f"{path}: expected a list of {len(args)} values, got {len(raw)}")
        return tuple(
            convert(item, arg, f"{path}[{i}]") for i, (item, arg) in enumerate(zip(raw, args, strict=True))
        )
    if hint is float:  # a number as TOML writes one, never coerced: not a string, not true
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            if not math.isfinite(raw):
                raise SweepFileError(f"{path}: expected a finite number, got {_kind(raw)}")
            return float(raw)
        raise SweepFileError(f"{path}: expected a number, got {_kind(raw)}")
    if hint in (bool, int, str):
        if isinstance(raw, hint) and not (hint is int and isinstance(raw, bool)):
            return raw
        raise SweepFileError(f"{path}: expected {_NAMES[hint]}, got {_kind(raw)}")
    try:  # a value class that validates what it is given, e.g. AttentionCode
        return hint(raw)
    except InputError as error:
        raise SweepFileError(f"{path}: {error}") from None


_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _kind(raw: Any) -> str:
    if isinstance(raw, bool):
        return str(raw).lower()
    if isinstance(raw, str):
        return f"the string {raw!r}"
    if isinstance(raw, dict):
        return "a table"
    return "a list" if isinstance(raw, list) else repr(raw)


def _at(where: str) -> str:
    return f"[{where}] " if where else ""


def describe(cls: type[Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, doc) for every setting of ``cls``, sub-tables flattened as ``table.key``."""
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        table = f.default_factory
        if is_table(table):
            rows.append((f"[{key}]", "", f.metadata["doc"]))
            rows.extend(describe(table, f"{key}."))  # type: ignore[arg-type]
        else:
            aliases = {value: name for name, value in f.metadata.get("aliases", {}).items()}
            shown = f'"{aliases[f.default]}"' if f.default in aliases else _toml(f.default)
            rows.append((key, shown, f.metadata["doc"]))
    return rows


def _toml(value: Any) -> str:
    if value is None or value is dataclasses.MISSING:
        return "(unset)"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
