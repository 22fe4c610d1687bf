"""The Python API of the results: open a store, take a selection of its runs, and get the tables, effects and
status that the CLI and the dashboard show (they are built on these same calls).

>>> import ablation
>>> store = ablation.open_store("runs/store")            # doctest: +SKIP
>>> runs = store.runs(sweep="study")                      # doctest: +SKIP
>>> ablation.effects(runs, metric="box AP").main()        # doctest: +SKIP

Figures in frames are in the store's units (box AP a fraction, as mmdet reports it); tables, effects and
status give them in their display units (box AP in AP points): ``ablation.vocabulary`` declares both.
Errors are ``ablation.AblationError``'s subclasses, each naming the argument and the valid values. A figure
that is not a finite number in its valid range (``ablation.vocabulary``) is read as missing for its run: a
store's read names it in ``problems``, and a frame handed to ``effects``, ``results_table`` or ``Runs``
names it in a ``BadFigureWarning`` (``ablation.errors``); the rest is computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ablation.analysis.effects import FactorialAnalysis
from ablation.analysis.runs import Runs
from ablation.errors import InputError
from ablation.fsio import root_dir
from ablation.results.select import select
from ablation.results.store import Store, locate
from ablation.results.table import ResultsTable, TableOptions

__all__ = ["ResultStore", "effects", "open_store", "results_table", "status"]


class ResultStore:
    """A results store opened for reading: its runs as pandas frames and as ``Runs`` selections."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self._read: tuple[tuple[int, int, int], pd.DataFrame, tuple[str, ...]] | None = None

    @property
    def path(self) -> Path:
        return self.store.path

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    @property
    def problems(self) -> tuple[str, ...]:
        """A line per store file that could not be read at the last read (its other runs are read)."""
        return self._frame()[1]

    def frame(self) -> pd.DataFrame:
        """Every run in the store, any status, one row each (re-read when a run file changed)."""
        return self._frame()[0]

    def _frame(self) -> tuple[pd.DataFrame, tuple[str, ...]]:
        signature = self.store.signature()
        if self._read is None or self._read[0] != signature:
            read = self.store.read()
            self._read = (signature, read.frame(), read.problems)
        return self._read[1], self._read[2]

    def select(
        self,
        sweep: str | Sequence[str] | None = None,
        source: str | Sequence[str] | None = None,
        where: Sequence[tuple[str, str]] = (),
        seeds: Sequence[int] | None = None,
    ) -> Runs:
        """The runs of these sweeps and sources (None: all), axis values (``where``: (axis, value) pairs such
        as ``("kv_stride", "2")``) and seeds, as a ``Runs`` selection: ``.latest``, ``.cells``,
        ``.table()``, ``.effects()``. An unknown sweep, source, axis, value or seed raises InputError
        naming the valid ones."""
        return Runs(select(self.frame(), _names(sweep), _names(source), where, seeds))

    def runs(
        self,
        sweep: str | Sequence[str] | None = None,
        source: str | Sequence[str] | None = None,
        latest: bool = True,
    ) -> pd.DataFrame:
        """The runs of these sweeps and sources as a DataFrame, a row per run: with ``latest`` only those
        that count (the latest done run of each seed of each cell, of its current config), else every run
        of any status."""
        chosen = self.select(sweep, source)
        return chosen.latest if latest else chosen.frame


def open_store(path: Path | str | None = None, root: Path | str | None = None) -> ResultStore:
    """The results store at ``path``; None: $ABLATION_STORE, else ``<root>/store`` (``root``: else
    $ABLATION_ROOT, else ``runs``). A path that is a file, not a folder, raises InputError."""
    where = locate(path, root)
    if where.exists() and not where.is_dir():
        raise InputError(f"path: {where} is a file, not a results store (a folder)", argument="path")
    return ResultStore(where)


def effects(frame: pd.DataFrame, metric: str = "box AP", level: float = 0.95) -> FactorialAnalysis:
    """The factorial analysis of ``metric`` ('box AP', 'fps', 'memory', 'GFLOPs' or a store column) over the
    runs of ``frame`` that count (``latest_runs``): its effects, intervals and method, in the metric's
    display unit. A frame mixing sweeps or sources is refused (InputError naming them)."""
    return Runs(frame).effects(metric, level)


def results_table(frame: pd.DataFrame, options: TableOptions | None = None, **given: object) -> ResultsTable:
    """The results table of ``frame``'s runs (as ``ablation export`` prints it); ``options`` or the
    ``TableOptions`` fields as keywords (breakdown=True, baseline='0000', ...). ``render(table, fmt)`` of
    ``ablation.results.export`` writes it as markdown, CSV or LaTeX."""
    if options is None:
        try:
            options = TableOptions(**given)  # type: ignore[arg-type]
        except TypeError:
            valid = ", ".join(TableOptions.__dataclass_fields__)
            raise InputError(f"options: {', '.join(given)} not all table options; valid: {valid}") from None
    return Runs(frame).table(options)


def status(sweep: str, root: Path | str | None = None) -> pd.DataFrame:
    """The state of every cell of ``sweep`` (a sweep's name or file) launched under ``root`` (None:
    $ABLATION_ROOT, else ``runs``): the status table of ``ablation status``, a row per cell."""
    from ablation.grid.sweep import load_sweep
    from ablation.run.launch import status as cell_status
    from ablation.run.status_table import table

    found = load_sweep(sweep)
    states = cell_status(found, root_dir(root))
    headers, rows = table(states, found.axes)
    return pd.DataFrame(rows, columns=list(headers))


def _names(given: str | Sequence[str] | None) -> list[str] | None:
    if given is None:
        return None
    return [given] if isinstance(given, str) else list(given)
