"""A running cell's progress, s/iter and time left from its mmengine log, a sweep's expected finish and cost,
and the lines ``ablation status`` shows: on crafted logs and states, and on a real local grid that runs."""

from __future__ import annotations

import dataclasses
import datetime
import time
from pathlib import Path

import pytest

from ablation.run.cost import Cost
from ablation.run.eta import (
    CellProgress,
    after_training_s,
    cell_progress,
    local_slots,
    parallelism,
    sweep_eta,
)
from ablation.run.launch import CellStatus, RecordedCell, status
from ablation.run.manifest import Submission
from ablation.run.result_file import CellResult
from ablation.run.status_table import cost_line, duration, eta_line

from .helpers.cli import REPO, in_folder, replaced, run_cli
from .helpers.live_grid import running_grid

# mmengine's training line, as a real cell of the smoke sweep logs it
LINE = (
    "2026/12/07 17:44:58 - mmengine - INFO - Epoch(train) [{epoch}][{i}/8]  lr: 3.3400e-03  eta: {eta}  "
    "time: {time:.4f}  data_time: 0.0067  loss: 2.3523  loss_rpn_cls: 0.6967  acc: 59.3750\n"
)
NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC).timestamp()


def logged(work_dir: Path, *lines: str, config: str | None = None) -> Path:
    """A work_dir whose newest run folder's log has ``lines`` (and mmengine's dumped config, if given)."""
    run = work_dir / "20261207_174455"
    run.mkdir(parents=True, exist_ok=True)
    (run / "20261207_174455.log").write_text("".join(lines))
    if config is not None:
        (work_dir / "cell.py").write_text(config)
    return work_dir


def cell(
    state: str,
    work_dir: Path | None = None,
    total_s: float | None = None,
    train_s: float | None = None,
    started_s_ago: float = 0.0,
    cost: Cost | None = None,
) -> RecordedCell:
    """A cell as the manifest knows it: ``state``, its work_dir, its result's timings and start."""
    name = f"cell{id(object())}"
    folder = str(work_dir) if work_dir is not None else f"/nowhere/{name}"
    submission = Submission(name, "c" * 12, "local", "1", "/nowhere", folder, 1, "2026-12-07T00:00:00")
    timings = {k: v for k, v in (("total_s", total_s), ("train_s", train_s)) if v is not None}
    started = datetime.datetime.fromtimestamp(NOW - started_s_ago, datetime.UTC).isoformat()
    result = CellResult(
        status="done" if state == "done" else "running",
        sweep="s",
        cell=name,
        cell_id="c" * 12,
        code="0000",
        dcn=False,
        config="c.py",
        config_hash="f" * 64,
        attempt=1,
        host="h",
        pid=1,
        started=started,
        timings=timings,
    )
    return RecordedCell(submission, state, result if state in ("done", "running") else None, None, cost)


def test_a_cell_s_progress_is_its_last_line_with_the_median_of_recent_times(tmp_path: Path) -> None:
    times = [0.30, 0.90, 0.41, 0.42, 0.40]
    lines = [LINE.format(epoch=2, i=i + 1, eta="0:03:10", time=t) for i, t in enumerate(times)]
    found = cell_progress(logged(tmp_path, *lines))
    assert found is not None
    assert (found.epoch, found.iteration, found.iters_per_epoch) == (2, 5, 8)
    assert found.s_per_iter == pytest.approx(0.41)  # the median: one slow iteration does not move it
    assert found.left_s == 190  # mmengine's own eta
    assert found.text == "epoch 2 iter 5/8"
    with_rest = cell_progress(tmp_path, after_training=20.0)
    assert with_rest is not None and with_rest.left_s == 210


def test_an_eta_of_days_and_none_without_a_training_line(tmp_path: Path) -> None:
    assert cell_progress(tmp_path) is None  # no log
    logged(tmp_path, "2026/12/07 17:44:50 - mmengine - INFO - Checkpoints will be saved to ...\n")
    assert cell_progress(tmp_path) is None  # starting
    logged(tmp_path, LINE.format(epoch=1, i=2, eta="2 days, 1:00:05", time=0.5))
    found = cell_progress(tmp_path)
    assert found is not None and found.left_s == (49 * 60) * 60 + 5


