"""How a cell's state follows from its latest job, whether that job is alive, and its result file."""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ablation.grid.sweep import load_sweep
from ablation.run.executors import SlurmBackend
from ablation.run.launch import _state, default_executor
from ablation.run.manifest import Manifest, Submission, save_manifest
from ablation.run.result_file import CellResult
from ablation.run.slurm import _expand, parameters
from ablation.run.status_table import progress

from .helpers.cli import run_cli

JOB = Submission(
    cell="c", cell_id="i", executor="local", job_id="42", folder="f", work_dir="w", attempt=2, submitted="t"
)


def result(status: str, attempt: int) -> CellResult:
    return CellResult(
        status=status, sweep="s", cell="c", cell_id="i", code="0010", dcn=False, config="c.py",
        config_hash="h", attempt=attempt, host="h", pid=1, started="t",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("submission", "found", "alive", "state"),
    [
        (None, None, False, "planned"),
        (None, result("done", 1), False, "done"),  # finished by other means (a copied work_dir)
        (None, result("failed", 1), False, "planned"),
        (JOB, None, True, "pending"),  # waiting for a slot or in a queue
        (JOB, result("failed", 1), True, "pending"),  # a retry that has not started yet
        (JOB, result("running", 2), True, "running"),
        (JOB, result("done", 2), True, "done"),  # finished, the process is exiting
        (JOB, result("done", 2), False, "done"),
        (JOB, result("failed", 2), False, "failed"),
        (JOB, result("running", 2), False, "lost"),  # killed while computing
        (JOB, None, False, "lost"),  # gone before it started
        (JOB, result("done", 1), False, "lost"),  # an older attempt's result does not count
    ],
)
def test_state(submission: Submission | None, found: CellResult | None, alive: bool, state: str) -> None:
    assert _state(submission, found, None, alive) == state


@pytest.mark.parametrize(
    ("submission", "alive", "state"),
    [
        (None, False, "failed"),  # not planned: a launch would resubmit it without being asked
        (JOB, False, "failed"),  # not lost, for the same reason
        (JOB, True, "pending"),  # its job still runs and will write the file again
    ],
)
def test_an_unreadable_result_file_fails_the_cell(
    submission: Submission | None, alive: bool, state: str
) -> None:
    assert _state(submission, None, "w/result.json: not readable JSON", alive) == state


def test_progress_comes_from_the_newest_log_s_last_training_line(tmp_path: Path) -> None:
    assert progress(tmp_path) == "-"
    old, new = tmp_path / "20260101_000000", tmp_path / "20260101_000100"
    old.mkdir()
    (old / "20260101_000000.log").write_text("- Epoch(train) [1][3/8]  lr: 0.01\n")
    new.mkdir()
    log = new / "20260101_000100.log"
    log.write_text("resumed epoch: 1, iter: 8\n")
    os.utime(old / "20260101_000000.log", (1, 1))
    assert progress(tmp_path) == "starting"
    log.write_text(
        log.read_text() + "- Epoch(train) [2][ 4/8]  lr: 0.01\n- Epoch(train) [2][5/8]  lr: 0.01\n"
    )
    assert progress(tmp_path) == "epoch 2 iter 5/8"


def test_slurm_parameters_give_one_task_per_gpu_and_flags_win() -> None:
    params = parameters(load_sweep("coco-1x"), {})
    assert (params["ntasks_per_node"], params["gpus_per_node"], params["nodes"]) == (8, 8, 1)
    assert "gpus_per_task" not in params  # every task sees the node's GPUs; mmengine picks one by local rank
    assert (params["cpus_per_task"], params["time"]) == (3, 24 * 60)
    assert params["additional_parameters"] == {"requeue": True, "hold": True}
    flagged = parameters(load_sweep("coco-1x"), {"partition": "gpu", "time_min": 90, "gpus": 4, "mem_gb": 64})
    assert (flagged["partition"], flagged["time"], flagged["ntasks_per_node"], flagged["mem"]) == (
        "gpu",
        90,
        4,
        "64GB",
    )


@pytest.mark.parametrize(
    ("shown", "ids"),
    [("12", ["12"]), ("12_3", ["12_3"]), ("12_[0-2,5%2]", ["12_0", "12_1", "12_2", "12_5"])],
)
def test_sacct_job_ids_expand_pending_array_ranges(shown: str, ids: list[str]) -> None:
    assert _expand(shown) == ids


def test_new_jobs_go_where_the_sweep_s_latest_job_went() -> None:
    manifest = Manifest(sweep="s")
    assert default_executor(manifest) == "local"  # a new sweep
    manifest.record(dataclasses.replace(JOB, submitted="2026-01-02T00:00:00+00:00"))
    manifest.record(
        dataclasses.replace(
            JOB, cell="d", executor="slurm", job_id="7_0", submitted="2026-01-03T00:00:00+00:00"
        )
    )
    assert default_executor(manifest) == "slurm"
    intent = dataclasses.replace(
        JOB, cell="e", job_id="", job_name="n", submitted="2026-01-04T00:00:00+00:00"
    )
    manifest.record(intent)  # a launch that died before its job ids were known does not count
    assert default_executor(manifest) == "slurm"


