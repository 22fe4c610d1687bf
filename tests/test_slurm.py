"""Cells through a real single-node Slurm cluster (slurm/cluster up): arrays, a killed launcher, requeues.

The only fakes are wrappers around the real commands: an ``sbatch`` that waits after submitting, so that the
launcher can be SIGKILLed at the worst moment (the jobs are in Slurm, their ids not yet in the manifest), and
an ``sacct`` and an ``scontrol`` that count their calls. The cluster's MaxArraySize is 3 (slurm/cluster), so
the 4-cell grid goes out as two arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest

from ablation import load_sweep, plan
from ablation.run.cost import Cost
from ablation.run.launch import status, work_dir
from ablation.run.result_file import RESULT_FILE, CellResult
from ablation.run.slurm import LIVE_STATES, SACCT_FORMAT

from .helpers.cli import REPO, run_script, venv_bin, write_sweep

CELLS = 4  # 0000 and 1111, DCN off and on
ARRAYS = [3, 1]  # the grid's cells per job array: slurm/cluster's MaxArraySize is 3
MINI = f"mini-{uuid.uuid4().hex[:6]}"  # this run's sweep: its job names are this run's alone
BROKEN = "faster-rcnn_r50-dconv-c3-c5_fpn_2e_shapes"


def sweep_text(**changes: str) -> str:
    text = (REPO / "experiments/sweeps/smoke.toml").read_text()
    for old, new in {
        'codes = "all"': 'codes = ["0000", "1111"]',
        "synthetic = [6, 3]": "synthetic = [4, 2]",
        # The smoke schedule stretched to 100s of epochs sometimes reaches a NaN loss (a busy CI's time-limit
        # cell: "diverged at iteration 47"); these tests are about jobs, not learning, so they train through.
        "log_interval = 2": "log_interval = 2\nstop_on_divergence = false",
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
    return run_script("ablation", *args, cwd=folder, env=env)


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


def squeue(job_ids: list[str]) -> list[str]:
    """The ids among ``job_ids`` that the controller still lists."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "PD,R,S,CF,CG", "-o", "%i", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def wait_for(check: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def wrapped(bin_dir: Path, command: str, *body: str) -> dict[str, str]:
    """An environment whose ``command`` is a bash wrapper in ``bin_dir`` running the lines ``body``, in which
    $REAL is the real command."""
    bin_dir.mkdir(exist_ok=True)
    real = subprocess.run(["which", command], capture_output=True, text=True, check=True).stdout.strip()
    wrapper = bin_dir / command
    wrapper.write_text("\n".join(("#!/bin/bash", f'REAL="{real}"', *body)) + "\n")
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def slow_sbatch(folder: Path, calls: int) -> dict[str, str]:
    """An environment whose sbatch submits for real; its ``calls``-th call then leaves a mark and waits
    before answering."""
    count = folder / "sbatch-calls"
    return wrapped(
        folder / "bin",
        "sbatch",
        'out=$("$REAL" "$@") || exit $?',
        f'echo >> "{count}"',
        f'if (( $(wc -l < "{count}") == {calls} )); then touch "{folder}/submitted"; sleep 60; fi',
        'echo "$out"',
    )


def counted(folder: Path, command: str) -> tuple[dict[str, str], Path]:
    """An environment whose ``command`` runs for real and writes each call's arguments, one line per call,
    to the file returned with it."""
    calls = folder / f"{command}-calls"
    env = wrapped(
        folder / f"counted-{command}", command, f'printf "%s\\n" "$*" >> "{calls}"', 'exec "$REAL" "$@"'
    )
    return env, calls


