"""The factorial analysis of a sweep's grid: its effects with their uncertainty, and which method gave it.

The design (``ablation.analysis.design``): the two-level factors that cross every run (the four attention
factors of the code, DCN, and any two-valued axis set on every cell), and the *settings*: axes with more
values or set on some cells only (an attention setting such as kv_stride has no value on the 0000 cells),
each nested within the runs it is set on. The model's terms, in this order of priority: the factors' main
effects and interactions (up to the order the method says), the settings' main effects, each setting's
interaction with each factor that varies within its scope, and the settings' interactions with each other.
A setting term the runs cannot separate from the terms before it is left out and named (``inseparable``).

An effect is the classical 2^k effect, the mean response at the high level minus at the low level, in the
metric's display unit (``ablation.vocabulary``: box AP in AP points, FLOPs in GFLOPs), as are the intervals,
Lenth's PSE and margins and the ANOVA's sums of squares. A setting's effect is a level's mean minus its
reference level's (its first, as sorted) within the cells it is set on; its interaction with a factor, half
the difference between its effect at the factor's high and low levels. Each is a contrast of the least-
squares coefficients (statsmodels' OLS and its ``t_test``; patsy's sum-to-zero coding of the settings).

The method, from the data (``FactorialAnalysis.method``):

- ``replicates``: some cell (a combination of the factors' and settings' levels) has more than one run.
  The model holds the full factorial of the factors where every combination of the factors has a run,
  else their main effects and two-factor interactions, and the setting terms. The error is the residual:
  the replicates' pure error where the model has a coefficient per cell, else also whatever the omitted
  interactions explain. Standard errors and 95% intervals are t intervals with the residual degrees of
  freedom; the ANOVA table is statsmodels' ``anova_lm`` (type 2).
- ``lenth``: one run per cell of a complete 2^k design (k >= 3, no setting). All m = 2^k - 1 effects are
  estimated, and Lenth's (1989) pseudo standard error stands in for the missing error: s0 = 1.5
  median|c|, PSE = 1.5 median{|c| : |c| < 2.5 s0}; the margin of error ME = t(0.975; m/3) PSE, the
  simultaneous margin SME = t(gamma; m/3) PSE with gamma = (1 + 0.95^(1/m)) / 2. An effect's interval is
  effect ± ME; it is resolved when |effect| > ME, and holds simultaneously (over all m effects) when
  |effect| > SME. The method is conservative: under pure noise ME flags 3.0% of null effects at m = 15 and
  3.8% at m = 31, not 5% (tests/test_effects.py).
- ``pooled``: one run per cell, but not a design Lenth's method fits (incomplete, with settings, or
  k < 3): the factors' main effects and two-factor interactions and the setting terms by OLS, the error
  pooled from the omitted interactions.
- ``none``: the effects without intervals, where no error can be estimated (``reason`` says why).

Quantiles are scipy's (``scipy.stats``). Pass the runs of one design: ``latest_runs`` of one sweep and one
source; a frame of several sweeps or sources is refused (InputError naming them), since their runs are not
replicates of one another. A run whose metric is missing or whose factors are unknown is left out.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ablation import vocabulary
from ablation.analysis.design import Design, Factor, Setting, Term, centred
from ablation.analysis.numbers import FACTOR_COLUMNS, check_one_memory_kind
from ablation.errors import InputError
from ablation.results.latest import column_values
from ablation.results.records import screen_frame

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
    "kind",
    "within",
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

    ``effects`` has EFFECT_COLUMNS, one row per estimated effect (main effects first, the factors' then the
    settings', then the interactions): ``kind`` 'factor' (factors only) or 'setting' (a setting in it);
    ``within`` the cells it is measured in ('every cell', 'the cells with attention'); ``effect`` in the
    metric's display unit (``figure.unit``); ``se``, ``low``/``high`` (the 95% interval), ``df`` and ``p``
    where the method gives them (NaN otherwise); ``resolved`` whether the interval excludes 0 (Lenth:
    |effect| > ME; NA without interval); ``simultaneous`` (Lenth only: |effect| > SME). ``anova`` is the
    ANOVA table of an OLS method (index: the terms' labels; sum_sq, df, F, PR(>F)); ``lenth`` the
    PSE/ME/SME of the ``lenth`` method."""

    metric: str  # the store column of the metric (``figure`` is its vocabulary entry)
    method: str
    description: str  # one sentence: the method, its model and where its error comes from
    factors: tuple[Factor, ...]
    effects: pd.DataFrame
    runs: int
    cells: int
    runs_per_cell: tuple[int, int]  # (fewest, most)
    settings: tuple[Setting, ...] = ()
    aliased: dict[str, str] = field(default_factory=dict)  # left-out factor's label -> the label it equals
    inseparable: tuple[str, ...] = ()  # setting terms the runs cannot separate from the terms before them
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
        """The factors' main effects' rows."""
        return self.effects[(self.effects["order"] == 1) & (self.effects["kind"] == "factor")]

    def interactions(self) -> pd.DataFrame:
        """The factors' two-factor interactions' rows."""
        return self.effects[(self.effects["order"] == 2) & (self.effects["kind"] == "factor")]

    def of_setting(self, setting: Setting) -> pd.DataFrame:
        """The rows of ``setting``'s effects: its levels against its reference, then its interactions."""
        terms = self.effects["term"].astype(str).str.split(":")
        mine = terms.map(lambda parts: any(p.split("=")[0] == setting.column for p in parts))
        return self.effects[mine.to_numpy(dtype=bool)]


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
    the runs of ``frame`` (one design; see the module), in the metric's display unit. A figure that is not
    a finite number in its valid range is read as missing, with a ``BadFigureWarning`` naming it."""
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
    frame, _ = screen_frame(frame, warn=True)
    from threadpoolctl import threadpool_limits

    values = frame[figure.column].to_numpy(dtype=np.float64, na_value=np.nan) * figure.scale
    rows = frame.assign(**{figure.column: values})
    fit = _Fit(Design.of(rows[np.isfinite(values) & _factors_known(frame)], figure.column), level)
    # One BLAS thread: the model's matrices are small (10,000 runs x 110 columns: a QR of 0.07 s), and two
    # threads beside another busy process took 1-2.5 s for it (OpenBLAS's threads wait by spinning).
    with threadpool_limits(limits=1, user_api="blas"):
        return _method(fit)


def _method(fit: _Fit) -> FactorialAnalysis:
    """The analysis of the coded design by the method its runs call for (see the module)."""
    design = fit.design
    if not design.factors and not design.settings:
        return fit.result("none", _empty(), reason=fit.why_no_factor())
    if design.replicated:
        return fit.ols("replicates", design.k if design.complete else 2)
    if design.complete and not design.settings and 2**design.k - 1 >= _LENTH_MIN:
        return fit.lenth()
    return fit.ols("pooled", 2)


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
    "kind": "object",
    "within": "object",
    "resolved": "boolean",
    "simultaneous": "boolean",
}


@dataclass
class _Fit:
    """The methods over one coded design."""

    design: Design
    level: float

    def why_no_factor(self) -> str:
        if self.design.data.empty:
            return f"no run has a {self.design.metric} figure and known factors"
        return "no factor or setting has two levels among the runs"

    def result(self, method: str, effects: pd.DataFrame, **extra: Any) -> FactorialAnalysis:
        design, sizes = self.design, self.design.cell_sizes
        description = extra.pop("description", "")
        return FactorialAnalysis(
            metric=design.metric,
            method=method,
            description=description or extra.get("reason", ""),
            factors=design.factors,
            settings=design.settings,
            effects=effects,
            runs=len(design.data),
            cells=len(sizes) if len(design.data) else 0,
            runs_per_cell=(int(sizes.min()), int(sizes.max())) if len(design.data) else (0, 0),
            aliased=design.aliased,
            level=self.level,
            **extra,
        )

    # --- the model -----------------------------------------------------------------------------------------

    def terms(self, order: int) -> tuple[list[Term], list[str], int]:
        """The model's terms: the factors' up to ``order`` (lower where that cannot be estimated), then each
        setting term that adds to what the terms before it span (rank over the cells); the labels of those
        that do not, and the factors' order used."""
        design = self.design
        rows = ~design.data[[m.term for m in design.members]].duplicated().to_numpy(dtype=bool)
        codes = {term: coded[rows] for term, coded in design.codes.items()}  # a row per cell
        intercept = np.ones((int(rows.sum()), 1))
        used, base, matrix = 1, [], intercept
        for used in sorted({min(order, design.k), 1}, reverse=True):
            base = design.factor_terms(used)
            matrix = np.hstack([intercept, *(t.columns(codes) for t in base)])
            if np.linalg.matrix_rank(matrix) == matrix.shape[1]:
                break
        else:
            return [], [], 0
        settings = [t for t in design.setting_terms() if self._varies(t)]
        columns = [t.columns(codes) for t in settings]
        whole = np.hstack([matrix, *columns])
        if np.linalg.matrix_rank(whole) == whole.shape[1]:  # as a grid of crossed settings is: one check
            return [*base, *settings], [], used
        kept, inseparable, dropped = list(base), [], set[str]()
        for term, found in zip(settings, columns, strict=True):
            if dropped & {m.term for m in term.members}:
                continue  # a term of a setting already left out
            candidate = np.hstack([matrix, found])
            if np.linalg.matrix_rank(candidate) == candidate.shape[1]:
                kept.append(term)
                matrix = candidate
            else:
                inseparable.append(term.label)
                if term.order == 1:
                    dropped.add(term.members[0].term)
        return kept, inseparable, used

    def _varies(self, term: Term) -> bool:
        """Whether each factor of a setting's interaction varies within the setting's scope (a DCN setting's
        interaction with DCN is no term of the design), and two settings are set on common runs."""
        settings = [m for m in term.members if isinstance(m, Setting)]
        present = np.ones(len(self.design.data), dtype=bool)
        for setting in settings:
            present &= self.design.present(setting)
        if not present.any():
            return False
        return all(
            len(np.unique(self.design.codes[m.term][present, 0])) > 1
            for m in term.members
            if isinstance(m, Factor)
        )

    # --- the methods ---------------------------------------------------------------------------------------

    def ols(self, method: str, order: int) -> FactorialAnalysis:
        """OLS of the model with the factors' interactions up to ``order`` (falling back to main effects
        alone where that model cannot be estimated) and the setting terms; intervals where the residual has
        degrees of freedom."""
        import statsmodels.formula.api as smf

        design = self.design
        terms, inseparable, used = self.terms(order)
        if not terms:
            reason = "the factors' effects cannot be separated from each other with these runs"
            return self.result("none", _empty(), reason=reason)
        formula = "y ~ " + " + ".join(t.name for t in terms)
        fit = smf.ols(formula, data=design.data, eval_env=design.namespace()).fit(method="qr")
        names = {m.formula: m.term for m in design.members}
        names |= {centred(f, s): f.term for f in design.factors for s in design.settings}
        weights, rows = _weights(terms, list(fit.params.index), names)
        effects = _table(rows, weights @ fit.params.to_numpy(np.float64))
        model = self._model_words(used)
        extra: dict[str, Any] = {"inseparable": tuple(inseparable)}
        if fit.df_resid <= 0:
            reason = f"{model}: no residual degrees of freedom are left to estimate the error from"
            return self.result("none", effects, reason=reason, **extra)
        tested = fit.t_test(weights).summary_frame(alpha=1.0 - self.level)
        low, high = tested.iloc[:, 4].to_numpy(np.float64), tested.iloc[:, 5].to_numpy(np.float64)
        effects["se"] = tested["std err"].to_numpy(np.float64)
        effects["low"], effects["high"] = low, high
        effects["df"] = float(fit.df_resid)
        effects["p"] = tested["P>|t|"].to_numpy(np.float64)
        effects["resolved"] = pd.array((low > 0.0) | (high < 0.0), dtype="boolean")
        saturated = round(fit.df_model) + 1 == len(design.cell_sizes)
        source = (
            "the replicates' pure error"
            if saturated and design.replicated
            else "the residual, which pools the omitted interactions"
            + (" and the replicates" if design.replicated else "")
        )
        lo, hi = int(design.cell_sizes.min()), int(design.cell_sizes.max())
        per_cell = f"{lo} per cell" if lo == hi else f"{lo}-{hi} per cell"
        description = (
            f"OLS of {model} on {len(design.data)} runs ({per_cell}); {self.level:.0%} t intervals with "
            f"{fit.df_resid:g} residual degrees of freedom, the error from {source}."
        )
        return self.result(
            method,
            effects,
            anova=self._anova(fit, terms),
            residual_df=float(fit.df_resid),
            description=description,
            **extra,
        )

    def lenth(self) -> FactorialAnalysis:
        """All 2^k - 1 effects of the unreplicated complete design, with Lenth's PSE for their intervals."""
        design = self.design
        terms = design.factor_terms(design.k)
        y = design.data["y"].to_numpy()
        half = len(y) / 2.0
        estimates = np.array([float(t.columns(design.codes)[:, 0] @ y) / half for t in terms])
        found = lenth(estimates.tolist(), self.level)
        effects = _table([(t, t.contrasts()[0]) for t in terms], estimates)
        effects["se"] = found.pse
        effects["low"], effects["high"] = estimates - found.me, estimates + found.me
        effects["df"] = found.df
        effects["resolved"] = pd.array(np.abs(estimates) > found.me, dtype="boolean")
        effects["simultaneous"] = pd.array(np.abs(estimates) > found.sme, dtype="boolean")
        unit = vocabulary.metric(design.metric).unit
        description = (
            f"Lenth's method on the {len(terms)} effects of the unreplicated 2^{design.k} design "
            f"({len(y)} runs, one per cell): PSE {found.pse:.3g} {unit}, margin of error {found.me:.3g} "
            f"{unit} (t with {found.df:g} df), simultaneous margin {found.sme:.3g} {unit}."
        )
        return self.result("lenth", effects, lenth=found, description=description)

    # --- helpers -------------------------------------------------------------------------------------------

    def _model_words(self, order: int) -> str:
        k = self.design.k
        if not k:
            words = "the settings"
        elif order >= k:
            words = f"the full 2^{k} factorial"
        else:
            words = "the main effects and two-factor interactions" if order == 2 else "the main effects"
        nesting = self.design.nesting_words()
        if not nesting:
            return words
        return f"{words}, with {nesting} (their effects, and their interactions with the factors)"

    def _anova(self, fit: Any, terms: list[Term]) -> pd.DataFrame:
        from statsmodels.stats.anova import anova_lm

        try:
            table = anova_lm(fit, typ=2)
        except (ValueError, np.linalg.LinAlgError):  # a design type 2 cannot take: sequential sums of squares
            table = anova_lm(fit, typ=1)
        labels = {frozenset(t.name.split(":")): t.label for t in terms}
        table.index = [labels.get(frozenset(str(i).split(":")), str(i)) for i in table.index]
        return table


