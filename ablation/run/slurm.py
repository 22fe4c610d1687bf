"""Slurm through submitit: the executor's parameters from a sweep, the job arrays a launch goes out as, and
job states and attempts from batched sacct calls.

A cluster refuses an array larger than its MaxArraySize (the largest index is MaxArraySize - 1; 0 disables
arrays), read with one ``scontrol show config`` per launch: a launch of more cells goes out as several arrays
of at most that many cells (one-cell plain jobs where arrays are disabled), each under its own job name.

One sacct call answers for any number of jobs (``-j`` takes a comma-separated list; array jobs are asked for
by their array id and come back one line per task, or one line per range while still pending), so a poll
costs one call whatever the size of the grid. With ``-D`` it also gives each start of a job (a requeue, by
Slurm or by submitit at a time limit, or a node failure, starts the same job id again): the current state
is that of the last record, and each record with an allocation is an attempt, with its elapsed seconds and
allocated CPUs and GPUs (the compute accounting, ``cost``). A job sbatch accepted a moment ago may not be
in the accounting database yet; ``squeue``, which asks the controller, finds it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ablation.errors import EnvironmentProblem, InputError
from ablation.grid.limits import check_bounds, check_slurm_name
from ablation.grid.sweep import Sweep

__all__ = [
    "LIVE_STATES",
    "SACCT_FORMAT",
    "SlurmAttempt",
    "SlurmJob",
    "arrays",
    "check_options",
    "max_array_size",
    "parameters",
    "parse_max_array_size",
    "parse_sacct",
    "release",
    "require",
    "sacct_ids",
    "sacct_jobs",
    "sbatch_script",
    "sbatch_scripts",
    "scancel",
    "squeue_ids",
]

# Slurm job states in which a job may still compute (sacct's long names).
LIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SUSPENDED",
        "CONFIGURING",
        "COMPLETING",
        "SIGNALING",
        "STAGE_OUT",
    }
)
# What each poll asks sacct of every job (with -D: one line per start of a job).
SACCT_FORMAT = "JobID,State,ElapsedRaw,AllocTRES"
_ARRAY = re.compile(r"^(?P<base>\d+)_\[(?P<ranges>[^\]]+)\]$")
_MAX_ARRAY_SIZE = re.compile(r"^MaxArraySize\s*=\s*(\d+)\s*$", re.MULTILINE)
T = TypeVar("T")


# The launch options that replace a sweep's settings (``ablation launch --partition ...``), each checked as
# the setting it replaces: a Slurm name, or an integer in the setting's range (``settings.BOUNDS``).
OPTIONS: dict[str, str | None] = {
    "partition": None,
    "account": None,
    "qos": None,
    "gpus": "gpus",
    "cpus": "cpus_per_task",
    "mem_gb": "mem_gb",
    "time_min": "time_limit_min",
    "array_parallelism": "array_parallelism",
}


def check_options(options: Mapping[str, Any]) -> None:
    """An ``InputError`` naming the option (``argument``: the CLI shows its flag) when a launch option would
    not fit the sbatch script: a name that is not a Slurm name (a newline would start another directive), a
    number out of its setting's range, an unknown option. Call it before anything is written; the sweep's
    own [slurm] and [resources] values were checked when it loaded. ``parameters`` checks again."""
    for key, value in options.items():
        if value is None:
            continue
        if key not in OPTIONS:
            raise InputError(f"{key}: not a launch option; valid: {', '.join(OPTIONS)}", argument=key)
        bound = OPTIONS[key]
        try:
            if bound is None:
                check_slurm_name(key, value)
            else:
                check_bounds(bound, value, key)
        except InputError as error:
            raise InputError(str(error), argument=key) from None


def parameters(sweep: Sweep, options: dict[str, Any]) -> dict[str, Any]:
    """submitit SlurmExecutor parameters from the sweep's [slurm] and [resources], ``options`` overriding
    (checked by ``check_options``)."""
    check_options(options)
    s, r = sweep.slurm, sweep.resources
    gpus = options.get("gpus", r.gpus)
    cpus = options.get("cpus") or s.cpus_per_task or max(1, r.workers_per_gpu + 1)
    params: dict[str, Any] = {
        "time": options.get("time_min") or r.time_limit_min,
        "signal_delay_s": s.signal_delay_s,
        "array_parallelism": options.get("array_parallelism") or s.array_parallelism,
        "cpus_per_task": cpus,
        "nodes": 1,
        # one task per GPU (or [resources] tasks CPU processes), one rank each of the cell's process group
        # (ablation.run.distributed); submitit does not pin GPUs per task
        "ntasks_per_node": r.task_count(gpus),
        # held until the launcher has put each job's pickle and folder in place, then released: a launcher
        # killed in between leaves held jobs, which the next launch completes and releases
        "additional_parameters": {"requeue": True, "hold": True, **s.sbatch_options()},
        "setup": list(s.setup),
        "stderr_to_stdout": True,
    }
    if gpus:
        params["gpus_per_node"] = gpus
    for key, value in (
        ("partition", options.get("partition") or s.partition),
        ("account", options.get("account") or s.account),
        ("qos", options.get("qos") or s.qos),
        ("mem", f"{mem_gb}GB" if (mem_gb := options.get("mem_gb") or s.mem_gb) else None),
    ):
        if value is not None:
            params[key] = value
    return params


def require(dry_run: bool) -> None:
    """An ``InputError`` (a user's situation, not a bug) when this machine has no Slurm to launch on: a
    launch needs ``srun`` (submitit's executor looks for it) and ``sbatch``; a dry run, which only writes
    the script, ``srun``."""
    wanted = ("srun",) if dry_run else ("srun", "sbatch")
    missing = [command for command in wanted if shutil.which(command) is None]
    if missing:
        raise InputError(
            f"executor slurm: Slurm is not found on this machine (no {' or '.join(missing)} on PATH); "
            "--executor local runs the cells here without a cluster",
            argument="executor",
        )


def sbatch_script(folder: Path, name: str, params: dict[str, Any], count: int) -> str:
    """The sbatch script submitit writes for a job array of ``count`` cells (``count`` 1: a plain job)."""
    import submitit

    from ablation.run.submitit_internals import sbatch_string

    executor = submitit.SlurmExecutor(folder=folder / "%j")
    executor.update_parameters(job_name=name, **params)
    return sbatch_string(executor, count)


def sbatch_scripts(
    folder: Path, arrays: Sequence[tuple[str, Sequence[object]]], params: dict[str, Any]
) -> str:
    """The sbatch scripts of a launch's ``arrays`` (each one's job name and cells, as ``arrays`` gives them),
    one after the other, each after a comment line such as ``# array 2 of 3: 3 cells``; a launch of one
    array is its script alone, as ``sbatch_script`` writes it."""
    if len(arrays) == 1:
        ((name, cells),) = arrays
        return sbatch_script(folder, name, params, len(cells))
    return "".join(
        f"# array {k} of {len(arrays)}: {len(cells)} cell{'' if len(cells) == 1 else 's'}\n"
        + sbatch_script(folder, name, params, len(cells))
        for k, (name, cells) in enumerate(arrays, 1)
    )


def max_array_size() -> int | None:
    """The cluster's MaxArraySize, from one ``scontrol show config`` call; None where scontrol is not
    installed (a dry run on a machine without Slurm), so that a launch goes out as one array."""
    if shutil.which("scontrol") is None:
        return None
    return parse_max_array_size(_run(["scontrol", "show", "config"]))


def parse_max_array_size(config: str) -> int:
    """MaxArraySize from the output of ``scontrol show config`` (``MaxArraySize            = 1001``)."""
    found = _MAX_ARRAY_SIZE.search(config)
    if found is None:
        raise EnvironmentProblem("scontrol show config printed no MaxArraySize line")
    return int(found[1])


def arrays(name: str, cells: Sequence[T], limit: int | None) -> list[tuple[str, list[T]]]:
    """The job arrays that a launch named ``name`` sends ``cells`` out as, in order, under a MaxArraySize
    of ``limit`` (None: unknown, no limit): one array named ``name`` when they fit, else arrays of at most
    ``limit`` cells (plain one-cell jobs for 0, arrays disabled) named ``name-1``, ``name-2``, ..."""
    size = len(cells) if limit is None else max(1, limit)
    if len(cells) <= size:
        return [(name, list(cells))] if cells else []
    starts = range(0, len(cells), size)
    return [(f"{name}-{k}", list(cells[start : start + size])) for k, start in enumerate(starts, 1)]


def _run(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        raise EnvironmentProblem(f"{command[0]} not found: is this a Slurm machine? (see slurm/README.md)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvironmentProblem(
            f"{' '.join(command[:2])} failed: {done.stderr.strip() or done.stdout.strip()}"
        )
    return done.stdout


def _expand(job_id: str) -> list[str]:
    """'12_[0-2,5%2]' -> ['12_0', '12_1', '12_2', '12_5']; any other id as it is."""
    found = _ARRAY.match(job_id)
    if found is None:
        return [job_id]
    ids: list[str] = []
    for part in found["ranges"].split("%")[0].split(","):
        first, _, last = part.partition("-")
        ids.extend(f"{found['base']}_{i}" for i in range(int(first), int(last or first) + 1))
    return ids


@dataclass(frozen=True)
class SlurmAttempt:
    """One start of a job, as the accounting database records it: its elapsed seconds (still growing while
    it runs) and the CPUs and GPUs allocated to it."""

    elapsed_s: int
    cpus: int
    gpus: int


@dataclass(frozen=True)
class SlurmJob:
    """A job (an array task, one by one) as sacct knows it: its current state (that of its last record)
    and its attempts, one per start (a requeued job has one record per start; a record without an
    allocation, such as a pending job's, is no attempt)."""

    state: str
    attempts: tuple[SlurmAttempt, ...] = ()


def sacct_jobs(job_ids: Iterable[str]) -> dict[str, SlurmJob]:
    """Job id -> its state and attempts, for the jobs sacct knows, in one call whatever their number (array
    jobs asked for by their array id; ``-D``: every start of a requeued job)."""
    bases = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not bases:
        return {}
    return parse_sacct(
        _run(["sacct", "-n", "-X", "-P", "-D", f"--format={SACCT_FORMAT}", "-j", ",".join(bases)])
    )


def parse_sacct(out: str) -> dict[str, SlurmJob]:
    """The jobs in the output of ``sacct -n -X -P -D --format=JobID,State,ElapsedRaw,AllocTRES``, in the
    order sacct prints a job's records (oldest start first): a pending array range (``12_[0-3%2]``) stands
    for each of its tasks."""
    records: dict[str, list[tuple[str, SlurmAttempt | None]]] = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        job_id, state, elapsed, tres = [*line.split("|"), "", "", ""][:4]
        words = state.split()
        attempt = _attempt(elapsed, tres)
        for one in _expand(job_id.strip()):
            records.setdefault(one, []).append((words[0] if words else "UNKNOWN", attempt))
    return {
        job_id: SlurmJob(found[-1][0], tuple(a for _, a in found if a is not None))
        for job_id, found in records.items()
    }


def _attempt(elapsed: str, tres: str) -> SlurmAttempt | None:
    """A record's attempt, from its ElapsedRaw and AllocTRES (``billing=2,cpu=2,gres/gpu=1,node=1``); None
    without an allocation. GPUs: ``gres/gpu=N``, else the sum of the typed ``gres/gpu:TYPE=N``."""
    allocated = dict(item.partition("=")[::2] for item in tres.split(",") if "=" in item)
    if "cpu" not in allocated:
        return None
    typed = [value for key, value in allocated.items() if key.startswith("gres/gpu:")]
    gpus = _count(allocated["gres/gpu"]) if "gres/gpu" in allocated else sum(map(_count, typed))
    return SlurmAttempt(_count(elapsed), _count(allocated["cpu"]), gpus)


def _count(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def squeue_ids(name: str) -> list[str]:
    """Ids of the queued or running jobs named ``name``, array tasks one by one (pending ranges expanded)."""
    out = _run(["squeue", "-h", "-r", "-n", name, "-o", "%i"])
    return [one for line in out.split() for one in _expand(line.strip())]


def sacct_ids(name: str, since: datetime) -> list[str]:
    """Ids of the jobs named ``name`` that sacct knows, submitted since ``since``: without a start time,
    sacct --name looks only at jobs since midnight."""
    start = since.astimezone().strftime("%Y-%m-%dT%H:%M:%S")  # sacct reads the controller's local time
    out = _run(["sacct", "-n", "-X", "-P", "--format=JobID", "--name", name, "--starttime", start])
    return [one for line in out.split() for one in _expand(line.strip())]


def release(job_ids: Iterable[str]) -> None:
    """Let held jobs start (one call)."""
    ids = sorted(set(job_ids))
    if ids:
        _run(["scontrol", "release", ",".join(ids)])


def scancel(job_ids: Iterable[str]) -> None:
    ids = sorted(set(job_ids))
    if ids:
        _run(["scancel", *ids])
