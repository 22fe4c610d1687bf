"""The vocabulary of the results: every figure a run measures, the stages a job times, the kinds of memory and
the states of a cell, each declared once. Everything that shows a figure (the status table, the results
table in its formats, the charts, the effects and their sentences, the report, the dashboard) derives its
label, unit, scale, precision and better direction from here; adding a figure is one entry in
:data:`METRICS` plus the code that measures it (and a field of the store's record, which a test ties to this
list).

Units. The store keeps figures as mmdet reports them (box AP as a fraction, FLOPs as a count, parameters
as a count); wherever a person reads one it is in its display unit, ``value * scale``: box AP in AP points
(0.292 -> 29.2), FLOPs in GFLOPs, parameters in millions. The factorial analysis works in the display unit
too, so an effect, its interval, Lenth's PSE and an ANOVA sum of squares read in AP points.

Ranges. Each metric and stage declares the values it can hold (``valid``, a :class:`Range` in the store's
unit: box AP and its breakdown within [0, 1], fps above 0, the rest at least 0); a figure outside its range,
or not finite, is not a measurement, and ``ablation.results.records`` reads it as missing wherever it meets
one, naming it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "CELL_STATES",
    "COCO_METRICS",
    "MEMORY_KINDS",
    "METRICS",
    "MISSING",
    "NON_NEGATIVE",
    "PLUS_MINUS",
    "RESULT_STATUSES",
    "ROLES",
    "STAGES",
    "MemoryKind",
    "Metric",
    "Range",
    "Stage",
    "memory_label",
    "metric",
    "metrics",
]

MISSING = "-"  # how a figure nobody measured reads
PLUS_MINUS = "±"  # between a mean and the half-width of its interval (or its sd)
# What a figure is shown as (Metric.roles): 'main' in every results table, 'breakdown' and 'complexity'
# in the tables that ask for them, 'status' in the status table, 'tradeoff' as a trade-off chart's x axis,
# 'effects' analysed for its factor effects (the report, the dashboard, ``ablation effects``), 'cost' in the
# tables that ask for the compute a run cost (``export --cost``: a cell's sum over its runs, a sweep's total).
ROLES = ("main", "breakdown", "complexity", "status", "tradeoff", "effects", "cost")


@dataclass(frozen=True)
class Range:
    """The values a figure can hold, in the store's unit: a finite number from ``low`` (excluded when
    ``above``) to ``high``. Each figure declares its own, once, where it is declared (a Metric, a Stage, or
    the store record's field); what the range leaves out is not a measurement, and readers treat it as
    missing."""

    low: float = 0.0
    high: float = math.inf
    above: bool = False  # low itself is not a valid value (fps > 0)

    def holds(self, value: float) -> bool:
        """Whether ``value`` is a finite number in the range."""
        low_ok = value > self.low if self.above else value >= self.low
        return math.isfinite(value) and low_ok and value <= self.high

    def __str__(self) -> str:
        """As people write it: '[0, 1]', '> 0', '>= 0'."""
        if math.isinf(self.high):
            return f"{'>' if self.above else '>='} {self.low:g}"
        return f"{'(' if self.above else '['}{self.low:g}, {self.high:g}]"


NON_NEGATIVE = Range()  # memory, FLOPs, parameters, seconds, epochs, iterations


@dataclass(frozen=True)
class Metric:
    """A figure of a run: its store column, its names, its display unit and how it is shown."""

    column: str  # the store's column (RunRecord's field)
    name: str  # what people call it, and what ``metric=`` takes: 'box AP'
    header: str  # its results-table header: 'box AP', 'Inf time (fps)'
    unit: str  # the display unit: 'AP points', 'img/s'
    scale: float = 1.0  # store unit -> display unit
    decimals: int = 1  # decimals shown, at least
    significant: int = 0  # ... and at least this many significant digits (GFLOPs near 0.4 read 0.391)
    higher_is_better: bool | None = None  # colours mean better/worse, not the sign; None: neither
    interval: bool = False  # a cell's replicates show it as a mean with its 95% interval
    roles: tuple[str, ...] = ()  # where it is shown (ROLES)
    axis_title: str = ""  # a chart's axis title
    coco: bool = False  # one of CocoMetric's box figures (mmdet logs it as "coco/<column>")
    valid: Range = NON_NEGATIVE  # the values it can hold, in the store's unit

    def display(self, value: float) -> float:
        """A stored value in the display unit."""
        return value * self.scale

    def digits(self, value: float | None) -> int:
        """The decimals that show ``value`` (in the display unit) at this figure's precision."""
        if not self.significant or value is None or not math.isfinite(value) or value == 0:
            return self.decimals
        magnitude = math.floor(math.log10(abs(value)))
        return max(self.decimals, self.significant - 1 - magnitude)

    def format(self, value: float | None, signed: bool = False, digits: int | None = None) -> str:
        """A value already in the display unit as text: its precision (or ``digits`` decimals), a sign when
        ``signed`` (never '-0.0'), MISSING for None or NaN."""
        if value is None or math.isnan(value):
            return MISSING
        places = self.digits(value) if digits is None else digits
        text = format(value, f"{'+' if signed else ''}.{places}f")
        return text.replace("-", "+", 1) if signed and float(text) == 0 else text

    def format_spread(self, value: float, half: float | None) -> str:
        """A value in the display unit at its precision, with ' ± half' (also in the display unit) at the
        same decimals where there is a half-width."""
        digits = self.digits(value)
        shown = self.format(value, digits=digits)
        return shown if half is None else f"{shown} {PLUS_MINUS} {half:.{digits}f}"

    @property
    def titled(self) -> str:
        """Its name with its unit: 'box AP (AP points)'."""
        return f"{self.name} ({self.unit})"


def _box(column: str, name: str, *roles: str, axis_title: str = "") -> Metric:
    """One of CocoMetric's box figures: a fraction in the store (so within [0, 1]), AP points where people
    read it."""
    return Metric(
        column, name, name, "AP points", 100.0, higher_is_better=True, interval=True, roles=roles,
        axis_title=axis_title, coco=True, valid=Range(0.0, 1.0),
    )  # fmt: skip


# In the order the results table shows them (mmdetection's: memory, fps, box AP, then the breakdown).
METRICS: tuple[Metric, ...] = (
    Metric(
        "memory_gb", "memory", "Mem (GB)", "GB", decimals=2, higher_is_better=False,
        roles=("main", "status", "tradeoff", "effects"), axis_title="training memory (GB)",
    ),
    Metric(
        "fps", "fps", "Inf time (fps)", "img/s", higher_is_better=True, interval=True,
        roles=("main", "status", "tradeoff", "effects"), axis_title="inference speed (img/s, batch 1)",
        valid=Range(0.0, above=True),
    ),
    _box("bbox_mAP", "box AP", "main", "status", "effects", axis_title="box AP (AP points)"),
    _box("bbox_mAP_50", "AP50", "breakdown", "status"),
    _box("bbox_mAP_75", "AP75", "breakdown"),
    _box("bbox_mAP_s", "APs", "breakdown"),
    _box("bbox_mAP_m", "APm", "breakdown"),
    _box("bbox_mAP_l", "APl", "breakdown"),
    Metric(
        "flops", "GFLOPs", "GFLOPs", "GFLOPs", 1e-9, decimals=1, significant=3, higher_is_better=False,
        roles=("complexity", "status", "tradeoff", "effects"), axis_title="GFLOPs (one test image)",
    ),
    Metric(
        "params", "params", "Params (M)", "M", 1e-6, decimals=2, higher_is_better=False,
        roles=("complexity", "status"),
    ),
    # The compute of a run's jobs over ALL their attempts (requeues, time-outs, node failures included): on
    # Slurm from sacct's accounting, locally wall seconds x processes x threads (``ablation.run.cost``).
    # GPU-hours are missing, not 0, where no attempt had a GPU (a CPU grid: ``tradeoff_axes`` then draws
    # box AP against CPU-hours instead).
    Metric(
        "attempts", "attempts", "Attempts", "attempts", decimals=0, higher_is_better=False, roles=("cost",),
        axis_title="attempts (the cell's jobs, every start)",
    ),
    Metric(
        "gpu_hours", "GPU-hours", "GPU-h", "GPU-hours", decimals=1, significant=2, higher_is_better=False,
        roles=("cost", "tradeoff"), axis_title="GPU-hours (the cell's jobs, all attempts)",
    ),
    Metric(
        "cpu_hours", "CPU-hours", "CPU-h", "CPU-hours", decimals=1, significant=2, higher_is_better=False,
        roles=("cost", "tradeoff"), axis_title="CPU-hours (the cell's jobs, all attempts)",
    ),
    Metric(
        "wall_hours", "wall hours", "Wall (h)", "wall hours", decimals=1, significant=2,
        higher_is_better=False, roles=("cost",), axis_title="wall hours (the cell's jobs, all attempts)",
    ),
)  # fmt: skip
# CocoMetric's box figures, in its order: the keys of a result file's metrics and of mmdet's logs.
COCO_METRICS = tuple(m.column for m in METRICS if m.coco)


def metrics(role: str | None = None) -> tuple[Metric, ...]:
    """The metrics, in order; with ``role`` (one of ROLES) those shown there."""
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    return tuple(m for m in METRICS if role is None or role in m.roles)


def metric(name: str) -> Metric:
    """A metric by its name ('box AP'), its header or its store column ('bbox_mAP'); ValueError naming the
    valid names otherwise."""
    for found in METRICS:
        if name in (found.name, found.column, found.header):
            return found
    valid = ", ".join(repr(m.name) for m in METRICS)
    raise ValueError(f"unknown metric {name!r}; metrics: {valid}")


@dataclass(frozen=True)
class Stage:
    """A stage of a cell's job, timed in seconds: its store column (and key in the result file's timings),
    its table header, its name, and the values it can hold (seconds, never negative)."""

    column: str
    header: str
    name: str
    valid: Range = NON_NEGATIVE


STAGES: tuple[Stage, ...] = (
    Stage("train_s", "Train (s)", "training"),
    Stage("test_s", "Test (s)", "test"),
    Stage("fps_s", "fps (s)", "fps measurement"),
    Stage("flops_s", "FLOPs (s)", "FLOPs count"),
)


@dataclass(frozen=True)
class MemoryKind:
    """What a memory figure measured: a CUDA peak and a CPU peak RSS are never compared or averaged."""

    key: str  # as the result file and the store hold it
    label: str  # the one label people read


MEMORY_KINDS: tuple[MemoryKind, ...] = (
    MemoryKind("cuda_peak_allocated", "CUDA peak allocated"),
    MemoryKind("cpu_peak_rss", "CPU peak RSS"),
)


def memory_label(key: str | None) -> str:
    """A memory kind's label; MISSING for none, the key itself for one this version does not know."""
    if key is None:
        return MISSING
    return next((k.label for k in MEMORY_KINDS if k.key == key), key)


# A cell's state as `ablation status` tells it, in their natural order, and the status a result file holds.
CELL_STATES = ("planned", "pending", "running", "done", "failed", "lost")
RESULT_STATUSES = ("running", "done", "failed")
