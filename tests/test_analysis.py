"""The dashboard's numbers: which runs count, Pareto fronts, the factorial analysis's figures (each effect
with its interval, coloured better or worse, the half-normal plot, the interactions) on designs whose answer
is known, the AP grid, a cell's replicates at their mean with the interval scipy's t gives, the seed and axis
columns of a table, and training curves from hand-written mmengine logs."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from ablation.analysis.effect_charts import effects_figure, half_normal_figure, interactions_figure
from ablation.analysis.effects import analyse
from ablation.analysis.figures import tradeoff_figure
from ablation.analysis.numbers import (
    FACTOR_COLUMNS,
    GRID_COLUMNS,
    HALF_SUFFIX,
    ap_grid,
    axis_columns,
    cell_means,
    describe_code,
    factor_label,
    pareto_front,
    replicate_columns,
    replicate_means,
)
from ablation.analysis.runs import Runs
from ablation.errors import LogFormatError
from ablation.results.curves import training_curves, work_dir_of
from ablation.results.latest import latest_runs
from ablation.results.records import RunRecord
from ablation.results.store import Store
from ablation.results.table import results_table
from ablation.run.result_file import METRICS
from ablation.vocabulary import METRICS as FIGURES

from .helpers.figures import bars, hue
from .helpers.store import axis_runs, framed, record, stored

if TYPE_CHECKING:
    import plotly.graph_objects as go

MEAN_COLUMNS = tuple(m.column for m in FIGURES)  # replicate_means: every metric at its replicates' mean
INTERVAL_COLUMNS = tuple(m.column for m in FIGURES if m.interval)  # ... these with their interval too

Flags = dict[str, bool]


def design(**metrics: Callable[[Flags], Any]) -> list[RunRecord]:
    """The full 2^4 x 2 grid, one done run per cell, each metric a function of the cell's five factors."""
    records = []
    for bits in itertools.product((False, True), repeat=5):
        flags = dict(zip(FACTOR_COLUMNS, bits, strict=True))
        code = "".join("1" if b else "0" for b in bits[:4])
        figures = {name: f(flags) for name, f in metrics.items()}
        records.append(record(code, flags["dcn"], **figures))
    return records


# --- labels -----------------------------------------------------------------------------------------------


def test_factor_columns_and_labels() -> None:
    assert FACTOR_COLUMNS == (
        "query_key_content",
        "query_content_position",
        "key_content",
        "relative_position",
        "dcn",
    )
    assert [factor_label(c) for c in FACTOR_COLUMNS] == [
        "query-key content",
        "query content & relative position",
        "key content only",
        "relative position only",
        "deformable convolution",
    ]
    with pytest.raises(ValueError, match=r"'bbox_mAP'.*query_key_content"):
        factor_label("bbox_mAP")


def test_describe_code_decodes_the_cell() -> None:
    assert describe_code("1010", True) == "1010 + DCN: query-key content, key content only"
    assert describe_code("0000", False) == "0000: no attention (plain baseline)"
    assert describe_code("0000", None) == "0000: no attention (plain baseline)"
    assert describe_code("0001", True) == "0001 + DCN: relative position only"
    assert describe_code(None, True) == "no code + DCN: attention unknown"
    assert describe_code("12", False) == "12: not an attention code"


# --- latest_runs ------------------------------------------------------------------------------------------


def test_latest_runs_keeps_the_latest_done_run_of_each_cell(tmp_path: Path) -> None:
    def at(day: int | None) -> datetime | None:
        return None if day is None else datetime(2024, 3, day, tzinfo=UTC)

    runs = [
        record("0010", False, run_id="b", finished=at(2)),
        record("0010", False, run_id="a", finished=at(5)),  # latest
        record("0010", False, run_id="c", finished=None),  # NaT: the oldest
        record("1111", False, run_id="x", finished=at(1)),
        record("1111", False, run_id="y", finished=at(1)),  # tie: the last run_id
        record("1111", False, run_id="z", finished=at(9), status="failed"),  # newer, but failed
        record("0000", True, run_id="w", status="running", finished=None),
        record(
            "0010", False, run_id="zoo", source="reference", finished=None
        ),  # another source: its own cell
        record("0010", False, run_id="q", sweep="t", finished=at(1)),  # another sweep: its own cell
        record("0100", False, run_id="n1", finished=None),  # only NaT: the last run_id
        record("0100", False, run_id="n2", finished=None),
    ]
    frame = stored(tmp_path, runs)
    latest = latest_runs(frame)
    got = sorted(zip(latest["sweep"], latest["source"], latest["cell"], latest["run_id"], strict=True))
    assert got == [
        ("s", "reference", "0010-False", "zoo"),
        ("s", "run", "0010-False", "a"),
        ("s", "run", "0100-False", "n2"),
        ("s", "run", "1111-False", "y"),
        ("t", "run", "0010-False", "q"),
    ]
    assert list(latest.columns) == list(frame.columns)
    assert set(latest.index) <= set(frame.index)
    # the same rule as the exported table, whose left_out counts the rest
    table = results_table(frame)
    assert len(table.rows) == len(latest)
    assert table.left_out == len(frame) - len(latest) == 6
    # a frame built by hand, with naive timestamps read as UTC, gives the same runs
    naive = framed(runs)
    naive["finished"] = [None if f is None else f.replace(tzinfo=None) for f in naive["finished"]]
    again = latest_runs(naive)
    assert sorted(zip(again["sweep"], again["source"], again["run_id"], strict=True)) == [
        (s, o, r) for s, o, _, r in got
    ]


