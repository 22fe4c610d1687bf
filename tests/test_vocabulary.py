"""The vocabulary of figures is the one declaration: every metric, stage and memory kind in it reaches the
store, the tables, the charts and the report, and a new one added here appears everywhere without other
edits; box AP reads in AP points on every surface a person reads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from ablation import vocabulary
from ablation.analysis import effect_charts, figures
from ablation.analysis.effects import analyse
from ablation.analysis.effects_text import effects_rows
from ablation.analysis.numbers import tradeoff_axes
from ablation.analysis.report import build_report
from ablation.analysis.runs import Runs
from ablation.results.export import render
from ablation.results.records import RunRecord
from ablation.results.store import SCHEMA
from ablation.results.table import TableOptions, results_table
from ablation.run import status_table
from ablation.run.cost import Cost
from ablation.run.result_file import MEMORY_KINDS, CellResult
from ablation.vocabulary import MemoryKind, Metric, Stage

from .helpers.store import grid_runs, stored

RECORD_FIELDS = {f.name for f in dataclasses.fields(RunRecord)}


def test_every_metric_and_stage_is_a_field_of_the_store_record_and_a_column_of_its_schema() -> None:
    for column in [m.column for m in vocabulary.METRICS] + [s.column for s in vocabulary.STAGES]:
        assert column in RECORD_FIELDS, f"{column}: add a RunRecord field (and bump the store's schema)"
        assert column in SCHEMA.names
    assert tuple(k.key for k in vocabulary.MEMORY_KINDS) == MEMORY_KINDS
    for kind in vocabulary.MEMORY_KINDS:  # the store takes every kind
        RunRecord(sweep="s", cell="c", run_id="r", source="run", memory_gb=1.0, memory_kind=kind.key)


def test_the_cost_figures_are_fields_read_from_a_cost_and_never_effects_or_status() -> None:
    cost = vocabulary.metrics("cost")
    assert [m.column for m in cost] == ["attempts", "gpu_hours", "cpu_hours", "wall_hours"]
    for figure in cost:
        assert figure.higher_is_better is False and not figure.interval and figure.valid.holds(0.0)
        assert not {"effects", "status", "main"} & set(figure.roles)
        assert not figure.valid.holds(-1.0)
    spent = Cost(attempts=1, wall_s=1800.0, cpu_s=7200.0, gpu_s=3600.0) + Cost(1, 900.0, 900.0, None)
    record = RunRecord(sweep="s", cell="c", run_id="r", source="run")
    record.set_cost(spent)
    assert (record.attempts, record.wall_hours, record.cpu_hours, record.gpu_hours) == (
        2,
        spent.wall_s / 3600,
        spent.cpu_s / 3600,
        spent.gpu_s / 3600,  # type: ignore[operator]
    )
    record.set_cost(Cost(attempts=1, wall_s=60.0, cpu_s=120.0))  # a CPU job: no GPU-hours, not 0
    assert record.gpu_hours is None and record.cpu_hours == 120.0 / 3600
    record.set_cost(None)  # not launched by ablation: no cost at all
    assert all(getattr(record, m.column) is None for m in cost)


def test_the_cost_tradeoff_is_gpu_hours_or_on_a_cpu_grid_cpu_hours() -> None:
    gpu, cpu = vocabulary.metric("GPU-hours"), vocabulary.metric("CPU-hours")
    base = pd.DataFrame({"bbox_mAP": [0.3, 0.4], "fps": [1.0, 2.0]})
    axes = {
        "gpu": tradeoff_axes(base.assign(gpu_hours=[None, 2.0], cpu_hours=[4.0, 8.0])),
        "cpu": tradeoff_axes(base.assign(gpu_hours=[None, None], cpu_hours=[4.0, 8.0])),
        "none": tradeoff_axes(base),
    }
    assert gpu in axes["gpu"] and cpu not in axes["gpu"]
    assert cpu in axes["cpu"] and gpu not in axes["cpu"]
    assert gpu in axes["none"] and cpu not in axes["none"]
    others = [m for m in vocabulary.metrics("tradeoff") if "cost" not in m.roles]
    assert all([m for m in found if "cost" not in m.roles] == others for found in axes.values())


def test_a_timing_the_record_has_no_field_for_is_an_error_not_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(vocabulary, "STAGES", (*vocabulary.STAGES, Stage("nms_s", "NMS (s)", "NMS")))
    monkeypatch.setattr("ablation.results.records.STAGES", vocabulary.STAGES)
    record = RunRecord(sweep="s", cell="c", run_id="r", source="run")
    with pytest.raises(TypeError, match="no field 'nms_s'"):
        record.set_timings({"train_s": 1.0, "nms_s": 2.0})


def test_metric_lookup_by_name_header_or_column_and_a_bad_name_lists_the_valid_ones() -> None:
    box = vocabulary.metric("box AP")
    assert vocabulary.metric("bbox_mAP") is box and vocabulary.metric("Mem (GB)").column == "memory_gb"
    with pytest.raises(ValueError, match="unknown metric 'mAP'; metrics: 'memory', 'fps', 'box AP'"):
        vocabulary.metric("mAP")


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("box AP", 0.292, "29.2"),
        ("GFLOPs", 0.3904e9, "0.390"),  # three significant digits: the study's cells differ in the third
        ("GFLOPs", 207.3e9, "207.3"),
        ("memory", 0.70, "0.70"),
        ("params", 41.53e6, "41.53"),
    ],
)
def test_figures_read_in_their_display_unit_and_precision(name: str, value: float, shown: str) -> None:
    metric = vocabulary.metric(name)
    assert metric.format(metric.display(value)) == shown


def test_a_signed_zero_never_reads_minus() -> None:
    assert vocabulary.metric("box AP").format(-0.001, signed=True) == "+0.0"


# --- a new figure, added in one place ----------------------------------------------------------------------

ENERGY = Metric(
    "energy_kj", "energy", "Energy (kJ)", "kJ", 1e-3, decimals=2, higher_is_better=False,
    roles=("main", "status", "tradeoff", "effects"), axis_title="training energy (kJ)",
)  # fmt: skip


@pytest.fixture
def energy(monkeypatch: pytest.MonkeyPatch) -> Metric:
    """The vocabulary with one more metric (and one more memory kind), as a later issue would add them."""
    monkeypatch.setattr(vocabulary, "METRICS", (*vocabulary.METRICS, ENERGY))
    kinds = (*vocabulary.MEMORY_KINDS, MemoryKind("npu_peak", "NPU peak"))
    monkeypatch.setattr(vocabulary, "MEMORY_KINDS", kinds)
    return ENERGY


def with_energy(frame: pd.DataFrame) -> pd.DataFrame:
    """The grid's runs with an energy figure in joules that grows with key content and DCN."""
    joules = [
        1000.0 + 300.0 * (c[2] == "1") + 120.0 * bool(d)
        for c, d in zip(frame["code"], frame["dcn"], strict=True)
    ]
    return frame.assign(energy_kj=joules)


