"""Python source for config values, in the ``dict(key=value)`` style of MMDetection's config files."""

from __future__ import annotations

import keyword
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Ref", "assignments", "literal"]

WIDTH = 79


@dataclass(frozen=True)
class Ref:
    """A reference to a variable defined earlier in the same file, written as its bare name."""

    name: str


def literal(value: Any, indent: int = 0, column: int | None = None, suffix: int = 0) -> str:
    """``value`` as Python source that fits in WIDTH columns where it can, breaking containers otherwise.

    ``indent`` is the indentation of the line the value starts on, ``column`` where on it the value starts
    (default: at the indentation), ``suffix`` how many characters follow it on its line.
    """
    return _literal(value, indent, column, suffix, {})


def _literal(value: Any, indent: int, column: int | None, suffix: int, flats: dict[int, str]) -> str:
    """``literal``, with each container's one-line form computed once (``flats``, by the value's id: the
    values live as long as the call), so that a deep value costs its size, not its size times its depth."""
    flat = _flat(value, flats)
    start = indent if column is None else column
    if start + len(flat) + suffix <= WIDTH or not isinstance(value, (dict, list, tuple)) or not value:
        return flat
    inner = indent + 4
    pad, end = " " * inner, " " * indent
    if isinstance(value, dict):
        items = [f"{pad}{k}={_literal(v, inner, inner + len(k) + 1, 1, flats)}" for k, v in value.items()]
        return "dict(\n" + ",\n".join(items) + f",\n{end})"
    items = [f"{pad}{_literal(v, inner, None, 1, flats)}" for v in value]
    opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
    return f"{opening}\n" + ",\n".join(items) + f",\n{end}{closing}"


def _flat(value: Any, flats: dict[int, str]) -> str:
    if isinstance(value, (dict, list, tuple)):
        known = flats.get(id(value))
        if known is None:
            known = flats[id(value)] = _flat_container(value, flats)
        return known
    if isinstance(value, Ref):
        return value.name
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} into a config: only finite numbers read back")
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} into a config: {value!r}")


def _flat_container(value: dict[Any, Any] | list[Any] | tuple[Any, ...], flats: dict[int, str]) -> str:
    if isinstance(value, dict):
        _check_names(value)
        return "dict(" + ", ".join(f"{k}={_flat(v, flats)}" for k, v in value.items()) + ")"
    inner = ", ".join(_flat(v, flats) for v in value)
    if isinstance(value, list):
        return f"[{inner}]"
    return f"({inner},)" if len(value) == 1 else f"({inner})"


def _check_names(names: Iterable[object]) -> None:
    bad = [n for n in names if not (isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n))]
    if bad:
        raise ValueError(f"config keys and variables must be Python names, not {bad}")


def assignments(variables: dict[str, Any]) -> str:
    """``name = value`` lines, one statement per variable, a blank line between them."""
    _check_names(variables)
    return "\n".join(f"{name} = {literal(value, 0, len(name) + 3)}\n" for name, value in variables.items())