def test_latest_runs_of_nothing_is_empty(tmp_path: Path) -> None:
    empty = Store(tmp_path / "none").read().frame()
    assert latest_runs(empty).empty
    assert list(latest_runs(empty).columns) == list(empty.columns)
    assert latest_runs(pd.DataFrame()).empty
    failed = stored(tmp_path, [record("1111", False, status="failed")])
    assert latest_runs(failed).empty


# --- pareto_front -----------------------------------------------------------------------------------------


def tradeoffs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["A", "B", "C", "D", "E", "F", "G", "H", "I"],
            "fps": [10.0, 20.0, 15.0, 20.0, 5.0, np.nan, 25.0, 8.0, 20.0],
            "bbox_mAP": [0.40, 0.38, 0.38, 0.38, 0.41, 0.50, np.nan, 0.39, 0.37],
        }
    )


def test_pareto_front_higher_x_better() -> None:
    front = pareto_front(tradeoffs(), "fps")
    # C and I are dominated by B, H by A; B and D tie (neither dominates); F and G lack a figure
    assert list(front["name"]) == ["E", "A", "B", "D"]
    assert list(front["fps"]) == [5.0, 10.0, 20.0, 20.0]
    assert list(front.index) == [4, 0, 1, 3]


def test_pareto_front_lower_x_better() -> None:
    points = tradeoffs().rename(columns={"fps": "memory_gb"})
    front = pareto_front(points, "memory_gb", higher_x_is_better=False)
    # E has both the least memory and the most AP of the rows with both figures
    assert list(front["name"]) == ["E"]
    points.loc[5, "memory_gb"] = 1.0  # F: less memory than E, higher AP: now it alone is the front
    assert list(pareto_front(points, "memory_gb", higher_x_is_better=False)["name"]) == ["F"]
    points.loc[5, "bbox_mAP"] = 0.30  # F: less memory, lower AP: both are on the front
    assert list(pareto_front(points, "memory_gb", higher_x_is_better=False)["name"]) == ["F", "E"]


def test_pareto_front_of_a_store_frame(tmp_path: Path) -> None:
    frame = stored(
        tmp_path,
        [
            record("0000", False, fps=21.4, bbox_mAP=0.374, flops=200e9),
            record("0010", False, fps=18.4, bbox_mAP=0.391, flops=210e9),
            record("1111", False, fps=13.8, bbox_mAP=0.400, flops=215e9),
            record("1111", True, fps=12.7, bbox_mAP=0.421, flops=None),
            record("0100", False, fps=13.0, bbox_mAP=0.390, flops=220e9),  # dominated on both axes
            record("0001", False, fps=None, bbox_mAP=None),
        ],
    )
    assert list(pareto_front(frame, "fps")["code"]) == ["1111", "1111", "0010", "0000"]
    assert list(pareto_front(frame, "flops", higher_x_is_better=False)["code"]) == ["0000", "0010", "1111"]
    assert pareto_front(frame.iloc[0:0], "fps").empty


def test_pareto_front_never_mixes_memory_kinds(tmp_path: Path) -> None:
    frame = stored(
        tmp_path,
        [
            record("0000", False, memory_gb=4.0, memory_kind="cuda_peak_allocated", bbox_mAP=0.37),
            record("1111", False, memory_gb=3.0, memory_kind="cpu_peak_rss", bbox_mAP=0.40),
        ],
    )
    with pytest.raises(ValueError, match="cpu_peak_rss, cuda_peak_allocated"):
        pareto_front(frame, "memory_gb", higher_x_is_better=False)
    cuda = frame[frame["memory_kind"] == "cuda_peak_allocated"]
    assert list(pareto_front(cuda, "memory_gb", higher_x_is_better=False)["code"]) == ["0000"]
    assert list(pareto_front(frame, "fps").index) == []  # fps is not memory: no complaint
    with pytest.raises(ValueError, match="no column 'speed'"):
        pareto_front(frame, "speed")


# --- the effects' figures -----------------------------------------------------------------------------------


