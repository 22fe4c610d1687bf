"""A selection of a store's runs, and what every view of it needs, worked out once.

``Runs`` holds the rows a view was given (any status) and computes on first use, then keeps: the runs that
count (:func:`~ablation.results.latest.latest_runs`), their replicate groups, the cells at the mean of their
replicates (:func:`~ablation.analysis.numbers.replicate_means`), the memory kinds, the axis columns, the
sweeps and sources. The results table, the trade-off charts, the factor effects and the report take these
from it instead of each recomputing them from a bare frame; the CLI, the dashboard and the Python API
(``ablation.open_store(...).select(...)``) build one per selection.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ablation import vocabulary
from ablation.analysis.effects import FactorialAnalysis, analyse
from ablation.analysis.numbers import axis_columns, memory_kinds, replicate_means, tradeoff_axes
from ablation.results.latest import column_values, latest_runs
from ablation.results.records import SOURCES, screen_frame
from ablation.results.replicates import ReplicateGroup, replicate_groups
from ablation.results.table import ResultsTable, TableOptions, results_table

__all__ = ["Analysis", "Runs"]


@dataclass(frozen=True)
class Analysis:
    """One metric's factorial analysis over one design, for a view: the memory kind it is of (memory is
    analysed once per kind), and the name to show it by ('CPU peak RSS memory')."""

    metric: vocabulary.Metric
    memory_kind: str | None
    result: FactorialAnalysis

    @property
    def name(self) -> str:
        if self.memory_kind is None:
            return self.metric.name
        return f"{vocabulary.memory_label(self.memory_kind)} {self.metric.name}"


class Runs:
    """The runs of a selection (``frame``: store rows, any status) and what is derived from them. A figure
    of the frame that is not a finite number in its valid range is read as missing for its run, named in
    ``dropped`` and in a ``BadFigureWarning`` (``screen_frame``); the rest is computed."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, dropped = screen_frame(frame, warn=True)
        self.dropped = tuple(dropped)

    def __len__(self) -> int:
        """The runs that count: the latest done run of each seed of each cell."""
        return len(self.latest)

    @functools.cached_property
    def latest(self) -> pd.DataFrame:
        """The runs that count (``latest_runs``), in the frame's order."""
        return latest_runs(self.frame)

    @functools.cached_property
    def groups(self) -> list[ReplicateGroup]:
        """A group per cell (sweep, source, cell) of the runs that count: its replicates."""
        return replicate_groups(self.latest)

    @functools.cached_property
    def cells(self) -> pd.DataFrame:
        """A row per cell at the mean of its replicates, with ``n``, ``seeds`` and the intervals'
        half-widths (``replicate_means``)."""
        return replicate_means(self.latest, groups=self.groups)

    @functools.cached_property
    def replicated(self) -> bool:
        """Whether some cell has more than one run."""
        return any(g.n > 1 for g in self.groups)

    @functools.cached_property
    def memory_kinds(self) -> tuple[str, ...]:
        """The memory kinds of the runs that have a memory figure, in the vocabulary's order."""
        held = set(memory_kinds(self.latest))
        return tuple(k.key for k in vocabulary.MEMORY_KINDS if k.key in held)

    @functools.cached_property
    def tradeoff_axes(self) -> tuple[vocabulary.Metric, ...]:
        """What box AP is drawn against for these cells (``numbers.tradeoff_axes``: the vocabulary's
        'tradeoff' metrics, GPU-hours or, on a CPU grid, CPU-hours)."""
        return tradeoff_axes(self.cells)

    @functools.cached_property
    def costed(self) -> bool:
        """Whether some run that counts has a 'cost' figure (a cell ablation launched)."""
        figures = [m.column for m in vocabulary.metrics("cost") if m.column in self.latest]
        return bool(figures) and bool(self.latest[figures].notna().any().any())

    @functools.cached_property
    def axes(self) -> list[str]:
        """The axis columns (dotted setting names) some run has a value on, sorted."""
        return axis_columns(self.latest)

    @functools.cached_property
    def sweeps(self) -> list[str]:
        return sorted(set(self._values("sweep")))

    @functools.cached_property
    def sources(self) -> list[str]:
        """The sources of the runs that count, in SOURCES' order."""
        held = set(self._values("source"))
        return [s for s in SOURCES if s in held]

    def where(self, column: str, value: str) -> Runs:
        """The runs (of the selection, any status) holding ``value`` in ``column``: this selection itself
        where every run does (one memory kind), so that what it worked out is not worked out again."""
        keep = np.array([v == value for v in column_values(self.frame, column)], dtype=bool)
        return self if keep.all() else Runs(self.frame[keep])

    def table(self, options: TableOptions | None = None) -> ResultsTable:
        """The results table of the selection (``results_table``; default options: mmdetection's columns)."""
        return results_table(self.frame, options or TableOptions(), groups=self.groups)

    def effects(self, metric: str = "box AP", level: float = 0.95) -> FactorialAnalysis:
        """The factorial analysis of ``metric`` over the runs that count (one sweep and one source: a
        selection of several is refused, naming them)."""
        return analyse(self.latest, metric, level)

    def analyses(self) -> list[Analysis]:
        """The analysis of every 'effects' metric of the vocabulary over the runs that count (one design),
        memory once per memory kind over the runs of that kind, none where no run has a memory figure."""
        found = []
        for figure in sorted(vocabulary.metrics("effects"), key=lambda m: not m.coco):  # box AP first
            if figure.column != "memory_gb":
                found.append(Analysis(figure, None, self.effects(figure.column)))
                continue
            for kind in self.memory_kinds:
                found.append(Analysis(figure, kind, self.where("memory_kind", kind).effects(figure.column)))
        return found

    def _values(self, column: str) -> list[str]:
        return [str(v) for v in column_values(self.latest, column) if v is not None]
