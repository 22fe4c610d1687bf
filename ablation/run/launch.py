"""Launching a sweep's cells as jobs, and telling the state of each cell from any process.

A cell's state comes from three places: the manifest (its latest job), the executor (is that job alive) and
the result file its job writes (see ``result_file``)::

    planned   no job for this config yet
    pending   its job is alive and has not started computing (waiting for a slot or in a queue)
    running   its job is computing
    done      finished, with figures
    failed    its job recorded a failure, or its result file cannot be read (``problem`` says why)
    lost      its job is gone without a final result (killed, timed out, cancelled)

``launch`` submits only planned cells (and failed or lost ones with ``retry_failed``), so launching again
never starts a second job for a cell that has a live or finished one; the launch lock keeps two launchers
from racing, and a job's own cell lock keeps two jobs of one cell from both computing.

A job is always judged by the executor recorded with it in the manifest, whatever a command is told: the
executor given to ``launch`` only chooses where new jobs go (by default, where the sweep's jobs already are).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ablation.data import dataset
from ablation.errors import LogFormatError
from ablation.grid.cells import EVERY_CELL, Selection
from ablation.grid.plan import Plan, PlannedCell, plan, sweep_dir
from ablation.grid.sweep import Sweep
from ablation.run.cost import Cost
from ablation.run.executors import backend, poll
from ablation.run.locks import exclusive
from ablation.run.manifest import Manifest, Submission, load_manifest, save_manifest
from ablation.run.result_file import RESULT_FILE, CellResult, load_result
from ablation.run.slurm import check_options
from ablation.vocabulary import CELL_STATES

if TYPE_CHECKING:
    from ablation.run.job import CellJob

__all__ = [
    "STATES",
    "CellStatus",
    "LaunchReport",
    "RecordedCell",
    "cancel",
    "default_executor",
    "launch",
    "recorded_status",
    "status",
    "wait",
    "work_dir",
]

STATES = CELL_STATES  # the vocabulary's, in their natural order
UNFINISHED = ("pending", "running")
RETRYABLE = ("failed", "lost")
LAUNCH_LOCK = ".launch.lock"


@dataclass(frozen=True)
class CellStatus:
    planned: PlannedCell
    state: str
    submission: Submission | None
    result: CellResult | None
    problem: str | None = None  # why the cell's result file cannot be read
    cost: Cost | None = None  # what its jobs cost so far, over all their attempts (None: no job yet)

    @property
    def name(self) -> str:
        return self.planned.name


@dataclass(frozen=True)
class LaunchReport:
    plan: Plan
    executor: str  # where this launch's new jobs went (or would go)
    submitted: tuple[Submission, ...]
    before: tuple[CellStatus, ...]  # the cells' states before this launch
    script: str | None = None  # with dry_run: the sbatch script of each array it would submit (Slurm)
    dry_run: bool = False  # nothing was submitted
    would_submit: tuple[str, ...] = ()  # with dry_run: the cells a launch would have submitted
    generates: Path | None = None  # with dry_run: the synthetic dataset's folder, when it would generate it
    parallel: int | None = None  # with dry_run, local: how many cells would compute at once

    @property
    def skipped(self) -> Counter[str]:
        """States of the cells left alone, with their counts."""
        sent = {s.cell for s in self.submitted}
        return Counter(s.state for s in self.before if s.name not in sent)


def work_dir(sweep_dir: Path, planned: PlannedCell) -> Path:
    """The cell's mmengine work_dir: one per config, so a changed config never resumes another's weights."""
    return sweep_dir / "work" / planned.name / planned.cell_id


def status(sweep: Sweep, root: Path, selection: Selection = EVERY_CELL) -> list[CellStatus]:
    """Every selected cell of the sweep with its state (plans without writing configs)."""
    planned = plan(sweep, root, selection, write=False)
    return _states(planned, load_manifest(planned.directory, sweep.name))


def default_executor(manifest: Manifest) -> str:
    """Where a sweep's new jobs go when no executor is given: where its latest job went ("local" for a
    sweep with none)."""
    recorded = [s for s in manifest.history if s.recorded]
    return max(recorded, key=lambda s: s.submitted).executor if recorded else "local"


def _states(planned: Plan, manifest: Manifest) -> list[CellStatus]:
    """Each planned cell's state, from one poll of its executors that also gives its cost: the sum over
    every job submitted for the cell with its config (the latest judges its state)."""
    current = {
        p.name: s
        for p in planned.cells
        if (s := manifest.latest.get(p.name)) is not None and s.cell_id == p.cell_id
    }
    polled = poll(manifest, ((p.name, p.cell_id) for p in planned.cells))
    started = _listed(planned.directory / "work")  # one listing, not a look for each cell's result file
    states = []
    for p in planned.cells:
        submission = current.get(p.name)
        result, problem = _result(work_dir(planned.directory, p), p.cell_id) if p.name in started else NONE
        state = _state(submission, result, problem, polled.alive(submission))
        cost = polled.costs.get((p.name, p.cell_id)) if submission is not None else None
        states.append(CellStatus(p, state, submission, result, problem, cost))
    return states


NONE: tuple[None, None] = (None, None)  # no result file, and so no problem with one


def _listed(folder: Path) -> set[str]:
    """The names in ``folder`` (none when it is missing)."""
    try:
        return set(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _result(folder: Path, cell_id: str) -> tuple[CellResult | None, str | None]:
    """The result file of this config in a work_dir (None when there is none), or why it cannot be read."""
    if not (folder / RESULT_FILE).exists():
        return NONE
    try:
        result = load_result(folder)
    except LogFormatError as error:
        return None, str(error)
    return (result, None) if result.cell_id == cell_id else (None, None)


@dataclass(frozen=True)
class RecordedCell:
    """A cell as its sweep folder's manifest knows it, without the sweep file."""

    submission: Submission
    state: str
    result: CellResult | None
    problem: str | None = None  # why the cell's result file cannot be read
    cost: Cost | None = None  # what its jobs cost so far, over all their attempts