def additive() -> list[RunRecord]:
    return design(
        bbox_mAP=lambda f: 0.30 + 0.02 * f["key_content"] + 0.01 * f["dcn"],
        fps=lambda f: 20.0 - 4.0 * f["query_key_content"],
        memory_gb=lambda f: 3.0 + 1.5 * f["relative_position"],
        memory_kind=lambda f: "cuda_peak_allocated",
    )


def wobble(flags: Flags, size: float) -> float:
    """A cell's own fixed noise: normal with sd ``size``, the same at every call."""
    index = sum(int(flags[c]) << i for i, c in enumerate(FACTOR_COLUMNS))
    return size * float(np.random.default_rng(index).standard_normal())


def noisy() -> list[RunRecord]:
    """The full grid once per cell: AP up 2 points with key content, fps down 4 with query-key content,
    memory up 1.5 GB with DCN, each with a little noise of its own."""
    return design(
        bbox_mAP=lambda f: 0.30 + 0.02 * f["key_content"] + wobble(f, 0.001),
        fps=lambda f: 20.0 - 4.0 * f["query_key_content"] + wobble(f, 0.05),
        memory_gb=lambda f: 3.0 + 1.5 * f["dcn"] + wobble(f, 0.01),
        memory_kind=lambda f: "cuda_peak_allocated",
    )


def caption(figure: go.Figure) -> str:
    return str(figure.layout.title.subtitle.text).replace("<br>", " ")


def test_the_effects_figure_draws_intervals_in_colours_of_better_and_worse() -> None:
    frame = framed(noisy())
    planted = {
        "bbox_mAP": "key content only",
        "fps": "query-key content",
        "memory_gb": "deformable convolution",
    }
    for metric, unit, higher_is_better in (
        ("bbox_mAP", "AP points", True),
        ("fps", "img/s", True),
        ("memory_gb", "GB", False),
    ):
        result = analyse(frame, metric)  # in the metric's display unit: box AP in AP points
        assert result.method == "lenth"
        figure = effects_figure(result, "the metric")
        drawn = bars(figure.to_dict())
        assert sorted(drawn) == sorted(factor_label(c) for c in FACTOR_COLUMNS)
        for row in result.main().to_dict("records"):
            bar = drawn[row["label"]]
            assert bar["y"] == pytest.approx(row["effect"])
            assert bar["interval"] == pytest.approx((row["low"], row["high"]))
            improves = (row["effect"] > 0) == higher_is_better
            if row["resolved"]:
                assert hue(bar["colour"]) == ("green" if improves else "red"), row
                assert "not resolved" not in bar["text"]
            else:
                assert hue(bar["colour"]) == "grey" and bar["text"].endswith("(not resolved)")
                assert "not resolved" in bar["legend"]
        # the planted effects stand out of the noise: AP's is better, fps' and memory's worse
        assert hue(drawn[planted[metric]]["colour"]) == ("green" if metric == "bbox_mAP" else "red")
        assert sum(hue(b["colour"]) == "grey" for b in drawn.values()) >= 3  # most are noise
        assert figure.layout.yaxis.title.text == f"effect on the metric ({unit})"
        assert result.description in caption(figure)
        pairs = bars(effects_figure(result, "the metric", order=2).to_dict())
        assert sorted(pairs) == sorted(result.interactions()["label"]) and len(pairs) == 10


def test_an_effect_without_interval_is_neutral_and_says_so() -> None:
    # two factors, one run per cell: the full model leaves no degrees of freedom for an error
    records = [
        record(
            code, dcn, bbox_mAP=0.3 + 0.01 * dcn + 0.02 * (code == "0010") + 0.003 * (dcn and code == "0010")
        )
        for code in ("0000", "0010")
        for dcn in (False, True)
    ]
    result = analyse(framed(records), "bbox_mAP")
    assert result.method == "none" and result.effects["resolved"].isna().all()
    drawn = bars(effects_figure(result).to_dict())
    assert drawn["deformable convolution"]["y"] == pytest.approx(1.0 + 0.15)
    assert drawn["key content only"]["y"] == pytest.approx(2.0 + 0.15)
    for bar in drawn.values():
        assert (
            bar["interval"] is None
            and bar["text"].endswith("(no interval)")
            and hue(bar["colour"]) == "other"
        )
    half = half_normal_figure(result).to_dict()["data"]
    assert [t["mode"] for t in half] == ["markers+text"]  # no standard error: no reference line
    (heatmap,) = interactions_figure(result).to_dict()["data"]
    assert [t for row in heatmap["text"] for t in row if t] == ["+0.15", "+0.15"]  # no ± without interval


