"""Where cells' jobs run: submitit executors made from a sweep, and which of their jobs are still alive.

Every backend submits ``job.run_cell`` through a submitit executor, so local and cluster runs take the same
code path. A backend also answers, for a batch of submissions at once, which jobs are still queued or
running: for local jobs by looking at their controller processes, for Slurm (next) with one sacct call.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from .errors import InputError
from .manifest import Submission
from .sweep import Sweep

__all__ = ["BACKENDS", "Backend", "LocalBackend", "backend"]


class Backend(Protocol):
    name: str

    def executor(self, folder: Path, sweep: Sweep) -> Any:
        """A submitit executor for the sweep's cells, its files under ``folder``."""

    def alive(self, submissions: Sequence[Submission]) -> set[str]:
        """The job ids, among ``submissions``, of jobs still queued or running."""

    def track(self, job: Any) -> None:
        """Keep what this process needs of a job it just submitted."""


class LocalBackend:
    """Jobs as processes on this machine (submitit's LocalExecutor): they outlive the launching command.

    The process that submits them keeps their handles: polling those reaps finished ones, and keeps Python
    from warning that a child still runs when a handle is collected."""

    name = "local"

    def __init__(self) -> None:
        self._processes: dict[str, Any] = {}

    def track(self, job: Any) -> None:
        process = getattr(job, "_process", None)
        if process is not None:
            self._processes[str(job.job_id)] = process

    def executor(self, folder: Path, sweep: Sweep) -> Any:
        import submitit

        executor = submitit.LocalExecutor(folder=folder / "%j")
        gpus = sweep.resources.gpus
        executor.update_parameters(
            timeout_min=sweep.resources.time_limit_min, **({"gpus_per_node": gpus} if gpus else {})
        )
        return executor

    def alive(self, submissions: Sequence[Submission]) -> set[str]:
        return {s.job_id for s in submissions if self._runs(s.job_id)}

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
    return b"submitit.local._local" in command


BACKENDS: dict[str, Backend] = {"local": LocalBackend()}


def backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"unknown executor {name!r}; valid executors: {', '.join(BACKENDS)}")
    return BACKENDS[name]
