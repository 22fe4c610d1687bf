"""The compute a run cost, in the store and everything that reads it: harvest takes each cell's cost over all
its attempts from its sweep folder's manifest and attempts.json (one ``sweep_costs`` call per sweep folder),
stores its origin absolute, ``export --cost`` adds the cost columns and each sweep's total in the three
formats, and the report draws box AP against GPU-hours (CPU-hours on a CPU grid)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from ablation import vocabulary
from ablation.analysis.report import build_report
from ablation.results import harvest as harvest_module
from ablation.results.harvest import HarvestReport, find_runs, harvest
from ablation.results.store import Store
from ablation.run.attempts import ATTEMPTS_FILE, Attempt, read_attempts
from ablation.run.manifest import Manifest, Submission, save_manifest
from ablation.run.result_file import CellResult, write_result

from .helpers.cli import in_folder, run_cli
from .helpers.store import record, stored

SWEEP = "costly"
START = datetime(2026, 1, 1, tzinfo=UTC)
COST = vocabulary.metrics("cost")


@dataclass(frozen=True)
class Job:
    """A job of a cell as the test writes it: its attempt number, and each start's (seconds, GPUs)."""

    attempt: int
    starts: tuple[tuple[float, int], ...]
    processes: int = 2
    threads: int = 3


# cell -> its jobs: a GPU cell that a time-out requeued and a retry ran again; a CPU cell run once; a cell
# whose job the manifest lists but whose attempts.json names another attempt only (so none of its own).
CELLS = {
    "gpu-cell": (Job(1, ((3600.0, 2), (1800.0, 2))), Job(2, ((900.0, 2),))),
    "cpu-cell": (Job(1, ((1200.0, 0),)),),
}


def _cell(root: Path, name: str, index: int, jobs: tuple[Job, ...], manifest: Manifest) -> Path:
    """A done cell of the sweep folder ``root``: its result.json and attempts.json, and its jobs recorded
    in ``manifest``."""
    cell_id = f"{index:012x}"
    work = root / "work" / name / cell_id
    result = CellResult(
        status="done", sweep=root.name, cell=name, cell_id=cell_id, code="0010", dcn=bool(index % 2),
        backbone="R-50", schedule="1x", dataset="coco", config="c.py", config_hash="f" * 64,
        attempt=jobs[-1].attempt, host="h", pid=1, started=START.isoformat(),
        finished=START.isoformat(), metrics={"bbox_mAP": 0.30 + 0.05 * index}, fps=10.0 + index,
    )  # fmt: skip
    write_result(work, result)
    when, attempts = START, []
    for job in jobs:
        manifest.record(
            Submission(
                cell=name,
                cell_id=cell_id,
                executor="local",
                job_id=f"{index}{job.attempt}",
                folder="",
                work_dir=str(work),
                attempt=job.attempt,
                submitted=when.isoformat(),
            )
        )
        for seconds, gpus in job.starts:
            end = when + timedelta(seconds=seconds)
            attempts.append(
                Attempt(
                    attempt=job.attempt,
                    executor="local",
                    job_id=f"{index}{job.attempt}",
                    host="h",
                    processes=job.processes,
                    threads=job.threads,
                    gpus=gpus,
                    started=when.isoformat(),
                    last_seen=end.isoformat(),
                    ended=None if gpus and seconds == 3600.0 else end.isoformat(),
                )  # fmt: skip  (the first start was killed: it runs to when it was last seen)
            )
            when = end
    text = json.dumps({"attempts": [dataclasses.asdict(a) for a in attempts]})
    (work / ATTEMPTS_FILE).write_text(text, encoding="utf-8")
    return work


def sweep_folder(root: Path, sweep: str = SWEEP) -> dict[str, Path]:
    """A sweep folder with a manifest of local jobs and its cells' work_dirs (cell -> work_dir)."""
    folder = root / sweep
    manifest = Manifest(sweep=sweep)
    works = {name: _cell(folder, name, i, jobs, manifest) for i, (name, jobs) in enumerate(CELLS.items())}
    save_manifest(folder, manifest)
    return works


