"""How far a running cell is and when it, and its sweep, should finish: read from the cell's work_dir as
mmengine writes it, with no help from the job.

A cell: the last training lines of the newest run folder's text log (``<work_dir>/<time>/<time>.log``, lines
such as ``Epoch(train) [2][5/8]  lr: ...  eta: 0:03:10  time: 0.4102  data_time: ...``) give its epoch,
its iteration in that epoch, the seconds per iteration (the median of the recent lines' ``time``, mmengine's
own smoothed figure) and the training time left (mmengine's ``eta``; without one, the iterations left x
s/iter, the epochs from the config mmengine dumped into the work_dir). What follows training (testing, FLOPs,
fps) is added as the mean of the done cells' timings, where there are any.

A sweep: its cells still to run are laid, greedily, on the slots that run at once, each expected to take the
mean duration of the done cells (``total_s`` of their result timings) or, with none done yet, of the running
cells' projected totals; the running cells hold their slots for their time left.
"""

from __future__ import annotations

import datetime
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ablation.run.cost import Cost

if TYPE_CHECKING:
    from ablation.run.manifest import Submission
    from ablation.run.result_file import CellResult

__all__ = [
    "CellProgress",
    "SweepEta",
    "Tracked",
    "after_training_s",
    "cell_progress",
    "local_slots",
    "newest_log",
    "parallelism",
    "sweep_eta",
]