def test_the_half_normal_plot_and_its_line_of_null_effects() -> None:
    from scipy import stats

    result = analyse(framed(noisy()), "bbox_mAP")
    assert result.lenth is not None
    traces = half_normal_figure(result).to_dict()["data"]
    points = [
        (x, y, label)
        for t in traces
        if t["mode"] != "lines"
        for x, y, label in zip(t["x"], t["y"], t["hovertext"], strict=True)
    ]
    m = len(result.effects)
    assert m == 31
    assert sorted(x for x, _, _ in points) == pytest.approx(
        stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
    )
    assert sorted(y for _, y, _ in points) == pytest.approx(
        sorted(abs(e) for e in result.effects["effect"])  # in AP points, as the analysis gives them
    )
    # the larger the effect, the further right: the points lie on a rising curve
    assert [y for _, y, _ in sorted(points)] == sorted(y for _, y, _ in points)
    resolved = next(t for t in traces if t["name"] == "resolved from noise")
    expected = set(result.effects.loc[result.effects["resolved"].fillna(False), "label"])
    assert set(resolved["text"]) == expected and "key content only" in expected
    (line,) = [t for t in traces if t["mode"] == "lines"]
    assert line["x"][0] == 0 and line["y"][0] == 0
    assert line["y"][1] / line["x"][1] == pytest.approx(result.lenth.pse)
    assert "Lenth's pseudo standard error" in line["name"]
    # replicates: the slope is the OLS standard error of an effect, the same for all in a balanced design
    replicated = [
        dataclasses.replace(
            r, run_id=f"s{seed}", seed=seed, bbox_mAP=r.bbox_mAP + 0.001 * (seed - 0.5) * (-1) ** i
        )
        for i, r in enumerate(noisy())
        if not r.relative_position and not r.query_content_position
        for seed in (0, 1)
    ]
    result = analyse(framed(replicated), "bbox_mAP")
    se = result.effects["se"].to_numpy()
    assert result.method == "replicates" and se == pytest.approx(np.full(len(se), se[0]))
    (line,) = [t for t in half_normal_figure(result).to_dict()["data"] if t["mode"] == "lines"]
    assert line["y"][1] / line["x"][1] == pytest.approx(se[0])
    assert "OLS standard error" in line["name"]


def test_the_interactions_heatmap_shows_each_pair_with_its_interval() -> None:
    # query-key content x DCN: +0.5 points when they agree, -0.5 when not (an effect of 1 point)
    records = design(
        bbox_mAP=lambda f: (
            0.30 + 0.005 * (1 if f["query_key_content"] == f["dcn"] else -1) + wobble(f, 0.0005)
        )
    )
    result = analyse(framed(records), "bbox_mAP")
    (heatmap,) = interactions_figure(result).to_dict()["data"]
    labels = heatmap["x"]
    assert labels == heatmap["y"] == [factor_label(c) for c in FACTOR_COLUMNS]
    by_pair = {tuple(str(row["term"]).split(":")): row for row in result.interactions().to_dict("records")}
    assert len(by_pair) == 10
    for (a, b), row in by_pair.items():
        i, j = labels.index(factor_label(a)), labels.index(factor_label(b))
        assert heatmap["z"][i][j] == heatmap["z"][j][i] == pytest.approx(row["effect"])
        text = heatmap["text"][i][j]
        assert text == heatmap["text"][j][i]
        value, half = (float(part.strip("() ")) for part in text.replace("<br>", " ").split("±"))
        assert value == pytest.approx(row["effect"], abs=0.006)
        assert half == pytest.approx((row["high"] - row["low"]) / 2, abs=0.006)
        assert text.startswith("(") == (not row["resolved"])
    i, j = labels.index("query-key content"), labels.index("deformable convolution")
    assert heatmap["z"][i][j] == pytest.approx(1.0, abs=0.1) and not heatmap["text"][i][j].startswith("(")
    assert all(heatmap["z"][k][k] is None for k in range(len(labels)))


# --- ap_grid ----------------------------------------------------------------------------------------------


def test_ap_grid_in_percent_with_missing_cells_as_nan(tmp_path: Path) -> None:
    frame = stored(
        tmp_path,
        [
            record("0000", False, bbox_mAP=0.374),
            record("0000", True, bbox_mAP=0.413),
            record("1111", False, bbox_mAP=0.400),
            record("1111", False, sweep="again", bbox_mAP=0.410),  # a second sweep: the mean
            record("0010", True, bbox_mAP=None),  # no AP: NaN, not 0
            record(None, True, cell="nocode", bbox_mAP=0.9),  # no code: not on the grid
            record("0101", None, cell="nodcn", bbox_mAP=0.9),  # no DCN setting: not on the grid
        ],
    )
    grid = ap_grid(frame)
    assert list(grid.index) == [f"{i:04b}" for i in range(16)]
    assert list(grid.columns) == list(GRID_COLUMNS) == ["off", "on"]
    assert grid.loc["0000", "off"] == pytest.approx(37.4)
    assert grid.loc["0000", "on"] == pytest.approx(41.3)
    assert grid.loc["1111", "off"] == pytest.approx(40.5)
    assert math.isnan(grid.loc["0010", "on"])
    assert math.isnan(grid.loc["1111", "on"])
    assert math.isnan(grid.loc["0101", "off"]) and math.isnan(grid.loc["0101", "on"])
    assert int(grid.notna().sum().sum()) == 3
    assert (grid.fillna(1.0) != 0).all().all()
    assert ap_grid(frame.iloc[0:0]).isna().all().all()


