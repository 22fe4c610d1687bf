"""The factorial analysis of a sweep's grid: its effects with their uncertainty, and which method gave it.

The design. The two-level factors are the four attention factors of the code and DCN
(``numbers.FACTOR_COLUMNS``) and every axis column on which each run has one of exactly two values (its
low level is the smaller value, as sorted); an axis column with more values, or a missing value (an axis
that does not vary some cells, such as an attention setting for 0000), is a *block*: an additive
categorical term of the model, not an effect. A factor with one level among the runs is left out; a factor
whose ±1 column equals an earlier factor's, or its negative, over the runs (0000 and 1111 only: the four
attention bits move together) is *aliased* with it and left out, named in ``aliased``.

An effect is the classical 2^k effect, the mean response at the high level minus at the low level, in the
metric's display unit (``ablation.vocabulary``: box AP in AP points, FLOPs in GFLOPs), as are the intervals,
Lenth's PSE and margins and the ANOVA's sums of squares: twice the coefficient of the factor's ±1 column in
the least-squares fit (statsmodels' OLS). An interaction's column is the product of its factors'.

The method, from the data (``FactorialAnalysis.method``):

- ``replicates``: some cell (combination of factors and blocks) has more than one run. The model is the
  full factorial of the factors (every interaction: the error is then the replicates' pure error) where
  every combination of the factors has a run, else the main effects and two-factor interactions (the error
  then also holds whatever the omitted interactions explain). Standard errors and 95% intervals are t
  intervals with the residual degrees of freedom; the ANOVA table is statsmodels' ``anova_lm`` (type 2).
- ``lenth``: one run per cell of a complete 2^k design (k >= 3, no block), today's default grid. All
  m = 2^k - 1 effects are estimated, and Lenth's (1989) pseudo standard error stands in for the missing
  error: s0 = 1.5 median|c|, PSE = 1.5 median{|c| : |c| < 2.5 s0}; the margin of error ME = t(0.975; m/3)
  PSE, the simultaneous margin SME = t(gamma; m/3) PSE with gamma = (1 + 0.95^(1/m)) / 2. An effect's
  interval is effect ± ME; it is resolved when |effect| > ME, and holds simultaneously (over all m effects)
  when |effect| > SME. The method is conservative: under pure noise ME flags 3.0% of null effects at m = 15
  and 3.8% at m = 31, not 5% (tests/test_effects.py).
- ``pooled``: one run per cell, but not a design Lenth's method fits (incomplete, blocked or k < 3): the
  main effects and two-factor interactions by OLS, the error pooled from the omitted higher interactions.
- ``none``: the effects without intervals, where no error can be estimated (``reason`` says why).

Quantiles are scipy's (``scipy.stats``). Pass the runs of one design: ``latest_runs`` of one sweep and one
source; a frame of several sweeps or sources is refused (InputError naming them), since their runs are not
replicates of one another. A run whose metric is missing or whose factors are unknown is left out.
"""

from __future__ import annotations

import functools
import itertools
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablation import vocabulary
from ablation.analysis.numbers import FACTOR_COLUMNS, check_one_memory_kind, factor_label
from ablation.errors import InputError
from ablation.grid.axes import short_names
from ablation.results.latest import column_values, scalar
from ablation.results.records import is_axis_column

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = [
    "EFFECT_COLUMNS",
    "METHODS",
    "FactorialAnalysis",
    "Lenth",
    "analyse",
    "half_normal",
    "lenth",
]

METHODS = ("replicates", "lenth", "pooled", "none")
EFFECT_COLUMNS = (
    "term",
    "label",
    "order",
    "effect",
    "se",
    "low",
    "high",
    "df",
    "p",
    "resolved",
    "simultaneous",
)
_LENTH_MIN = 7  # Lenth's method needs enough effects for the median to stand for the null ones (k >= 3)


@dataclass(frozen=True)
class Factor:
    """A two-level factor of the design: its column in the store frame, its name in model terms, the label
    people read, and its low and high levels (coded -1 and +1)."""

    column: str
    term: str
    label: str
    low: object
    high: object