def expected(work: Path) -> dict[str, float | int | None]:
    """A cell's cost as its attempts.json says: wall seconds, x processes x threads, x GPUs; in hours."""
    found = read_attempts(work)
    gpu = [a.wall_s * a.gpus for a in found if a.gpus]
    return {
        "attempts": len(found),
        "wall_hours": sum(a.wall_s for a in found) / 3600,
        "cpu_hours": sum(a.wall_s * a.processes * a.threads for a in found) / 3600,
        "gpu_hours": sum(gpu) / 3600 if gpu else None,
    }


@pytest.fixture
def harvested(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Store, dict[str, Path], list[Path]]:
    """The sweep folder and a plain cell folder outside any sweep folder, harvested from another folder
    with relative paths; the sweep folders ``sweep_costs`` was asked about."""
    works = sweep_folder(tmp_path / "runs")
    plain = tmp_path / "runs" / "loose" / "cell"
    write_result(plain, CellResult(**{**_result_of(works["cpu-cell"]), "sweep": "loose", "cell": "loose"}))
    asked: list[Path] = []
    real = harvest_module.sweep_costs

    def counting(folder: Path) -> dict[tuple[str, str], object]:
        asked.append(folder)
        return real(folder)  # type: ignore[return-value]

    monkeypatch.setattr(harvest_module, "sweep_costs", counting)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = Store(tmp_path / "store")
    with in_folder(elsewhere):
        report = harvest(store, find_runs(Path("../runs")), SWEEP, HarvestReport())
    assert report.problems == [] and len(report.added) == 3
    return store, works, asked


def _result_of(work: Path) -> dict[str, object]:
    return dict(json.loads((work / "result.json").read_text(encoding="utf-8")))


def test_harvest_stores_each_cells_cost_over_all_its_attempts_and_its_origin_absolute(
    harvested: tuple[Store, dict[str, Path], list[Path]],
) -> None:
    store, works, asked = harvested
    assert asked == [works["gpu-cell"].parents[2].resolve()]  # once for the sweep folder, not per run
    rows = {row["cell"]: row for row in store.read().table.to_pylist()}
    for name, work in works.items():
        want = expected(work)
        assert rows[name]["attempts"] == want["attempts"]
        for column in ("wall_hours", "cpu_hours", "gpu_hours"):
            value = want[column]
            assert rows[name][column] == (None if value is None else pytest.approx(value)), (name, column)
        assert rows[name]["origin"] == str(work.resolve() / "result.json")
        assert Path(rows[name]["origin"]).is_absolute() and Path(rows[name]["origin"]).is_file()
    assert expected(works["gpu-cell"])["attempts"] == 3  # two starts of the first job, one of the retry
    assert rows["cpu-cell"]["gpu_hours"] is None and rows["cpu-cell"]["cpu_hours"] > 0  # no GPU: not 0
    assert all(rows["loose"][m.column] is None for m in COST)  # no manifest lists it: no cost
    assert Path(rows["loose"]["origin"]).is_absolute()


def test_a_manifest_that_cannot_be_read_is_named_and_its_runs_are_harvested_without_a_cost(
    tmp_path: Path,
) -> None:
    works = sweep_folder(tmp_path / "runs")
    (tmp_path / "runs" / SWEEP / "manifest.json").write_text("{not json", encoding="utf-8")
    store = Store(tmp_path / "store")
    report = harvest(store, find_runs(tmp_path / "runs"), SWEEP)
    assert len(report.added) == len(works) and len(report.problems) == 1
    assert "manifest.json" in report.problems[0] and "no cost" in report.problems[0]
    assert all(row["attempts"] is None for row in store.read().table.to_pylist())


def _export(store: Store, fmt: str, *flags: str) -> str:
    code, out, err = run_cli("export", "--store", str(store.path), "--format", fmt, *flags)
    assert code == 0, err
    return out