def recorded_status(folder: Path) -> list[RecordedCell]:
    """The state of every cell that the manifest of ``folder`` (a sweep folder) has submitted, asking each
    executor once which of its jobs are alive: what the dashboard shows of sweeps it has no sweep file of."""
    manifest = load_manifest(folder, folder.name)
    latest = [s for s in manifest.latest.values() if s.recorded]
    polled = poll(manifest, ((s.cell, s.cell_id) for s in latest))
    cells = []
    for submission in latest:
        result, problem = _result(Path(submission.work_dir), submission.cell_id)
        state = _state(submission, result, problem, polled.alive(submission))
        cost = polled.costs.get((submission.cell, submission.cell_id), Cost())
        cells.append(RecordedCell(submission, state, result, problem, cost))
    return cells


def _state(submission: Submission | None, result: CellResult | None, problem: str | None, alive: bool) -> str:
    """A cell's state; an unreadable result file makes it failed (not planned or lost, which a launch would
    resubmit without being asked) unless its job still runs and will write the file again."""
    if submission is None:
        if problem is not None:
            return "failed"
        return "done" if result is not None and result.status == "done" else "planned"
    this_attempt = result is not None and result.attempt == submission.attempt
    if this_attempt and result is not None and result.status in ("done", "failed"):
        return result.status
    if alive:
        return "running" if this_attempt else "pending"
    return "failed" if problem is not None else "lost"