def test_ap_grid_of_a_full_design() -> None:
    grid = ap_grid(framed(additive()))
    assert grid.notna().all().all()
    assert grid.loc["0010", "on"] == pytest.approx(33.0)
    assert grid.loc["1101", "off"] == pytest.approx(30.0)


# --- replicates -------------------------------------------------------------------------------------------

STRIDE = "model.attention.kv_stride"


def replicates(seeds: tuple[int, ...] = (0, 1, 2)) -> list[RunRecord]:
    """Three cells run once per seed (two of them on the kv_stride axis), figures that vary with the seed,
    and one unseeded cell run once."""
    records = []
    for i, (code, dcn, stride) in enumerate((("0010", False, 1), ("0010", False, 2), ("1111", True, 1))):
        for seed in seeds:
            records.append(
                record(
                    code,
                    dcn,
                    cell=f"{code}-{dcn}-kv-stride-{stride}",
                    cell_id=f"id{i}",
                    run_id=f"id{i}-s{seed}",
                    seed=seed,
                    axes={STRIDE: stride, "model.attention.stages": [False, False, True, True]},
                    bbox_mAP=0.30 + 0.02 * i + 0.004 * seed**2,
                    fps=20.0 - i - 0.5 * seed,
                    memory_gb=3.0 + i,
                    memory_kind="cuda_peak_allocated",
                    flops=2e11 + 1e9 * seed,
                )
            )
    records.append(record("0000", False, cell_id="base", run_id="base", bbox_mAP=0.25, fps=25.0, flops=1e11))
    return records


def t_half(values: list[float]) -> float:
    """The 95% interval's half-width of the mean, straight from scipy's Student t."""
    from scipy import stats

    return float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))


def test_replicate_means_are_one_row_per_cell_with_its_interval(tmp_path: Path) -> None:
    records = replicates()
    frame = stored(tmp_path, records)
    cells = replicate_means(frame)
    assert len(cells) == 4 and sorted(cells["n"]) == [1, 3, 3, 3]
    for row in cells.to_dict("records"):
        runs = [r for r in records if r.cell == row["cell"]]
        assert row["seeds"] == ", ".join(str(r.seed) for r in runs if r.seed is not None)
        assert row["run_id"] == runs[0].run_id  # the first seed's run: a selection leads to it
        for column in MEAN_COLUMNS:
            values = [getattr(r, column) for r in runs if getattr(r, column) is not None]
            assert row[column] == pytest.approx(np.mean(values)) if values else math.isnan(row[column])
        for column in INTERVAL_COLUMNS:
            values = [getattr(r, column) for r in runs if getattr(r, column) is not None]
            half = row[column + HALF_SUFFIX]
            assert half == pytest.approx(t_half(values)) if len(values) > 1 else math.isnan(half)
    assert cells.loc[cells["cell"] == "0000-False", "bbox_mAP"].item() == 0.25  # one run: its own figure
    # a failed run and an older run of a seed are not replicates
    late = dataclasses.replace(records[0], bbox_mAP=0.9, finished=datetime(2025, 1, 1, tzinfo=UTC))
    failed = dataclasses.replace(records[1], run_id="id0-s1-failed", status="failed", bbox_mAP=0.0)
    again = replicate_means(framed([*records, late, failed]))
    first = again[again["cell"] == records[0].cell].iloc[0]
    assert first["n"] == 3
    assert first["bbox_mAP"] == pytest.approx(np.mean([0.9, records[1].bbox_mAP, records[2].bbox_mAP]))
    assert replicate_means(frame.iloc[0:0]).empty


def test_replicate_means_of_one_run_per_cell_are_the_runs(tmp_path: Path) -> None:
    frame = stored(tmp_path, additive())
    cells = replicate_means(frame)
    latest = latest_runs(frame)
    assert list(cells.index) == list(latest.index)
    for column in MEAN_COLUMNS:
        assert cells[column].equals(latest[column].astype("float64"))
    assert (cells["n"] == 1).all() and (cells["seeds"] == "").all()
    assert cells[[c + HALF_SUFFIX for c in INTERVAL_COLUMNS]].isna().all().all()


