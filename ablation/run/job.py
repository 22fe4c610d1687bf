"""The job of one cell, the same function for every executor: train, test, measure, write the result file.

``run_cell`` trains with mmengine's Runner from the cell's planned config, resuming from the last checkpoint
in its work_dir when there is one (so a requeued or re-run cell never starts over), tests with the config's
CocoMetric on the val split, measures inference speed, training memory, FLOPs and parameters, and writes
``result.json`` (see ``result_file``). While it runs it holds the cell's lock, so a second job for the same
cell returns at once without touching anything; with local slots it first waits for one of them, and times
its inference speed while the launch's other local jobs pause (``quiet``).

A Slurm job of N > 1 tasks runs one process per task, all in one torch.distributed group (gloo on CPU, NCCL
on GPUs; see ``distributed``), training and testing together with mmengine's distributed Runner. Rank 0
holds the lock, writes ``result.json`` and measures (fps, FLOPs); the other ranks train and test only. Rank
0 takes the lock before the group forms, and the group's first collective carries its answer to every
rank, so the ranks of a duplicate job all step aside together, none left waiting for a rank 0 that did.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import socket
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit

from ablation.errors import CellFailed, Diverged
from ablation.fsio import write_atomic
from ablation.grid.identity import CellIdentity
from ablation.run import attempts, distributed
from ablation.run.locks import one_slot_of, try_exclusive
from ablation.run.quiet import Quiet
from ablation.run.result_file import METRICS, CellResult, write_result

__all__ = ["CellJob", "CellRunner", "run_cell"]

LOCK_FILE = ".job.lock"
LAST_CHECKPOINT = "last_checkpoint"  # mmengine's pointer to the checkpoint to resume from
_TAIL_LINES = 40


@dataclass(kw_only=True)
class CellJob(CellIdentity):
    """Everything a job needs: its cell (``CellIdentity``) and plain values (pickled to the executor)."""

    name: str  # the cell's name, with the seed of a replicate: its config's and manifest entry's name
    cell_id: str
    config: str  # absolute path of the planned config
    config_hash: str
    work_dir: str  # absolute
    cwd: str  # relative paths in the config (data_root) are taken from here
    attempt: int
    test_size: tuple[int, int]  # (height, width) of the FLOPs input
    warmup_images: int = 5
    timed_images: int = 50
    threads: int | None = None  # torch CPU threads; None: torch's default
    slots: str | None = None  # folder of local slot locks; None: no cap (a scheduler caps)
    parallel: int = 1  # how many slots
    tasks: int = 1  # processes of one cell, one per GPU (Slurm tasks); the job runs with as many as it has
    keep_checkpoints: str = "all"  # "all", "last", or "none" (removed once the cell is done)
    stop_on_divergence: bool = True  # fail at the first NaN or infinite loss (``divergence``)
    divergence_factor: float | None = None  # also at a loss over this x the early median; None: no such rule


def checkpoints(work_dir: Path) -> list[Path]:
    """mmengine's checkpoints in a work_dir, oldest first (by epoch or iteration number)."""
    found = [*work_dir.glob("epoch_*.pth"), *work_dir.glob("iter_*.pth")]

    def number(path: Path) -> int:
        tail = path.stem.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    return sorted(found, key=lambda p: (p.stem.startswith("iter"), number(p)))