def test_a_new_metric_appears_in_the_tables_charts_effects_status_and_report(
    energy: Metric, tmp_path: Path
) -> None:
    frame = with_energy(stored(tmp_path, grid_runs("grid")))
    table = results_table(frame)
    assert "Energy (kJ)" in table.headers
    column = table.headers.index("Energy (kJ)")
    assert {row[column] for row in table.rows} == {"1.00", "1.12", "1.30", "1.42"}
    assert "Energy (kJ)" in render(table, "csv").splitlines()[0]

    chart = figures.tradeoff_figure(Runs(frame).cells, "energy")
    assert chart.layout.xaxis.title.text == "training energy (kJ)"
    assert max(x for trace in chart.data for x in (trace.x or ())) == pytest.approx(1.42)

    analysis = analyse(frame, "energy")
    effects = dict(zip(analysis.main()["label"], analysis.main()["effect"], strict=True))
    assert effects["key content only"] == pytest.approx(0.30)
    assert effects["deformable convolution"] == pytest.approx(0.12)
    assert "kJ" in analysis.description
    assert effect_charts.effects_figure(analysis).layout.yaxis.title.text == "effect on energy (kJ)"
    assert [a.metric.name for a in Runs(frame).analyses()].count("energy") == 1

    assert "energy" in status_table.headers()
    html = build_report(frame, "grid").html
    assert "Box AP against training energy" in html and "Main effects on energy" in html


def test_a_new_memory_kind_gets_its_label_in_the_table(energy: Metric, tmp_path: Path) -> None:
    runs = [dataclasses.replace(r, memory_kind=None) for r in grid_runs("grid")[:2]]
    frame = stored(tmp_path, runs).assign(memory_kind="npu_peak")
    table = results_table(frame)
    assert [row[table.headers.index("Mem kind")] for row in table.rows] == ["NPU peak", "NPU peak"]


def test_a_new_stage_appears_in_the_timing_columns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vocabulary, "STAGES", (*vocabulary.STAGES, Stage("nms_s", "NMS (s)", "NMS")))
    frame = stored(tmp_path, grid_runs("grid")[:1]).assign(nms_s=3.25)
    table = results_table(frame, TableOptions(timing=True))
    assert table.headers[-2:] == ("NMS (s)", "Config") and table.rows[0][-2] == "3.2"


# --- box AP in AP points on every surface ------------------------------------------------------------------


def result(ap: float) -> CellResult:
    return CellResult(
        sweep="s", cell="c", status="done", cell_id="i", code="0000", dcn=False, config="c.py",
        config_hash="h", attempt=1, host="h", pid=1, started="2024-01-01T00:00:00",
        metrics={"bbox_mAP": ap, "bbox_mAP_50": 0.5}, memory_mb=716.8, memory_kind="cpu_peak_rss",
        flops=0.3904e9,
    )  # fmt: skip


def test_the_status_figures_read_in_points_with_the_memory_kind() -> None:
    shown = dict(zip(status_table.headers(), status_table.figures(result(0.292)), strict=True))
    assert shown == {
        "memory": "0.70 CPU peak RSS",
        "fps": "-",
        "box AP": "29.2",
        "AP50": "50.0",
        "GFLOPs": "0.390",
        "params": "-",
    }


def test_every_surface_reads_box_ap_in_points(tmp_path: Path) -> None:
    frame = stored(tmp_path, grid_runs("grid"))
    table = results_table(frame)
    assert table.rows[0][table.headers.index("box AP")] == "30.5"  # ap_of('0000', False) = 0.305
    analysis = analyse(frame, "box AP")
    main = dict(zip(analysis.main()["label"], effects_rows(analysis), strict=True))
    assert main["key content only"][1] == "+2.00"  # 0.02 as a fraction
    assert json.loads(effect_charts.effects_figure(analysis).to_json())["layout"]["yaxis"]["title"][
        "text"
    ] == ("effect on box AP (AP points)")
    cells = Runs(frame).cells
    chart = figures.tradeoff_figure(cells, "fps")
    assert chart.layout.yaxis.title.text == "box AP (AP points)"
    assert max(y for trace in chart.data for y in (trace.y or ())) == pytest.approx(33.5)
    html = build_report(frame, "grid").html
    assert "<td>+2.00</td>" in html and "effect (AP points)" in html