@dataclass(frozen=True)
class Lenth:
    """Lenth's pseudo standard error of ``m`` effects, its degrees of freedom (m/3), the margin of error and
    the simultaneous margin of error at ``level``."""

    pse: float
    df: float
    me: float
    sme: float
    m: int
    level: float = 0.95


@dataclass(frozen=True)
class FactorialAnalysis:
    """The effects of the design on one metric, and how they were estimated.

    ``effects`` has EFFECT_COLUMNS, one row per estimated term (main effects first, in factor order, then the
    interactions by order): ``effect`` in the metric's display unit (``figure.unit``); ``se``,
    ``low``/``high`` (the 95% interval), ``df`` and ``p`` where the method gives them (NaN otherwise);
    ``resolved`` whether the interval excludes 0 (Lenth: |effect| > ME; NA without interval); ``simultaneous``
    (Lenth only: |effect| > SME). ``anova`` is the ANOVA table of an OLS method (index: the terms' labels;
    sum_sq, df, F, PR(>F)); ``lenth`` the PSE/ME/SME of the ``lenth`` method."""

    metric: str  # the store column of the metric (``figure`` is its vocabulary entry)
    method: str
    description: str  # one sentence: the method, its model and where its error comes from
    factors: tuple[Factor, ...]
    effects: pd.DataFrame
    runs: int
    cells: int
    runs_per_cell: tuple[int, int]  # (fewest, most)
    blocks: tuple[str, ...] = ()
    aliased: dict[str, str] = field(default_factory=dict)  # left-out factor's label -> the label it equals
    anova: pd.DataFrame | None = None
    lenth: Lenth | None = None
    residual_df: float | None = None
    reason: str = ""  # for ``none``: why there is no interval
    level: float = 0.95

    @property
    def figure(self) -> vocabulary.Metric:
        """The metric's entry in the vocabulary: its name, unit and better direction."""
        return vocabulary.metric(self.metric)

    def main(self) -> pd.DataFrame:
        """The main effects' rows."""
        return self.effects[self.effects["order"] == 1]

    def interactions(self) -> pd.DataFrame:
        """The two-factor interactions' rows."""
        return self.effects[self.effects["order"] == 2]


def lenth(effects: Sequence[float], level: float = 0.95) -> Lenth:
    """Lenth's (1989) PSE of ``effects`` (the m estimated contrasts of an unreplicated 2^k) with its margin of
    error t(level; m/3) PSE and simultaneous margin t(gamma; m/3) PSE, gamma = (1 + level^(1/m)) / 2."""
    from scipy import stats

    sizes = [abs(float(e)) for e in effects]
    m = len(sizes)
    if m < 2:
        raise ValueError(f"Lenth's method needs at least 2 effects, got {m}")
    s0 = 1.5 * statistics.median(sizes)
    trimmed = [s for s in sizes if s < 2.5 * s0]
    pse = 1.5 * statistics.median(trimmed) if trimmed else 0.0  # every effect 0: no spread at all
    df = m / 3.0
    gamma = (1.0 + level ** (1.0 / m)) / 2.0
    me = float(stats.t.ppf((1.0 + level) / 2.0, df)) * pse
    sme = float(stats.t.ppf(gamma, df)) * pse
    return Lenth(pse=pse, df=df, me=me, sme=sme, m=m, level=level)


def half_normal(analysis: FactorialAnalysis) -> pd.DataFrame:
    """The points of a half-normal plot of the analysis's effects: term, label, order, effect, size (|effect|)
    sorted ascending, quantile (the half-normal quantile of (i - 0.5) / m, scipy's), resolved."""
    from scipy import stats

    table = analysis.effects.dropna(subset=["effect"])
    table = table.assign(size=table["effect"].abs()).sort_values("size", kind="stable")
    m = len(table)
    quantiles = stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m) if m else np.array([])
    columns = ["term", "label", "order", "effect", "size", "resolved"]
    return table[columns].assign(quantile=quantiles).reset_index(drop=True)