def test_export_cost_adds_the_cost_columns_and_the_sweeps_total_in_every_format(
    harvested: tuple[Store, dict[str, Path], list[Path]],
) -> None:
    store, _, _ = harvested
    frame = store.read().frame()
    costly = frame[frame["sweep"] == SWEEP]
    total = {m.column: costly[m.column].dropna().sum() for m in COST}
    headers = [m.header for m in COST]

    plain = {fmt: _export(store, fmt) for fmt in ("markdown", "csv", "latex")}
    assert not any(h in text for h in headers for text in plain.values())  # unchanged without --cost

    rows = list(csv.reader(io.StringIO(_export(store, "csv", "--cost"))))
    head = rows[0]
    assert all(h in head for h in headers) and head.index(headers[0]) < head.index("Config")
    gpu = head.index(vocabulary.metric("gpu_hours").header)
    cells = {row[head.index("Sweep")]: row for row in rows[1:]}
    (totalled,) = [row for row in rows[1:] if row[0] == f"total of sweep {SWEEP}"]
    for figure in COST:
        digits = figure.digits(total[figure.column])
        assert float(totalled[head.index(figure.header)]) == pytest.approx(
            total[figure.column], abs=10**-digits
        )
    assert totalled[head.index(vocabulary.metric("attempts").header)] == str(int(total["attempts"]))
    assert cells["loose"][gpu] == ""  # not launched by ablation: no cost
    assert len(rows) == 1 + 3 + 2  # the header, three cells, a total per sweep

    markdown = _export(store, "markdown", "--cost")
    table, note = markdown.split("\n\n", 1)
    assert all(h in table.splitlines()[0] for h in headers)
    gpu_total = vocabulary.metric("gpu_hours")
    shown = gpu_total.format(total["gpu_hours"])
    assert f"Cost of sweep {SWEEP} (all its 2 runs" in note and f"{shown} GPU-hours" in note
    assert "summed over the row's runs" in note and "Cost of sweep loose (all its one run" in note
    assert "no GPU-hours" in note  # the loose sweep: none known

    latex = _export(store, "latex", "--cost")
    caption = re.search(r"\\caption\{(.*)\}", latex)
    assert (
        caption and f"Cost of sweep {SWEEP}" in caption.group(1) and f"{shown} GPU-hours" in caption.group(1)
    )
    assert all(h in latex for h in ("Attempts", "GPU-h", "CPU-h", "Wall (h)"))


def _frame(folder: Path, gpu: bool, cost: bool = True) -> pd.DataFrame:
    """Two cells of a sweep, read back from a real store: with a cost (with GPU-hours, or on a CPU grid
    CPU-hours only) or none."""
    runs = []
    for i, code in enumerate(("0000", "0010")):
        spent = {"attempts": 1 + i, "cpu_hours": 2.0 + i, "wall_hours": 0.5 + i, "gpu_hours": 1.0 + i}
        spent = {k: v for k, v in spent.items() if cost and (gpu or k != "gpu_hours")}
        runs.append(record(code, False, sweep=SWEEP, bbox_mAP=0.3 + 0.1 * i, fps=10.0 - i, **spent))
    return stored(folder, runs)


@pytest.mark.parametrize(("gpu", "axis"), [(True, "gpu_hours"), (False, "cpu_hours")])
def test_the_report_draws_box_ap_against_gpu_hours_or_on_a_cpu_grid_cpu_hours(
    tmp_path: Path, gpu: bool, axis: str
) -> None:
    report = build_report(_frame(tmp_path, gpu), SWEEP, now=START)
    ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', report.html)
    other = "cpu_hours" if gpu else "gpu_hours"
    assert f"tradeoff-{axis}" in ids and f"tradeoff-{other}" not in ids
    assert f"Box AP against {vocabulary.metric(axis).axis_title.split(' (')[0]}" in report.html
    assert "Cost of sweep costly (all its 2 runs" in report.html  # the cost per sweep, under the table
    assert "<th>Attempts</th>" in report.html  # and per cell, in the results table


def test_a_report_of_runs_without_a_cost_has_no_cost_columns(tmp_path: Path) -> None:
    report = build_report(_frame(tmp_path, gpu=True, cost=False), SWEEP, now=START)
    assert "<th>Attempts</th>" not in report.html and "Cost of sweep" not in report.html
    assert "tradeoff-cpu_hours" not in report.html
    assert "No cell has both a box AP and a GPU-hours" in report.html