def test_a_dead_launch_s_jobs_are_looked_for_since_its_intent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sacct --name sees only jobs since midnight unless given a start: the lookup gives one (the only fake
    is the sacct executable, which records its arguments)."""
    calls = tmp_path / "calls"
    for name, output in (("sacct", "12_0\n12_1\n"), ("squeue", "")):
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nprintf "{output}"\n')
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    found = SlurmBackend().find("ablation-s-1234", since="2025-12-31T23:30:00+00:00")
    assert found == ["12_0", "12_1"]
    (sacct_call,) = [line for line in calls.read_text().splitlines() if "--name" in line]
    start = sacct_call.split("--starttime ")[1].split()[0]
    expected = datetime(2025, 12, 31, 22, 30, tzinfo=UTC).astimezone().replace(tzinfo=None)
    assert datetime.fromisoformat(start) == expected


@pytest.mark.parametrize(("cells", "parallel", "rounds"), [(32, 2, 16), (3, 2, 2), (2, 2, 1), (5, None, 1)])
def test_a_local_job_s_time_limit_does_not_count_its_wait_for_a_slot(
    tmp_path: Path, cells: int, parallel: int | None, rounds: int
) -> None:
    """Every local job starts at once and waits for a slot, while submitit times it from its start: each
    gets the limit once per round of slots (None: no slots, each job computes at once)."""
    from types import SimpleNamespace

    from ablation.run.executors import LocalBackend

    sweep = load_sweep("study")
    slots = None if parallel is None else str(tmp_path / "slots")
    specs = [SimpleNamespace(slots=slots, parallel=parallel or 1) for _ in range(cells)]
    executor = LocalBackend().executor(tmp_path, sweep, "name", {}, specs)
    assert executor.parameters["timeout_min"] == sweep.resources.time_limit_min * rounds


def _no_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *keep: str) -> Path:
    """A PATH of only ``keep`` (links to the real commands): this machine's Slurm, if any, hidden; and the
    working directory an empty folder, so that anything a launch writes (configs, data/) shows."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for command in keep:
        if found := shutil.which(command):
            (bin_dir / command).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(
    ("flags", "missing"), [(("--dry-run",), "srun"), ((), "srun or sbatch")], ids=["dry-run", "launch"]
)
def test_slurm_asked_for_where_there_is_none_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], missing: str
) -> None:
    work = _no_slurm(tmp_path, monkeypatch)
    argv = ("launch", "--sweep", "smoke", "--codes", "0000,1111", "--executor", "slurm", "--root", "R")
    code, out, err = run_cli(*argv, *flags)
    assert code == 2
    assert out == ""
    assert err == (
        f"error: --executor slurm: Slurm is not found on this machine (no {missing} on PATH); "
        "--executor local runs the cells here without a cluster\n"
    )
    assert list(work.iterdir()) == []  # no runs folder, configs, sbatch script or dataset


def test_a_launch_without_sbatch_is_refused_though_srun_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """srun alone (what submitit's executor looks for) lets a dry run write its script, not a launch."""
    if shutil.which("srun") is None:
        pytest.skip("no srun on this machine to keep on PATH")
    work = _no_slurm(tmp_path, monkeypatch, "srun")
    argv = ("launch", "--sweep", "smoke", "--codes", "0000", "--executor", "slurm", "--root", "R")
    code, _, err = run_cli(*argv)
    assert (code, err.count("\n")) == (2, 1)
    assert "(no sbatch on PATH)" in err
    assert list(work.iterdir()) == []


def test_a_sweep_whose_jobs_went_to_slurm_is_refused_by_default_where_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --executor, new jobs go where the sweep's went: Slurm, so the same line, before any write."""
    work = _no_slurm(tmp_path, monkeypatch)
    folder = work / "R" / "smoke"
    manifest = Manifest(sweep="smoke")
    manifest.record(dataclasses.replace(JOB, executor="slurm", job_id="7_0"))
    save_manifest(folder, manifest)
    written = sorted(p.relative_to(work) for p in work.rglob("*"))
    code, _, err = run_cli("launch", "--sweep", "smoke", "--codes", "0000", "--dry-run", "--root", "R")
    assert code == 2
    assert err.startswith("error: --executor slurm: Slurm is not found on this machine")
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == written


def test_a_local_dry_run_needs_no_slurm_and_says_what_it_would_submit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = _no_slurm(tmp_path, monkeypatch)
    argv = ("launch", "--sweep", "smoke", "--codes", "0000,1111", "--executor", "local", "--dry-run")
    code, out, err = run_cli(*argv, "--root", "R")
    assert (code, err) == (0, "")
    at_once = os.cpu_count() or 1  # the smoke sweep has no GPUs: one cell per core
    assert out == (
        "dry run: would generate the synthetic dataset in data/smoke, write 4 configs to R/smoke/configs "
        f"and start 4 of 4 cells of sweep smoke (local, {at_once} at a time); "
        "nothing written or started\n"
    )
    assert list(work.iterdir()) == []  # no dataset, configs, lock, manifest or jobs folder
