"""Cells through a real single-node Slurm cluster (slurm/cluster up): arrays, a killed launcher, requeues.

The only fake is a wrapper around the real ``sbatch`` that waits after submitting, so that the launcher can
be SIGKILLed at the worst moment: the jobs are in Slurm, their ids not yet in the manifest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from ablation import load_sweep, plan
from ablation.launch import work_dir
from ablation.results import RESULT_FILE, CellResult
from ablation.slurm import LIVE_STATES

from .conftest import REPO, venv_bin, write_sweep

CELLS = 4  # 0000 and 1111, DCN off and on
MINI = f"mini-{uuid.uuid4().hex[:6]}"  # this run's sweep: its job names are this run's alone
BROKEN = "faster-rcnn_r50-dconv-c3-c5_fpn_2e_shapes"


def sweep_text(**changes: str) -> str:
    text = (REPO / "experiments/sweeps/smoke.toml").read_text()
    for old, new in {
        'codes = "all"': 'codes = ["0000", "1111"]',
        "synthetic = [6, 3]": "synthetic = [4, 2]",
    }.items():
        assert old in text
        text = text.replace(old, new)
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def cluster() -> None:
    """The real cluster: brought up (packages installed if missing) unless it already runs."""
    done = subprocess.run(["bash", str(REPO / "slurm" / "cluster"), "up"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def ablation(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_bin("ablation"), *args], cwd=folder, env=env, capture_output=True, text=True, check=False
    )


def sacct(*args: str) -> list[list[str]]:
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", *args], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|") for line in out.splitlines()]


def results(root: Path, sweep: str) -> dict[str, dict[str, object]]:
    found = {}
    for path in (root / sweep / "work").glob(f"*/*/{RESULT_FILE}"):
        data = json.loads(path.read_text())
        found[str(data["cell"])] = data
    return found


def manifest(root: Path, sweep: str) -> list[dict[str, object]]:
    return json.loads((root / sweep / "manifest.json").read_text())["history"]  # type: ignore[no-any-return]


def wait_for(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def slow_sbatch(folder: Path) -> dict[str, str]:
    """An environment whose sbatch submits for real, then leaves a mark and waits before answering."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    real = subprocess.run(["which", "sbatch"], capture_output=True, text=True, check=True).stdout.strip()
    wrapper = bin_dir / "sbatch"
    wrapper.write_text(
        f'#!/bin/bash\nout=$("{real}" "$@") || exit $?\ntouch "{folder}/submitted"\nsleep 60\necho "$out"\n'
    )
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def grid(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """The grid launched, its launcher SIGKILLed mid-submission, relaunched and waited for."""
    folder = tmp_path_factory.mktemp("slurm")
    sweep = write_sweep(folder, sweep_text(), MINI)
    root = folder / "runs"
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    planned = plan(load_sweep(sweep), root)
    (cell,) = [p for p in planned.cells if p.name == BROKEN]
    dead = work_dir(
        planned.directory, cell
    )  # a truncated checkpoint, as a crashed node leaves: this cell fails
    dead.mkdir(parents=True)
    (dead / "epoch_1.pth").write_bytes(b"PK\x03\x04 truncated by a crash")
    (dead / "last_checkpoint").write_text(str(dead / "epoch_1.pth"))
    launcher = subprocess.Popen(
        [venv_bin("ablation"), "launch", *args],
        cwd=folder,
        env=slow_sbatch(folder),
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: (folder / "submitted").exists(), 120, "sbatch")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    history = manifest(root, MINI)
    assert len(history) == CELLS and all(entry["job_id"] == "" for entry in history)  # intents only
    yield folder, root, str(history[0]["job_name"])


def test_a_relaunch_after_a_killed_launcher_submits_nothing_and_every_cell_runs_once(
    grid: tuple[Path, Path, str],
) -> None:
    folder, root, name = grid
    sweep = str(folder / f"{MINI}.toml")
    again = ablation(folder, "launch", "--sweep", sweep, "--root", str(root), "--executor", "slurm", "--wait")
    assert again.stdout.startswith(f"submitted 0 of 4 cells of sweep {MINI} (slurm)"), (
        again.stdout + again.stderr
    )
    assert again.returncode == 1  # one cell failed
    assert again.stdout.splitlines()[-2] == "4 cells: 3 done, 1 failed"

    def final() -> bool:
        return all(
            state not in LIVE_STATES for _, _, state in sacct("--format=JobID,JobName,State", "--name", name)
        )

    wait_for(final, 120, "the jobs to end in Slurm")
    tasks = sacct("--format=JobID,JobName,State", "--name", name)
    assert sorted(state for _, _, state in tasks) == ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]
    everything = sacct("--format=JobName", "-S", "now-1hour")
    assert sum(1 for (job,) in everything if job.startswith(f"ablation-{MINI}-")) == CELLS  # no second array
    ids = {str(entry["job_id"]) for entry in manifest(root, MINI)}
    assert ids == {job_id for job_id, _, _ in tasks}


