"""The replicates of a cell, and what they estimate: a mean with its 95% interval, or a difference of means.

A sweep with ``[grid] seeds`` runs every cell once per seed; those runs (the cell's replicates) share its
name and its ``cell_id``. ``replicate_groups`` gathers the shown runs (:func:`latest_runs`: the latest done
run of each seed, of the cell's current config) into one group per (sweep, source, cell); an unseeded cell's
group holds its one run.

``estimate`` gives the mean of a group's figures, their sample standard deviation (ddof=1) and the 95%
confidence interval of the mean from Student's t with n-1 degrees of freedom. ``difference`` gives mean(a) -
mean(b) with Welch's interval (unequal variances, Welch-Satterthwaite degrees of freedom). The quantiles are
scipy's (``scipy.stats.t``'s), each worked out once per level and degrees of freedom. The mean and sd are
exact, rounded once, as ``statistics.mean`` and ``statistics.stdev`` give them, by integer arithmetic on
the floats' exact values (``statistics`` itself costs 30 µs an estimate: seconds over the 10,000 figures of
a big sweep). Where the spread cannot be told (one value, or a side of a difference with one
value) the interval is None; where the values do not vary at all it is the mean alone (low = high = mean).
The results table (:mod:`ablation.results.table`) and the dashboard share these.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ablation.results.latest import GROUP, column_values, latest_runs, plain_values, seed_of
from ablation.results.records import is_axis_column, screen_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GROUP",
    "IDENTITY",
    "SPREADS",
    "Estimate",
    "ReplicateGroup",
    "difference",
    "estimate",
    "replicate_groups",
]

SPREADS = ("ci", "sd")  # what ± shows: the half-width of the mean's 95% interval, or the sample sd
# The columns that say which cell a group is (its first row's), before the axis columns.
IDENTITY = (
    "sweep",
    "source",
    "cell",
    "cell_id",
    "code",
    "dcn",
    "backbone",
    "schedule",
    "dataset",
    "attention_module",
    "attention_impl",
)


@dataclass(frozen=True)
class Estimate:
    """A mean of ``n`` values with its spread and its interval (``level``, 95% unless told).

    Of one sample (``estimate``): ``sd`` is the sample sd (ddof=1) and [low, high] the interval of the mean
    (Student's t, n-1 df); both None when n < 2. Of a difference (``difference``): ``mean`` is mean(a) -
    mean(b), ``n`` the smaller side's count, ``sd`` None, ``se`` the difference's standard error and [low,
    high] Welch's interval, None when a side has n < 2. ``df`` is the t distribution's degrees of freedom."""

    mean: float
    n: int
    sd: float | None  # sample sd (ddof=1); None when n < 2
    low: float | None  # 95% interval: of the mean (Student t, n-1 df) / of a difference (Welch)
    high: float | None  # None when it cannot be computed (n < 2, or a side of a difference has n < 2)
    se: float | None = None  # standard error of the mean (or of the difference); None when n < 2
    df: float | None = None  # the degrees of freedom of the interval's t; None without interval

    def half(self, spread: str = "ci") -> float | None:
        """What ± shows: ``ci`` the interval's half-width, ``sd`` the sample sd (None for a difference)."""
        if spread == "ci":
            return None if self.low is None or self.high is None else (self.high - self.low) / 2.0
        if spread == "sd":
            return self.sd
        raise ValueError(f"unknown spread {spread!r}; valid spreads: {', '.join(SPREADS)}")

    @property
    def resolved(self) -> bool | None:
        """Whether the interval excludes 0 (a difference the replicates resolve); None without interval."""
        if self.low is None or self.high is None:
            return None
        return not self.low <= 0.0 <= self.high


@functools.lru_cache(maxsize=1024)
def _quantile(level: float, df: float) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom: scipy's
    ``stdtrit``, the function ``scipy.stats.t.ppf`` returns (without importing scipy.stats, a second)."""
    from scipy import special

    if not 0.0 < level < 1.0:
        raise ValueError(f"a confidence level is between 0 and 1, got {level}")
    return float(special.stdtrit(df, (1.0 + level) / 2.0))


def _numbers(values: Sequence[float], what: str) -> list[float]:
    numbers = [float(v) for v in values]
    if not numbers:
        raise ValueError(f"{what}: no values")
    if not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{what}: a value is not a finite number")
    return numbers


def estimate(values: Sequence[float], level: float = 0.95) -> Estimate:
    """The mean of ``values`` with its sample sd and its ``level`` interval (Student's t, n-1 df)."""
    numbers = _numbers(values, "estimate")
    n, (mean, sd) = len(numbers), _moments(numbers)  # exact: the mean of equal values is that value
    if sd is None:
        return Estimate(mean=mean, n=n, sd=None, low=None, high=None)
    se = sd / math.sqrt(n)
    half = _quantile(level, n - 1) * se
    return Estimate(mean=mean, n=n, sd=sd, low=mean - half, high=mean + half, se=se, df=float(n - 1))


def _moments(numbers: Sequence[float]) -> tuple[float, float | None]:
    """The mean and the sample sd (ddof=1; None for one value) of finite floats, each the exact value rounded
    once to a float: what ``statistics.mean`` and ``statistics.stdev`` return, for a tenth of their cost.

    Every float is an integer over a power of two, so over the largest of those denominators (``scale``)
    the values are integers ``P``: the mean is ``sum(P) / (n * scale)`` (Python's int division rounds
    correctly) and the variance ``(n * sum(P²) - sum(P)²) / (n * (n - 1) * scale²)``, whose square root is
    rounded as ``statistics`` rounds it (:func:`_sqrt_of_fraction`)."""
    ratios = [v.as_integer_ratio() for v in numbers]
    scale = max(q for _, q in ratios)
    ints = [p * (scale // q) for p, q in ratios]
    n, total = len(ints), sum(ints)
    mean = total / (n * scale)
    if n < 2:
        return mean, None
    top = n * sum(i * i for i in ints) - total * total
    bottom = n * (n - 1) * scale * scale
    common = math.gcd(top, bottom)  # as statistics has it: the fraction in lowest terms
    return mean, _sqrt_of_fraction(top // common, bottom // common)


_SQRT_BITS = 2 * 53 + 3  # statistics' _sqrt_bit_width for floats


def _sqrt_of_fraction(n: int, m: int) -> float:
    """The square root of n/m as a float, correctly rounded: ``statistics._float_sqrt_of_frac``'s method
    (round to odd with 2 bits beyond a float's 53, then one rounding; https://bugs.python.org/msg407078)."""
    q = (n.bit_length() - m.bit_length() - _SQRT_BITS) // 2
    if q >= 0:
        return (_isqrt_of_fraction_rto(n, m << 2 * q) << q) / 1
    return _isqrt_of_fraction_rto(n << -2 * q, m) / (1 << -q)


def _isqrt_of_fraction_rto(n: int, m: int) -> int:
    """The integer square root of n/m, rounded to odd (statistics' ``_integer_sqrt_of_frac_rto``)."""
    a = math.isqrt(n // m)
    return a | (a * a * m != n)


def difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """mean(a) - mean(b) with Welch's ``level`` interval (unequal variances; None when a side has n < 2)."""
    left, right = _numbers(a, "difference"), _numbers(b, "difference")
    mean = statistics.mean(left) - statistics.mean(right)
    n = min(len(left), len(right))
    if n < 2:
        return Estimate(mean=mean, n=n, sd=None, low=None, high=None)
    va, vb = statistics.variance(left) / len(left), statistics.variance(right) / len(right)
    se = math.sqrt(va + vb)
    if se == 0.0:  # neither side varies: the interval is the difference itself
        return Estimate(mean=mean, n=n, sd=None, low=mean, high=mean, se=0.0, df=None)
    # Welch-Satterthwaite: the degrees of freedom of the difference's t
    df = (va + vb) ** 2 / (va**2 / (len(left) - 1) + vb**2 / (len(right) - 1))
    half = _quantile(level, df) * se
    return Estimate(mean=mean, n=n, sd=None, low=mean - half, high=mean + half, se=se, df=df)


class _Columns:
    """The shown runs' columns as plain Python values, each read once for all the groups (reading a column
    of a group's own rows costs more than the group's arithmetic)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._plain: dict[str, list[object]] = {}

    def plain(self, column: str) -> list[object]:
        """The column's values as plain Python (``scalar``; all None without the column)."""
        if column not in self._plain:
            self._plain[column] = plain_values(self.frame, column)
        return self._plain[column]


@dataclass(frozen=True, eq=False)
class ReplicateGroup:
    """The shown runs of one cell (sweep, source, cell), ordered by seed (an unseeded run first), and the
    first one's identity: ``identity`` maps IDENTITY and every axis column of the frame to plain values.

    ``members`` are the runs' positions in the frame of shown runs that ``columns`` reads: a group is made by
    :func:`replicate_groups`, and its estimates at 95% are worked out once (a table and a chart share
    them)."""

    columns: _Columns
    members: tuple[int, ...]
    identity: dict[str, object]
    _estimates: dict[str, Estimate | None] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def rows(self) -> pd.DataFrame:
        """The runs, as rows of the store frame."""
        return self.columns.frame.iloc[list(self.members)]

    @property
    def n(self) -> int:
        """How many runs (replicates) the group holds."""
        return len(self.members)

    @property
    def seeds(self) -> tuple[int | None, ...]:
        """The runs' seeds, in the rows' order (None: unseeded)."""
        seeds = self.columns.plain("seed")
        return tuple(seed_of(seeds[i]) for i in self.members)

    @property
    def axes(self) -> dict[str, object]:
        """The group's value on each axis column of the frame (None: the axis does not vary the cell)."""
        return {name: value for name, value in self.identity.items() if is_axis_column(name)}

    def values(self, column: str) -> list[float]:
        """The rows' numbers in ``column``, in order; rows with none there (or no such column) left out."""
        plain = self.columns.plain(column)
        found = [plain[i] for i in self.members]
        return [float(v) for v in found if isinstance(v, int | float) and not isinstance(v, bool)]

    def first(self, column: str) -> object:
        """The first row's value in ``column`` as plain Python (None: missing, or no such column)."""
        return self.columns.plain(column)[self.members[0]] if self.n else None

    def estimate(self, column: str, level: float = 0.95) -> Estimate | None:
        """The estimate of the rows' numbers in ``column``; None when no row has a number there."""
        if level == 0.95 and column in self._estimates:
            return self._estimates[column]
        found = self.values(column)
        result = estimate(found, level) if found else None
        if level == 0.95:
            self._estimates[column] = result
        return result


def replicate_groups(frame: pd.DataFrame) -> list[ReplicateGroup]:
    """One group per (sweep, source, cell) of ``latest_runs(frame)``, in the order of each group's first
    row in the frame; a group's rows are ordered by seed (null first), then as in the frame. A figure that is
    not a finite number in its valid range is read as missing, with a ``BadFigureWarning`` naming it."""
    import numpy as np
    import pandas as pd

    latest, _ = screen_frame(latest_runs(frame), warn=True)
    if latest.empty:
        return []
    columns = _Columns(latest)
    keys = pd.DataFrame({name: column_values(latest, name) for name in GROUP})
    group = keys.groupby(list(GROUP), sort=False, dropna=False).ngroup().to_numpy()  # first-appearance order
    seeds = [seed_of(v) for v in columns.plain("seed")]
    unseeded = np.array([s is not None for s in seeds])  # False (unseeded) sorts first
    seed = np.array([0 if s is None else s for s in seeds])
    order = np.lexsort((np.arange(len(latest)), seed, unseeded, group))  # the last key sorts first
    bounds = np.flatnonzero(np.diff(group[order])) + 1
    axes = [str(name) for name in latest.columns if is_axis_column(str(name))]
    names = (*IDENTITY, *axes)
    groups = []
    for members in np.split(order, bounds):
        first = int(members[0])
        identity = {name: columns.plain(name)[first] for name in names}
        groups.append(ReplicateGroup(columns=columns, members=tuple(members.tolist()), identity=identity))
    return groups