def summary_line(output: str) -> str:
    """The '4 cells: 3 done, 1 failed' line of a status table (its ETA and cost lines come under it)."""
    (line,) = [line for line in output.splitlines() if re.match(r"\d+ cells: ", line)]
    return line


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture(scope="module")
def grid(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, list[str]]]:
    """The grid launched as two arrays, its launcher SIGKILLed while submitting the second (the first's ids
    recorded, the second in Slurm but not in the manifest), relaunched and waited for; yields the folder, the
    root and the arrays' job names."""
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
        env=slow_sbatch(folder, calls=len(ARRAYS)),
        stdout=subprocess.DEVNULL,
    )
    wait_for(lambda: (folder / "submitted").exists(), 120, "the second sbatch")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    history = manifest(root, MINI)
    names = sorted({str(entry["job_name"]) for entry in history})
    assert [sum(1 for e in history if e["job_name"] == name) for name in names] == ARRAYS
    launch_name = names[0].rpartition("-")[0]  # ablation-<sweep>-<8 hex>, and each array's number
    assert re.fullmatch(f"ablation-{MINI}-[0-9a-f]{{8}}", launch_name), names
    assert names == [f"{launch_name}-{k}" for k in range(1, len(ARRAYS) + 1)]
    assert [e["index"] for e in history] == [i for size in ARRAYS for i in range(size)]
    # the first array's job ids recorded, the second's intents only
    assert [e["job_id"] != "" for e in history] == [True] * ARRAYS[0] + [False] * ARRAYS[1]
    yield folder, root, names


@pytest.mark.slurm
def test_a_relaunch_after_a_killed_launcher_submits_nothing_and_every_cell_runs_once(
    grid: tuple[Path, Path, list[str]],
) -> None:
    folder, root, names = grid
    name = ",".join(names)  # sacct --name takes a list
    sweep = str(folder / f"{MINI}.toml")
    # no --executor: the dead launcher's intents are completed where they went, and nothing goes elsewhere
    again = ablation(folder, "launch", "--sweep", sweep, "--root", str(root), "--wait")
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


@pytest.mark.slurm
def test_slurm_results_have_the_local_executor_s_fields(grid: tuple[Path, Path, list[str]]) -> None:
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