def launch(
    sweep: Sweep,
    root: Path,
    *,
    executor: str | None = None,
    selection: Selection = EVERY_CELL,
    retry_failed: bool = False,
    parallel: int | None = None,
    options: dict[str, Any] | None = None,
    cwd: Path | None = None,
    dry_run: bool = False,
) -> LaunchReport:
    """Plan the sweep's cells of ``selection``, check its dataset, and submit every one that needs a job as a
    job array (several on a cluster whose MaxArraySize is smaller: ``Backend.arrays``); returns at once.
    ``executor`` chooses where the new jobs go (None: ``default_executor``); every cell's latest job is judged
    by the executor it went to. ``options`` override the sweep's Slurm settings (partition, gpus, cpus,
    mem_gb, time_min, ...).

    Before submitting, the launch writes its intent (cells, array positions, each array's job name) to the
    manifest; after each array, its job ids. A launch killed in between is completed by the next one, which
    finds the jobs by name, so no cell is ever submitted twice."""
    cwd = (cwd or Path.cwd()).resolve()
    folder = sweep_dir(root, sweep).resolve()
    # Every check before the first write: an unknown executor, Slurm on a machine without it, a Slurm value
    # that would not fit the sbatch script, a cell that cannot be planned, a dataset that is not there.
    going = executor or default_executor(load_manifest(folder, sweep.name))
    backend(going).check(dry_run)
    check_options(options or {})
    planned = plan(sweep, root, selection, write=False)
    generates = dataset.prepare(sweep.dataset, cwd, sweep.dataset.synthetic, write=False)
    wanted = ("planned", *RETRYABLE) if retry_failed else ("planned",)
    if dry_run:  # it reads the manifest, unlocked, and writes nothing (not even the lock or the configs)
        before = _states(planned, load_manifest(folder, sweep.name))
        todo = [s for s in before if s.state in wanted]
        name = f"ablation-{sweep.name}-DRYRUN"
        script = backend(going).dry_run(folder / "jobs", sweep, name, todo, options or {}) if todo else None
        slots = _local_slots(sweep, parallel)[0] if going == "local" else None
        would = tuple(s.name for s in todo)
        return LaunchReport(planned, going, (), tuple(before), script, True, would, generates, slots)
    if generates is not None:
        dataset.prepare(sweep.dataset, cwd, sweep.dataset.synthetic)
    planned.write()  # here, once everything was checked
    with exclusive(folder / LAUNCH_LOCK):
        manifest = load_manifest(folder, sweep.name)
        _complete_intents(manifest, folder)
        executor = executor or default_executor(manifest)
        chosen = backend(executor)
        chosen.check(False)
        before = _states(planned, manifest)
        todo = [s for s in before if s.state in wanted]
        submitted: list[Submission] = []
        if todo:
            from ablation.run.job import CellRunner, now  # here: status and plan never load submitit's job

            name = f"ablation-{sweep.name}-{uuid.uuid4().hex[:8]}"
            local_parallel, threads = _local_slots(sweep, parallel) if executor == "local" else (None, None)
            specs = [_job(sweep, folder, cell, manifest, cwd, local_parallel, threads) for cell in todo]
            arrays = chosen.arrays(name, specs)  # one, or several where the cluster limits their size
            intents = [
                Submission(
                    cell=spec.name,
                    cell_id=spec.cell_id,
                    executor=executor,
                    job_id="",
                    folder="",
                    work_dir=spec.work_dir,
                    attempt=spec.attempt,
                    submitted=now(),
                    job_name=array,
                    index=index,
                )
                for array, part in arrays
                for index, spec in enumerate(part)
            ]
            for intent in intents:  # all arrays' before the first sbatch: arrays never sent are dropped later
                manifest.record(intent)
            save_manifest(folder, manifest)
            jobs_folder = folder / "jobs"
            for array, part in arrays:
                executor_ = chosen.executor(jobs_folder, sweep, array, options or {}, part)
                chosen.before_submit(jobs_folder, array, part, int(executor_.parameters.get("time", 0) or 0))
                jobs = executor_.map_array(CellRunner(), part)
                for intent, job in zip([i for i in intents if i.job_name == array], jobs, strict=True):
                    chosen.track(job)
                    done = dataclasses.replace(intent, job_id=str(job.job_id), folder=str(job.paths.folder))
                    manifest.record(done)
                    submitted.append(done)
                save_manifest(folder, manifest)
                chosen.submitted(jobs)
    return LaunchReport(planned, executor, submitted=tuple(submitted), before=tuple(before))


