"""Harvesting: the runs found under folders, read into the results store.

Two kinds of run folder are recognised, and a folder of either kind is not searched further:

- a cell's work_dir written by ``ablation launch``/``run``: its ``result.json`` has everything;
- a work_dir written by mmengine alone (mmdet's tools/train.py, tools/test.py): run folders named by their
  start time (``20240101_120000/``) holding ``vis_data/scalars.json`` (training and validation lines) or the
  one-line ``<timestamp>.json`` of tools/test.py, the dumped config, and perhaps the text output of
  tools/analysis_tools/benchmark.py (``benchmark.log``).

A cell's work_dir under a sweep folder that has a manifest (``<sweep folder>/work/<cell>/<cell_id>``) gets
the compute its jobs cost over all their attempts (:func:`ablation.run.cost.sweep_costs`, asked once per
sweep folder per harvest: one sacct call for its Slurm jobs); any other run (no manifest entry: an imported
log, a plain mmengine work_dir) has no cost. A manifest or an accounting that cannot be read is named in a
line, and its runs are harvested without a cost. A run's ``origin`` is stored absolute (resolved), so that
any reader finds its work_dir wherever it runs.

A run whose files are missing, truncated or corrupt is reported with a one-line reason and left out (its
earlier row in the store, if any, stays as it was); the others are harvested. A figure that is not a finite
number in its valid range (fps inf, a box AP of 1.5) is left out of its run, which is harvested with the
figure missing, and reported in a line. Harvesting the same folders twice changes nothing; two harvests of
the same folders at once count each new run as new in one of them (``Store.put``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ablation.errors import AblationError, LogFormatError
from ablation.results import logs
from ablation.results.configtext import cell_name, config_facts, name_facts
from ablation.results.records import RunRecord
from ablation.results.store import Store
from ablation.run.cost import Cost, sweep_costs
from ablation.run.manifest import MANIFEST_FILE
from ablation.run.result_file import RESULT_FILE, CellResult, load_result

__all__ = ["HarvestReport", "find_runs", "harvest", "record_from_result", "record_from_work_dir", "run_id"]

_TIMESTAMP = re.compile(r"\d{8}_\d{6}")
_BENCHMARK_SUFFIXES = (".log", ".txt", ".out")


@dataclass
class HarvestReport:
    """What one harvest did: keys of runs added, updated and unchanged, the runs it could not read, and the
    figures it left out of the runs it harvested (a line each)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)

    @property
    def harvested(self) -> int:
        return len(self.added) + len(self.updated) + len(self.unchanged)

    def summary(self) -> str:
        text = (
            f"harvested {self.harvested} run{'s' if self.harvested != 1 else ''}: "
            f"{len(self.added)} new, {len(self.updated)} updated, {len(self.unchanged)} unchanged"
        )
        text += f"; {len(self.problems)} not readable" if self.problems else ""
        dropped = len(self.figures)
        return text + (f"; {dropped} figure{'s' if dropped != 1 else ''} left out" if dropped else "")

    @property
    def lines(self) -> list[str]:
        """Every line to warn of: the runs not read, then the figures left out."""
        return [*self.problems, *self.figures]

    def put(self, store: Store, record: RunRecord) -> None:
        """Put the run, its bad figures left out (and reported), and count it as ``Store.put`` says."""
        where = f"{record.origin}: " if record.origin else ""  # the file to fix, where there is one
        self.figures.extend(where + line for line in record.drop_bad_figures())
        outcome = store.put(record)
        key = f"{record.sweep}/{record.cell}/{record.run_id}"
        {"new": self.added, "updated": self.updated, "unchanged": self.unchanged}[outcome].append(key)


def find_runs(folder: Path) -> Iterator[Path]:
    """Run folders under ``folder`` (itself included), in a stable order."""
    for current, dirs, files in os.walk(folder):
        dirs.sort()
        here = Path(current)
        if RESULT_FILE in files or _is_mmengine_work_dir(here, dirs):
            dirs.clear()
            yield here


def _is_mmengine_work_dir(folder: Path, dirs: list[str]) -> bool:
    return any(_TIMESTAMP.fullmatch(d) and (folder / d / "vis_data").is_dir() for d in dirs)


def harvest(
    store: Store,
    runs: Iterable[Path],
    sweep: str,
    report: HarvestReport | None = None,
) -> HarvestReport:
    """Read the run folders ``runs`` (see ``find_runs``) into ``store``. ``sweep`` names the sweep of runs
    that mmengine wrote; a cell's own result file names its sweep."""
    report = report if report is not None else HarvestReport()
    costs = _Costs(report)
    for run in runs:
        try:
            if (run / RESULT_FILE).exists():
                record = record_from_result(run)
                record.set_cost(costs.of(run, record))
            else:
                record = record_from_work_dir(run, sweep)
        except LogFormatError as error:
            report.problems.append(str(error))
            continue
        except OSError as error:  # a folder or file of the run that cannot be listed or read
            report.problems.append(f"{error.filename or run}: cannot read ({error.strerror or error})")
            continue
        report.put(store, record)
    return report


