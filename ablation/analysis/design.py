"""A sweep's runs coded as a factorial design with nested settings: what ``effects.analyse`` fits.

The *factors* are two-level and cross every run: the four attention factors of the code and DCN
(``numbers.FACTOR_COLUMNS``), and every axis column on which each run has one of exactly two values (low:
the smaller, as sorted). Each is coded -1/+1. A factor with one level among the runs is left out; one whose
±1 column equals an earlier factor's, or its negative (0000 and 1111 only: the four bits move together), is
*aliased* with it and left out, named.

The *settings* are the other axis columns that vary: an axis with more than two values, or one that does
not apply to every cell. An attention setting (kv_stride, the stages) has no value on the 0000 cells; a
DCN setting none on the cells without DCN. A setting is *nested* within the cells where it has a value (its
scope, ``within``): its levels, sorted, the first the reference, are coded by patsy's sum-to-zero contrasts
inside its scope and 0 outside, so that the factors' effects are averages over the settings' levels and a
setting's effect is measured only among the runs it varies. The effect of a level is its mean minus the
reference level's, inside the scope.

The model's *terms* are products of members (factors and settings); an effect is a linear combination of a
term's coefficients (``Term.weight``): the product of its members' coding differences (a level's row minus
the reference's; 2 for a factor) over 2^(order-1), so that a two-factor interaction is half the difference
between one member's effect at the other's high and low levels.
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ablation.analysis.numbers import FACTOR_COLUMNS, factor_label
from ablation.grid.axes import short_names
from ablation.results.latest import column_values, scalar
from ablation.results.records import is_axis_column

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["Design", "Factor", "Setting", "Term", "centred", "level_text"]


@dataclass(frozen=True)
class Factor:
    """A two-level factor crossing every run: its column in the store frame, its name in model terms, the
    label people read, and its low and high levels (coded -1 and +1)."""

    column: str
    term: str
    label: str
    low: object
    high: object

    @property
    def coding(self) -> np.ndarray:
        return np.array([[-1.0], [1.0]])

    @property
    def levels(self) -> tuple[object, ...]:
        return (self.low, self.high)

    @property
    def formula(self) -> str:
        return self.term


@dataclass(frozen=True)
class Setting:
    """An axis nested within the runs it has a value on (``within``: those cells in words), with its
    levels (sorted; the first is the reference) coded by ``coding`` (a row per level, patsy's sum-to-zero
    contrasts)."""

    column: str
    term: str
    label: str
    levels: tuple[object, ...]
    within: str

    @functools.cached_property
    def coding(self) -> np.ndarray:
        from patsy.contrasts import Sum

        return np.asarray(Sum().code_without_intercept(list(range(len(self.levels)))).matrix, dtype=float)

    @property
    def keys(self) -> tuple[str, ...]:
        """Its levels' identities (their JSON text), in order."""
        return tuple(_key(v) for v in self.levels)

    @property
    def formula(self) -> str:
        """The setting in a model formula: patsy's C() of its level keys and coding (``Design.namespace``)."""
        return f"C({self.term}, {self.term}_coding, levels={self.term}_levels)"


Member = Factor | Setting