def test_slurm_results_have_the_local_executor_s_fields(grid: tuple[Path, Path, str]) -> None:
    _, root, _ = grid
    found = results(root, MINI)
    assert len(found) == CELLS
    assert found[BROKEN]["status"] == "failed" and "epoch_1.pth" in str(found[BROKEN]["log_tail"])
    for name, r in found.items():
        assert set(r) == {f.name for f in fields(CellResult)}
        if name == BROKEN:
            continue
        assert r["status"] == "done"
        assert r["fps"] and r["flops"] and r["params"] and r["memory_kind"] == "cpu_peak_rss"
        assert 0.0 <= r["metrics"]["bbox_mAP"] <= 1.0  # type: ignore[index]


def test_status_from_a_fresh_process(grid: tuple[Path, Path, str]) -> None:
    folder, root, _ = grid
    done = ablation(
        folder, "status", "--sweep", str(folder / f"{MINI}.toml"), "--root", str(root), "--executor", "slurm"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "4 cells: 3 done, 1 failed"
    (row,) = [line for line in done.stdout.splitlines() if line.startswith(BROKEN)]
    assert row.split()[3] == "failed"


def test_retry_failed_reruns_the_failed_cell(grid: tuple[Path, Path, str]) -> None:
    folder, root, _ = grid
    (entry,) = [e for e in manifest(root, MINI) if e["cell"] == BROKEN]
    for leftover in ("epoch_1.pth", "last_checkpoint"):
        (Path(str(entry["work_dir"])) / leftover).unlink()
    args = ("--sweep", str(folder / f"{MINI}.toml"), "--root", str(root), "--executor", "slurm")
    done = ablation(folder, "launch", *args, "--retry-failed", "--wait")
    assert done.stdout.startswith("submitted 1 of 4 cells"), done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "4 cells: 4 done"
    assert results(root, MINI)[BROKEN]["attempt"] == 2


def single_cell(folder: Path, name: str, **changes: str) -> tuple[Path, Path]:
    text = (
        sweep_text(**changes)
        .replace('codes = ["0000", "1111"]', 'codes = ["0010"]')
        .replace("dcn = [false, true]", "dcn = [false]")
    )
    return write_sweep(folder, text, name), folder / "runs"


def test_a_requeued_cell_resumes_from_its_checkpoint(cluster: None, tmp_path: Path) -> None:
    """Slurm gives a requeued job KillWait (30 s) to end before killing it: the cell is long enough to be
    killed mid-training."""
    sweep, root = single_cell(tmp_path, "requeue", **{"epochs = 2": "epochs = 16"})
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    assert ablation(tmp_path, "launch", *args).returncode == 0
    (entry,) = manifest(root, "requeue")
    work = Path(str(entry["work_dir"]))
    wait_for(lambda: any(work.glob("epoch_*.pth")), 240, "the first checkpoint")
    subprocess.run(["scontrol", "requeue", str(entry["job_id"])], check=True)
    done = ablation(tmp_path, "launch", *args, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    r = results(root, "requeue")
    (one,) = r.values()
    assert (one["status"], one["epochs"], one["iterations"]) == ("done", 16, 32)
    logs = sorted(work.glob("*/*.log"))
    assert len(logs) == 2 and "resumed epoch" in logs[-1].read_text()


def test_a_cell_at_its_time_limit_is_requeued_and_finishes(cluster: None, tmp_path: Path) -> None:
    sweep, root = single_cell(
        tmp_path,
        "timeout",
        **{
            # 14 epochs take about 45 s here, idle: longer than the 30 s before USR2, whatever the load; each
            # later attempt spends ~10 s starting and resuming, so it takes 3 or 4 attempts
            "epochs = 2": "epochs = 14",
            "time_limit_min = 30": "time_limit_min = 1",
            "[benchmark]": "[slurm]\nsignal_delay_s = 30\n\n[benchmark]",
        },
    )
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    done = ablation(tmp_path, "launch", *args, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    (one,) = results(root, "timeout").values()
    assert (one["status"], one["epochs"], one["iterations"]) == ("done", 14, 28)
    (entry,) = manifest(root, "timeout")
    work = Path(str(entry["work_dir"]))
    assert len(list(work.glob("*/*.log"))) >= 2  # more than one attempt: it was requeued


def test_cancel_from_a_new_process_then_retry(cluster: None, tmp_path: Path) -> None:
    sweep, root = single_cell(tmp_path, "cancel", **{"epochs = 2": "epochs = 16"})
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    assert ablation(tmp_path, "launch", *args).returncode == 0
    (entry,) = manifest(root, "cancel")
    job_id = str(entry["job_id"])
    wait_for(lambda: (Path(str(entry["work_dir"])) / RESULT_FILE).exists(), 240, "the cell to start")
    done = ablation(tmp_path, "cancel", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "1 job cancelled"
    wait_for(lambda: sacct("--format=State", "-j", job_id)[0][0].startswith("CANCELLED"), 120, "scancel")
    shown = ablation(tmp_path, "status", *args)
    assert shown.stdout.splitlines()[-1] == "1 cell: 1 lost"
    again = ablation(tmp_path, "launch", *args)
    assert again.stdout.startswith("submitted 0 of 1 cells"), again.stdout  # lost needs --retry-failed
    retried = ablation(tmp_path, "launch", *args, "--retry-failed")
    assert retried.stdout.startswith("submitted 1 of 1 cells"), retried.stdout
    assert ablation(tmp_path, "cancel", *args).returncode == 0  # leave the cluster idle
