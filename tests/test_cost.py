"""The compute accounting: sacct's records of each start of a job, a cell's own attempt records, and what a
cell's jobs cost summed over all of them, as a status poll and the harvest's ``sweep_costs`` give it.

The Slurm numbers come from crafted ``sacct -D`` output (the only fake is the sacct executable, which records
its arguments); test_slurm.py checks them against the real cluster's accounting. The local numbers come from
a real cell launched here."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ablation.cli.commands import main
from ablation.grid.plan import plan
from ablation.grid.sweep import load_sweep
from ablation.run.attempts import ATTEMPTS_FILE, Attempt, read_attempts
from ablation.run.cost import Cost, attempts_cost, job_cost, slurm_cost, sweep_costs, sweeps_costs
from ablation.run.launch import recorded_status, status, work_dir
from ablation.run.manifest import Manifest, Submission, load_manifest, save_manifest
from ablation.run.slurm import SlurmAttempt, SlurmJob, parse_sacct

from .helpers.cli import REPO, in_folder, replaced, write_sweep

# Shaped as Slurm 22.05 prints them (slurm/cluster): job 7 requeued twice (scontrol requeue, or submitit's
# own requeue at a time limit: both read REQUEUED), 8 requeued after a node failure and pending again (no
# allocation: no attempt), array 12's task 0 done on 2 GPUs, task 1 requeued and running on typed GPUs only,
# tasks 2-3 still pending as one range, 14 cancelled before it started.
SACCT = """\
7|REQUEUED|33|billing=1,cpu=1,node=1
7|REQUEUED|20|billing=1,cpu=1,node=1
7|COMPLETED|14|billing=1,cpu=1,node=1
8|NODE_FAIL|6|billing=2,cpu=2,mem=4G,node=1
8|PENDING|0|
12_0|COMPLETED|15|billing=8,cpu=8,gres/gpu=2,gres/gpu:a100=2,node=1
12_1|REQUEUED|6|billing=8,cpu=8,gres/gpu:a100=1,gres/gpu:v100=1,node=1
12_1|RUNNING|9|billing=8,cpu=8,gres/gpu:a100=2,node=1
12_[2-3%2]|PENDING|0|
14|CANCELLED by 0|0|
"""


def test_sacct_records_give_each_job_its_last_state_and_an_attempt_per_allocated_start() -> None:
    jobs = parse_sacct(SACCT)
    assert {job_id: job.state for job_id, job in jobs.items()} == {
        "7": "COMPLETED", "8": "PENDING", "12_0": "COMPLETED", "12_1": "RUNNING", "12_2": "PENDING",
        "12_3": "PENDING", "14": "CANCELLED",
    }  # fmt: skip
    assert jobs["7"].attempts == (SlurmAttempt(33, 1, 0), SlurmAttempt(20, 1, 0), SlurmAttempt(14, 1, 0))
    assert jobs["8"].attempts == (SlurmAttempt(6, 2, 0),)
    assert jobs["12_0"].attempts == (SlurmAttempt(15, 8, 2),)  # the untyped count, not twice with a100
    assert jobs["12_1"].attempts == (SlurmAttempt(6, 8, 2), SlurmAttempt(9, 8, 2))  # typed ones summed
    assert [jobs[i].attempts for i in ("12_2", "12_3", "14")] == [(), (), ()]


def test_a_slurm_job_costs_its_elapsed_seconds_times_its_allocation() -> None:
    jobs = parse_sacct(SACCT)
    assert slurm_cost(jobs["7"]) == Cost(attempts=3, wall_s=67.0, cpu_s=67.0, gpu_s=None)
    assert slurm_cost(jobs["8"]) == Cost(attempts=1, wall_s=6.0, cpu_s=12.0, gpu_s=None)
    assert slurm_cost(jobs["12_1"]) == Cost(attempts=2, wall_s=15.0, cpu_s=120.0, gpu_s=30.0)
    assert slurm_cost(jobs["14"]) == Cost()  # never started: nothing spent, no GPU-hours either
    assert slurm_cost(jobs["7"]) + slurm_cost(jobs["12_0"]) == Cost(4, 82.0, 187.0, 30.0)


T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def attempt(
    number: int, executor: str, start_s: int, wall_s: int, *, ended: bool = True, **kw: int
) -> Attempt:
    stop = (T0 + timedelta(seconds=start_s + wall_s)).isoformat()
    fields = {"processes": 1, "threads": 2, "gpus": 0, **kw}
    start = (T0 + timedelta(seconds=start_s)).isoformat()
    return Attempt(
        attempt=number, executor=executor, job_id="", host="h", started=start, last_seen=stop,
        ended=stop if ended else None, **fields,
    )  # fmt: skip


def write_attempts(folder: Path, attempts: list[Attempt]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"attempts": [dataclasses.asdict(a) for a in attempts]}
    (folder / ATTEMPTS_FILE).write_text(json.dumps(data), encoding="utf-8")


# A cell's attempts.json over three jobs: job 1 (local) killed without a word (counted to its last beat), then
# restarted by submitit; job 2 (local) on a GPU; job 3 on Slurm, its cost from sacct when sacct knows it.
ATTEMPTS = [
    attempt(1, "local", 0, 100, ended=False),
    attempt(1, "local", 200, 50),
    attempt(2, "local", 300, 30, processes=2, threads=3, gpus=1),
    attempt(3, "slurm", 400, 40, processes=2, threads=1),
]


def submission(cell: str, cell_id: str, folder: Path, number: int, executor: str, job_id: str) -> Submission:
    return Submission(
        cell=cell, cell_id=cell_id, executor=executor, job_id=job_id, folder="", work_dir=str(folder),
        attempt=number, submitted=T0.isoformat(),
    )  # fmt: skip


def test_a_local_job_costs_its_recorded_attempts_wall_times_processes_times_threads(tmp_path: Path) -> None:
    write_attempts(tmp_path, ATTEMPTS)
    assert attempts_cost(read_attempts(tmp_path)[:2]) == Cost(2, 150.0, 300.0, None)
    jobs = ((1, "local"), (2, "local"), (3, "slurm"))
    first, second, on_slurm = (submission("c", "i", tmp_path, n, e, "0") for n, e in jobs)
    assert job_cost(first, {}) == Cost(2, 150.0, 300.0, None)  # only job 1's attempts
    assert job_cost(second, {}) == Cost(1, 30.0, 180.0, 30.0)
    assert job_cost(on_slurm, {}) == Cost(1, 40.0, 80.0, None)  # sacct not asked: its own records
    accounted = {"0": SlurmJob("COMPLETED", (SlurmAttempt(45, 4, 0),))}
    assert job_cost(on_slurm, accounted) == Cost(1, 45.0, 180.0, None)  # sacct's, when it knows the job
    assert job_cost(first, accounted) == Cost(2, 150.0, 300.0, None)  # a local job is never looked up there
    assert job_cost(submission("c", "i", tmp_path / "none", 1, "local", "0"), {}) == Cost()


def fake_sacct(folder: Path, output: str) -> tuple[Path, Path]:
    """A folder with an ``sacct`` that records its arguments in ``calls`` and prints ``output``."""
    bin_dir, calls = folder / "bin", folder / "sacct-calls"
    bin_dir.mkdir()
    (folder / "sacct-output").write_text(output)
    script = bin_dir / "sacct"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls}"\ncat "{folder / "sacct-output"}"\n')
    script.chmod(0o755)
    return bin_dir, calls


def test_a_cell_costs_every_job_of_its_config_from_one_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cells: one with jobs 1 and 2 local and job 3 on Slurm (job id 7 of SACCT), one job of an older
    config that no longer counts; one never launched. Their jobs are over (no such processes)."""
    sweep = load_sweep("smoke")
    planned = plan(sweep, tmp_path / "runs", write=False)
    first, second = planned.cells[:2]
    work = work_dir(planned.directory, first)
    write_attempts(work, ATTEMPTS)
    manifest = Manifest(sweep.name)
    for number, executor, job_id in ((1, "local", "999999991"), (2, "local", "999999992"), (3, "slurm", "7")):
        manifest.record(submission(first.name, first.cell_id, work, number, executor, job_id))
    manifest.record(submission(second.name, "older", tmp_path / "older", 1, "slurm", "8"))
    save_manifest(planned.directory, manifest)
    bin_dir, calls = fake_sacct(tmp_path, SACCT)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    expected = Cost(2, 150.0, 300.0, None) + Cost(1, 30.0, 180.0, 30.0) + Cost(3, 67.0, 67.0, None)
    states = {s.name: s for s in status(sweep, tmp_path / "runs")}
    assert (states[first.name].state, states[first.name].cost) == ("lost", expected)
    assert states[second.name].cost is None  # no job of its current config
    assert calls.read_text().splitlines() == ["-n -X -P -D --format=JobID,State,ElapsedRaw,AllocTRES -j 7"]

    recorded = {c.submission.cell: c.cost for c in recorded_status(planned.directory)}
    assert recorded == {first.name: expected, second.name: slurm_cost(parse_sacct(SACCT)["8"])}
    assert sweep_costs(planned.directory) == {
        (first.name, first.cell_id): expected,
        (second.name, "older"): Cost(1, 6.0, 12.0, None),
    }
    assert len(calls.read_text().splitlines()) == 3  # one each
    again = tmp_path / "again"
    again.mkdir()
    save_manifest(again, load_manifest(planned.directory, sweep.name))
    both = sweeps_costs([planned.directory, again])
    assert both[again] == both[planned.directory] == sweep_costs(planned.directory)
    assert calls.read_text().splitlines()[-2].endswith(" -j 7,8")  # both folders' jobs in one call

    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no Slurm here: the records the job kept
    assert sweep_costs(planned.directory)[(first.name, first.cell_id)] == (
        Cost(2, 150.0, 300.0, None) + Cost(1, 30.0, 180.0, 30.0) + Cost(1, 40.0, 80.0, None)
    )


