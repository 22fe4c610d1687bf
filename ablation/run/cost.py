"""What a cell's jobs cost, over every attempt of every job: attempts, wall hours, CPU-hours and GPU-hours.

On Slurm the scheduler's accounting is the truth: each attempt's elapsed seconds and the CPUs and GPUs
allocated to it (sacct's ElapsedRaw and AllocTRES; a requeued job has one record per start). Locally, from
the cell's own attempt records (``attempts``): wall seconds x processes x threads (CPU), x GPUs (GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Cost"]

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