@dataclass(frozen=True)
class Term:
    """A term of the model: one member (a main effect) or a product of two or more (an interaction)."""

    members: tuple[Member, ...]

    @property
    def name(self) -> str:
        """The term in the model formula: 'f0', 'f0:f2', 'C(s0, ...):f1_in_s0' (a factor beside a setting is
        centred within the setting's scope, ``Design.of``)."""
        settings = [m for m in self.members if isinstance(m, Setting)]
        if not settings:
            return ":".join(m.formula for m in self.members)
        return ":".join(
            m.formula if isinstance(m, Setting) else centred(m, settings[0]) for m in self.members
        )

    @property
    def order(self) -> int:
        return len(self.members)

    @property
    def kind(self) -> str:
        """'factor' for a term of factors only, 'setting' for one with a setting in it."""
        return "setting" if any(isinstance(m, Setting) for m in self.members) else "factor"

    @property
    def label(self) -> str:
        return " x ".join(m.label for m in self.members)

    def contrasts(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The term's effects: (its id, its label, the level each member is at), one per combination of the
        members' non-reference levels (one for a term of factors and two-level settings)."""
        found = []
        for picks in itertools.product(*(range(1, len(m.levels)) for m in self.members)):
            ids = [_member_id(m, p) for m, p in zip(self.members, picks, strict=True)]
            words = [_member_label(m, p) for m, p in zip(self.members, picks, strict=True)]
            found.append((":".join(ids), " x ".join(words), picks))
        return found

    def weight(self, picks: tuple[int, ...], columns: dict[str, int]) -> float:
        """The weight, in the effect of the levels ``picks``, of the coefficient of the model column that
        takes coding column ``columns[m.term]`` of each member m: the product of the members' differences
        (a level's coding row minus the reference's) over 2^(order-1)."""
        weight = 1.0 / 2.0 ** (self.order - 1)
        for member, pick in zip(self.members, picks, strict=True):
            index = columns[member.term]
            weight *= float(member.coding[pick][index] - member.coding[0][index])
        return weight

    def columns(self, codes: dict[str, np.ndarray]) -> np.ndarray:
        """The term's model columns over the runs: the product, run by run, of every combination of its
        members' coding columns."""
        product = np.ones((len(codes[self.members[0].term]), 1))
        for member in self.members:
            coded = codes[member.term]
            product = np.einsum("ni,nj->nij", product, coded).reshape(len(product), -1)
        return product

    @property
    def within(self) -> str:
        """Where the term is measured: every cell for factors, a setting's scope (the narrower of two)."""
        scopes = [m.within for m in self.members if isinstance(m, Setting)]
        if not scopes:
            return ALL_CELLS
        narrow = [s for s in scopes if s != ALL_CELLS]
        if len(set(narrow)) > 1:
            return "the runs where both are set"
        return narrow[0] if narrow else ALL_CELLS


def _member_label(member: Member, pick: int) -> str:
    if isinstance(member, Factor):
        return member.label
    return f"{member.label} {level_text(member.levels[0])}→{level_text(member.levels[pick])}"


def _member_id(member: Member, pick: int) -> str:
    if isinstance(member, Factor) or len(member.levels) == 2:
        return member.column
    return f"{member.column}={level_text(member.levels[pick])}"


@dataclass
class Design:
    """The runs of one design coded for the model: ``data`` holds y and a column per factor (its ±1 code)
    and per setting (its level's key, OUTSIDE outside its scope); ``codes`` each member's coding columns."""

    metric: str
    data: pd.DataFrame
    factors: tuple[Factor, ...]
    settings: tuple[Setting, ...]
    aliased: dict[str, str]
    codes: dict[str, np.ndarray]

    @classmethod
    def of(cls, rows: pd.DataFrame, metric: str) -> Design:
        """The design of ``rows`` (runs with a finite ``metric`` and known factors)."""
        data = pd.DataFrame({"y": rows[metric].to_numpy(dtype=np.float64)})
        codes: dict[str, np.ndarray] = {}
        settings: list[Setting] = []
        candidates: list[tuple[str, str, object, object, np.ndarray]] = [
            (c, factor_label(c), False, True, np.where(rows[c].to_numpy(dtype=bool), 1.0, -1.0))
            for c in FACTOR_COLUMNS
            if c in rows.columns  # true or false (known: analyse leaves out the rest)
        ]
        axes = sorted(str(c) for c in rows.columns if is_axis_column(str(c)))
        shown = short_names(axes)
        scopes = _Scopes(rows)
        for column in axes:
            values = [scalar(v) for v in column_values(rows, column)]
            keys = _keys(values)
            distinct = {k: v for k, v in zip(keys, values, strict=True) if k is not None}
            levels = [v for _, v in sorted(distinct.items(), key=_order)]
            if len(levels) == 2 and all(v is not None for v in values):
                low, high = levels
                coded = np.where(np.array(keys) == _key(high), 1.0, -1.0)
                candidates.append(
                    (column, f"{shown[column]} {level_text(low)}→{level_text(high)}", low, high, coded)
                )
            elif len(levels) > 1:
                term = f"s{len(settings)}"
                present = np.array([v is not None for v in values])
                setting = Setting(column, term, shown[column], tuple(levels), scopes.words(present))
                index = {k: i for i, k in enumerate(setting.keys)}
                coded = np.zeros((len(values), len(levels) - 1))
                coded[present] = setting.coding[[index[k] for k in keys if k is not None]]
                codes[term] = coded
                data[term] = pd.Categorical([OUTSIDE if k is None else k for k in keys], [*index, OUTSIDE])
                settings.append(setting)
        factors, aliased = cls._factors(candidates, data, codes)
        terms = [f.term for f in factors]
        for setting in settings:  # each factor centred within the setting's scope, for their interactions
            combinations = data.loc[data[setting.term] != OUTSIDE, terms].drop_duplicates()
            for factor in factors:
                data[centred(factor, setting)] = data[factor.term] - combinations[factor.term].mean()
        return cls(metric, data, tuple(factors), tuple(settings), aliased, codes)

    @staticmethod
    def _factors(
        candidates: list[tuple[str, str, object, object, np.ndarray]],
        data: pd.DataFrame,
        codes: dict[str, np.ndarray],
    ) -> tuple[list[Factor], dict[str, str]]:
        """The candidates that are factors of the runs (their ±1 codes into ``data`` and ``codes``), and
        those aliased with an earlier one."""
        factors: list[Factor] = []
        aliased: dict[str, str] = {}
        for column, label, low, high, coded in candidates:
            if len(np.unique(coded)) < 2:  # one level among the runs: not a factor of this design
                continue
            twin = next((f for f in factors if abs(float(coded @ codes[f.term][:, 0])) == len(coded)), None)
            if twin is not None:
                aliased[label] = twin.label
                continue
            term = f"f{len(factors)}"
            data[term] = coded
            codes[term] = coded[:, None]
            factors.append(Factor(column=column, term=term, label=label, low=low, high=high))
        return factors, aliased

    @property
    def k(self) -> int:
        return len(self.factors)

    @property
    def members(self) -> tuple[Member, ...]:
        """The factors, then the settings."""
        return (*self.factors, *self.settings)

    @functools.cached_property
    def cell_sizes(self) -> pd.Series:
        """The runs per cell (a combination of the factors' and the settings' levels)."""
        keys = [m.term for m in self.members]
        if not keys:
            return pd.Series([len(self.data)])
        return self.data.groupby(keys, sort=False, observed=True).size()

    @property
    def replicated(self) -> bool:
        return bool((self.cell_sizes > 1).any())

    @property
    def complete(self) -> bool:
        """Whether every combination of the factors' levels has a run."""
        terms = [f.term for f in self.factors]
        return bool(len(self.data[terms].drop_duplicates()) == 2**self.k)

    def namespace(self) -> dict[str, object]:
        """What the settings' formulas name: each one's level keys (the outside level last) and its coding
        (patsy's ContrastMatrix: a row per level, zeros outside its scope)."""
        from patsy.contrasts import ContrastMatrix

        found: dict[str, object] = {}
        for setting in self.settings:
            width = len(setting.levels) - 1
            rows = np.vstack([setting.coding, np.zeros((1, width))])
            found[f"{setting.term}_levels"] = [*setting.keys, OUTSIDE]
            found[f"{setting.term}_coding"] = ContrastMatrix(rows, [f"[{i}]" for i in range(width)])
        return found

    def present(self, setting: Setting) -> npt.NDArray[np.bool_]:
        """Whether each run has a value of ``setting``."""
        found: npt.NDArray[np.bool_] = (self.data[setting.term] != OUTSIDE).to_numpy(dtype=bool)
        return found

    def factor_terms(self, order: int) -> list[Term]:
        """The factors' main effects and interactions up to ``order``, by order."""
        return [Term(c) for size in range(1, order + 1) for c in itertools.combinations(self.factors, size)]

    def setting_terms(self) -> list[Term]:
        """The settings' main effects, then their interactions with each factor, then with each other."""
        mains = [Term((s,)) for s in self.settings]
        with_factors = [Term((s, f)) for s in self.settings for f in self.factors]
        pairs = [Term(pair) for pair in itertools.combinations(self.settings, 2)]
        return mains + with_factors + pairs

    def nesting_words(self) -> str:
        """The settings' scopes in words: 'kv_stride and stages nested within the cells with attention'."""
        by_scope: dict[str, list[str]] = {}
        for setting in self.settings:
            by_scope.setdefault(setting.within, []).append(setting.label)
        parts = []
        for within, labels in by_scope.items():
            names = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
            parts.append(
                f"{names} crossed with the factors"
                if within == ALL_CELLS
                else f"{names} nested within {within}"
            )
        return "; ".join(parts)


ALL_CELLS = "every cell"
OUTSIDE = ""  # a setting's level key on the runs it is not set on (no level's JSON text is empty)


class _Scopes:
    """Words for the runs a setting has a value on: the cells with attention (a code other than 0000),
    with DCN, with both, every cell, or their count."""

    def __init__(self, rows: pd.DataFrame) -> None:
        bits = [c for c in FACTOR_COLUMNS[:-1] if c in rows.columns]
        attention = rows[bits].astype(bool).to_numpy().reshape(len(rows), len(bits)).any(axis=1)
        dcn = rows["dcn"].astype(bool).to_numpy() if "dcn" in rows.columns else np.zeros(len(rows), bool)
        self.known = [
            (np.ones(len(rows), dtype=bool), ALL_CELLS),
            (attention, "the cells with attention"),
            (dcn, "the cells with DCN"),
            (attention & dcn, "the cells with attention and DCN"),
        ]

    def words(self, present: np.ndarray) -> str:
        for mask, words in self.known:
            if np.array_equal(mask, present):
                return words
        return f"the {int(present.sum())} runs it is set on"


def centred(factor: Factor, setting: Setting) -> str:
    """The column of ``factor``'s code minus its mean over the factor combinations ``setting`` is set on
    (each counted once): in the setting's interaction with the factor, it leaves the setting's main effect
    its mean difference over those combinations, each weighted equally, as a factor's effect is."""
    return f"{factor.term}_in_{setting.term}"


def level_text(value: object) -> str:
    """A level as people read it: 'none' for no value, 2 for 2.0 (a column with gaps holds floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "none" if value is None else str(value)


def _keys(values: list[object]) -> list[str | None]:
    """Each value's ``_key`` (None for None), worked out once per distinct value."""
    known: dict[object, str | None] = {}
    found = []
    for value in values:
        hashable = (type(value), tuple(value) if isinstance(value, list) else value)
        try:
            found.append(known[hashable])
        except KeyError:
            known[hashable] = None if value is None else _key(value)
            found.append(known[hashable])
        except TypeError:  # unhashable all the way down
            found.append(_key(value))
    return found


def _key(value: object) -> str:
    """A level's identity (lists, as the store holds the stages, included): its JSON text."""
    return json.dumps(value, sort_keys=True)


def _order(item: tuple[str, object]) -> tuple[int, float, str]:
    """Levels in order: false before true, numbers by value, anything else by its text."""
    key, value = item
    if isinstance(value, int | float):
        return (0, float(value), key)
    return (1, 0.0, key)