def test_a_real_local_cell_reports_the_cost_its_job_recorded(tmp_path: Path) -> None:
    text = replaced(
        (REPO / "experiments/sweeps/smoke.toml").read_text(),
        ('codes = "all"', 'codes = ["0010"]'),
        ("dcn = [false, true]", "dcn = [false]"),
        ("synthetic = [6, 3]", "synthetic = [4, 2]"),
        ("epochs = 2", "epochs = 1"),
    )
    sweep_file = write_sweep(tmp_path, text, "costly")
    root = tmp_path / "runs"
    with in_folder(tmp_path), contextlib.redirect_stdout(io.StringIO()):
        code = main(["launch", "--sweep", str(sweep_file), "--root", str(root), "--wait", "--parallel", "1"])
    assert code == 0
    ((key, cost),) = sweep_costs(root / "costly").items()
    (one,) = status(load_sweep(sweep_file), root)
    assert (one.state, one.cost, key) == ("done", cost, (one.name, one.planned.cell_id))
    (recorded,) = read_attempts(Path(one.submission.work_dir if one.submission else ""))
    assert (recorded.executor, recorded.attempt, recorded.processes, recorded.gpus) == ("local", 1, 1, 0)
    assert recorded.ended is not None and recorded.wall_s > 0
    assert cost == Cost(1, recorded.wall_s, recorded.wall_s * recorded.threads, None)
