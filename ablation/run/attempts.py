"""The attempts of a cell as its own jobs record them: ``attempts.json`` in its work_dir, one entry per
start of a job of the cell (a first run, a requeue after a time limit or a node failure, a
``--retry-failed``), with the processes, torch threads and GPUs it ran with, when it started, when it was
last seen alive and when it ended.

This is what the local executor's compute accounting reads (wall seconds x processes x threads); on Slurm
the scheduler's accounting (sacct) is the truth and this file only tells where an attempt ran. An attempt
killed without a word (kill -9, a lost node) has no ``ended``: its wall time runs to ``last_seen``, which
the job's training refreshes at most every ``BEAT_S`` seconds (``beat``), so a killed attempt is counted to
within that.

Rank 0 writes it (one writer per cell: it holds the cell's lock); every write is atomic.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ablation.fsio import write_atomic

__all__ = ["ATTEMPTS_FILE", "BEAT_S", "Attempt", "beat", "begin", "end", "read_attempts"]

ATTEMPTS_FILE = "attempts.json"
BEAT_S = 30.0


@dataclass(frozen=True)
class Attempt:
    """One start of a job of the cell."""

    attempt: int  # the job's attempt number (the manifest's); a requeued job starts it again, same number
    executor: str  # "local" or "slurm"
    job_id: str  # the executor's job id ("" when unknown)
    host: str
    processes: int  # the cell's processes (Slurm tasks), each with ``threads`` torch threads
    threads: int
    gpus: int  # GPUs of the whole attempt (0 on CPU)
    started: str  # ISO 8601, UTC
    last_seen: str
    ended: str | None = None  # None while it runs, or when it was killed

    @property
    def wall_s(self) -> float:
        """Seconds from its start to its end (or to when it was last seen)."""
        stop = datetime.fromisoformat(self.ended or self.last_seen)
        return max(0.0, (stop - datetime.fromisoformat(self.started)).total_seconds())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_attempts(work_dir: Path) -> list[Attempt]:
    """The recorded attempts, oldest first; none when there is no file, or it cannot be read (it is a
    record for accounting, never a reason for a cell to fail)."""
    try:
        data = json.loads((work_dir / ATTEMPTS_FILE).read_text(encoding="utf-8"))
        return [Attempt(**entry) for entry in data["attempts"]]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def _write(work_dir: Path, attempts: list[Attempt]) -> None:
    data = {"attempts": [dataclasses.asdict(a) for a in attempts]}
    write_atomic(work_dir / ATTEMPTS_FILE, json.dumps(data, indent=1) + "\n", durable=False)


def begin(
    work_dir: Path, *, attempt: int, executor: str, job_id: str, processes: int, threads: int, gpus: int
) -> None:
    """Record the start of an attempt."""
    now = _now()
    started = Attempt(
        attempt=attempt, executor=executor, job_id=job_id, host=socket.gethostname(), processes=processes,
        threads=threads, gpus=gpus, started=now, last_seen=now,
    )  # fmt: skip
    _write(work_dir, [*read_attempts(work_dir), started])


def _update_last(work_dir: Path, last_seen: str, ended: str | None = None) -> None:
    attempts = read_attempts(work_dir)
    if attempts and attempts[-1].ended is None:
        changed = dataclasses.replace(attempts[-1], last_seen=last_seen, ended=ended)
        _write(work_dir, [*attempts[:-1], changed])


def beat(work_dir: Path, last: list[float]) -> None:
    """Refresh the running attempt's ``last_seen``, at most every ``BEAT_S`` seconds (``last`` holds the
    monotonic time of the previous beat, kept by the caller)."""
    now = time.monotonic()
    if last and now - last[0] < BEAT_S:
        return
    last[:] = [now]
    _update_last(work_dir, _now())


def end(work_dir: Path) -> None:
    """Record the end of the running attempt (done, failed or leaving for a requeue)."""
    now = _now()
    _update_last(work_dir, now, now)