_TRAIN_LINE = re.compile(rb"Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\](.*)")
_ETA = re.compile(rb"\beta: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
_TIME = re.compile(rb"\btime: ([0-9.]+)")
_MAX_EPOCHS = re.compile(r"\bmax_epochs\s*=\s*(\d+)")
_TAIL_BYTES = 65536
_RECENT = 10  # training lines whose s/iter make the median


class Tracked(Protocol):
    """What the estimates need of a cell: CellStatus and RecordedCell (the dashboard's) both have it."""

    @property
    def state(self) -> str: ...

    @property
    def submission(self) -> Submission | None: ...

    @property
    def result(self) -> CellResult | None: ...

    @property
    def cost(self) -> Cost | None: ...


@dataclass(frozen=True)
class CellProgress:
    """Where a cell's training is: ``iteration`` of ``iters_per_epoch`` in ``epoch`` (of ``max_epochs`` when
    known), seconds per iteration and seconds left (None: not known)."""

    epoch: int
    iteration: int
    iters_per_epoch: int
    s_per_iter: float | None = None
    left_s: float | None = None
    max_epochs: int | None = None

    @property
    def text(self) -> str:
        return f"epoch {self.epoch} iter {self.iteration}/{self.iters_per_epoch}"


def newest_log(work_dir: Path) -> Path | None:
    """The text log of the newest run folder of an mmengine work_dir (a resumed cell has several)."""
    logs = sorted(work_dir.glob("*/*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1] if logs else None


def cell_progress(work_dir: Path, after_training: float | None = None) -> CellProgress | None:
    """A cell's progress from its newest log's last training lines; None before its first one (or with no
    log). ``after_training``: seconds expected after training (``after_training_s``), added to the time
    left."""
    log = newest_log(work_dir)
    if log is None:
        return None
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - _TAIL_BYTES))
        lines = _TRAIN_LINE.findall(file.read())
    if not lines:
        return None
    epoch, done, per_epoch = (int(x) for x in lines[-1][:3])
    times = [float(m.group(1)) for *_, rest in lines[-_RECENT:] if (m := _TIME.search(rest))]
    s_per_iter = statistics.median(times) if times else None
    max_epochs = _max_epochs(work_dir)
    left = _eta(lines[-1][3])
    if left is None and s_per_iter is not None and max_epochs is not None:
        left = max(0, (max_epochs - epoch) * per_epoch + per_epoch - done) * s_per_iter
    if left is not None and after_training is not None:
        left += after_training
    return CellProgress(epoch, done, per_epoch, s_per_iter, left, max_epochs)


def _eta(rest: bytes) -> float | None:
    found = _ETA.search(rest)
    if found is None:
        return None
    days, hours, minutes, seconds = (int(x or 0) for x in found.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _max_epochs(work_dir: Path) -> int | None:
    """The training's epochs, from the config mmengine dumps into the work_dir (None: none found)."""
    for config in sorted(work_dir.glob("*.py")):
        found = _MAX_EPOCHS.search(config.read_text(encoding="utf-8", errors="replace"))
        if found:
            return int(found.group(1))
    return None


def after_training_s(cells: Sequence[Tracked]) -> float | None:
    """The mean seconds a done cell's job spent beyond training (its ``total_s`` less ``train_s``: testing,
    FLOPs, fps, start-up); None with no done cell that timed both."""
    spent = [
        t["total_s"] - t["train_s"]
        for c in cells
        if c.state == "done" and c.result is not None
        for t in [c.result.timings]
        if "total_s" in t and "train_s" in t
    ]
    return max(0.0, statistics.fmean(spent)) if spent else None


def local_slots(sweep_folder: Path) -> int:
    """How many local cells of a sweep compute at once, as its slots folder shows: a local job waiting for a
    slot opens every slot's lock file, so the count of ``slots/slot-N.lock`` files is the launch's
    ``--parallel`` once a cell has waited, and before that at least the cells that ran together (0: no local
    launch). The running cells are a floor (``sweep_eta`` takes the larger)."""
    return len(list((sweep_folder / "slots").glob("slot-*.lock")))


@dataclass(frozen=True)
class SweepEta:
    """When a sweep's cells should all have finished.

    ``left_s``: seconds until the last launched one does (running and pending cells: a planned cell does
    not start by itself; None: nothing to go on, no done cell and no running cell with a time left);
    ``finish``: that moment (UTC); ``at_once``: cells that compute at once; ``running``, ``pending``
    (submitted, waiting for a slot or in the queue), ``planned`` (not launched); ``cell_s``: the duration
    expected of a cell still to start, and ``basis``: 'done' (the done cells' mean) or 'running' (the
    running cells' projected totals); ``cells_left``: the cells still to compute, in whole cells (a running
    cell counts for its fraction left, a planned one counts); ``spent``: what all the cells' jobs cost so
    far and ``to_spend``: the done cells' mean cost x ``cells_left`` (None: no cost known; its attempts 0)."""

    left_s: float | None
    finish: datetime.datetime | None
    at_once: int
    running: int
    pending: int
    planned: int
    cell_s: float | None
    basis: str | None
    cells_left: float
    spent: Cost | None
    to_spend: Cost | None

    @property
    def waiting(self) -> int:
        return self.pending + self.planned


def sweep_eta(cells: Sequence[Tracked], parallel: int, now: float | None = None) -> SweepEta:
    """The expected finish of ``cells`` (CellStatus or RecordedCell) with ``parallel`` of them computing at
    once: on Slurm the sweep's ``[slurm] array_parallelism``, locally ``local_slots`` (either way at least
    the cells running now); ``now``: the clock (seconds since the epoch) to count from."""
    now = time.time() if now is None else now
    rest = after_training_s(cells)
    running = [c for c in cells if c.state == "running"]
    progress = {id(c): _progress_of(c, rest) for c in running}
    done = [t for c in cells if (t := _total_s(c)) is not None]
    projected = [t for c in running if (t := _projected_total(c, progress[id(c)], now)) is not None]
    basis = "done" if done else "running" if projected else None
    cell_s = statistics.fmean(done or projected) if basis else None
    pending = sum(c.state == "pending" for c in cells)
    planned = sum(c.state == "planned" for c in cells)
    at_once = max(1, parallel, len(running))
    lefts = [p.left_s if (p := progress[id(c)]) is not None else None for c in running]
    known = [x for x in lefts if x is not None]
    left = _simulate(known + [cell_s] * (len(lefts) - len(known)), pending, cell_s, at_once)
    cells_left = (
        pending + planned + sum(min(1.0, x / cell_s) if x is not None and cell_s else 1.0 for x in lefts)
    )
    return SweepEta(
        left_s=left,
        finish=None if left is None else datetime.datetime.fromtimestamp(now + left, datetime.UTC),
        at_once=at_once,
        running=len(running),
        pending=pending,
        planned=planned,
        cell_s=cell_s,
        basis=basis,
        cells_left=cells_left,
        spent=_total([c.cost for c in cells]),
        to_spend=_to_spend(cells, cells_left),
    )


def _progress_of(cell: Tracked, rest: float | None) -> CellProgress | None:
    return None if cell.submission is None else cell_progress(Path(cell.submission.work_dir), rest)


def _total_s(cell: Tracked) -> float | None:
    """A done cell's whole duration (its job's ``total_s``)."""
    return cell.result.timings.get("total_s") if cell.state == "done" and cell.result is not None else None


def _projected_total(cell: Tracked, progress: CellProgress | None, now: float) -> float | None:
    """A running cell's whole duration: its time so far (from its result file's start) plus its time left."""
    if progress is None or progress.left_s is None or cell.result is None:
        return None
    try:
        started = datetime.datetime.fromisoformat(cell.result.started)
    except ValueError:
        return None
    if started.tzinfo is None:
        started = started.astimezone()  # a naive time is the job's local one
    return max(0.0, now - started.timestamp()) + progress.left_s


def _simulate(
    running: Sequence[float | None], waiting: int, cell_s: float | None, at_once: int
) -> float | None:
    """Seconds until the last cell finishes: each waiting cell (``cell_s`` long) starts on the slot that
    frees first; the running cells hold theirs for their time left."""
    if (waiting and cell_s is None) or any(x is None for x in running):
        return None
    free = sorted([float(x or 0.0) for x in running] + [0.0] * max(0, at_once - len(running)))
    for _ in range(waiting):
        free[0] += cell_s or 0.0
        free.sort()
    return max(free) if running or waiting else 0.0


def _total(costs: Sequence[Cost | None]) -> Cost | None:
    known = [c for c in costs if c is not None]
    return sum(known, Cost()) if known else None


def _to_spend(cells: Sequence[Tracked], cells_left: float) -> Cost | None:
    """The done cells' mean cost per cell, times ``cells_left`` (None: no done cell has a cost)."""
    done = [c.cost for c in cells if c.state == "done" and c.cost is not None]
    total = _total(done)
    if total is None:
        return None
    share = cells_left / len(done)
    gpu = None if total.gpu_s is None else total.gpu_s * share
    return Cost(0, total.wall_s * share, total.cpu_s * share, gpu)


def parallelism(cells: Sequence[Tracked], array_parallelism: int | None) -> int:
    """How many of ``cells`` compute at once: on Slurm (a live cell's job went there) the sweep's
    ``array_parallelism`` (None: not known, the running cells); locally the launch's slots (``local_slots``
    of the sweep folder, found from a cell's work_dir); at least the cells running now, and at least 1."""
    live = [c.submission for c in cells if c.state in ("pending", "running") and c.submission is not None]
    running = sum(c.state == "running" for c in cells)
    if any(s.executor == "slurm" for s in live):
        return max(1, running, array_parallelism or 0)
    slots = local_slots(Path(live[0].work_dir).parents[2]) if live else 0
    return max(1, running, slots)