def analyse(frame: pd.DataFrame, metric: str = "box AP", level: float = 0.95) -> FactorialAnalysis:
    """The factorial analysis of ``metric`` (a vocabulary name such as 'box AP', or a store column) over
    the runs of ``frame`` (one design; see the module), in the metric's display unit."""
    if not 0.0 < level < 1.0:
        raise InputError(f"level: a confidence level is between 0 and 1, got {level}", argument="level")
    try:
        figure = vocabulary.metric(metric)
    except ValueError as error:
        raise InputError(f"metric: {error}", argument="metric") from None
    for column, things in (("sweep", "sweeps"), ("source", "sources")):
        held = sorted({str(v) for v in column_values(frame, column) if v is not None})
        if len(held) > 1:
            raise InputError(
                f"the runs are of {len(held)} {things} ({', '.join(held)}): an analysis is of one design; "
                f"pass the runs of one of them"
            )
    if figure.column == "memory_gb":
        check_one_memory_kind(frame)
    if figure.column not in frame:
        have = ", ".join(str(c) for c in frame.columns) or "none"
        raise InputError(f"metric: the frame has no column {figure.column!r}; its columns: {have}")
    values = frame[figure.column].to_numpy(dtype=np.float64, na_value=np.nan) * figure.scale
    rows = frame.assign(**{figure.column: values})
    design = _Design.of(rows[np.isfinite(values) & _factors_known(frame)], figure.column)
    if not design.factors:
        return design.result(level, "none", _empty(), reason=design.why_no_factor())
    if design.replicated:
        return design.ols(level, "replicates", design.k if design.complete else 2)
    if design.complete and not design.blocks and 2**design.k - 1 >= _LENTH_MIN:
        return design.lenth(level)
    return design.ols(level, "pooled", 2)


# --- the design --------------------------------------------------------------------------------------------


def _factors_known(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    known = np.ones(len(frame), dtype=bool)
    for column in FACTOR_COLUMNS:
        if column in frame.columns:
            known &= frame[column].notna().to_numpy(dtype=bool)
    return known


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_DTYPES.get(c, "float64")) for c in EFFECT_COLUMNS})


_DTYPES = {
    "term": "object",
    "label": "object",
    "order": "int64",
    "resolved": "boolean",
    "simultaneous": "boolean",
}


