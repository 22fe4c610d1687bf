"""The processes of one multi-task cell as one torch.distributed group: gloo on CPU, NCCL on GPUs.

A cell with N tasks (``sbatch --ntasks-per-node=N``: one per GPU, or ``[resources] tasks`` on a CPU node)
runs N copies of the cell's job, started by srun. mmengine's own Slurm launcher cannot start them on a
machine without CUDA (``_init_dist_slurm`` calls ``torch.cuda.set_device`` whatever the backend), so the job
forms the group itself, from Slurm's variables, the way that launcher does: rank ``SLURM_PROCID``, world size
``SLURM_NTASKS``, local rank ``SLURM_LOCALID``, the master at ``MASTER_ADDR`` (else the first host of
``SLURM_JOB_NODELIST``) and ``MASTER_PORT`` (else one derived from the job id, so that two jobs on one node
never share a port; a requeued job keeps its id, hence its port). The backend is NCCL when CUDA is available
(each rank then uses GPU ``local_rank``), gloo otherwise. It also exports ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, which mmengine reads (its model wrapper takes
``LOCAL_RANK``). mmengine's Runner, given any launcher but ``'none'``, is then distributed and finds the group
already formed, so it skips its own ``init_dist``: it wraps the model in MMDistributedDataParallel, shards
the data with its DefaultSampler (the effective batch is tasks x images per task) and gathers the metric over
the ranks. (With ``launcher='none'`` it would ignore the group: every rank would train alone on all the data,
unsynchronised.)

Only rank 0 holds the cell's lock, so only rank 0 can tell whether this job is the one that runs the cell.
Its decision reaches the others through the group's first collective, before anything else happens:
rank 0 tries the lock, then every rank joins the group whatever the answer (a rank that stayed away would
leave the others waiting at the rendezvous), and ``join`` broadcasts rank 0's answer from rank 0. When it
is "no" (a live job of the same cell holds the lock), every rank leaves the group and returns at once. The
lock itself stays a plain flock held by one process, released by the kernel when rank 0 dies; the other
ranks of the job that holds it follow rank 0 through the group (a rank 0 that dies breaks gloo's
connections, so they fail too).

This module only needs torch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Task", "first_host", "join", "leave", "slurm_task"]

_BASE_PORT, _PORTS = 20000, 20000  # MASTER_PORT = 20000 + job id % 20000 unless given


@dataclass(frozen=True)
class Task:
    """Where one process stands in its cell's group."""

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    cpus: int  # CPUs Slurm gave this task (SLURM_CPUS_PER_TASK; 1 when unset)


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list, as ``scontrol show hostnames | head -n1`` gives it:
    'node[03-05,9],gpu1' -> 'node03', 'rack[1-2]-n[7-8]' -> 'rack1-n7', 'vm' -> 'vm'."""
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    return re.sub(r"\[([^\],-]+)[^\]]*\]", r"\1", nodelist[:end].strip())


def slurm_task(environ: Mapping[str, str] = os.environ) -> Task | None:
    """This process' place in its Slurm job's tasks; None for a job of one task, or outside Slurm."""
    world_size = int(environ.get("SLURM_NTASKS", "1"))
    if world_size <= 1 or "SLURM_PROCID" not in environ:
        return None
    job_id = int(environ.get("SLURM_JOB_ID", "0"))
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST") or "127.0.0.1"
    return Task(
        rank=int(environ["SLURM_PROCID"]),
        world_size=world_size,
        local_rank=int(environ.get("SLURM_LOCALID", "0")),
        master_addr=environ.get("MASTER_ADDR") or first_host(nodelist),
        master_port=int(environ.get("MASTER_PORT") or _BASE_PORT + job_id % _PORTS),
        cpus=int(environ.get("SLURM_CPUS_PER_TASK") or "1"),
    )


def join(task: Task, go: bool, timeout: timedelta = timedelta(minutes=30)) -> bool:
    """Form the group (every rank calls this, whatever rank 0 decided) and return rank 0's ``go``: whether
    this job runs the cell. On False the group is already left. The backend is NCCL when CUDA is
    available, gloo otherwise; with NCCL the process' device becomes GPU ``task.local_rank``."""
    import torch
    import torch.distributed as dist

    os.environ.update(
        RANK=str(task.rank),
        WORLD_SIZE=str(task.world_size),
        LOCAL_RANK=str(task.local_rank),
        MASTER_ADDR=task.master_addr,
        MASTER_PORT=str(task.master_port),
    )
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(task.local_rank)
    dist.init_process_group(
        backend="nccl" if cuda else "gloo", rank=task.rank, world_size=task.world_size, timeout=timeout
    )
    decision = torch.tensor([int(go)], device=f"cuda:{task.local_rank}" if cuda else "cpu")
    dist.broadcast(decision, src=0)  # the group's first collective: rank 0's answer
    if not decision.item():
        leave()
        return False
    return True


def leave() -> None:
    """Leave the group, when there is one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