@pytest.mark.slurm
def test_status_from_a_fresh_process_asks_sacct_once_for_both_arrays(
    grid: tuple[Path, Path, list[str]],
) -> None:
    folder, root, _ = grid
    env, calls = counted(folder, "sacct")
    done = ablation(
        folder,
        "status",
        *("--sweep", str(folder / f"{MINI}.toml"), "--root", str(root), "--executor", "slurm"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert summary_line(done.stdout) == "4 cells: 3 done, 1 failed"
    (row,) = [line for line in done.stdout.splitlines() if line.startswith(BROKEN)]
    assert row.split()[3] == "failed"
    arrays = {str(e["job_id"]).split("_")[0] for e in manifest(root, MINI)}
    assert len(arrays) == len(ARRAYS)
    (call,) = lines(calls)  # one call for both arrays
    assert (
        call.startswith(f"-n -X -P -D --format={SACCT_FORMAT} -j ")
        and set(call.split()[-1].split(",")) == arrays
    )


@pytest.mark.slurm
def test_retry_failed_reruns_the_failed_cell_asking_max_array_size_once(
    grid: tuple[Path, Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, root, _ = grid
    (entry,) = [e for e in manifest(root, MINI) if e["cell"] == BROKEN]
    for leftover in ("epoch_1.pth", "last_checkpoint"):
        (Path(str(entry["work_dir"])) / leftover).unlink()
    args = ("--sweep", str(folder / f"{MINI}.toml"), "--root", str(root), "--executor", "slurm")
    env, calls = counted(folder, "scontrol")
    done = ablation(folder, "launch", *args, "--retry-failed", "--wait", env=env)
    assert done.stdout.startswith("submitted 1 of 4 cells"), done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert summary_line(done.stdout) == "4 cells: 4 done"
    assert results(root, MINI)[BROKEN]["attempt"] == 2
    assert [call for call in lines(calls) if call.startswith("show")] == ["show config"]  # not per poll
    assert polled_cost(folder, MINI, monkeypatch, BROKEN).attempts == 2  # its failed job and its rerun


@pytest.mark.slurm
def test_a_dry_run_on_the_cluster_shows_the_grid_as_two_arrays(cluster: None, tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, sweep_text(), "dry")
    args = ("--sweep", str(sweep), "--root", str(tmp_path / "runs"), "--executor", "slurm", "--dry-run")
    done = ablation(tmp_path, "launch", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    first, second = done.stdout.split("# array 2 of 2: 1 cell\n")
    assert first.startswith("# array 1 of 2: 3 cells\n#!/bin/bash\n"), first
    assert "#SBATCH --array=0-2%" in first and "#SBATCH --job-name=ablation-dry-DRYRUN-1\n" in first
    assert second.startswith("#!/bin/bash\n") and "--array" not in second  # one cell: a plain job
    assert "#SBATCH --job-name=ablation-dry-DRYRUN-2\n" in second
    assert not (tmp_path / "runs" / "dry" / "manifest.json").exists()  # nothing submitted


def single_cell(folder: Path, name: str, **changes: str) -> tuple[Path, Path]:
    text = (
        sweep_text(**changes)
        .replace('codes = ["0000", "1111"]', 'codes = ["0010"]')
        .replace("dcn = [false, true]", "dcn = [false]")
    )
    return write_sweep(folder, text, name), folder / "runs"


def requeued(tmp_path: Path, name: str, **changes: str) -> tuple[dict[str, object], Path, dict[str, object]]:
    """A one-cell sweep launched on Slurm, requeued (``scontrol requeue``) once it wrote its first
    checkpoint, and waited for: its manifest entry, work_dir and final result."""
    sweep, root = single_cell(tmp_path, name, **changes)
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    assert ablation(tmp_path, "launch", *args).returncode == 0
    (entry,) = manifest(root, name)
    work = Path(str(entry["work_dir"]))
    wait_for(lambda: any(work.glob("epoch_*.pth")), 240, "the first checkpoint")
    subprocess.run(["scontrol", "requeue", str(entry["job_id"])], check=True)
    done = ablation(tmp_path, "launch", *args, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    (one,) = results(root, name).values()
    logs = sorted(work.glob("*/*.log"))
    assert len(logs) == 2 and "resumed epoch" in logs[-1].read_text()
    return entry, work, one


def polled_cost(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch, cell: str | None = None) -> Cost:
    """The cost of the sweep ``name``'s cell ``cell`` (None: its only one; sweep file and root in ``folder``)
    once its jobs are over, as a status poll in this process gives it with a counting sacct: one sacct call,
    and the sum over every job of the cell of what sacct itself says of each start (-D: one record per
    start; elapsed seconds x allocated CPUs; no GPUs)."""
    ids = ",".join(str(e["job_id"]) for e in manifest(folder / "runs", name) if cell in (None, e["cell"]))
    wait_for(lambda: all(s not in LIVE_STATES for (s,) in sacct("--format=State", "-j", ids)), 60, "the end")
    records = [(int(e), int(c)) for e, c in sacct("-D", "--format=ElapsedRaw,AllocCPUS", "-j", ids)]
    probe = folder / f"poll-{uuid.uuid4().hex[:6]}"  # its own count of calls
    probe.mkdir()
    env, calls = counted(probe, "sacct")
    monkeypatch.setenv("PATH", env["PATH"])
    states = status(load_sweep(folder / f"{name}.toml"), folder / "runs")
    (one,) = [s for s in states if cell in (None, s.name)]
    assert len(lines(calls)) == 1  # the one call of the poll gave states and costs
    wall, cpu = sum(e for e, _ in records), sum(e * c for e, c in records)
    expected = Cost(attempts=len(records), wall_s=wall, cpu_s=cpu, gpu_s=None)
    assert one.cost == expected
    return expected


@pytest.mark.slurm
def test_a_requeued_cell_resumes_from_its_checkpoint(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slurm gives a requeued job KillWait (30 s) to end before killing it: the cell is long enough to be
    killed mid-training (an epoch of the smoke detector takes 0.5-1 s here, by the machine, so 120 outlast
    the 30 s). Its cost counts both starts of its job."""
    _, _, one = requeued(tmp_path, "requeue", **{"epochs = 2": "epochs = 120"})
    assert (one["status"], one["epochs"], one["iterations"]) == ("done", 120, 240)
    assert polled_cost(tmp_path, "requeue", monkeypatch).attempts == 2


@pytest.mark.slurm
def test_a_cell_at_its_time_limit_is_requeued_and_finishes(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep, root = single_cell(
        tmp_path,
        "timeout",
        **{
            # Each attempt has 50 s before USR2 (Slurm's shortest limit, 1 min, less 10 s), of which starting
            # and resuming take ~15 s idle and ~35 s with the other core busy (with 30 s, a busy machine
            # trained nothing before each USR2 and timed out 20 times). An epoch (2 iterations, its
            # validation and checkpoint) takes 0.5-1 s idle, by the machine: 60 epochs once fitted in one
            # attempt on a fast one (no requeue), so 150, which need 2-4 attempts idle, more busy.
            "epochs = 2": "epochs = 150",
            "time_limit_min = 30": "time_limit_min = 1",
            "[benchmark]": "[slurm]\nsignal_delay_s = 10\n\n[benchmark]",
        },
    )
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    done = ablation(tmp_path, "launch", *args, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    (one,) = results(root, "timeout").values()
    assert (one["status"], one["epochs"], one["iterations"]) == ("done", 150, 300)
    (entry,) = manifest(root, "timeout")
    work = Path(str(entry["work_dir"]))
    assert len(list(work.glob("*/*.log"))) >= 2  # more than one attempt: it was requeued
    assert polled_cost(tmp_path, "timeout", monkeypatch).attempts >= 2


@pytest.mark.slurm
def test_every_command_judges_a_slurm_job_where_it_runs(cluster: None, tmp_path: Path) -> None:
    """Launched with --executor slurm, then followed with the commands the tool's hints give, none of which
    names the executor: status, launch --retry-failed and cancel all see the Slurm jobs."""
    # Both cells must still be running when status is asked, however late Slurm starts the second: with 16
    # epochs, a CI machine started 1111 so late that 0000 had finished. 1000 epochs take far longer than any
    # test; the cells are cancelled at the end.
    text = sweep_text(**{"epochs = 2": "epochs = 1000"}).replace("dcn = [false, true]", "dcn = [false]")
    sweep, root = write_sweep(tmp_path, text, "judged"), tmp_path / "runs"
    args = ("--sweep", str(sweep), "--root", str(root))
    launched = ablation(tmp_path, "launch", *args, "--executor", "slurm")
    assert launched.returncode == 0, launched.stdout + launched.stderr
    assert launched.stdout.splitlines() == [
        "submitted 2 of 2 cells of sweep judged (slurm)",
        f"follow with: ablation status --sweep {sweep} --root runs",
    ]
    entries = manifest(root, "judged")
    job_ids = [str(e["job_id"]) for e in entries]
    with cancelled_at_the_end(job_ids):
        judged_where_they_run(tmp_path, args, root, entries, job_ids)


@contextlib.contextmanager
def cancelled_at_the_end(job_ids: list[str]) -> Iterator[None]:
    """Whatever happens, leave the cluster idle for the next test."""
    try:
        yield
    finally:
        subprocess.run(["scancel", *job_ids], check=False)


def judged_where_they_run(
    tmp_path: Path, args: tuple[str, ...], root: Path, entries: list[dict[str, object]], job_ids: list[str]
) -> None:
    for entry in entries:
        wait_for(lambda e=entry: (Path(str(e["work_dir"])) / RESULT_FILE).exists(), 240, "the cells to start")

    shown = ablation(tmp_path, "status", *args)  # as the hint says
    assert summary_line(shown.stdout) == "2 cells: 2 running", shown.stdout + shown.stderr
    again = ablation(tmp_path, "launch", *args, "--retry-failed")
    assert again.stdout.startswith("submitted 0 of 2 cells of sweep judged (slurm); left alone: 2 running")
    assert json.loads((root / "judged" / "manifest.json").read_text())["history"] == entries  # no new job
    elsewhere = ablation(tmp_path, "cancel", *args, "--executor", "local")
    assert elsewhere.stdout.splitlines()[-1] == "0 jobs cancelled"
    done = ablation(tmp_path, "cancel", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "2 jobs cancelled"

    def cancelled() -> bool:
        return all(
            state.startswith("CANCELLED") for (state,) in sacct("--format=State", "-j", ",".join(job_ids))
        )

    wait_for(cancelled, 120, "scancel")
    wait_for(lambda: squeue(job_ids) == [], 120, "the cancelled tasks to leave the queue")
    shown = ablation(tmp_path, "status", *args)
    assert summary_line(shown.stdout) == "2 cells: 2 lost"
    again = ablation(tmp_path, "launch", *args)
    assert again.stdout.startswith("submitted 0 of 2 cells"), again.stdout  # lost needs --retry-failed
    retried = ablation(tmp_path, "launch", *args, "--retry-failed")
    assert retried.stdout.startswith("submitted 2 of 2 cells of sweep judged (slurm)"), retried.stdout
    assert ablation(tmp_path, "cancel", *args).stdout.splitlines()[-1] == "2 jobs cancelled"  # leave it idle


# Two processes per cell on the CPU node: [resources] tasks = 2 with gpus = 0 asks for two Slurm tasks of one
# CPU each (cpus_per_task: workers_per_gpu + 1 = 1), which train the cell as one gloo group.
TWO_TASKS = {"gpus = 0": "gpus = 0\ntasks = 2"}


def task_log(entry: dict[str, object], rank: int, job_id: str | None = None) -> str:
    """What task ``rank`` of the entry's job (or of job ``job_id`` in the entry's jobs folder) printed:
    submitit's per-task log, which Slurm appends to on a requeue."""
    job_id = job_id or str(entry["job_id"])
    path = Path(str(entry["folder"])).parent / job_id / f"{job_id}_{rank}_log.out"
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.mark.slurm
def test_a_two_task_cell_trains_as_one_group_with_half_the_iterations(cluster: None, tmp_path: Path) -> None:
    """The same cell as one task and as two: each of the two ranks takes half of every epoch's 4 images, in
    batches of 2, so an epoch is 1 iteration instead of 2 (the effective batch is tasks x images_per_gpu)."""
    launched = {}
    for name, changes in (("onetask", {}), ("twotasks", TWO_TASKS)):
        sweep, root = single_cell(tmp_path, name, **changes)
        args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
        assert ablation(tmp_path, "launch", *args).returncode == 0
        launched[name] = args
    for args in launched.values():
        done = ablation(tmp_path, "launch", *args, "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
    (one,) = results(root, "onetask").values()
    (two,) = results(root, "twotasks").values()
    assert (one["status"], one["epochs"], one["iterations"], one["tasks"]) == ("done", 2, 4, 1)
    assert (two["status"], two["epochs"], two["iterations"], two["tasks"]) == ("done", 2, 2, 2)
    assert two["fps"] and two["flops"] and two["params"] == one["params"]  # measured by rank 0
    (entry,) = manifest(root, "twotasks")
    job_id = str(entry["job_id"])
    wait_for(lambda: sacct("--format=State", "-j", job_id)[0][0] not in LIVE_STATES, 60, "the job to end")
    ended = sacct("--format=State,AllocCPUS", "-j", job_id)
    # a rank that dies on its way out (it once did: signal 6 after the cell was done) fails the job
    assert ended == [["COMPLETED", "2"]], "\n".join(task_log(entry, rank)[-2000:] for rank in (0, 1))
    for rank in (0, 1):
        log = task_log(entry, rank)
        assert f"rank {rank} of 2 (gloo, torch threads 1), resumes from nothing" in log, log[-3000:]
        assert f"rank {rank} trained to epoch 2, iteration 2" in log


@pytest.mark.slurm
def test_a_requeued_two_task_cell_resumes_from_its_checkpoint_on_every_rank(
    cluster: None, tmp_path: Path
) -> None:
    """As test_a_requeued_cell_resumes_from_its_checkpoint, with two tasks: both ranks of the requeued job
    load the checkpoint (a rank that started over would train other iterations than its peer)."""
    # 1 iteration each, 0.3-1 s here by the machine: 80 once all fitted in the 30 s of KillWait after the
    # first checkpoint on an idle fast one (the cell never killed mid-training); 200 outlast it
    epochs = 200
    entry, work, one = requeued(tmp_path, "requeue2", **TWO_TASKS, **{"epochs = 2": f"epochs = {epochs}"})
    assert (one["status"], one["epochs"], one["iterations"], one["tasks"]) == ("done", epochs, epochs, 2)
    for rank in (0, 1):
        log = task_log(entry, rank)
        starts = [line for line in log.splitlines() if f"rank {rank} of 2 (gloo" in line]
        assert len(starts) == 2 and starts[0].endswith("resumes from nothing"), starts
        resumed = starts[1].rpartition("resumes from ")[2]
        assert Path(resumed).parent == work and Path(resumed).name.startswith("epoch_"), starts
        assert int(Path(resumed).stem.split("_")[1]) < epochs  # killed mid-training
        assert f"rank {rank} trained to epoch {epochs}, iteration {epochs}" in log


@pytest.mark.slurm
def test_a_duplicate_two_task_job_of_a_running_cell_steps_aside_on_every_rank(
    cluster: None, tmp_path: Path
) -> None:
    """A second job of a cell whose two-task job is training (the same pickle submitted again): its rank 0
    finds the cell's lock held, and its ranks all end at once, rank 1 not left waiting for a rank 0 that
    stepped aside. Both jobs fit on the node's 2 CPUs with --overcommit (two tasks on one CPU); the
    duplicate asks for --ntasks, since Slurm places --ntasks-per-node=2 only where 2 CPUs are free."""
    from submitit import SlurmExecutor
    from submitit.core.utils import DelayedSubmission

    sweep, root = single_cell(
        tmp_path,
        "duplicate",
        **TWO_TASKS,
        # far more epochs than the test waits for: the cell's own job must still run when the duplicate ends
        **{"epochs = 2": "epochs = 1000", "[benchmark]": '[slurm]\nsbatch = ["--overcommit"]\n\n[benchmark]'},
    )
    args = ("--sweep", str(sweep), "--root", str(root), "--executor", "slurm")
    assert ablation(tmp_path, "launch", *args).returncode == 0
    (entry,) = manifest(root, "duplicate")
    running = str(entry["job_id"])
    work = Path(str(entry["work_dir"]))
    wait_for(lambda: any(work.glob("epoch_*.pth")), 240, "the cell's first epoch")
    before = json.loads((work / RESULT_FILE).read_text())
    assert before["status"] == "running"

    executor = SlurmExecutor(folder=Path(str(entry["folder"])).parent / "%j")
    executor.update_parameters(
        job_name="ablation-duplicate",
        time=10,
        nodes=1,
        cpus_per_task=1,
        stderr_to_stdout=True,
        additional_parameters={"ntasks": 2, "overcommit": True},
    )
    delayed = DelayedSubmission.load(Path(str(entry["folder"])) / f"{running}_submitted.pkl")
    duplicate = str(executor.submit(delayed.function, *delayed.args).job_id)
    try:
        # sacct may not know a job sbatch just accepted
        wait_for(
            lambda: (sacct("--format=State", "-j", duplicate) or [["PENDING"]])[0][0] not in LIVE_STATES,
            150,
            "the duplicate to end",
        )
        ((state, elapsed_s, cpus),) = sacct("--format=State,ElapsedRaw,AllocCPUS", "-j", duplicate)
        assert (state, cpus) == ("COMPLETED", "1"), (state, task_log(entry, 0, duplicate)[-3000:])
        assert int(elapsed_s) < 60  # no rank waited for a rendezvous or a rank 0 that is gone
        for rank in (0, 1):
            log = task_log(entry, rank, duplicate)
            assert f"rank {rank} of 2 steps aside (no lock)" in log, log[-3000:]
            assert "trained" not in log and "Epoch(train)" not in log
        assert sacct("--format=State", "-j", running) == [["RUNNING"]]  # the cell's own job goes on
        after = json.loads((work / RESULT_FILE).read_text())
        assert (after["status"], after["pid"], after["attempt"]) == ("running", before["pid"], 1)
    finally:
        subprocess.run(["scancel", duplicate, running], check=False)
    wait_for(lambda: squeue([duplicate, running]) == [], 120, "the jobs to leave the queue")


def test_tasks_without_gpus_ask_slurm_for_cpu_tasks_only(tmp_path: Path) -> None:
    """What the cluster tests above submit: [resources] tasks = 2 with gpus = 0 asks for 2 tasks of 1 CPU
    and no GPU; with GPUs there is one task per GPU, --gpus included; tasks other than gpus is refused."""
    from ablation.errors import InputError
    from ablation.run.distributed import first_host
    from ablation.run.slurm import parameters

    sweep = load_sweep(write_sweep(tmp_path, sweep_text(**TWO_TASKS), "cputasks"))
    params = parameters(sweep, {})
    assert (params["ntasks_per_node"], params["cpus_per_task"], "gpus_per_node" in params) == (2, 1, False)
    flagged = parameters(sweep, {"gpus": 4})
    assert (flagged["ntasks_per_node"], flagged["gpus_per_node"]) == (4, 4)
    with pytest.raises(InputError, match="tasks must equal gpus"):
        load_sweep(write_sweep(tmp_path, sweep_text(**{"gpus = 0": "gpus = 8\ntasks = 2"}), "mismatch"))
    hosts = ("vm", "node[03-05,9],gpu1", "rack[1-2]-n[7-8]", "gpu-[001-004]")
    assert [first_host(h) for h in hosts] == ["vm", "node03", "rack1-n7", "gpu-001"]


SLURMD_PID = Path(os.environ.get("ABLATION_SLURM_STATE", "/var/lib/ablation-slurm")) / "run" / "slurmd.pid"


def crash_the_node(job_id: str, jobs_folder: Path) -> None:
    """What a node that dies leaves behind: no slurmd, none of the job's processes (its slurmstepd, srun and
    the cell's python, killed with SIGKILL: nothing is cleaned up), and a controller that marks it down."""
    subprocess.run(["kill", "-9", SLURMD_PID.read_text().strip()], check=True)
    base = job_id.split("_")[0]
    for pattern in (rf"slurmstepd: \[{base}\.", str(jobs_folder)):
        subprocess.run(["pkill", "-9", "-f", pattern], check=False)
    node = subprocess.run(["hostname", "-s"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(
        ["scontrol", "update", f"NodeName={node}", "State=DOWN", "Reason=ablation-test-node-failure"],
        check=True,
    )


@pytest.mark.slurm
def test_a_node_failure_requeues_the_cell_which_resumes_from_its_checkpoint(
    cluster: None, tmp_path: Path
) -> None:
    """Slurm requeues a --requeue job whose node fails (NODE_FAIL): the cell is pending, not lost, nothing
    submits a second job for it, and once a node is back it resumes from its checkpoint. (Where Slurm does not
    requeue, the cell is lost, and --retry-failed resumes it from the same work_dir's checkpoint.)"""
    if not SLURMD_PID.is_file():
        pytest.skip(f"no {SLURMD_PID}: this test kills and restarts slurm/cluster's own slurmd only")
    sweep, root = single_cell(tmp_path, "nodefail", **{"epochs = 2": "epochs = 30"})
    args = ("--sweep", str(sweep), "--root", str(root))
    assert ablation(tmp_path, "launch", *args, "--executor", "slurm").returncode == 0
    (entry,) = manifest(root, "nodefail")
    job_id, work = str(entry["job_id"]), Path(str(entry["work_dir"]))
    with cancelled_at_the_end([job_id]):
        crashed_and_resumed(tmp_path, args, root, job_id, work)


def crashed_and_resumed(tmp_path: Path, args: tuple[str, ...], root: Path, job_id: str, work: Path) -> None:
    wait_for(lambda: any(work.glob("epoch_*.pth")), 240, "the first checkpoint")
    try:
        crash_the_node(job_id, root / "nodefail" / "jobs")
        wait_for(
            lambda: sacct("--format=State", "-j", job_id)[0][0] in ("PENDING", "REQUEUED"), 60, "requeue"
        )
        # alive, not lost: pending, or running as its attempt's result file still says (sacct cannot tell
        # a requeued job's PENDING from the accounting database lagging behind a start)
        (row,) = [line for line in ablation(tmp_path, "status", *args).stdout.splitlines() if "0010" in line]
        assert row.split()[3] in ("pending", "running"), row
        again = ablation(tmp_path, "launch", *args, "--retry-failed")
        assert again.stdout.startswith("submitted 0 of 1 cells of sweep nodefail (slurm); left alone: 1 ")
    finally:  # the node back: slurmd started again, the node resumed
        up = subprocess.run(["bash", str(REPO / "slurm" / "cluster"), "up"], capture_output=True, text=True)
        assert up.returncode == 0, up.stdout + up.stderr
    done = ablation(tmp_path, "launch", *args, "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    (one,) = results(root, "nodefail").values()
    assert (one["status"], one["epochs"], one["iterations"], one["attempt"]) == ("done", 30, 60, 1)
    logs = sorted(work.glob("*/*.log"))
    assert len(logs) == 2 and "resumed epoch" in logs[-1].read_text()
    assert [e["job_id"] for e in manifest(root, "nodefail")] == [job_id]  # one job, requeued by Slurm