class _Costs:
    """The cost of each cell of the sweep folders a harvest meets, asked once per folder."""

    def __init__(self, report: HarvestReport) -> None:
        self.report = report
        self.folders: dict[Path, dict[tuple[str, str], Cost]] = {}

    def of(self, work_dir: Path, record: RunRecord) -> Cost | None:
        """The cost of a cell's work_dir (``<sweep folder>/work/<cell>/<cell_id>``) from its sweep folder's
        manifest; None for a run that no manifest lists."""
        work = work_dir.resolve().parent.parent
        if record.cell_id is None or work.name != "work":
            return None
        folder = work.parent
        if folder not in self.folders:
            self.folders[folder] = {}
            if (folder / MANIFEST_FILE).is_file():
                try:
                    self.folders[folder] = sweep_costs(folder)
                except AblationError as error:
                    self.report.problems.append(f"{folder}: no cost of its cells: {error}")
        return self.folders[folder].get((record.cell, record.cell_id))


def record_from_result(work_dir: Path) -> RunRecord:
    """The store's row for a cell's work_dir with a ``result.json``."""
    result = load_result(work_dir)
    return _from_cell_result(result, origin=work_dir.resolve() / RESULT_FILE)


def _from_cell_result(result: CellResult, origin: Path) -> RunRecord:
    memory = None if result.memory_mb is None else result.memory_mb / 1024
    try:
        record = RunRecord(
            **result.identity(),
            run_id=run_id(result.cell_id, result.seed),
            cell_id=result.cell_id,
            source="run",
            status=result.status,
            fps=result.fps,
            device=result.fps_device,
            memory_gb=memory,
            memory_kind=result.memory_kind,
            flops=result.flops,
            params=result.params,
            epochs=result.epochs,
            iterations=result.iterations,
            error=result.error,
            log_tail=result.log_tail,
            config=result.config,
            config_hash=result.config_hash,
            git_commit=result.git_commit,
            host=result.host,
            started=_when(result.started),
            finished=_when(result.finished),
            origin=str(origin),
        )
    except ValueError as error:  # a value the store rejects, e.g. a bad attention code (BadCodeError)
        raise LogFormatError(f"{origin}: not a run of the store: {error}") from None
    record.versions(result.versions)
    record.set_metrics(result.metrics)
    record.set_timings(result.timings)  # the seconds of training, the test, fps and FLOPs
    return record


def run_id(cell_id: str, seed: int | None) -> str:
    """The store's run id of one replicate of a cell: the cell's id, and ``-s<seed>`` when seeded."""
    return cell_id if seed is None else f"{cell_id}-s{seed}"


def record_from_work_dir(work_dir: Path, sweep: str) -> RunRecord:
    """The store's row for a work_dir that mmengine's tools wrote: training figures from the newest run
    folder that trained, box AP from the newest validation or test, fps from benchmark.py's output."""
    runs = sorted(d for d in work_dir.iterdir() if d.is_dir() and _TIMESTAMP.fullmatch(d.name))
    trained: logs.LogFigures | None = None
    metrics: logs.LogFigures | None = None
    memory: list[float] = []
    first: str | None = None
    latest: Path | None = None
    for run in runs:
        found = []
        scalars = run / "vis_data" / "scalars.json"
        if scalars.exists():
            figures = logs.mmengine_scalars(scalars)
            found.append(scalars)
            if figures.epochs is not None:
                trained = figures
                if figures.memory_mb is not None:
                    memory.append(figures.memory_mb)
            if figures.metrics:
                metrics, latest = figures, scalars
        test = run / f"{run.name}.json"
        if test.exists():
            metrics, latest = logs.test_metrics(test), test
            found.append(test)
        if found and first is None:
            first = run.name
    if first is None or metrics is None:
        raise LogFormatError(
            f"{work_dir}: no box AP yet: no run folder has validation lines in vis_data/scalars.json or a "
            "tools/test.py metrics JSON (still training?)"
        )
    text, name = _dumped_config(work_dir)
    facts = config_facts(text) if text else name_facts(work_dir.name)[0]
    dataset = name_facts(name or work_dir.name)[1]
    try:
        cell = name or cell_name(facts, dataset)
    except ValueError:
        cell = work_dir.name
    record = facts.record(
        dataset,
        sweep=sweep,
        cell=cell,
        run_id=first,
        source="run",
        fps=_benchmark_fps(work_dir),
        memory_gb=max(memory) / 1024 if memory else None,
        memory_kind="cuda_peak_allocated" if memory else None,
        epochs=trained.epochs if trained else None,
        iterations=trained.iterations if trained else None,
        config=str(work_dir.resolve() / f"{name}.py") if name else None,
        finished=_mtime(latest) if latest else None,
        origin=str(work_dir.resolve()),
    )
    record.set_metrics(metrics.metrics)
    return record


def _dumped_config(work_dir: Path) -> tuple[str | None, str | None]:
    """The config that tools/train.py or test.py dumped at the work_dir's top (its text and name)."""
    configs = sorted(work_dir.glob("*.py"))
    if not configs:
        return None, None
    try:
        return configs[0].read_text(encoding="utf-8", errors="replace"), configs[0].stem
    except OSError as error:
        raise LogFormatError(f"{configs[0]}: cannot read ({error.strerror})") from None


def _benchmark_fps(work_dir: Path) -> float | None:
    """The newest overall fps in a text file at the work_dir's top (benchmark.py writes benchmark.log)."""
    texts = [p for p in work_dir.iterdir() if p.is_file() and p.suffix in _BENCHMARK_SUFFIXES]
    for path in sorted(texts, key=lambda p: p.stat().st_mtime, reverse=True):
        fps = logs.benchmark_fps(path)
        if fps is not None:
            return fps
    return None


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