def test_replicate_means_never_average_two_memory_kinds() -> None:
    records = replicates()
    records[1].memory_kind = "cpu_peak_rss"
    cells = replicate_means(framed(records))
    mixed = cells[cells["cell"] == records[0].cell].iloc[0]
    assert math.isnan(mixed["memory_gb"]) and pd.isna(mixed["memory_kind"])
    assert cells[cells["cell"] == records[3].cell]["memory_gb"].item() == pytest.approx(4.0)


def test_replicates_count_once_in_the_ap_grid(tmp_path: Path) -> None:
    records = additive()
    # the 1111 + DCN cell (0.33 AP) run with three seeds at 0.50, 0.60 and 0.70: its mean, 0.60, counts once
    top = next(r for r in records if r.code == "1111" and r.dcn)
    records.remove(top)
    for seed, ap in enumerate((0.50, 0.60, 0.70)):
        records.append(dataclasses.replace(top, run_id=f"s{seed}", seed=seed, bbox_mAP=ap))
    frame = stored(tmp_path, records)
    assert len(frame) == 34
    means = cell_means(latest_runs(frame), ("bbox_mAP",))
    assert len(means) == 32
    assert means[means["cell"] == top.cell]["bbox_mAP"].item() == pytest.approx(0.60)
    grid = ap_grid(frame)
    assert grid.loc["1111", "on"] == pytest.approx(60.0)
    # two sweeps sharing a slot: each cell once, whatever its number of seeds
    other = dataclasses.replace(top, sweep="other", run_id="o", bbox_mAP=0.40)
    assert ap_grid(stored(tmp_path / "2", [*records, other])).loc["1111", "on"] == pytest.approx(50.0)


def test_the_seed_and_axis_columns_of_a_table(tmp_path: Path) -> None:
    frame = stored(tmp_path, replicates())
    assert axis_columns(frame) == [STRIDE, "model.attention.stages"]
    columns = replicate_columns(frame)
    assert list(columns.columns) == ["kv_stride", "stages", "seed"]
    assert list(columns.index) == list(frame.index)
    by_run = {
        r: (s, k) for r, s, k in zip(frame["run_id"], columns["seed"], columns["kv_stride"], strict=True)
    }
    assert by_run["id1-s2"] == (2, 2) and by_run["id2-s0"] == (0, 1)
    assert by_run["base"][0] is pd.NA and by_run["base"][1] is pd.NA
    assert set(columns["stages"].dropna()) == {"[false, false, true, true]"}  # lists as the store's JSON
    # a heading taken by the table is the dotted name; lists held as lists (a result's axes) become JSON
    settings = pd.DataFrame([{"seed": None}, {"seed": 1, STRIDE: 2, "overrides.cell": [1, 2]}], dtype=object)
    columns = replicate_columns(settings, taken=["cell", "state"])
    assert list(columns.columns) == ["kv_stride", "overrides.cell", "seed"]
    assert columns["overrides.cell"].tolist() == [None, "[1, 2]"]
    assert columns["seed"].tolist() == [pd.NA, 1] and columns["kv_stride"].tolist() == [None, 2]
    assert replicate_columns(framed(additive())).empty  # no seed, no axis: no column


def test_the_trade_off_figure_has_error_bars_only_with_replicates(tmp_path: Path) -> None:
    records = replicates()
    cells = replicate_means(stored(tmp_path, records))
    for x, scale in (("fps", 1.0), ("flops", 1e-9)):
        figure = tradeoff_figure(cells, x).to_dict()
        points = [t for t in figure["data"] if t["mode"] != "lines"]
        drawn = {(t["name"], i): t for t in points for i in range(len(t["x"]))}
        for row in cells.to_dict("records"):
            runs = [r for r in records if r.cell == row["cell"]]
            ((name, i),) = [k for k, t in drawn.items() if t["customdata"][k[1]][1] == row["cell"]]
            trace = drawn[(name, i)]
            assert trace["x"][i] == pytest.approx(np.mean([getattr(r, x) for r in runs]) * scale)
            assert trace["y"][i] == pytest.approx(100 * np.mean([r.bbox_mAP for r in runs]))
            halves = trace.get("error_y", {}).get("array")
            if len(runs) == 1:
                assert halves is None or halves[i] is None
                assert "mean of" not in trace["hovertext"][i]
                continue
            assert halves[i] == pytest.approx(100 * t_half([r.bbox_mAP for r in runs]))
            assert f"n = {len(runs)} runs" in trace["hovertext"][i]
            if x == "fps":
                assert trace["error_x"]["array"][i] == pytest.approx(t_half([r.fps for r in runs]))
            else:
                assert "error_x" not in trace  # FLOPs: the means, no bars
    # one run per cell: the chart of the runs themselves, no error bars at all
    frame = stored(tmp_path / "single", additive())
    single = replicate_means(frame)
    for x in ("fps", "memory_gb"):
        traces = tradeoff_figure(single, x).to_dict()["data"]
        assert traces and not any("error_x" in t or "error_y" in t for t in traces)
        assert traces == tradeoff_figure(latest_runs(frame), x).to_dict()["data"]