def test_without_an_eta_the_iterations_left_times_s_per_iter(tmp_path: Path) -> None:
    """From the config mmengine dumped: 3 epochs of 8 iterations, at epoch 2 iteration 6: 10 left."""
    line = "- Epoch(train) [2][6/8]  lr: 0.01  time: 0.5000  data_time: 0.01  loss: 1.0\n"
    config = "train_cfg = dict(max_epochs=3, type='EpochBasedTrainLoop', val_interval=1)\n"
    found = cell_progress(logged(tmp_path, line, config=config))
    assert found is not None and found.max_epochs == 3
    assert found.left_s == pytest.approx(10 * 0.5)


def test_the_sweep_lays_the_pending_cells_on_the_free_slots(tmp_path: Path) -> None:
    """Two slots: one running cell with 100 s left; 3 pending cells of 300 s each (the done cells' mean,
    which also spent 50 s after training): slot A 0 -> 300 -> 600, slot B 100+50 -> 450: all in 600 s."""
    running = logged(tmp_path / "r", LINE.format(epoch=1, i=1, eta="0:01:40", time=0.4))
    cells = [
        cell("done", total_s=250, train_s=200),
        cell("done", total_s=350, train_s=300),
        cell("running", running, started_s_ago=10),
        *(cell("pending") for _ in range(3)),
        cell("planned"),
    ]
    assert after_training_s(cells) == 50
    eta = sweep_eta(cells, parallel=2, now=NOW)
    assert (eta.cell_s, eta.basis, eta.at_once) == (300, "done", 2)
    assert (eta.running, eta.pending, eta.planned) == (1, 3, 1)
    assert eta.left_s == 600
    assert eta.finish == datetime.datetime.fromtimestamp(NOW + 600, datetime.UTC)
    assert eta.cells_left == pytest.approx(3 + 1 + 150 / 300)  # pending, planned, the running one's half
    assert eta.spent is None and cost_line(eta) is None  # no cost known: no line
    line = eta_line(eta)
    assert line is not None and line.startswith("expected to finish in ~10m (at ")
    assert line.endswith("1 running (up to 2 at once), 3 waiting, 1 not launched")
    assert sweep_eta(cells, parallel=1, now=NOW).left_s == 150 + 3 * 300  # one slot: one after another


def test_with_no_done_cell_the_running_cells_projected_totals(tmp_path: Path) -> None:
    running = logged(tmp_path / "r", LINE.format(epoch=1, i=1, eta="0:01:40", time=0.4))
    eta = sweep_eta([cell("running", running, started_s_ago=60), cell("pending")], parallel=1, now=NOW)
    assert (eta.cell_s, eta.basis) == (160, "running")
    assert eta.left_s == 100 + 160
    unknown = sweep_eta([cell("running", tmp_path / "none"), cell("pending")], parallel=1, now=NOW)
    assert unknown.left_s is None and unknown.finish is None
    assert eta_line(unknown) == (
        "finish not known yet (no cell has finished or logged its time left), 1 running at once, 1 waiting"
    )
    assert eta_line(sweep_eta([cell("done", total_s=5), cell("planned")], parallel=1)) is None  # idle


def test_the_cost_so_far_and_still_to_spend() -> None:
    hour = 3600.0
    cells = [
        cell("done", total_s=10, cost=Cost(2, 1 * hour, 8 * hour, 2 * hour)),
        cell("done", total_s=10, cost=Cost(1, 1 * hour, 8 * hour, 1 * hour)),
        cell("failed", cost=Cost(1, 0.5 * hour, 4 * hour, 0.5 * hour)),
        cell("pending"),
        cell("planned"),
    ]
    eta = sweep_eta(cells, parallel=1, now=NOW)
    assert eta.spent == Cost(4, 2.5 * hour, 20 * hour, 3.5 * hour)
    assert cost_line(eta) == (
        "compute so far: 4 attempts, 3.5 GPU-hours, 20.0 CPU-hours, 2.5 h wall; "
        "still to run: ~3.0 GPU-hours (2 cells' worth at the done cells' mean)"
    )
    assert cost_line(sweep_eta([cell("pending", cost=Cost())], parallel=1)) is None  # nothing started
    cpu_only = [cell("done", total_s=10, cost=Cost(1, hour, 2 * hour)), cell("pending")]
    assert cost_line(sweep_eta(cpu_only, parallel=1)) == (
        "compute so far: 1 attempt, 2.0 CPU-hours, 1.0 h wall; "
        "still to run: ~2.0 CPU-hours (1 cell's worth at the done cells' mean)"
    )


