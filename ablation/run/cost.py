"""What a cell's jobs cost, over every attempt of every job: attempts, wall hours, CPU-hours and GPU-hours.

On Slurm the scheduler's accounting is the truth: each attempt's elapsed seconds and the CPUs and GPUs
allocated to it (sacct's ElapsedRaw and AllocTRES; a requeued job has one record per start). Locally, from
the cell's own attempt records (``attempts``): wall seconds x processes x threads (CPU), x GPUs (GPU).
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ablation.run.attempts import Attempt, read_attempts
from ablation.run.manifest import Submission, load_manifest

if TYPE_CHECKING:
    from ablation.run.slurm import SlurmJob

__all__ = ["Cost", "attempts_cost", "by_cell", "job_cost", "slurm_cost", "sweep_costs", "sweeps_costs"]

_HOUR = 3600.0


@dataclass(frozen=True)
class Cost:
    """The cost of some attempts. ``gpu_s`` is None when none of them had a GPU (so that a CPU grid reads
    "no GPU-hours", not 0)."""

    attempts: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    gpu_s: float | None = None

    def __add__(self, other: Cost) -> Cost:
        both = (self.gpu_s, other.gpu_s)
        gpu = None if both == (None, None) else sum(s or 0.0 for s in both)
        return Cost(self.attempts + other.attempts, self.wall_s + other.wall_s, self.cpu_s + other.cpu_s, gpu)

    @property
    def wall_hours(self) -> float:
        return self.wall_s / _HOUR

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / _HOUR

    @property
    def gpu_hours(self) -> float | None:
        return None if self.gpu_s is None else self.gpu_s / _HOUR


def attempts_cost(attempts: Iterable[Attempt]) -> Cost:
    """The cost of attempts as a cell's jobs record them: wall seconds, x processes x threads (CPU), x GPUs
    (GPU; None when none had one)."""
    done = list(attempts)
    gpus = [a.wall_s * a.gpus for a in done if a.gpus]
    return Cost(
        attempts=len(done),
        wall_s=sum(a.wall_s for a in done),
        cpu_s=sum(a.wall_s * a.processes * a.threads for a in done),
        gpu_s=sum(gpus) if gpus else None,
    )


def slurm_cost(job: SlurmJob) -> Cost:
    """The cost of a Slurm job from its accounting records: one attempt per start with an allocation, its
    elapsed seconds x the CPUs (x the GPUs; None when no start had one) allocated to it."""
    gpus = [a.elapsed_s * a.gpus for a in job.attempts if a.gpus]
    return Cost(
        attempts=len(job.attempts),
        wall_s=float(sum(a.elapsed_s for a in job.attempts)),
        cpu_s=float(sum(a.elapsed_s * a.cpus for a in job.attempts)),
        gpu_s=float(sum(gpus)) if gpus else None,
    )


def job_cost(submission: Submission, accounted: Mapping[str, SlurmJob]) -> Cost:
    """The cost of one job of a cell: from sacct's records where it is a Slurm job in ``accounted`` (the
    answer of ``slurm.sacct_jobs``), else from the entries of its cell's ``attempts.json`` with its executor
    and attempt number (a local job; or a Slurm job that sacct does not know, or where it was not asked)."""
    job = accounted.get(submission.job_id) if submission.executor == "slurm" else None
    if job is not None:
        return slurm_cost(job)
    return attempts_cost(
        a
        for a in read_attempts(Path(submission.work_dir))
        if a.executor == submission.executor and a.attempt == submission.attempt
    )


def sweeps_costs(sweep_folders: Sequence[Path]) -> dict[Path, dict[tuple[str, str], Cost]]:
    """``sweep_costs`` of several sweep folders (each as given, a key of the answer), with one sacct call for
    the Slurm jobs of all of them."""
    from ablation.run.slurm import sacct_jobs

    jobs = {
        folder: [s for s in load_manifest(folder, folder.name).history if s.recorded]
        for folder in sweep_folders
    }
    slurm_ids = [s.job_id for js in jobs.values() for s in js if s.executor == "slurm"]
    accounted = sacct_jobs(slurm_ids) if slurm_ids and shutil.which("sacct") else {}
    return {folder: by_cell((s, job_cost(s, accounted)) for s in js) for folder, js in jobs.items()}


def by_cell(costs: Iterable[tuple[Submission, Cost]]) -> dict[tuple[str, str], Cost]:
    """(cell, cell_id) -> the sum of the costs of its jobs."""
    summed: dict[tuple[str, str], Cost] = defaultdict(Cost)
    for submission, cost in costs:
        summed[(submission.cell, submission.cell_id)] += cost
    return dict(summed)


def sweep_costs(sweep_folder: Path) -> dict[tuple[str, str], Cost]:
    """What each cell of a sweep folder cost, keyed by (cell name, cell_id): the sum over every job its
    manifest recorded for that cell and config (the first run, Slurm's requeues within a job, reruns with
    ``--retry-failed``), each job over all its attempts (``job_cost``). One sacct call for all the folder's
    Slurm jobs, none when it has none; where sacct is not installed (a harvest away from the cluster), or
    does not know a job (purged from the accounting), a Slurm job's cost comes from its cell's
    ``attempts.json``: wall seconds x processes x threads, as locally, not the scheduler's allocation.

    Raises ``ManifestError`` when the manifest cannot be read, ``EnvironmentProblem`` when sacct fails."""
    return sweeps_costs([sweep_folder])[sweep_folder]