def _weights(
    terms: list[Term], params: list[str], names: dict[str, str]
) -> tuple[npt.NDArray[np.float64], list[tuple[Term, tuple[str, str, tuple[int, ...]]]]]:
    """A row of weights over the fit's parameters (``params``: 'f0', 'C(s0, ...)[1]:f2', ...; ``names``
    maps a member's formula to its term) per effect of the terms, and the (term, contrast) of each row."""
    parsed = [_parts(name, names) for name in params]
    rows, weights = [], []
    for term in terms:
        members = {m.term for m in term.members}
        for contrast in term.contrasts():
            row = np.zeros(len(params))
            for i, parts in enumerate(parsed):
                if parts is not None and set(parts) == members:
                    row[i] = term.weight(contrast[2], parts)
            rows.append((term, contrast))
            weights.append(row)
    return np.array(weights), rows


def _parts(name: str, names: dict[str, str]) -> dict[str, int] | None:
    """A parameter's members and the coding column of each: 'C(s0, ...)[1]:f2' -> {'s0': 1, 'f2': 0}."""
    if name == "Intercept":
        return None
    found = {}
    for part in name.split(":"):
        base, bracket, index = part.rpartition("[") if part.endswith("]") else (part, "", "")
        found[names[base]] = int(index.rstrip("]")) if bracket else 0
    return found


def _table(
    rows: list[tuple[Term, tuple[str, str, tuple[int, ...]]]], estimates: npt.NDArray[np.float64]
) -> pd.DataFrame:
    n = len(rows)
    return pd.DataFrame(
        {
            "term": [contrast[0] for _, contrast in rows],
            "label": [contrast[1] for _, contrast in rows],
            "order": np.array([term.order for term, _ in rows], dtype=np.int64),
            "kind": [term.kind for term, _ in rows],
            "within": [term.within for term, _ in rows],
            "effect": estimates.astype(np.float64),
            **{name: np.full(n, np.nan) for name in ("se", "low", "high", "df", "p")},
            "resolved": pd.array([None] * n, dtype="boolean"),
            "simultaneous": pd.array([None] * n, dtype="boolean"),
        }
    )