def test_durations_read_to_the_unit_that_matters() -> None:
    assert [duration(s) for s in (4.4, 59, 179, 3600, 4800, 86400 * 2 + 3 * 3600)] == [
        "4s",
        "59s",
        "3m",
        "1h",
        "1h20m",
        "2d3h",
    ]


def test_local_slots_are_the_slot_files_and_at_least_the_running_cells(tmp_path: Path) -> None:
    work = tmp_path / "sweep" / "work" / "cell" / ("c" * 12)
    assert local_slots(tmp_path / "sweep") == 0
    (tmp_path / "sweep" / "slots").mkdir(parents=True)
    for n in range(3):
        (tmp_path / "sweep" / "slots" / f"slot-{n}.lock").touch()
    assert local_slots(tmp_path / "sweep") == 3
    assert parallelism([cell("pending", work)], None) == 3
    assert parallelism([cell("running", work) for _ in range(4)], None) == 4
    pending = cell("pending", work)
    on_slurm = dataclasses.replace(
        pending, submission=dataclasses.replace(pending.submission, executor="slurm")
    )
    assert parallelism([on_slurm], 16) == 16


# A real grid: 2 cells, one at a time, long enough to be seen running.
SWEEP = replaced(
    (REPO / "experiments/sweeps/smoke.toml").read_text(),
    ('codes = "all"', 'codes = ["0000"]'),
    ("dcn = [false, true]", "dcn = [false]"),
    ("[grid]", "[grid]\nseeds = [1, 2]"),
    ("epochs = 2", "epochs = 6"),
    ("log_interval = 2", "log_interval = 1"),
    ("synthetic = [6, 3]", "synthetic = [4, 2]"),
)


@pytest.mark.slow
def test_status_of_a_running_local_grid_shows_s_per_iter_time_left_and_the_finish(tmp_path: Path) -> None:
    with running_grid(tmp_path, SWEEP, "eta") as root:
        args = ("--sweep", str(tmp_path / "eta.toml"), "--root", str(root))
        seen, predicted = _watch_until_timed(args)
        head, _, *rows = seen.splitlines()
        column = {name: head.index(name) for name in ("state", "progress", "s/it", "left")}
        running = [row for row in rows if row[column["state"] :].startswith("running")]
        assert len(running) == 1, seen  # one slot: the other cell waits
        progress, s_per_iter, left = (
            running[0][column[c] :].split()[0] for c in ("progress", "s/it", "left")
        )
        assert progress == "epoch" and float(s_per_iter) > 0 and left[-1] in "smh", seen
        assert "expected to finish in ~" in seen and "1 running at once, 1 waiting" in seen, seen
        print(f"{seen}\n(the grid predicted to need {predicted:.0f} s more)")


def _watch_until_timed(args: tuple[str, ...], limit_s: float = 180) -> tuple[str, float]:
    """``ablation status`` until a running cell shows its s/it and time left in its second epoch (the first
    iterations are slow); its output and the grid's predicted seconds to go."""
    from ablation.grid.sweep import load_sweep

    sweep = load_sweep(Path(args[1]))
    until = time.monotonic() + limit_s
    while time.monotonic() < until:
        code, out, _ = run_cli("status", *args)
        assert code == 0
        eta = sweep_eta(states := status(sweep, Path(args[3])), parallelism(states, None))
        trained = any(s.epoch > 1 for s in _progress(states))  # past the first iterations' warm-up
        if "expected to finish in ~" in out and eta.left_s is not None and trained:
            return out, eta.left_s
        time.sleep(1)
    raise AssertionError(f"no running cell with a time left within {limit_s} s:\n{out}")


def _progress(states: list[CellStatus]) -> list[CellProgress]:
    return [
        p
        for s in states
        if s.state == "running" and s.submission and (p := cell_progress(Path(s.submission.work_dir)))
    ]


def test_status_of_a_sweep_never_launched_under_its_root_says_where_it_looked(tmp_path: Path) -> None:
    with in_folder(tmp_path):
        code, out, err = run_cli("status", "--sweep", "smoke", "--root", "elsewhere")
    assert (code, err) == (0, "")
    *_, summary, hint = out.splitlines()
    assert summary == "32 cells: 32 planned"  # no finish line: nothing runs or waits
    assert hint == (
        f"no run of sweep 'smoke' under {tmp_path.resolve() / 'elsewhere'} "
        "(launched elsewhere? --root DIR or $ABLATION_ROOT)"
    )