def test_a_crowded_trade_off_chart_labels_only_its_front(tmp_path: Path) -> None:
    """92 cells: no label beside each point (they would cover the chart), the code of each cell on the
    Pareto front beside it, every point's cell on hover; SVG traces for the report, the same points."""
    cells = replicate_means(stored(tmp_path, axis_runs()))
    front = pareto_front(cells, "fps")
    figure = tradeoff_figure(cells, "fps", front).to_dict()
    points = [t for t in figure["data"] if t["name"] != "Pareto frontier"]
    (line,) = [t for t in figure["data"] if t["name"] == "Pareto frontier"]
    assert sum(len(t["x"]) for t in points) == 92
    assert all(t["mode"] == "markers" and t.get("text") is None and t["type"] == "scattergl" for t in points)
    assert line["mode"] == "lines+text"
    assert list(line["text"]) == list(front.sort_values("fps")["code"])
    hovers = {h for t in points for h in t["hovertext"]}
    assert len(hovers) == 92 and all(h.split("<br>")[1].startswith("axes / cell-") for h in hovers)
    svg = tradeoff_figure(cells, "fps", front, webgl=False).to_dict()
    assert [t["type"] for t in svg["data"]] == ["scatter"] * len(svg["data"])
    assert [t["x"] for t in svg["data"]] == [t["x"] for t in figure["data"]]
    few = tradeoff_figure(cells.iloc[:64], "fps", pareto_front(cells.iloc[:64], "fps")).to_dict()["data"]
    assert all(t["mode"] == "markers+text" for t in few if t["name"] != "Pareto frontier")


def test_a_selection_of_one_memory_kind_is_worked_out_once(tmp_path: Path) -> None:
    runs = Runs(stored(tmp_path, axis_runs()))
    assert (
        runs.where("memory_kind", "cuda_peak_allocated") is runs
    )  # every run: the same cells, computed once
    fewer = runs.where("code", "1111")
    assert fewer is not runs and len(fewer) == 6 and set(fewer.cells["code"]) == {"1111"}


# --- training curves --------------------------------------------------------------------------------------


def train_line(iteration: int, loss: float, epoch: int | None = 1, lr: float | None = 0.02) -> dict[str, Any]:
    line: dict[str, Any] = {"data_time": 0.0157, "loss": loss, "loss_cls": 1.38, "time": 1.1}
    if lr is not None:
        line["lr"] = lr
    if epoch is not None:
        line["epoch"] = epoch
    return {**line, "iter": iteration, "step": iteration}


def val_line(epoch: int, ap: float) -> dict[str, Any]:
    figures = dict.fromkeys(METRICS[1:], 0.5)
    figures["bbox_mAP_s"] = -1.0  # pycocotools: no small objects
    return {"coco/bbox_mAP": ap, **{f"coco/{k}": v for k, v in figures.items()}, "time": 0.2, "step": epoch}


def write_scalars(work_dir: Path, stamp: str, lines: list[dict[str, Any]]) -> Path:
    path = work_dir / stamp / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_training_curves_of_a_resumed_run(tmp_path: Path) -> None:
    work_dir = tmp_path / "work"
    # the first run: epochs 1 and 2 (validated), then crashed in epoch 3 after iteration 6
    write_scalars(
        work_dir,
        "20240101_120000",
        [
            train_line(1, 2.81, epoch=1, lr=0.00334),
            train_line(2, 2.50, epoch=1),
            val_line(1, 0.001),
            train_line(3, 2.00, epoch=2),
            train_line(4, 1.90, epoch=2),
            val_line(2, 0.010),
            train_line(5, 1.80, epoch=3),
            train_line(6, 1.70, epoch=3),
        ],
    )
    # resumed from epoch 1's checkpoint: iterations 3 on and epoch 2's validation are logged again
    write_scalars(
        work_dir,
        "20240102_080000",
        [
            train_line(3, 2.05, epoch=2),
            train_line(4, 1.95, epoch=2),
            val_line(2, 0.012),
            train_line(5, 1.85, epoch=3),
        ],
    )
    (work_dir / "20240102_090000").mkdir()  # a run folder without logs yet
    write_scalars(work_dir, "notes", [train_line(9, 9.9)])  # not a timestamp folder: ignored
    train, val = training_curves(work_dir)
    assert list(train.columns) == ["iter", "epoch", "loss", "lr"]
    assert train["iter"].tolist() == [1, 2, 3, 4, 5]  # the crashed run's iteration 6 is gone
    assert train["loss"].tolist() == [2.81, 2.50, 2.05, 1.95, 1.85]
    assert train["epoch"].tolist() == [1, 1, 2, 2, 3]
    assert train["lr"].tolist() == [0.00334, 0.02, 0.02, 0.02, 0.02]
    assert list(val.columns) == ["epoch", *METRICS]
    assert val["epoch"].tolist() == [1, 2]
    assert val["bbox_mAP"].tolist() == [0.001, 0.012]
    assert val["bbox_mAP_50"].tolist() == [0.5, 0.5]
    assert val["bbox_mAP_s"].isna().all()


