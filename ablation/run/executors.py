"""Where cells' jobs run: submitit executors made from a sweep, which of their jobs are still alive, and
what they cost.

Every backend submits ``job.run_cell`` through a submitit executor, so local and cluster runs take the same
code path. A backend also splits a launch into the job arrays it goes out as (Slurm: several where the
cluster's MaxArraySize is smaller than the launch), answers, for a batch of submissions at once, which jobs
are still queued or running and what they cost so far (for local jobs by looking at their controller
processes and their cells' attempt records, for Slurm with one sacct call whatever the number of arrays),
finds the jobs of a launch that died while submitting, and cancels jobs.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ablation.errors import InputError
from ablation.grid.sweep import Sweep
from ablation.run.cost import Cost, by_cell, job_cost
from ablation.run.manifest import Manifest, Submission
from ablation.run.submitit_internals import (
    dump_submission,
    is_local_controller,
    local_process,
    submitted_pickle,
)

__all__ = ["BACKENDS", "Backend", "JobInfo", "LocalBackend", "Poll", "SlurmBackend", "backend", "poll"]

T = TypeVar("T")


@dataclass(frozen=True)
class JobInfo:
    """What a poll tells of one job: whether it is still queued or running, and what it cost so far."""

    alive: bool
    cost: Cost


class Backend(Protocol):
    name: str

    def check(self, dry_run: bool) -> None:
        """Raise ``InputError`` when this machine cannot take the backend's jobs (no Slurm), before a launch
        writes anything."""

    def dry_run(
        self, folder: Path, sweep: Sweep, name: str, cells: Sequence[Any], options: dict[str, Any]
    ) -> str | None:
        """What a dry run of a launch named ``name`` of ``cells`` shows of its jobs (Slurm: the sbatch script
        of each array), or None when there is nothing but the count to show."""

    def arrays(self, name: str, cells: Sequence[T]) -> list[tuple[str, list[T]]]:
        """The job arrays that a launch named ``name`` sends ``cells`` out as, in order: each one's job name
        and its cells (one array named ``name`` unless the backend limits their size)."""

    def executor(
        self, folder: Path, sweep: Sweep, name: str, options: dict[str, Any], specs: Sequence[Any]
    ) -> Any:
        """A submitit executor for the sweep's cells ``specs`` (the array's CellJobs), its files under
        ``folder``, its jobs named ``name``."""

    def poll(self, submissions: Sequence[Submission]) -> dict[str, JobInfo]:
        """Job id -> whether the job is still queued or running, and what it cost so far (all its attempts),
        for each of ``submissions``, asked at once (Slurm: one sacct call)."""

    def track(self, job: Any) -> None:
        """Keep what this process needs of a job it just submitted."""

    def find(self, name: str, since: str) -> list[str]:
        """Ids of the jobs submitted under ``name`` (an array's name; its tasks one by one) at ``since`` (an
        ISO time) or later, for a launch that died."""

    def before_submit(self, folder: Path, name: str, specs: Sequence[Any], time_min: int) -> None:
        """Keep, before submitting, what a later launch needs to complete this one."""

    def complete(self, folder: Path, name: str, index: int, job_id: str) -> None:
        """Finish the submission of the job ``job_id`` (position ``index`` of array ``name``) that a launcher
        killed before it could."""

    def submitted(self, jobs: Sequence[Any]) -> None:
        """Called once the jobs of an array are submitted and recorded."""

    def cancel(self, submissions: Sequence[Submission]) -> None:
        """Stop these jobs."""


class LocalBackend:
    """Jobs as processes on this machine (submitit's LocalExecutor): they outlive the launching command.

    The process that submits them keeps their handles: polling those reaps finished ones, and keeps Python
    from warning that a child still runs when a handle is collected."""

    name = "local"

    def __init__(self) -> None:
        self._processes: dict[str, Any] = {}

    def check(self, dry_run: bool) -> None:
        pass  # this machine is always there

    def dry_run(
        self, folder: Path, sweep: Sweep, name: str, cells: Sequence[Any], options: dict[str, Any]
    ) -> str | None:
        return None  # processes on this machine: no script to show

    def arrays(self, name: str, cells: Sequence[T]) -> list[tuple[str, list[T]]]:
        return [(name, list(cells))]  # processes on this machine: no limit

    def track(self, job: Any) -> None:
        process = local_process(job)
        if process is not None:
            self._processes[str(job.job_id)] = process

    def executor(
        self, folder: Path, sweep: Sweep, name: str, options: dict[str, Any], specs: Sequence[Any]
    ) -> Any:
        """Every local job starts at once and waits for one of ``parallel`` slots, and submitit times a job
        from its start: each gets the time limit once per round of slots, so that waiting for a slot does not
        use up a cell's time (a 32-cell sweep two at a time had its last cells timed out after 30 min, before
        they had trained much; each timeout costs a restart, and past submitit's 3 the cell fails)."""
        import submitit

        executor = submitit.LocalExecutor(folder=folder / "%j")
        gpus = sweep.resources.gpus
        capped = [spec.parallel for spec in specs if spec.slots]
        rounds = -(-len(specs) // min(capped)) if capped else 1
        executor.update_parameters(
            timeout_min=sweep.resources.time_limit_min * rounds, **({"gpus_per_node": gpus} if gpus else {})
        )
        return executor

    def poll(self, submissions: Sequence[Submission]) -> dict[str, JobInfo]:
        """Alive: its controller process runs; its cost: its cell's ``attempts.json`` entries."""
        return {s.job_id: JobInfo(self._runs(s.job_id), job_cost(s, {})) for s in submissions}

    def find(self, name: str, since: str) -> list[str]:
        return []  # a local job's id is its process id, known only once started: nothing to find

    def before_submit(self, folder: Path, name: str, specs: Sequence[Any], time_min: int) -> None:
        pass

    def complete(self, folder: Path, name: str, index: int, job_id: str) -> None:
        pass

    def submitted(self, jobs: Sequence[Any]) -> None:
        pass

    def cancel(self, submissions: Sequence[Submission]) -> None:
        """SIGINT to each controller, as submitit cancels: it interrupts, then kills, its task."""
        for s in submissions:
            if self._runs(s.job_id):
                os.kill(int(s.job_id), signal.SIGINT)

    def _runs(self, job_id: str) -> bool:
        process = self._processes.get(job_id)
        if process is not None:
            return process.poll() is None
        return _controller_runs(job_id)


def _controller_runs(job_id: str) -> bool:
    """Whether the local job's controller process (its pid is the job id) still runs; a finished one that
    was not reaped yet is a zombie with an empty command line."""
    try:
        command = Path(f"/proc/{int(job_id)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return is_local_controller(command)


class SlurmBackend:
    """Jobs on a Slurm cluster: one job array per launch, or several of at most the cluster's MaxArraySize
    cells each, states and costs from one sacct call per poll."""

    name = "slurm"
    GRACE = timedelta(minutes=2)  # a job sbatch just accepted may not be in the accounting database yet
    # A cell resumes from its last checkpoint, so reaching the time limit only costs a requeue: allow many
    # (submitit's default, 3, would fail a 12-epoch run whose time limit fits 3 epochs).
    MAX_TIMEOUTS = 20

    def check(self, dry_run: bool) -> None:
        from ablation.run.slurm import require

        require(dry_run)

    def dry_run(
        self, folder: Path, sweep: Sweep, name: str, cells: Sequence[Any], options: dict[str, Any]
    ) -> str | None:
        from ablation.run.slurm import parameters, sbatch_scripts

        return sbatch_scripts(folder, self.arrays(name, cells), parameters(sweep, options))

    def arrays(self, name: str, cells: Sequence[T]) -> list[tuple[str, list[T]]]:
        """Asks the cluster its MaxArraySize (one scontrol call, once per launch)."""
        from ablation.run.slurm import arrays, max_array_size

        return arrays(name, cells, max_array_size())

    def executor(
        self, folder: Path, sweep: Sweep, name: str, options: dict[str, Any], specs: Sequence[Any]
    ) -> Any:
        import submitit

        from ablation.run.slurm import parameters

        executor = submitit.SlurmExecutor(folder=folder / "%j", max_num_timeout=self.MAX_TIMEOUTS)
        executor.update_parameters(job_name=name, **parameters(sweep, options))
        return executor

    def before_submit(self, folder: Path, name: str, specs: Sequence[Any], time_min: int) -> None:
        """Each job's pickle, written before sbatch under its array's name: submitit moves its own pickles
        to the jobs' folders only after sbatch answers, and a job without its folder and pickle cannot start
        (the jobs are submitted held, and released once both are there)."""
        from ablation.run.job import CellRunner

        for index, spec in enumerate(specs):
            dump_submission(
                CellRunner(), spec, _intent_pickle(folder, name, index), time_min, self.MAX_TIMEOUTS
            )

    def complete(self, folder: Path, name: str, index: int, job_id: str) -> None:
        from ablation.run.slurm import release

        target = submitted_pickle(folder, job_id)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_intent_pickle(folder, name, index), target)
        release([job_id])

    def submitted(self, jobs: Sequence[Any]) -> None:
        from ablation.run.slurm import release

        release({str(job.job_id).split("_")[0] for job in jobs})

    def poll(self, submissions: Sequence[Submission]) -> dict[str, JobInfo]:
        """States and costs from one sacct call; a job sacct does not know yet is alive for ``GRACE`` after
        its submission."""
        from ablation.run.slurm import LIVE_STATES, sacct_jobs

        jobs = sacct_jobs(s.job_id for s in submissions)
        now = datetime.now(UTC)
        return {
            s.job_id: JobInfo(
                alive=jobs[s.job_id].state in LIVE_STATES
                if s.job_id in jobs
                else now - datetime.fromisoformat(s.submitted) < self.GRACE,
                cost=job_cost(s, jobs),
            )
            for s in submissions
        }

    def track(self, job: Any) -> None:
        pass

    def find(self, name: str, since: str) -> list[str]:
        from ablation.run.slurm import sacct_ids, squeue_ids

        # sacct --name looks only at jobs since midnight unless told a start: from an hour before the intent
        # (clocks of the login node and the controller may differ)
        start = datetime.fromisoformat(since) - timedelta(hours=1)
        return sorted(set(squeue_ids(name)) | set(sacct_ids(name, start)))

    def cancel(self, submissions: Sequence[Submission]) -> None:
        from ablation.run.slurm import scancel

        scancel(s.job_id for s in submissions)


def _intent_pickle(folder: Path, name: str, index: int) -> Path:
    return folder / "intents" / f"{name}_{index}.pkl"


BACKENDS: dict[str, Backend] = {"local": LocalBackend(), "slurm": SlurmBackend()}


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown executor {name!r}; valid executors: {', '.join(BACKENDS)}")
    return BACKENDS[name]


@dataclass(frozen=True)
class Poll:
    """One poll of the executors about the jobs of some cells."""

    jobs: dict[tuple[str, str], JobInfo]  # (executor, job id) -> alive, cost
    costs: dict[tuple[str, str], Cost]  # (cell, cell_id) -> the sum over its jobs

    def alive(self, submission: Submission | None) -> bool:
        """Whether this job is still queued or running (False for none, or one not polled)."""
        info = None if submission is None else self.jobs.get((submission.executor, submission.job_id))
        return info is not None and info.alive


def poll(manifest: Manifest, cells: Iterable[tuple[str, str]]) -> Poll:
    """Every recorded job of the manifest for the ``cells`` (cell, cell_id), each asked of the executor it
    went to, all of an executor's at once (Slurm: one sacct call): whether it is alive, and what it cost;
    each cell's cost is the sum over all its jobs (first run, reruns), each over all its attempts."""
    wanted = set(cells)
    recorded = [s for s in manifest.history if s.recorded and (s.cell, s.cell_id) in wanted]
    jobs: dict[tuple[str, str], JobInfo] = {}
    for name in sorted({s.executor for s in recorded}):
        answers = backend(name).poll([s for s in recorded if s.executor == name])
        jobs.update({(name, job_id): info for job_id, info in answers.items()})
    return Poll(jobs, by_cell((s, jobs[(s.executor, s.job_id)].cost) for s in recorded))
