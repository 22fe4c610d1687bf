"""Real cells end to end: planned, launched as submitit local jobs, trained, tested and measured.

One sweep of 6 small cells (0000, 0010 and 1111, DCN off and on) runs once for the module; one of them is
made to fail the way a crashed node leaves a cell behind, with a truncated checkpoint in its work_dir.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import submitit

from ablation import load_sweep, plan
from ablation.cli.commands import main
from ablation.run.job import CellJob, run_cell
from ablation.run.launch import status, work_dir
from ablation.run.locks import try_exclusive
from ablation.run.result_file import RESULT_FILE, read_result

from .helpers.cli import REPO, in_folder, replaced, run_cli, run_script, write_sweep

SWEEP = replaced(
    (REPO / "experiments/sweeps/smoke.toml").read_text(),
    ('codes = "all"', 'codes = ["0000", "0010", "1111"]'),
    ("synthetic = [6, 3]", "synthetic = [4, 2]"),
    ('keep_checkpoints = "none"', 'keep_checkpoints = "last"'),  # a done cell keeps one, to resume from
)
BROKEN = "faster-rcnn_r50-dconv-c3-c5_fpn_2e_shapes"  # 0000 with DCN: the cell made to fail


@dataclasses.dataclass
class Run:
    folder: Path
    sweep_file: Path
    root: Path
    exit_code: int
    output: str


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("run")
    sweep_file = write_sweep(folder, SWEEP, "mini")
    root = folder / "runs"
    planned = plan(load_sweep(sweep_file), root)
    (broken,) = [p for p in planned.cells if p.name == BROKEN]
    dead = work_dir(planned.directory, broken)
    dead.mkdir(parents=True)
    (dead / "epoch_1.pth").write_bytes(b"PK\x03\x04 truncated by a crash")
    (dead / "last_checkpoint").write_text(str(dead / "epoch_1.pth"))

    output = io.StringIO()
    with in_folder(folder), contextlib.redirect_stdout(output):  # data_root is relative: the data goes here
        code = main(["launch", "--sweep", str(sweep_file), "--root", str(root), "--wait", "--parallel", "2"])
    yield Run(folder, sweep_file, root, code, output.getvalue())


def copy_of(run: Run, tmp_path: Path) -> Run:
    """The module's run in a folder of its own, for a test that changes it: every test sees the run as the
    fixture left it, whatever ran before. Files are hard links (the checkpoints take GBs); the tool replaces
    files atomically or writes new ones, so the original is never changed through them."""
    folder = tmp_path / "run"
    shutil.copytree(run.folder, folder, copy_function=os.link)
    return dataclasses.replace(
        run, folder=folder, sweep_file=folder / run.sweep_file.name, root=folder / run.root.name
    )


def results(run: Run) -> dict[str, dict[str, object]]:
    out = {}
    for path in (run.root / "mini" / "work").glob(f"*/*/{RESULT_FILE}"):
        data = json.loads(path.read_text())
        out[data["cell"]] = data
    return out


@pytest.mark.slow
def test_the_cells_finish_with_their_figures(ran: Run) -> None:
    found = results(ran)
    assert len(found) == 6
    for name, r in found.items():
        if name == BROKEN:
            continue
        assert r["status"] == "done", (name, r["error"], r["log_tail"])
        metrics = r["metrics"]
        assert isinstance(metrics, dict) and 0.0 <= metrics["bbox_mAP"] <= 1.0
        assert isinstance(r["fps"], float) and r["fps"] > 0
        assert isinstance(r["params"], int) and r["params"] > 0
        assert isinstance(r["flops"], float) and r["flops"] > 0
        assert (
            r["memory_kind"] == "cpu_peak_rss" and isinstance(r["memory_mb"], float) and r["memory_mb"] > 100
        )
        assert r["epochs"] == 2 and r["iterations"] == 4  # 4 images, 2 per batch, 2 epochs
        assert r["flops_input"] == [128, 192]
        assert set(r["versions"]) == {"torch", "mmcv", "mmdet", "mmengine", "ablation"}  # type: ignore[arg-type]
        assert r["attempt"] == 1
        work = Path(str(r["config"])).parents[1] / "work" / name / str(r["cell_id"])
        assert [p.name for p in work.glob("*.pth")] == ["epoch_2.pth"]  # keep_checkpoints = "last"


@pytest.mark.slow
def test_more_attention_means_more_parameters(ran: Run) -> None:
    found = results(ran)
    params = {(r["code"], r["dcn"]): r["params"] for r in found.values() if r["status"] == "done"}
    assert params["0000", False] < params["0010", False] < params["1111", False]
    assert params["0010", False] < params["0010", True]


@pytest.mark.slow
def test_the_broken_cell_is_recorded_as_failed_with_its_error(ran: Run) -> None:
    r = results(ran)[BROKEN]
    assert r["status"] == "failed"
    assert "epoch_1.pth" in str(r["log_tail"]) or "zip" in str(r["error"]).lower()
    assert r["error"] and r["finished"]
    assert ran.exit_code == 1
    assert f"not done: {BROKEN}" in ran.output
    assert "6 cells: 5 done, 1 failed" in ran.output


@pytest.mark.slow
def test_no_more_than_the_parallel_cells_computed_at_once(ran: Run) -> None:
    spans = [
        (datetime.fromisoformat(str(r["started"])), datetime.fromisoformat(str(r["finished"])))
        for r in results(ran).values()
    ]
    for start, _ in spans:
        overlapping = sum(1 for s, f in spans if s <= start < f)
        assert overlapping <= 2


@pytest.mark.slow
def test_a_second_launch_submits_nothing(ran: Run, capsys: pytest.CaptureFixture[str]) -> None:
    with in_folder(ran.folder):
        code, out, _ = run_cli(
            "launch", "--sweep", str(ran.sweep_file), "--root", str(ran.root), capsys=capsys
        )
    assert code == 0
    assert out.startswith("submitted 0 of 6 cells of sweep mini (local); left alone: 5 done, 1 failed")


@pytest.mark.slow
def test_status_from_a_new_process(ran: Run) -> None:
    done = run_script("ablation", "status", "--sweep", str(ran.sweep_file), "--root", str(ran.root))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["cell", "code", "dcn", "state"]
    assert lines[-1] == "6 cells: 5 done, 1 failed"
    (broken_row,) = [line for line in lines if line.startswith(BROKEN)]
    assert broken_row.split()[3] == "failed"


@pytest.mark.slow
def test_retry_failed_resubmits_only_the_failed_cell(
    ran: Run, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ran = copy_of(ran, tmp_path)
    sweep = load_sweep(ran.sweep_file)
    (broken,) = [s for s in status(sweep, ran.root) if s.name == BROKEN]
    dead = work_dir(ran.root / "mini", broken.planned)
    (dead / "epoch_1.pth").unlink()
    (dead / "last_checkpoint").unlink()
    with in_folder(ran.folder):
        code, out, _ = run_cli(
            "launch",
            "--sweep",
            str(ran.sweep_file),
            "--root",
            str(ran.root),
            "--retry-failed",
            "--wait",
            capsys=capsys,
        )
    assert out.startswith("submitted 1 of 6 cells of sweep mini (local); left alone: 5 done")
    assert code == 0, out
    r = results(ran)[BROKEN]
    assert (r["status"], r["attempt"]) == ("done", 2)


@pytest.mark.slow
def test_a_rerun_resumes_from_the_last_checkpoint(ran: Run, tmp_path: Path) -> None:
    """Through torch's safe unpickler: mmengine's checkpoints load with only their classes allowed."""
    ran = copy_of(ran, tmp_path)
    (first,) = [r for r in results(ran).values() if r["code"] == "0010" and r["dcn"] is False]
    (cell,) = [s for s in status(load_sweep(ran.sweep_file), ran.root) if s.name == first["cell"]]
    assert cell.submission is not None and cell.state == "done"
    spec = CellJob(
        sweep="mini",
        cell=str(first["cell"]),
        name=str(first["cell"]),
        cell_id=str(first["cell_id"]),
        code="0010",
        dcn=False,
        config=str(cell.planned.path),
        config_hash=str(first["config_hash"]),
        work_dir=str(work_dir(ran.root / "mini", cell.planned)),
        cwd=str(ran.folder),
        attempt=2,
        test_size=(128, 192),
        warmup_images=0,
        timed_images=1,
        threads=1,
    )
    executor = submitit.LocalExecutor(folder=ran.folder / "rerun")
    executor.update_parameters(timeout_min=10)
    job = executor.submit(run_cell, spec)
    again = job.result()
    assert again is not None and again.status == "done"
    assert again.iterations == first["iterations"]
    logs = sorted(Path(spec.work_dir).glob("*/*.log"))
    resumed = logs[-1].read_text()
    assert "resumed epoch: 2" in resumed
    assert "Epoch(train)" not in resumed  # nothing trained again (a time would depend on the load)


def bare_job(folder: Path) -> CellJob:
    """The job of a cell whose config does not exist, working in ``folder / "work"``."""
    return CellJob(
        sweep="s",
        cell="c",
        name="c",
        cell_id="0" * 12,
        code="0010",
        dcn=False,
        config=str(folder / "missing.py"),
        config_hash="0" * 64,
        work_dir=str(folder / "work"),
        cwd=str(folder),
        attempt=1,
        test_size=(32, 32),
    )


def test_a_requeue_exit_inside_a_library_is_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a time limit submitit's handler requeues the job and calls sys.exit wherever training is. Inside
    mmengine's config formatting (a checkpoint save) that SystemExit came out as a SyntaxError, the cell was
    recorded failed, and `launch --wait` stopped on it while the requeued job went on to finish."""

    def requeued_mid_save(job: CellJob, result: object, measure: bool = True) -> None:
        try:
            raise SystemExit(-1)  # what submitit's signal handler raises after requeueing
        except BaseException:
            raise SyntaxError("Failed to format the config file") from None  # as mmengine's pretty_text

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("ablation.run.job._train_test_measure", requeued_mid_save)
    spec = bare_job(tmp_path)
    with pytest.raises(SystemExit) as leaving:
        run_cell(spec)
    assert leaving.value.code == -1
    result = read_result(tmp_path / "work")
    assert result is not None and (result.status, result.error) == ("running", None)


def test_a_second_job_for_a_running_cell_steps_aside(tmp_path: Path) -> None:
    spec = bare_job(tmp_path)
    with try_exclusive(tmp_path / "work" / ".job.lock") as mine:
        assert mine
        assert run_cell(spec) is None
    assert not (tmp_path / "work" / RESULT_FILE).exists()
    assert read_result(tmp_path / "work") is None