def test_training_curves_from_the_documented_lines(tmp_path: Path) -> None:
    text = (
        '{"lr": 0.00334, "data_time": 0.0157, "loss": 2.81, "loss_rpn_cls": 0.69, "loss_cls": 1.38, '
        '"acc": 20.3, "loss_bbox": 0.57, "time": 1.10, "epoch": 1, "iter": 2, "step": 2}\n'
        '{"coco/bbox_mAP": 0.001, "coco/bbox_mAP_50": 0.007, "coco/bbox_mAP_75": 0.0, '
        '"coco/bbox_mAP_s": 0.0, "coco/bbox_mAP_m": 0.002, "coco/bbox_mAP_l": 0.0, '
        '"data_time": 0.0037, "time": 0.207, "step": 1}\n'
        "\n"
        '{"lr": 0.002, "loss": 2.5, "iter": 3, "step": 3}\n'  # iteration-based: no epoch
    )
    path = tmp_path / "20240101_120000" / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    train, val = training_curves(tmp_path)
    assert train["iter"].tolist() == [2, 3]
    assert train["loss"].tolist() == [2.81, 2.5]
    assert train["epoch"].iloc[0] == 1 and train["epoch"].isna().tolist() == [False, True]
    assert val.to_dict("records") == [
        {
            "epoch": 1,
            "bbox_mAP": 0.001,
            "bbox_mAP_50": 0.007,
            "bbox_mAP_75": 0.0,
            "bbox_mAP_s": 0.0,
            "bbox_mAP_m": 0.002,
            "bbox_mAP_l": 0.0,
        }
    ]


def test_training_curves_without_logs_are_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    just_started = tmp_path / "started"
    write_scalars(just_started, "20240101_120000", [])  # mmengine created the file, nothing logged yet
    for folder in (tmp_path / "empty", tmp_path / "missing", just_started):
        train, val = training_curves(folder)
        assert train.empty and val.empty
        assert list(train.columns) == ["iter", "epoch", "loss", "lr"]
        assert list(val.columns) == ["epoch", *METRICS]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"loss": 2.8, "iter": 1, "step": 1}\n{"loss": 2.7, "it', "line 2 is not JSON"),
        ('{"loss": "high", "iter": 1, "step": 1}\n', "loss is 'high', not a number"),
        ('{"loss": 2.8, "iter": 1.5, "step": 1}\n', "iter is 1.5, not a whole number"),
        ('{"coco/bbox_mAP": 0.1}\n', "has no 'step'"),
        ("[1, 2]\n", "not a JSON object"),
    ],
)
def test_a_corrupt_log_is_a_log_format_error(tmp_path: Path, text: str, message: str) -> None:
    write_scalars(tmp_path, "20240101_120000", [{"loss": 3.0, "iter": 0, "step": 0}])
    path = tmp_path / "20240102_120000" / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LogFormatError, match=message) as error:
        training_curves(tmp_path)
    assert str(path) in str(error.value)


# --- work_dir_of ------------------------------------------------------------------------------------------


def test_work_dir_of_the_stores_origins(tmp_path: Path) -> None:
    cell = tmp_path / "cells" / "1111-dcn"
    cell.mkdir(parents=True)
    (cell / "result.json").write_text("{}", encoding="utf-8")
    log = tmp_path / "zoo.log.json"
    log.write_text("{}", encoding="utf-8")
    assert work_dir_of(str(cell / "result.json")) == cell
    assert work_dir_of(str(cell)) == cell  # an mmengine work_dir
    assert work_dir_of(str(log)) is None  # an imported log
    assert work_dir_of(str(tmp_path / "reference.csv")) is None
    assert work_dir_of(str(tmp_path / "gone" / "result.json")) is None  # its folder no longer exists
    assert work_dir_of(str(tmp_path / "gone")) is None
    assert work_dir_of(None) is None
    assert work_dir_of("") is None


def test_work_dir_of_a_harvested_run_leads_to_its_curves(tmp_path: Path) -> None:
    work_dir = tmp_path / "work dir"
    write_scalars(work_dir, "20240101_120000", [train_line(1, 2.0), val_line(1, 0.2)])
    frame = stored(tmp_path, [record("1111", True, origin=str(work_dir / "result.json"))])
    found = work_dir_of(frame["origin"].iloc[0])
    assert found == work_dir
    train, val = training_curves(found)
    assert (len(train), len(val)) == (1, 1)
