"""Harvesting real runs: a cell run by `ablation run`, and a work_dir that mmdet's own tools/train.py and
tools/test.py wrote (really run here, on the synthetic data), into a real parquet store."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ablation.cli.commands import main
from ablation.results import logs
from ablation.results.harvest import find_runs, harvest, record_from_work_dir
from ablation.results.store import Store
from ablation.run.attempts import read_attempts
from ablation.run.result_file import METRICS

from .helpers.cli import REPO, in_folder, replaced, run_cli, write_sweep

SWEEP = replaced(
    (REPO / "experiments/sweeps/smoke.toml").read_text(),
    ("synthetic = [6, 3]", "synthetic = [4, 2]"),
)
CELL = "faster-rcnn_r50-attn0010_fpn_2e_shapes"
TOOL = Path(__file__).parent / "helpers" / "mmdet_tool.py"
BENCHMARK = "11/22 07:06:25 - mmdet - INFO - Overall fps: 13.8 img/s, times per image: 72.5 ms/img\n"


@dataclass
class Made:
    folder: Path
    root: Path
    sweep_file: Path
    run_output: str
    run_code: int
    tools_dir: Path  # work_dirs/ of mmdet's tools
    test_json: dict[str, float]


def _tool(folder: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), *args], cwd=folder, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Made]:
    folder = tmp_path_factory.mktemp("harvest")
    sweep_file = write_sweep(folder, SWEEP, "mini")
    root = folder / "runs"
    output = io.StringIO()
    with in_folder(folder), contextlib.redirect_stdout(output):
        code = main(
            ["run", "--sweep", str(sweep_file), "--root", str(root), "--codes", "0010", "--dcn", "off"]
        )

    config = root / "mini" / "configs" / f"{CELL}.py"
    work = folder / "work_dirs" / CELL
    _tool(folder, "train.py", str(config), "--work-dir", str(work))
    _tool(folder, "test.py", str(config), str(work / "epoch_2.pth"), "--work-dir", str(work))
    (work / "benchmark.log").write_text(
        BENCHMARK
    )  # benchmark.py needs CUDA: its output line, as it prints it
    (test_json,) = [p for p in work.glob("*/*.json") if p.parent.name == p.stem]
    yield Made(
        folder,
        root,
        sweep_file,
        output.getvalue(),
        code,
        folder / "work_dirs",
        json.loads(test_json.read_text()),
    )


@pytest.mark.slow
def test_run_ends_with_the_harvested_table(made: Made) -> None:
    assert made.run_code == 0, made.run_output
    lines = made.run_output.splitlines()
    header = next(i for i, line in enumerate(lines) if "Backbone" in line)
    cells = [c.strip() for c in lines[header + 2].strip("|").split("|")]
    assert cells[:4] == ["R-50", "0010", "N", "2e"]
    assert float(cells[4]) > 0 and cells[5] == "CPU peak RSS" and float(cells[6]) > 0
    assert 0.0 <= float(cells[7]) <= 100.0
    assert "harvested 1 run: 1 new" in made.run_output
    stored = Store(made.root / "store").read().table.to_pylist()
    (row,) = stored
    assert row["cell"] == CELL and row["source"] == "run" and row["status"] == "done"
    assert row["schedule"] == "2e" and row["dataset"] == "shapes" and row["backbone"] == "R-50"
    assert row["attention_module"] == "ablation" and row["memory_kind"] == "cpu_peak_rss"
    assert row["attention_impl"] == "reference"
    assert row["flops"] > 0 and row["params"] > 0 and row["epochs"] == 2 and row["iterations"] == 4
    assert row["torch_version"] and row["mmdet_version"] == "3.3.0" and row["git_commit"]
    assert row["started"] <= row["finished"] and row["train_s"] > 0
    assert row["test_s"] > 0 and row["fps_s"] > 0 and row["flops_s"] > 0
    # its cost: the local attempt its job recorded (wall x processes x threads; no GPU), origin absolute
    origin = Path(row["origin"])
    assert origin.is_absolute() and origin.name == "result.json" and origin.is_file()
    found = read_attempts(origin.parent)
    assert row["attempts"] == len(found) >= 1 and row["gpu_hours"] is None
    assert row["wall_hours"] == pytest.approx(sum(a.wall_s for a in found) / 3600)
    assert row["cpu_hours"] == pytest.approx(sum(a.wall_s * a.processes * a.threads for a in found) / 3600)


@pytest.mark.slow
def test_a_work_dir_of_mmdet_tools_is_harvested(made: Made) -> None:
    (work,) = find_runs(made.tools_dir)
    record = record_from_work_dir(work, "tools")
    assert record.cell == CELL and record.source == "run"
    assert (record.code, record.dcn, record.backbone, record.schedule, record.dataset) == (
        "0010",
        False,
        "R-50",
        "2e",
        "shapes",
    )
    assert record.attention_module == "ablation" and record.attention_impl == "reference"
    assert record.epochs == 2 and record.iterations == 4
    # box AP from tools/test.py's JSON, the newest figures
    assert {m: getattr(record, m) for m in METRICS} == {m: made.test_json[f"coco/{m}"] for m in METRICS}
    assert record.fps == 13.8
    assert record.memory_gb is None and record.memory_kind is None  # mmengine logs memory on CUDA only
    assert record.attempts is None and record.cpu_hours is None  # no manifest lists it: no cost
    assert record.origin == str(work.resolve())
    assert record.run_id == sorted(p.name for p in work.iterdir() if p.is_dir())[0]


@pytest.mark.slow
def test_harvesting_twice_changes_nothing(made: Made, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    first = harvest(store, find_runs(made.folder), "tools")
    assert first.problems == [] and len(first.added) == 2 and first.harvested == 2
    files = {p: p.stat().st_mtime_ns for p in store.runs_dir.iterdir()}
    before = store.read().table
    second = harvest(store, find_runs(made.folder), "tools")
    assert len(second.unchanged) == 2 and second.added == second.updated == []
    assert {p: p.stat().st_mtime_ns for p in store.runs_dir.iterdir()} == files
    assert store.read().table.equals(before)


@pytest.mark.slow
def test_corrupt_truncated_and_missing_files_are_named_and_the_rest_harvested(
    made: Made, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(made.tools_dir / CELL, folder / "good")
    truncated = folder / "truncated"
    shutil.copytree(made.tools_dir / CELL, truncated)
    for test_json in truncated.glob("*/*.json"):  # no test metrics: box AP must come from scalars.json
        test_json.unlink()
    (scalars,) = [p for p in truncated.glob("*/vis_data/scalars.json")]
    text = scalars.read_text()
    scalars.write_text(text[: len(text) - 40])  # cut inside the last line
    training = folder / "still-training" / "20250101_000000" / "vis_data"
    training.mkdir(parents=True)
    own = folder / "own-cell"
    own.mkdir()
    (own / "result.json").write_text('{"status": "done", "sweep": "x", "cel')

    store = Store(tmp_path / "store")
    report = harvest(store, find_runs(folder), "mixed")
    assert report.harvested == 1 and len(report.problems) == 3
    assert all("\n" not in p for p in report.problems)
    text = "\n".join(report.problems)
    lines = len(scalars.read_text().splitlines())
    assert f"{scalars}: line {lines} is not JSON" in text
    assert f"{folder / 'still-training'}: no box AP yet" in text
    assert f"{own / 'result.json'}: not readable JSON" in text
    assert [r["origin"] for r in store.read().table.to_pylist()] == [str(folder / "good")]

    code, out, err = run_cli(
        "harvest", "--sweep", str(folder), "--store", str(tmp_path / "cli-store"), "--no-reference"
    )
    assert code == 1 and "harvested 1 run: 1 new" in out
    assert len(err.strip().splitlines()) == 3 and all(
        line.startswith("warning: ") for line in err.splitlines()
    )


@pytest.mark.slow
def test_harvest_without_a_sweep_reads_every_sweep_and_the_reference(made: Made, tmp_path: Path) -> None:
    store = tmp_path / "store"
    code, out, err = run_cli("harvest", "--root", str(made.root), "--store", str(store))
    assert (code, err) == (0, "")
    assert "harvested 7 runs: 7 new" in out  # 1 cell of sweep mini + 6 reference rows
    code, out, _ = run_cli("export", "--store", str(store), "--source", "run", "--format", "csv")
    assert code == 0 and out.splitlines()[1].startswith("R-50,0010,N,2e,")


def test_harvest_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli("harvest", "--sweep", "no-such-sweep", "--root", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "no-such-sweep" in err
    code, _, err = run_cli("harvest", "--sweep", "smoke", "--root", str(tmp_path))
    assert code == 2 and "no runs of sweep smoke" in err and err.count("\n") == 1


@pytest.mark.slow
def test_the_parsers_read_what_mmengine_really_wrote(made: Made) -> None:
    (scalars,) = (made.tools_dir / CELL).glob("*/vis_data/scalars.json")
    lines = [json.loads(line) for line in scalars.read_text().splitlines()]
    validation = [line for line in lines if "coco/bbox_mAP" in line]
    training = [line for line in lines if "loss" in line]
    assert len(validation) == 2 and len(training) == 2  # an epoch each, logged every 2 iterations
    figures = logs.mmengine_scalars(scalars)
    assert figures.metrics == {m: validation[-1][f"coco/{m}"] for m in METRICS}
    assert (figures.epochs, figures.iterations, figures.memory_mb) == (2, 4, None)
    (test,) = [p for p in (made.tools_dir / CELL).glob("*/*.json") if p.parent.name == p.stem]
    assert logs.test_metrics(test).metrics == {m: made.test_json[f"coco/{m}"] for m in METRICS}