def _complete_intents(manifest: Manifest, folder: Path) -> None:
    """Give the intents of a launch that died while submitting their job ids, or drop them if nothing was
    submitted; the jobs of each of its arrays are looked for by the array's name, where its intents say they
    went."""
    intents = [s for s in manifest.history if not s.recorded]
    for name in sorted({s.job_name for s in intents}):
        launched = [s for s in intents if s.job_name == name]
        chosen = backend(launched[0].executor)
        found = chosen.find(name, since=min(s.submitted for s in launched))
        by_index = {int(i.rsplit("_", 1)[1]) if "_" in i else 0: i for i in found}
        for intent in launched:
            job_id = by_index.get(intent.index)
            if job_id is None:
                manifest.forget(intent)
            else:
                chosen.complete(folder / "jobs", name, intent.index, job_id)
                manifest.record(
                    dataclasses.replace(intent, job_id=job_id, folder=str(folder / "jobs" / job_id))
                )
    if intents:
        save_manifest(folder, manifest)


def cancel(states: Sequence[CellStatus]) -> list[CellStatus]:
    """Cancel the jobs of the cells among ``states`` that are pending or running, each through the executor
    it was submitted to; returns those cells."""
    live = [s for s in states if s.state in UNFINISHED and s.submission is not None]
    for name in sorted({s.submission.executor for s in live if s.submission is not None}):
        backend(name).cancel([s.submission for s in live if s.submission and s.submission.executor == name])
    return live


def _local_slots(sweep: Sweep, parallel: int | None) -> tuple[int, int]:
    """How many local cells compute at once, and torch threads for each: on CPU, one core per cell by
    default; with GPUs, one cell at a time unless told."""
    cores = os.cpu_count() or 1
    if parallel is None:
        parallel = 1 if sweep.resources.gpus else cores
    return parallel, max(1, cores // parallel)


def _job(
    sweep: Sweep,
    folder: Path,
    cell: CellStatus,
    manifest: Manifest,
    cwd: Path,
    parallel: int | None,
    threads: int | None,
) -> CellJob:
    """The job of one cell; ``parallel``: how many local cells compute at once (None: a scheduler decides)."""
    from ablation.run.job import CellJob

    p = cell.planned
    return CellJob(
        **p.identity.identity(),
        name=p.name,
        cell_id=p.cell_id,
        config=str(p.path.resolve()),
        config_hash=p.config.config_hash,
        work_dir=str(work_dir(folder, p)),
        cwd=str(cwd),
        attempt=manifest.attempts(p.name, p.cell_id) + 1,
        test_size=sweep.dataset.test_size,
        warmup_images=sweep.benchmark.warmup_images,
        timed_images=sweep.benchmark.timed_images,
        threads=threads,
        slots=str(folder / "slots") if parallel is not None else None,
        parallel=parallel or 1,
        tasks=1 if parallel is not None else sweep.resources.task_count(),  # local: one process
        keep_checkpoints=sweep.resources.keep_checkpoints,
        stop_on_divergence=sweep.schedule.stop_on_divergence,
        divergence_factor=sweep.schedule.divergence_factor,
    )


def wait(
    sweep: Sweep,
    root: Path,
    names: Sequence[str],
    *,
    poll_s: float = 2.0,
    on_poll: Callable[[list[CellStatus]], None] | None = None,
) -> list[CellStatus]:
    """Poll until none of the cells ``names`` is pending or running; returns their final states."""
    while True:
        states = [s for s in status(sweep, root) if s.name in names]
        if on_poll is not None:
            on_poll(states)
        if not any(s.state in UNFINISHED for s in states):
            return states
        time.sleep(poll_s)