@dataclass
class _Design:
    """The runs of one design coded for the model: ``data`` holds y, a ±1 column per factor (named by its
    term) and a column per block (b0, b1, ...)."""

    metric: str
    data: pd.DataFrame
    factors: tuple[Factor, ...]
    blocks: tuple[str, ...]  # the blocks' names as tables head them (data's b0, b1, ... in order)
    aliased: dict[str, str]

    @classmethod
    def of(cls, rows: pd.DataFrame, metric: str) -> _Design:
        data = pd.DataFrame({"y": rows[metric].to_numpy(dtype=np.float64)})
        factors: list[Factor] = []
        aliased: dict[str, str] = {}
        blocks: list[str] = []
        candidates: list[tuple[str, str, object, object]] = [
            (c, factor_label(c), False, True) for c in FACTOR_COLUMNS if c in rows.columns
        ]
        axes = sorted(str(c) for c in rows.columns if is_axis_column(str(c)))
        shown = short_names(axes)
        for column in axes:
            levels = [scalar(v) for v in column_values(rows, column)]
            distinct = sorted({_key(v): v for v in levels if v is not None}.items(), key=_order)
            if len(distinct) == 2 and all(v is not None for v in levels):
                (_, low), (_, high) = distinct
                candidates.append((column, f"{shown[column]} {_text(low)}→{_text(high)}", low, high))
            elif len(distinct) > 1 or (distinct and any(v is None for v in levels)):
                data[f"b{len(blocks)}"] = [_text(v) for v in levels]
                blocks.append(shown[column])
        for column, label, low, high in candidates:
            raw = [scalar(v) for v in column_values(rows, column)]
            coded = np.array([1.0 if _key(v) == _key(high) else -1.0 for v in raw])
            if len(np.unique(coded)) < 2:  # one level among the runs: not a factor of this design
                continue
            twin = next(
                (f for f in factors if abs(float(coded @ data[f.term].to_numpy())) == len(coded)), None
            )
            if twin is not None:
                aliased[label] = twin.label
                continue
            term = f"f{len(factors)}"
            data[term] = coded
            factors.append(Factor(column=column, term=term, label=label, low=low, high=high))
        return cls(metric, data, tuple(factors), tuple(blocks), aliased)

    @property
    def k(self) -> int:
        return len(self.factors)

    @functools.cached_property
    def cell_sizes(self) -> pd.Series:
        keys = [f.term for f in self.factors] + [f"b{i}" for i in range(len(self.blocks))]
        return self.data.groupby(keys, sort=False).size() if keys else pd.Series([len(self.data)])

    @property
    def replicated(self) -> bool:
        return bool((self.cell_sizes > 1).any())

    @property
    def complete(self) -> bool:
        terms = [f.term for f in self.factors]
        return bool(len(self.data[terms].drop_duplicates()) == 2**self.k)

    def why_no_factor(self) -> str:
        if self.data.empty:
            return f"no run has a {self.metric} figure and known factors"
        return "no factor has both its levels among the runs"

    def terms(self, order: int) -> list[tuple[Factor, ...]]:
        return [combo for size in range(1, order + 1) for combo in itertools.combinations(self.factors, size)]

    def result(self, level: float, method: str, effects: pd.DataFrame, **extra: Any) -> FactorialAnalysis:
        sizes = self.cell_sizes
        description = extra.pop("description", "")
        return FactorialAnalysis(
            metric=self.metric,
            method=method,
            description=description or extra.get("reason", ""),
            factors=self.factors,
            effects=effects,
            runs=len(self.data),
            cells=len(sizes) if len(self.data) else 0,
            runs_per_cell=(int(sizes.min()), int(sizes.max())) if len(self.data) else (0, 0),
            blocks=self.blocks,
            aliased=self.aliased,
            level=level,
            **extra,
        )

    # --- the methods ---------------------------------------------------------------------------------------

    def ols(self, level: float, method: str, order: int) -> FactorialAnalysis:
        """OLS of the model with the interactions up to ``order`` (falling back to main effects alone where
        that model cannot be estimated); intervals where the residual has degrees of freedom."""
        import statsmodels.formula.api as smf

        fit, used = None, order
        for used in sorted({min(order, self.k), 1}, reverse=True):
            model = smf.ols(self._formula(used), data=self.data)
            if np.linalg.matrix_rank(model.exog) == model.exog.shape[1]:
                fit = model.fit()
                break
        if fit is None:
            blocks = ", ".join(self.blocks)
            within = f" from each other and from the blocks ({blocks})" if self.blocks else " from each other"
            reason = f"the factors' effects cannot be separated{within} with these runs"
            return self.result(level, "none", _empty(), reason=reason)
        combos = self.terms(used)
        effects = self._table(combos, 2.0 * fit.params[[_name(c) for c in combos]].to_numpy(np.float64))
        model = _model_words(used, self.k)
        blocked = f" + blocks ({', '.join(self.blocks)})" if self.blocks else ""
        if fit.df_resid <= 0:
            reason = f"{model}{blocked} leaves no residual degrees of freedom to estimate the error from"
            return self.result(level, "none", effects, reason=reason)
        names = [_name(c) for c in combos]
        bounds = 2.0 * fit.conf_int(alpha=1.0 - level).loc[names].to_numpy(dtype=np.float64)
        effects["se"] = 2.0 * fit.bse[names].to_numpy(dtype=np.float64)
        effects["low"], effects["high"] = bounds[:, 0], bounds[:, 1]
        effects["df"] = float(fit.df_resid)
        effects["p"] = fit.pvalues[names].to_numpy(dtype=np.float64)
        effects["resolved"] = pd.array((bounds[:, 0] > 0.0) | (bounds[:, 1] < 0.0), dtype="boolean")
        source = (
            "the replicates' pure error"
            if used == self.k and self.complete
            else "the residual, which pools the omitted interactions"
            + (" and the replicates" if self.replicated else "")
        )
        lo, hi = int(self.cell_sizes.min()), int(self.cell_sizes.max())
        per_cell = f"{lo} per cell" if lo == hi else f"{lo}-{hi} per cell"
        description = (
            f"OLS of {model}{blocked} on {len(self.data)} runs ({per_cell}); {level:.0%} t intervals with "
            f"{fit.df_resid:g} residual degrees of freedom, the error from {source}."
        )
        return self.result(
            level,
            method,
            effects,
            anova=self._anova(fit),
            residual_df=float(fit.df_resid),
            description=description,
        )

    def lenth(self, level: float) -> FactorialAnalysis:
        """All 2^k - 1 effects of the unreplicated complete design, with Lenth's PSE for their intervals."""
        combos = self.terms(self.k)
        y = self.data["y"].to_numpy()
        half = len(y) / 2.0
        estimates = np.array([float(self._column(c) @ y) / half for c in combos])
        found = lenth(estimates.tolist(), level)
        effects = self._table(combos, estimates)
        effects["se"] = found.pse
        effects["low"], effects["high"] = estimates - found.me, estimates + found.me
        effects["df"] = found.df
        effects["resolved"] = pd.array(np.abs(estimates) > found.me, dtype="boolean")
        effects["simultaneous"] = pd.array(np.abs(estimates) > found.sme, dtype="boolean")
        unit = vocabulary.metric(self.metric).unit
        description = (
            f"Lenth's method on the {len(combos)} effects of the unreplicated 2^{self.k} design "
            f"({len(y)} runs, one per cell): PSE {found.pse:.3g} {unit}, margin of error {found.me:.3g} "
            f"{unit} (t with {found.df:g} df), simultaneous margin {found.sme:.3g} {unit}."
        )
        return self.result(level, "lenth", effects, lenth=found, description=description)

    # --- helpers -------------------------------------------------------------------------------------------

    def _formula(self, order: int) -> str:
        terms = [_name(c) for c in self.terms(order)]
        terms += [f"C(b{i})" for i in range(len(self.blocks))]
        return "y ~ " + " + ".join(terms)

    def _column(self, combo: tuple[Factor, ...]) -> npt.NDArray[np.float64]:
        product = np.ones(len(self.data))
        for factor in combo:
            product = product * self.data[factor.term].to_numpy()
        return product

    def _table(self, combos: list[tuple[Factor, ...]], estimates: npt.NDArray[np.float64]) -> pd.DataFrame:
        n = len(combos)
        table = pd.DataFrame(
            {
                "term": [":".join(f.column for f in c) for c in combos],
                "label": [" x ".join(f.label for f in c) for c in combos],
                "order": np.array([len(c) for c in combos], dtype=np.int64),
                "effect": estimates.astype(np.float64),
                **{name: np.full(n, np.nan) for name in ("se", "low", "high", "df", "p")},
                "resolved": pd.array([None] * n, dtype="boolean"),
                "simultaneous": pd.array([None] * n, dtype="boolean"),
            }
        )
        return table

    def _anova(self, fit: Any) -> pd.DataFrame:
        from statsmodels.stats.anova import anova_lm

        try:
            table = anova_lm(fit, typ=2)
        except (ValueError, np.linalg.LinAlgError):  # a design type 2 cannot take: sequential sums of squares
            table = anova_lm(fit, typ=1)
        labels = {_name(c): " x ".join(f.label for f in c) for c in self.terms(self.k)}
        labels |= {f"C(b{i})": f"block: {name}" for i, name in enumerate(self.blocks)}
        table.index = [labels.get(str(i), str(i)) for i in table.index]
        return table


def _name(combo: tuple[Factor, ...]) -> str:
    return ":".join(f.term for f in combo)


def _model_words(order: int, k: int) -> str:
    if order >= k:
        return f"the full 2^{k} factorial"
    return "the main effects and two-factor interactions" if order == 2 else "the main effects"


def _key(value: object) -> str:
    """A level's identity (lists, as the store holds the stages, included): its JSON text."""
    return json.dumps(value, sort_keys=True)


def _order(item: tuple[str, object]) -> tuple[int, float, str]:
    """Levels in order: false before true, numbers by value, anything else by its text."""
    key, value = item
    if isinstance(value, int | float):
        return (0, float(value), key)
    return (1, 0.0, key)


def _text(value: object) -> str:
    return "none" if value is None else str(value)