def resume_point(work_dir: Path) -> Path | None:
    """The checkpoint a resumed run starts from. mmengine resumes from the file ``last_checkpoint`` names;
    when that file is gone (a job killed between mmengine's removal of an old checkpoint and the writing of a
    new one, with an older mmengine setting), the pointer is moved to the newest checkpoint there is, or
    removed when there is none, so the run resumes or starts over instead of failing."""
    pointer = work_dir / LAST_CHECKPOINT
    try:
        named = Path(pointer.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        return None
    if named.is_file():
        return named
    existing = checkpoints(work_dir)
    if existing:
        write_atomic(pointer, str(existing[-1]))
        return existing[-1]
    pointer.unlink(missing_ok=True)
    return None


def git_commit() -> str | None:
    """The commit of the ablation checkout that runs the job ('-dirty' with uncommitted changes), when it is
    a git checkout."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CellRunner(submitit.helpers.Checkpointable):
    """``run_cell`` as a checkpointable submitit callable: at a time limit or a preemption submitit requeues
    the same job (Slurm keeps its id) and the run resumes from the work_dir's last mmengine checkpoint."""

    def __init__(self) -> None:
        super().__init__()

    def __call__(self, job: CellJob) -> CellResult | None:
        return run_cell(job)


def run_cell(job: CellJob) -> CellResult | None:
    """Run one attempt of a cell; None when another live job already runs it. Raises ``CellFailed`` after
    recording a failure, so that the executor sees the job fail too."""
    work_dir = Path(job.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    task = distributed.slurm_task() if os.environ.get("SUBMITIT_EXECUTOR") == "slurm" else None
    if task is not None:
        return _run_distributed(dataclasses.replace(job, tasks=task.world_size), work_dir, task)
    # the tasks it runs with, whatever was asked; on Slurm, as many torch threads as the CPUs it was given
    # (torch would take every core of the node, and its threads spin against the other jobs there)
    cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    slurm = os.environ.get("SUBMITIT_EXECUTOR") == "slurm" and cpus.isdigit()
    job = dataclasses.replace(job, tasks=1, threads=job.threads or (int(cpus) if slurm else None))
    with try_exclusive(work_dir / LOCK_FILE) as mine:
        if not mine:
            return None
        slot = one_slot_of(Path(job.slots), job.parallel) if job.slots else contextlib.nullcontext()
        with slot:
            return _attempt(job, work_dir)


def _run_distributed(job: CellJob, work_dir: Path, task: distributed.Task) -> CellResult | None:
    """One rank of a multi-task cell. Rank 0 tries the cell's lock first and, when it gets it, fixes the
    resume point; then every rank joins the group, whatever rank 0's answer (even when trying the lock
    raised), and learns the answer from the group's first collective (``distributed.join``): all of them run
    the cell, or all of them return None at once. Each rank takes the CPUs Slurm gave its task as torch
    threads (one per task by default)."""
    job = dataclasses.replace(job, threads=job.threads or task.cpus)
    with contextlib.ExitStack() as held:
        mine, problem = task.rank > 0, None
        if task.rank == 0:
            try:
                mine = held.enter_context(try_exclusive(work_dir / LOCK_FILE))
                if mine:
                    resume_point(work_dir)  # before the others read the pointer: they wait for the answer
            except Exception as error:  # the others wait for an answer all the same: "no"
                mine, problem = False, error
        go = distributed.join(task, go=mine)
        if problem is not None:
            raise problem
        if not go:
            print(f"ablation: {job.cell}: rank {task.rank} of {task.world_size} steps aside (no lock)")
            return None
        try:
            if task.rank == 0:
                return _attempt(job, work_dir)
            os.chdir(job.cwd)
            _train_test_measure(job, _blank(job), measure=False)
            return None
        finally:
            distributed.leave()
            # Free the group now, while the interpreter is whole: mmengine's runner and its DDP wrapper keep
            # it in reference cycles, and a group left to the interpreter's exit was seen to abort a rank
            # (SIGABRT: a done cell's job FAILED in sacct) in 3 of about 50 two-task jobs.
            gc.collect()


def _blank(job: CellJob) -> CellResult:
    return CellResult(
        **job.identity(),
        status="running",
        cell_id=job.cell_id,
        config=job.config,
        config_hash=job.config_hash,
        attempt=job.attempt,
        host=socket.gethostname(),
        pid=os.getpid(),
        started=now(),
        git_commit=git_commit(),
        tasks=job.tasks,
    )


def _attempt(job: CellJob, work_dir: Path) -> CellResult:
    """Rank 0's attempt at the cell, recorded in its attempts.json from its start to its end, whatever the
    end: done, failed, diverged, or leaving for a requeue (``SystemExit``)."""
    import torch

    attempts.begin(
        work_dir, attempt=job.attempt, executor=os.environ.get("SUBMITIT_EXECUTOR", "local"),
        job_id=_job_id(), processes=job.tasks, threads=_threads(job),
        gpus=job.tasks if torch.cuda.is_available() else 0,
    )  # fmt: skip
    try:
        return _run_attempt(job, work_dir)
    finally:
        attempts.end(work_dir)


def _job_id() -> str:
    """The executor's id of this job: an array task's ``<array job>_<task>``, as Slurm and sacct name it."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    with contextlib.suppress(Exception):  # no submitit job: ``ablation run`` in the foreground
        return env.get("SLURM_JOB_ID") or str(submitit.JobEnvironment().job_id)
    return ""


def _threads(job: CellJob) -> int:
    """Sets the torch threads the job asks for; the threads torch computes with."""
    import torch

    if job.threads:
        torch.set_num_threads(job.threads)
    return int(torch.get_num_threads())


def _run_attempt(job: CellJob, work_dir: Path) -> CellResult:
    os.chdir(job.cwd)
    result = _blank(job)
    write_result(work_dir, result)
    began = time.perf_counter()
    try:
        _train_test_measure(job, result)
    except Exception as error:
        exit_ = _exit_inside(error)
        if exit_ is not None:  # not a failure: the job was requeued and is leaving; its next start resumes
            raise exit_ from None
        result.status = "failed"
        diverged = isinstance(error, Diverged)  # its reason ends the log's tail, without a traceback
        result.error = str(error) if diverged else f"{type(error).__name__}: {error}".strip()
        result.log_tail = _log_tail(work_dir, result.error if diverged else traceback.format_exc())
        result.finished = now()
        result.timings["total_s"] = time.perf_counter() - began
        write_result(work_dir, result)
        raise CellFailed(f"cell {job.cell} failed: {result.error.splitlines()[0]}") from error
    if job.keep_checkpoints != "all":
        keep = set() if job.keep_checkpoints == "none" else {resume_point(work_dir)}
        for checkpoint in checkpoints(work_dir):
            if checkpoint not in keep:
                checkpoint.unlink()
        if not keep:
            (work_dir / LAST_CHECKPOINT).unlink(missing_ok=True)
    result.status = "done"
    result.finished = now()
    result.timings["total_s"] = time.perf_counter() - began
    write_result(work_dir, result)
    return result


def _exit_inside(error: BaseException) -> SystemExit | None:
    """The ``SystemExit`` that ``error`` was raised while handling, if any. At a time limit or preemption
    submitit's signal handler requeues the job and calls ``sys.exit`` wherever the main thread is; a library
    that turns everything into its own error on the way out (mmengine's config formatting, inside a
    checkpoint save, raises SyntaxError from it) must not make that exit look like a failed cell."""
    seen: set[int] = set()
    inner: BaseException | None = error
    while inner is not None and id(inner) not in seen:
        if isinstance(inner, SystemExit):
            return inner
        seen.add(id(inner))
        inner = inner.__cause__ or inner.__context__
    return None


def _train_test_measure(job: CellJob, result: CellResult, measure: bool = True) -> None:
    """Fills ``result`` step by step, so that a failure keeps the figures measured before it; ``measure``
    False (ranks other than 0) trains and tests only."""
    import mmcv
    import mmdet
    import mmengine
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from ablation import __version__
    from ablation.model.checkpoints import allow_mmengine_checkpoints
    from ablation.model.measure import PeakCudaMemory, complexity, device_name, inference_fps, peak_rss_mb
    from ablation.run.divergence import DivergenceStop

    result.versions = {
        "torch": torch.__version__,
        "mmcv": mmcv.__version__,
        "mmdet": mmdet.__version__,
        "mmengine": mmengine.__version__,
        "ablation": __version__,
    }
    allow_mmengine_checkpoints()
    _threads(job)

    cfg = Config.fromfile(job.config)
    cfg.work_dir = job.work_dir
    cfg.resume = True  # from the work_dir's last checkpoint, when there is one
    if job.keep_checkpoints != "all":
        # Two, not one: mmengine deletes the oldest checkpoint before it writes the next, so with one a job
        # killed while saving (a requeue, a time limit) would leave nothing to resume from. The extra one is
        # removed when the cell is done.
        cfg.default_hooks.checkpoint.max_keep_ckpts = 2
    if measure:  # rank 0
        resume_point(Path(job.work_dir))
    if job.tasks > 1:
        _distributed_config(cfg)
        rank = torch.distributed.get_rank()
        print(
            f"ablation: {job.cell}: rank {rank} of {job.tasks} ({torch.distributed.get_backend()}, torch "
            f"threads {torch.get_num_threads()}), resumes from {_pointer(Path(job.work_dir)) or 'nothing'}"
        )
    runner = Runner.from_cfg(cfg)
    peak = PeakCudaMemory()
    runner.register_hook(peak, priority="ABOVE_NORMAL")  # before the logger resets the CUDA peak
    beats: list[float] = []  # rank 0 refreshes its attempt record from the training loop
    beat = (lambda: attempts.beat(Path(job.work_dir), beats)) if measure else None
    stop = DivergenceStop(stop=job.stop_on_divergence, factor=job.divergence_factor, on_iteration=beat)
    runner.register_hook(stop, priority="LOW")  # after the logger: the diverged iteration's line is logged
    quiet = Quiet(Path(job.slots)) if job.slots and measure else None  # local jobs: fps timed alone
    if quiet is not None:
        runner.register_hook(quiet.hook(), priority="VERY_HIGH")

    try:
        with _timed(result, "train_s"):
            runner.train()
    finally:  # a diverged run's too: the epochs and iterations it completed
        result.epochs, result.iterations = runner.epoch, runner.iter
    if job.tasks > 1:
        print(f"ablation: {job.cell}: rank {rank} trained to epoch {runner.epoch}, iteration {runner.iter}")
    model = getattr(runner.model, "module", runner.model)
    device = next(model.parameters()).device
    if device.type == "cuda":
        result.memory_mb, result.memory_kind = peak.peak_mb, "cuda_peak_allocated"
    else:
        result.memory_mb, result.memory_kind = peak_rss_mb(), "cpu_peak_rss"

    with _timed(result, "test_s"):
        metrics = runner.test()
    result.metrics = {name: _metric(metrics.get(f"coco/{name}")) for name in METRICS}
    if job.tasks > 1:
        # the ranks' last collective is behind them: rank 0 measures alone, out of the group (building a
        # loader in it would broadcast a seed to ranks that have returned)
        distributed.leave()
    if not measure:
        return

    loader_cfg = dict(cfg.test_dataloader, batch_size=1, num_workers=0, persistent_workers=False)
    with _timed(result, "fps_s"):
        batches = list(Runner.build_dataloader(loader_cfg))
        with quiet.alone() if quiet is not None else contextlib.nullcontext():
            result.fps = inference_fps(model, batches, job.warmup_images, job.timed_images, device)
    result.fps_device, result.fps_images = device_name(device), job.timed_images

    with _timed(result, "flops_s"):
        result.flops, result.params = complexity(model, *job.test_size, device)
    result.flops_input = list(job.test_size)


def _distributed_config(cfg: Any) -> None:
    """Let mmengine's Runner use the group ``distributed.join`` formed: any launcher but 'none' makes it
    distributed (MMDistributedDataParallel, a sharded DefaultSampler, metrics gathered over the ranks), and
    since a group exists it skips its own ``init_dist``, whose Slurm launcher needs CUDA. The config records
    the group's backend. On CPU a DistributedDataParallel wrapper gets no ``device_ids`` (mmengine passes
    ``[LOCAL_RANK]``, which DistributedDataParallel refuses for a CPU module)."""
    import torch
    from mmengine.registry import MODEL_WRAPPERS

    cfg.launcher = "slurm"
    env_cfg = dict(cfg.get("env_cfg") or {})
    env_cfg["dist_cfg"] = dict(env_cfg.get("dist_cfg") or {}, backend=torch.distributed.get_backend())
    cfg.env_cfg = env_cfg
    if not torch.cuda.is_available():
        wrapper = dict(  # mmengine's own default when the config has none
            cfg.get("model_wrapper_cfg")
            or dict(broadcast_buffers=False, find_unused_parameters=cfg.get("find_unused_parameters", False))
        )
        wrapper.setdefault("type", "MMDistributedDataParallel")
        kind = MODEL_WRAPPERS.get(wrapper["type"])
        if isinstance(kind, type) and issubclass(kind, torch.nn.parallel.DistributedDataParallel):
            wrapper["device_ids"] = None
        cfg.model_wrapper_cfg = wrapper


def _pointer(work_dir: Path) -> str | None:
    """The checkpoint mmengine resumes from: what ``last_checkpoint`` names, if anything."""
    try:
        return (work_dir / LAST_CHECKPOINT).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _metric(value: Any) -> float | None:
    """CocoMetric's figure; pycocotools' -1 (no ground truth of that size) is no figure."""
    return None if value is None or float(value) < 0 else float(value)


@contextlib.contextmanager
def _timed(result: CellResult, key: str) -> Any:
    start = time.perf_counter()
    try:
        yield
    finally:
        result.timings[key] = round(time.perf_counter() - start, 3)


def _log_tail(work_dir: Path, trace: str) -> str:
    """The end of the newest mmengine log in the work_dir, then the end of the traceback."""
    logs = sorted(work_dir.glob("*/*.log"), key=lambda p: p.stat().st_mtime)
    lines = logs[-1].read_text(errors="replace").splitlines()[-_TAIL_LINES:] if logs else []
    return "\n".join([*lines, *trace.splitlines()[-_TAIL_LINES:]])
