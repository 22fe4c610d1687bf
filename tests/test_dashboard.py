"""The dashboard through Streamlit's AppTest: every page opened and its widgets used, with no exception, and
the figures' data checked against the store, computed here independently of ``ablation.analysis.numbers``
(the replicates' intervals from scipy's Student t directly)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from ablation import vocabulary
from ablation.errors import LogFormatError
from ablation.model.codes import ALL_CODES
from ablation.results.curves import training_curves, work_dir_of
from ablation.results.modelzoo import load_reference
from ablation.results.records import RunRecord
from ablation.results.store import Store
from ablation.run.attempts import ATTEMPTS_FILE, Attempt
from ablation.run.manifest import Manifest, Submission, save_manifest
from ablation.run.result_file import RESULT_FILE, CellResult, write_result

from .helpers.cli import REPO
from .helpers.figures import bars, hue
from .helpers.store import axis_runs, grid_runs, store_with

APP = REPO / "dashboard" / "app.py"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return store_with(tmp_path, [*grid_runs(skip=(("0110", True),)), *load_reference()])


def open_app(
    monkeypatch: pytest.MonkeyPatch, store: Store, root: Path | None = None, page: str | None = None
) -> AppTest:
    monkeypatch.setenv("ABLATION_STORE", str(store.path))
    monkeypatch.setenv("ABLATION_ROOT", str(root or store.path.parent / "runs"))
    at = AppTest.from_file(str(APP), default_timeout=120)
    if page:
        at.query_params["page"] = page
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def traces(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {trace["name"]: trace for trace in figure["data"]}


def brute_front(points: list[tuple[float, float]], higher_x: bool) -> list[tuple[float, float]]:
    def better(a: tuple[float, float], b: tuple[float, float]) -> bool:
        ax, bx = (a[0], b[0]) if higher_x else (-a[0], -b[0])
        return ax >= bx and a[1] >= b[1] and (ax > bx or a[1] > b[1])

    return sorted(p for p in points if not any(better(q, p) for q in points))


STRIDE = "model.attention.kv_stride"
SEEDS = (0, 1, 2)


def replicate_runs() -> list[RunRecord]:
    """Four cells run with three seeds each, two of them at two kv_strides (an axis), and one cell run once
    unseeded; AP and fps vary with the seed."""
    runs = []
    cells = (("0010", False, 1), ("0010", False, 2), ("1111", True, 1), ("1111", True, 2))
    for i, (code, dcn, stride) in enumerate(cells):
        for seed in SEEDS:
            runs.append(
                RunRecord(
                    sweep="seeded",
                    cell=f"cell-{code}-{int(dcn)}_kv-stride-{stride}",
                    cell_id=f"id{i}",
                    run_id=f"id{i}-s{seed}",
                    seed=seed,
                    axes={STRIDE: stride},
                    source="run",
                    code=code,
                    dcn=dcn,
                    bbox_mAP=0.30 + 0.02 * i + 0.003 * seed**2,
                    fps=20.0 - 2 * i - 0.7 * seed,
                    memory_gb=4.0 + i + 0.1 * seed,
                    memory_kind="cuda_peak_allocated",
                    flops=2e11 + 1e10 * i,
                )
            )
    runs.append(
        RunRecord(
            sweep="seeded",
            cell="cell-0000-0",
            run_id="base",
            source="run",
            code="0000",
            dcn=False,
            bbox_mAP=0.28,
            fps=24.0,
            memory_gb=3.5,
            memory_kind="cuda_peak_allocated",
            flops=1.9e11,
        )
    )
    return runs


@pytest.fixture
def replicated(tmp_path: Path) -> Store:
    return store_with(tmp_path, replicate_runs())


def half_width(values: list[float]) -> float:
    """The 95% confidence interval's half-width of the mean, from scipy's Student t with n - 1 df."""
    from scipy import stats

    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))


# --- pages -----------------------------------------------------------------------------------------------


def test_an_empty_store_says_how_to_fill_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for page in ("trade-offs", "effects", "runs", "downloads"):
        at = open_app(monkeypatch, Store(tmp_path / "empty"), page=page)
        assert "holds no run yet" in at.info[0].value and "ablation run --sweep smoke" in at.info[0].value


def test_trade_offs_plot_every_cell_and_the_pareto_frontier(
    monkeypatch: pytest.MonkeyPatch, store: Store
) -> None:
    at = open_app(monkeypatch, store)
    memory, fps, flops = figures(at)  # the vocabulary's order of the trade-off metrics
    runs = [r for r in store.read().table.to_pylist()]
    own = [r for r in runs if r["source"] == "run"]
    plotted = [
        (x, y)
        for name, t in traces(fps).items()
        if name.startswith("own runs")
        for x, y in zip(t["x"], t["y"], strict=True)
    ]
    assert sorted(plotted) == sorted((r["fps"], r["bbox_mAP"] * 100) for r in own)
    assert len(plotted) == 31  # 32 cells, one missing
    reference = [t for name, t in traces(fps).items() if name.startswith("model zoo")]
    assert sum(len(t["x"]) for t in reference) == 6 and all(
        t["marker"]["symbol"] == "star-open" for t in reference
    )
    everything = [(r["fps"], r["bbox_mAP"] * 100) for r in runs if r["fps"] is not None]
    front = traces(fps)["Pareto frontier"]
    assert sorted(zip(front["x"], front["y"], strict=True)) == brute_front(everything, higher_x=True)
    # memory and FLOPs: lower is better
    mem = [(r["memory_gb"], r["bbox_mAP"] * 100) for r in runs if r["memory_gb"] is not None]
    front = traces(memory)["Pareto frontier"]
    assert sorted(zip(front["x"], front["y"], strict=True)) == brute_front(mem, higher_x=False)
    assert flops["layout"]["xaxis"]["title"]["text"].startswith("GFLOPs")
    hover = traces(fps)["own runs, DCN on"]["hovertext"]
    assert any("key content only" in h and "DCN" in h for h in hover)
    # one run per cell: no error bars, no replicate counts
    for figure in (fps, memory, flops):
        assert not any("error_x" in t or "error_y" in t for t in figure["data"])
    assert not any("mean of" in h for t in fps["data"] for h in t.get("hovertext") or [])


def rounded(points: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    return sorted((round(x, 9), round(y, 9)) for x, y in points)


@pytest.mark.parametrize("gpu", [True, False])
def test_the_cost_trade_off_is_gpu_hours_else_cpu_hours(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpu: bool
) -> None:
    """Box AP against the cells' GPU-hours, or their CPU-hours on a CPU grid, with its Pareto front."""
    runs = [
        dataclasses.replace(
            r, attempts=1 + i % 2, gpu_hours=(1.0 + (i * 7) % 5) if gpu else None, cpu_hours=3.0 + (i * 3) % 4
        )
        for i, r in enumerate(grid_runs())
    ]
    at = open_app(monkeypatch, store_with(tmp_path, runs))
    name = "GPU-hours" if gpu else "CPU-hours"
    others = [f"AP vs {m.name}" for m in vocabulary.metrics("tradeoff") if "cost" not in m.roles]
    assert [tab.label for tab in at.tabs] == [*others, f"AP vs {name}"]
    cost = figures(at)[-1]
    assert cost["layout"]["xaxis"]["title"]["text"].startswith(name)
    column = "gpu_hours" if gpu else "cpu_hours"
    points = [(getattr(r, column), r.bbox_mAP * 100) for r in runs]
    plotted = [
        (x, y)
        for trace_name, t in traces(cost).items()
        if trace_name.startswith("own runs")
        for x, y in zip(t["x"], t["y"], strict=True)
    ]
    assert rounded(plotted) == rounded(points)
    front = traces(cost)["Pareto frontier"]
    assert rounded(zip(front["x"], front["y"], strict=True)) == rounded(brute_front(points, higher_x=False))


def test_a_store_without_costs_says_so_on_the_cost_tab(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    at = open_app(monkeypatch, store)
    assert at.tabs[-1].label == "AP vs GPU-hours"
    assert any("No cell has GPU-hours" in i.value for i in at.info)


def test_replicates_are_one_point_per_cell_with_error_bars(
    monkeypatch: pytest.MonkeyPatch, replicated: Store
) -> None:
    at = open_app(monkeypatch, replicated)
    assert any("13 runs" in c.value and "95% confidence interval" in c.value for c in at.caption)
    memory, fps, flops = figures(at)
    runs = replicate_runs()
    by_cell: dict[str, list[RunRecord]] = {}
    for record in runs:
        by_cell.setdefault(record.cell, []).append(record)
    points = {}  # cell -> (trace, position)
    for trace in fps["data"]:
        if trace["mode"] != "lines":
            points.update({key[1]: (trace, i) for i, key in enumerate(trace["customdata"])})
    assert sorted(points) == sorted(by_cell)  # one point per cell, not per run
    for cell, records in by_cell.items():
        trace, i = points[cell]
        aps, speeds = [100 * r.bbox_mAP for r in records], [r.fps for r in records]
        assert trace["y"][i] == pytest.approx(sum(aps) / len(aps))
        assert trace["x"][i] == pytest.approx(sum(speeds) / len(speeds))
        if len(records) == 1:
            assert trace["error_y"]["array"][i] is None and trace["error_x"]["array"][i] is None
            continue
        assert trace["error_y"]["array"][i] == pytest.approx(half_width(aps))
        assert trace["error_x"]["array"][i] == pytest.approx(half_width(speeds))
        assert "n = 3 runs (seeds 0, 1, 2)" in trace["hovertext"][i]
    # the frontier runs over the cells' means
    means = [(trace["x"][i], trace["y"][i]) for trace, i in points.values()]
    front = traces(fps)["Pareto frontier"]
    assert sorted(zip(front["x"], front["y"], strict=True)) == brute_front(means, higher_x=True)
    # memory and FLOPs: the means, with AP's bars only
    for figure, column, scale in ((memory, "memory_gb", 1.0), (flops, "flops", 1e-9)):
        drawn = sorted(x for t in figure["data"] if t["mode"] != "lines" for x in t["x"])
        expected = [sum(getattr(r, column) for r in rs) / len(rs) * scale for rs in by_cell.values()]
        assert drawn == pytest.approx(sorted(expected))
        assert all("error_y" in t and "error_x" not in t for t in figure["data"] if t["mode"] != "lines")


def test_the_replicated_store_on_the_effects_page(monkeypatch: pytest.MonkeyPatch, replicated: Store) -> None:
    at = open_app(monkeypatch, replicated, page="effects")
    assert any("13 runs" in c.value and "in 5 cells" in c.value for c in at.caption)
    cells: dict[str, list[RunRecord]] = {}
    for record in replicate_runs():
        cells.setdefault(record.cell, []).append(record)
    # 0000, 0010 and 1111 only: three of the factors move with query-key content
    (note,) = {i.value for i in at.info if "Aliased" in i.value}
    for label in ("query content & relative position", "relative position only", "deformable convolution"):
        assert f"{label} with query-key content" in note
    # the attention cells run at two kv_strides, 0000 at none: kv_stride is nested within the attention
    # cells, its effect the mean difference there: +0.02 (2 AP points) in each cell, by construction
    assert not at.warning
    assert any("kv_stride nested within the cells with attention" in c.value for c in at.caption)
    stride = bars(titled(at, "Effects of kv_stride (within the cells with attention) on box AP"))
    assert stride["kv_stride 1→2"]["y"] == pytest.approx(2.0)
    low, high = stride["kv_stride 1→2"]["interval"]
    assert low < 2.0 < high
    assert stride["kv_stride 1→2 x query-key content"]["y"] == pytest.approx(0.0, abs=1e-9)
    # the AP of every cell: a cell's replicates at their mean
    heatmap = titled(at, None)
    means = [(rs[0].dcn, sum(r.bbox_mAP for r in rs) / len(rs)) for rs in cells.values()]
    on = [m for dcn, m in means if dcn]
    row = [code.split()[0] for code in heatmap["data"][0]["y"]].index("1111")
    assert heatmap["data"][0]["z"][row][1] == pytest.approx(100 * sum(on) / len(on))


def test_memory_kinds_never_share_an_axis(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    store.put(
        RunRecord(
            sweep="cpu",
            cell="c",
            run_id="r",
            source="run",
            code="0010",
            dcn=False,
            bbox_mAP=0.01,
            fps=3.0,
            memory_gb=1.4,
            memory_kind="cpu_peak_rss",
        )
    )
    at = open_app(monkeypatch, store)
    memory_figures = [f for f in figures(at) if "memory" in f["layout"]["xaxis"]["title"]["text"]]
    assert len(memory_figures) == 2
    by_title = {f["layout"]["xaxis"]["title"]["text"]: f for f in memory_figures}
    cpu = by_title["training memory (GB, CPU peak RSS)"]
    cuda = by_title["training memory (GB, CUDA peak allocated)"]
    assert [x for t in cpu["data"] if t["mode"] != "lines" for x in t["x"]] == [1.4]
    assert 1.4 not in [x for t in cuda["data"] for x in t["x"]]


def test_selecting_a_point_opens_its_run(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    at = open_app(monkeypatch, store)
    at.session_state["selected_run"] = ["grid", "cell-1010-1", "r1", "run"]
    at.run()
    assert not at.exception
    assert any(
        "cell-1010-1" in m.value and "query-key content, key content only" in m.value for m in at.markdown
    )


# --- the factor effects: intervals recomputed here with numpy and scipy -------------------------------------

FACTORS = ("query_key_content", "query_content_position", "key_content", "relative_position", "dcn")
LABELS = {
    "query_key_content": "query-key content",
    "query_content_position": "query content & relative position",
    "key_content": "key content only",
    "relative_position": "relative position only",
    "dcn": "deformable convolution",
}


def noise(code: str, dcn: bool, seed: int = 0) -> float:
    """A run's own fixed standard normal draw."""
    return float(np.random.default_rng([int(code, 2), int(dcn), seed]).standard_normal())


def noisy_runs(
    sweep: str, cells: list[tuple[str, bool]], seeds: tuple[int | None, ...] = (None,)
) -> list[RunRecord]:
    """The cells run once per seed: AP up 2 points with key content and 1 with DCN, fps down 3 with DCN,
    memory up 0.5 GB with DCN and 1 GB per attention factor, FLOPs up 10 G per attention factor; each
    with some noise."""
    runs = []
    for code, dcn in cells:
        for seed in seeds:
            e = noise(code, dcn, seed or 0)
            runs.append(
                RunRecord(
                    sweep=sweep,
                    cell=f"cell-{code}-{int(dcn)}",
                    run_id=f"r{seed}",
                    seed=seed,
                    source="run",
                    code=code,
                    dcn=dcn,
                    bbox_mAP=0.30 + 0.02 * (code[2] == "1") + 0.01 * dcn + 0.002 * e,
                    fps=20.0 - 3.0 * dcn + 0.2 * e,
                    memory_gb=4.0 + code.count("1") + 0.5 * dcn + 0.02 * e,
                    memory_kind="cuda_peak_allocated",
                    flops=2e11 + 1e10 * code.count("1") + 1e8 * e,
                )
            )
    return runs


def titled(at: AppTest, start: str | None) -> dict[str, Any]:
    """The one chart whose title starts with ``start``; None: the one without a title (the AP grid)."""

    def title(figure: dict[str, Any]) -> str | None:
        return figure["layout"].get("title", {}).get("text")

    found = [
        f for f in figures(at) if (title(f) is None if start is None else str(title(f)).startswith(start))
    ]
    assert len(found) == 1, [title(f) for f in figures(at)]
    return found[0]


def coded(records: list[RunRecord], factors: tuple[str, ...]) -> np.ndarray:
    """The runs' factors in -1/+1 coding, a column per factor."""
    return np.array([[1.0 if getattr(r, f) else -1.0 for f in factors] for r in records])


def lenth_intervals(records: list[RunRecord], metric: str) -> tuple[dict[str, float], float, float]:
    """The main effects of an unreplicated full 2^5, Lenth's PSE and margin of error, from the definitions."""
    from scipy import stats

    x = coded(records, FACTORS)
    y = np.array([getattr(r, metric) for r in records])
    contrasts = []
    for size in range(1, 6):
        for combo in itertools.combinations(range(5), size):
            contrasts.append(float(np.prod(x[:, combo], axis=1) @ y) / (len(y) / 2))
    sizes = np.abs(contrasts)
    assert len(sizes) == 31
    s0 = 1.5 * np.median(sizes)
    pse = 1.5 * np.median(sizes[sizes < 2.5 * s0])
    margin = float(stats.t.ppf(0.975, 31 / 3)) * pse
    return {LABELS[f]: contrasts[i] for i, f in enumerate(FACTORS)}, float(pse), margin


def test_a_full_unreplicated_grid_has_lenths_intervals(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cells = list(itertools.product((str(c) for c in ALL_CODES), (False, True)))
    records = noisy_runs("full", cells)
    at = open_app(monkeypatch, store_with(tmp_path, records), page="effects")
    assert any(c.value.startswith("**lenth**") for c in at.caption)
    checks = (
        ("bbox_mAP", "Main effects on box AP", 100.0, True),
        ("fps", "Main effects on fps", 1.0, True),
        ("memory_gb", "Main effects on CUDA peak allocated memory", 1.0, False),
        ("flops", "Main effects on GFLOPs", 1e-9, False),
    )
    verdicts = set()
    for metric, title, scale, higher_is_better in checks:
        effects, pse, margin = lenth_intervals(records, metric)
        drawn = bars(titled(at, title))
        assert sorted(drawn) == sorted(effects)
        for label, effect in effects.items():
            bar = drawn[label]
            assert bar["y"] == pytest.approx(effect * scale)
            assert bar["interval"] == pytest.approx(((effect - margin) * scale, (effect + margin) * scale))
            if abs(effect) > margin:
                verdict = "green" if (effect > 0) == higher_is_better else "red"
            else:
                verdict = "grey"
                assert bar["text"].endswith("(not resolved)")
            assert hue(bar["colour"]) == verdict, (metric, label)
            verdicts.add((metric, label, verdict))
        half = titled(at, f"Half-normal plot of the effects on {title.removeprefix('Main effects on ')}")
        (line,) = [t for t in half["data"] if t["mode"] == "lines"]
        assert line["y"][1] / line["x"][1] == pytest.approx(pse * scale)
    # AP: key content resolved and better; memory: DCN resolved and worse; fps: a factor it does not depend on
    assert ("bbox_mAP", "key content only", "green") in verdicts
    assert ("memory_gb", "deformable convolution", "red") in verdicts
    assert ("fps", "key content only", "grey") in verdicts


def test_replicates_give_t_intervals_from_the_pooled_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scipy import stats

    # query-key content, key content and DCN, three seeds each: a replicated 2^3 (the other two constant)
    cells = list(itertools.product(("0000", "0010", "1000", "1010"), (False, True)))
    records = noisy_runs("seeded", cells, seeds=(0, 1, 2))
    store = store_with(tmp_path, records)
    at = open_app(monkeypatch, store, page="effects")
    factors = ("query_key_content", "key_content", "dcn")
    x = coded(records, factors)
    keys = [tuple(row) for row in x]
    n = len(records)
    assert n == 24
    for metric, title, scale in (
        ("bbox_mAP", "Main effects on box AP", 100.0),
        ("fps", "Main effects on fps", 1.0),
    ):
        y = np.array([getattr(r, metric) for r in records])
        # the pooled within-cell variance, with N - 2^k degrees of freedom
        within = sum(
            float(((y[[k == cell for k in keys]] - y[[k == cell for k in keys]].mean()) ** 2).sum())
            for cell in set(keys)
        )
        variance = within / (n - 8)
        half = float(stats.t.ppf(0.975, n - 8)) * 2 * math.sqrt(variance / n)
        drawn = bars(titled(at, title))
        assert sorted(drawn) == sorted(LABELS[f] for f in factors)
        for i, factor in enumerate(factors):
            effect = y[x[:, i] > 0].mean() - y[x[:, i] < 0].mean()
            bar = drawn[LABELS[factor]]
            assert bar["y"] == pytest.approx(effect * scale)
            assert bar["interval"] == pytest.approx(((effect - half) * scale, (effect + half) * scale))
            if metric == "bbox_mAP" and factor == "key_content":  # +2 points, the noise 0.2: resolved
                said = f"{LABELS[factor]} {effect * scale:+.2f} (±{half * scale:.2f})"
        # the interaction of query-key content and DCN, with its half-width, in the heatmap
        heatmap = titled(at, f"Two-factor interactions on {title.removeprefix('Main effects on ')}")["data"][
            0
        ]
        i, j = heatmap["x"].index(LABELS["query_key_content"]), heatmap["x"].index(LABELS["dcn"])
        product = x[:, 0] * x[:, 2]
        interaction = y[product > 0].mean() - y[product < 0].mean()
        assert heatmap["z"][i][j] == pytest.approx(interaction * scale)
        value, width = (
            float(part.strip("() ")) for part in heatmap["text"][i][j].replace("<br>", " ").split("±")
        )
        assert value == pytest.approx(interaction * scale, abs=0.006) and width == pytest.approx(
            half * scale, abs=0.006
        )
        assert heatmap["text"][i][j].startswith("(") == (abs(interaction) <= half)
    ap = bars(titled(at, "Main effects on box AP"))
    assert hue(ap["key content only"]["colour"]) == "green"  # +2 points, the noise 0.2
    assert hue(bars(titled(at, "Main effects on fps"))["deformable convolution"]["colour"]) == "red"
    assert any("24 runs in 8 cells, n per cell 3" in c.value for c in at.caption)
    # each metric's tab opens with its verdict, above its charts: the analysis's, naming what it resolves
    from ablation.analysis.effects import analyse
    from ablation.analysis.effects_text import verdict

    frame = store.read().frame()
    tabs = {tab.label: next(iter(tab.children.values())) for tab in at.tabs}
    for metric in ("box AP", "fps", "GFLOPs"):
        first = tabs[metric]
        assert (type(first).__name__, first.value) == ("Info", verdict(analyse(frame, metric), metric))
    opening = tabs["box AP"].value
    assert opening.startswith("On box AP (AP points), ") and said in opening


def test_an_incomplete_grid_pools_the_omitted_interactions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from scipy import stats

    cells = [c for c in itertools.product((str(c) for c in ALL_CODES), (False, True)) if c != ("0110", True)]
    records = noisy_runs("grid", cells)
    at = open_app(monkeypatch, store_with(tmp_path, records), page="effects")
    # least squares of the main effects and two-factor interactions, by hand
    x = coded(records, FACTORS)
    pairs = list(itertools.combinations(range(5), 2))
    design = np.column_stack([np.ones(len(x)), x, *[x[:, a] * x[:, b] for a, b in pairs]])
    y = np.array([r.bbox_mAP for r in records])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    df = len(y) - design.shape[1]
    assert df == 31 - 16
    variance = float(((y - design @ beta) ** 2).sum()) / df
    se = np.sqrt(np.diag(np.linalg.inv(design.T @ design)) * variance)
    t = float(stats.t.ppf(0.975, df))
    drawn = bars(titled(at, "Main effects on box AP"))
    for i, factor in enumerate(FACTORS):
        effect, half = 2 * beta[1 + i], 2 * t * se[1 + i]
        bar = drawn[LABELS[factor]]
        assert bar["y"] == pytest.approx(100 * effect)
        assert bar["interval"] == pytest.approx((100 * (effect - half), 100 * (effect + half)))
    assert any(c.value.startswith("**pooled**") for c in at.caption)
    # the 16 x 2 AP grid: the missing cell is missing, not 0
    heatmap = titled(at, None)["data"][0]
    values, text = heatmap["z"], heatmap["text"]
    row = [code.split()[0] for code in heatmap["y"]].index("0110")
    assert values[row][1] is None and text[row][1] == "missing"
    assert values[row][0] == pytest.approx(100 * next(r.bbox_mAP for r in records if r.cell == "cell-0110-0"))
    assert sum(v is None for r in values for v in r) == 1


def test_aliased_factors_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    records = noisy_runs("ends", list(itertools.product(("0000", "1111"), (False, True))))
    at = open_app(monkeypatch, store_with(tmp_path, records), page="effects")
    notes = [i.value for i in at.info if "Aliased" in i.value]
    assert notes  # one per metric
    for label in ("query content & relative position", "key content only", "relative position only"):
        assert f"{label} with query-key content" in notes[0]
    drawn = bars(titled(at, "Main effects on box AP"))
    assert sorted(drawn) == ["deformable convolution", "query-key content"]
    # two factors, one run each: no error to estimate, so no interval, and the bars say so
    assert all(b["interval"] is None and b["text"].endswith("(no interval)") for b in drawn.values())
    assert any("No interval" in w.value for w in at.warning)


def test_runs_page_filters_and_shows_a_failed_run(
    monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    (work / "20260101_000000" / "vis_data").mkdir(parents=True)
    lines = [
        {"lr": 0.01, "loss": 2.5, "epoch": 1, "iter": 2, "step": 2},
        {"coco/bbox_mAP": 0.01, "coco/bbox_mAP_50": 0.02, "step": 1},
        {"lr": 0.01, "loss": 2.1, "epoch": 2, "iter": 4, "step": 4},
        {"coco/bbox_mAP": 0.02, "coco/bbox_mAP_50": 0.03, "step": 2},
    ]
    (work / "20260101_000000" / "vis_data" / "scalars.json").write_text(
        "".join(json.dumps(x) + "\n" for x in lines)
    )
    store.put(
        RunRecord(
            sweep="grid",
            cell="broken",
            run_id="r1",
            source="run",
            status="failed",
            code="1111",
            dcn=True,
            error="RuntimeError: CUDA out of memory",
            log_tail="line 1\nline 2 of the log",
            origin=str(work / "result.json"),
        )
    )
    at = open_app(monkeypatch, store, page="runs")
    assert len(at.dataframe[0].value) == 32 + 6
    at.multiselect(key="runs-status").set_value(["failed"]).run()
    assert list(at.dataframe[0].value["cell"]) == ["broken"]
    at.radio(key="runs-dcn").set_value("off").run()
    assert len(at.dataframe[0].value) == 0
    at.radio(key="runs-dcn").set_value("both").run()
    at.session_state["selected_run"] = ["grid", "broken", "r1", "run"]
    at.run()
    assert not at.exception
    assert at.error[0].value == "RuntimeError: CUDA out of memory"
    assert "line 2 of the log" in at.code[0].value
    (curves,) = figures(at)
    by_name = traces(curves)
    assert by_name["loss"]["y"] == [2.5, 2.1] and by_name["box AP"]["y"] == pytest.approx([1.0, 2.0])


def test_the_runs_page_shows_seeds_and_axes(monkeypatch: pytest.MonkeyPatch, replicated: Store) -> None:
    at = open_app(monkeypatch, replicated, page="runs")
    table = at.dataframe[0].value
    columns = list(table.columns)
    assert columns[columns.index("cell") + 1 : columns.index("cell") + 3] == ["kv_stride", "seed"]
    shown = {(r, s, k) for r, s, k in zip(table["run"], table["seed"], table["kv_stride"], strict=True)}
    expected = {(r.run_id, r.seed, r.axes.get(STRIDE)) for r in replicate_runs()}
    normal = {(r, None if pd.isna(s) else int(s), None if pd.isna(k) else int(k)) for r, s, k in shown}
    assert normal == expected and len(table) == 13


def live_cell(
    manifest: Manifest,
    folder: Path,
    name: str,
    job_id: str,
    status: str | None,
    cell_id: str = "id",
    **identity: Any,
) -> Path:
    """Record a job of the cell (job) ``name`` in the manifest and, unless ``status`` is None, write its
    result file (``identity``: more of its fields, a seed and axes); its work_dir."""
    work = folder / "work" / name / cell_id
    work.mkdir(parents=True)
    submitted = "2026-01-01T00:00:00+00:00"
    manifest.record(
        Submission(
            cell=name,
            cell_id=cell_id,
            executor="local",
            job_id=job_id,
            folder=str(folder),
            work_dir=str(work),
            attempt=1,
            submitted=submitted,
        )
    )
    if status:
        result = {"cell": name, "code": "0010", "dcn": False, **identity}
        write_result(
            work,
            CellResult(
                status=status,
                sweep=manifest.sweep,
                cell_id=cell_id,
                config="c.py",
                config_hash="h",
                attempt=1,
                host="h",
                pid=1,
                started=submitted,
                metrics={"bbox_mAP": 0.4},
                **result,
            ),
        )
    return work


def test_the_status_page_shows_seeds_and_axes(
    monkeypatch: pytest.MonkeyPatch, replicated: Store, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    folder = root / "live"
    manifest = Manifest(sweep="live")
    for seed, stride in itertools.product(SEEDS, (1, 2)):
        cell = f"cell_kv-stride-{stride}"
        job = str(999_000 + seed * 10 + stride)
        live_cell(
            manifest,
            folder,
            f"{cell}-s{seed}",
            job,
            "done",
            f"id{stride}",
            cell=cell,
            seed=seed,
            axes={STRIDE: stride},
        )
    live_cell(manifest, folder, "cell_kv-stride-4-s0", "999100", None, "id4")  # no result yet: no seed known
    save_manifest(folder, manifest)
    at = open_app(monkeypatch, replicated, root=root, page="status")
    table = at.dataframe[0].value
    assert list(table.columns)[:3] == ["cell", "kv_stride", "seed"]
    shown = {
        (c, None if pd.isna(s) else int(s), None if pd.isna(k) else int(k))
        for c, s, k in zip(table["cell"], table["seed"], table["kv_stride"], strict=True)
    }
    expected = {(f"cell_kv-stride-{k}-s{s}", s, k) for s, k in itertools.product(SEEDS, (1, 2))}
    assert shown == {*expected, ("cell_kv-stride-4-s0", None, None)}


def test_status_page_reads_the_manifests(
    monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    folder = root / "live"
    manifest = Manifest(sweep="live")
    for i, status in enumerate(("done", "failed", None, "corrupt")):
        work = live_cell(
            manifest, folder, f"cell{i}", str(999_990 + i), None if status == "corrupt" else status
        )
        if status == "corrupt":
            (work / RESULT_FILE).write_text("{not json")
    save_manifest(folder, manifest)
    at = open_app(monkeypatch, store, root=root, page="status")
    table = at.dataframe[0].value
    assert dict(zip(table["cell"], table["state"], strict=True)) == {
        "cell0": "done",
        "cell1": "failed",
        "cell2": "lost",
        "cell3": "failed",  # not lost: a launch must not resubmit it unasked
    }
    (problem,) = [p for p in table["problem"] if p]
    assert problem.startswith(f"{folder / 'work' / 'cell3' / 'id' / RESULT_FILE}: not readable JSON")
    assert at.subheader[0].value == "live"
    assert "seed" not in table.columns  # unseeded cells on no axis: no such columns


def scalars(work: Path, folder: str, lines: list[dict[str, Any]]) -> None:
    """mmengine's scalars.json of one start (``folder``, a timestamp) of the run in ``work``."""
    path = work / folder / "vis_data" / "scalars.json"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def logged(cell: int, iters: int) -> list[dict[str, Any]]:
    """A cell's training lines (loss, lr, seconds per iteration differ by cell), a validation per 2 iters."""
    lines: list[dict[str, Any]] = []
    for i in range(1, iters + 1):
        loss = 3.0 - 0.1 * i - cell
        lines.append({"lr": 0.01 * i, "loss": loss, "time": 0.5 + cell, "epoch": 1, "iter": i})
        if i % 2 == 0:
            lines.append({"coco/bbox_mAP": 0.01 * i, "step": i // 2})
    return lines


def test_the_live_curves_page_overlays_the_picked_cells(
    monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "runs" / "live"
    manifest = Manifest(sweep="live")
    for i, status in enumerate(("done", "failed", "done", None)):
        work = live_cell(manifest, folder, f"cell{i}", str(999_980 + i), status)
        if status:
            scalars(work, "20260101_000000", logged(i, 4 + i))
    (folder / "work" / "cell2" / "id" / "20260101_000000" / "vis_data" / "scalars.json").write_text("{not")
    save_manifest(folder, manifest)
    at = open_app(monkeypatch, store, root=folder.parent, page="live")
    assert at.header[0].value == "Live curves"
    (warning,) = [w.value for w in at.warning if "cell2" in w.value]  # its corrupt log, the others drawn
    assert "line 1 is not JSON" in warning
    (figure,) = figures(at)
    drawn: dict[tuple[str, str], dict[str, Any]] = {}
    for trace in figure["data"]:
        drawn[trace["name"], trace.get("xaxis", "x")] = trace
    # cell3 has no result (lost): not a cell to draw; loss, lr, s/iter, box AP panels per cell
    assert {name for name, _ in drawn} == {"cell0", "cell1"}
    assert drawn["cell1", "x"]["y"] == pytest.approx([3.0 - 0.1 * i - 1 for i in range(1, 6)])
    assert drawn["cell1", "x2"]["y"] == pytest.approx([0.01 * i for i in range(1, 6)])
    assert drawn["cell1", "x3"]["y"] == pytest.approx([1.5] * 5)
    assert drawn["cell1", "x4"]["x"] == [1, 2] and drawn["cell1", "x4"]["y"] == pytest.approx([2.0, 4.0])
    table = at.dataframe[0].value
    assert dict(zip(table["cell"], table["iteration"], strict=True)) == {"cell0": 4, "cell1": 5}
    assert list(table["s/iter"]) == pytest.approx([0.5, 1.5])
    at.multiselect(key="live-cells-live").set_value(["cell0"]).run()
    assert not at.exception
    assert {trace["name"] for trace in figures(at)[0]["data"]} == {"cell0"}
    assert "again every" not in at.caption[-1].value  # no cell runs: the page does not refresh itself


def test_seconds_per_iteration_are_read_and_checked(tmp_path: Path) -> None:
    scalars(tmp_path, "20260101_000000", [{"loss": 2.0, "time": 0.75, "iter": 1}, {"loss": 1.9, "iter": 2}])
    train, _ = training_curves(tmp_path, seconds=True)
    assert train["time"].iloc[0] == 0.75 and math.isnan(train["time"].iloc[1])  # a line without: NaN
    assert "time" not in training_curves(tmp_path)[0]  # only when asked
    scalars(tmp_path, "20260102_000000", [{"loss": 2.0, "time": "slow", "iter": 3}])
    with pytest.raises(LogFormatError, match=r"20260102_000000.*line 1: time is 'slow', not a number"):
        training_curves(tmp_path, seconds=True)


def test_a_relative_origin_is_found_from_another_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """harvest stored the origin relative to the folder it ran in; the dashboard runs elsewhere, with --root
    (and the store beside it): the Runs page finds the work_dir through them, not through its own folder."""
    project = tmp_path / "project"
    work = project / "runs" / "grid" / "work" / "cell" / "id"
    scalars(work, "20260101_000000", logged(0, 3))
    (work / RESULT_FILE).write_text("{}")
    origin = str(Path("runs") / "grid" / "work" / "cell" / "id" / RESULT_FILE)
    store = Store(project / "runs" / "store")
    store.put(RunRecord(sweep="grid", cell="cell", run_id="r1", source="run", status="done", code="0000",
                        dcn=False, bbox_mAP=0.3, origin=origin))  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert work_dir_of(origin) is None  # not from this folder alone
    assert work_dir_of(origin, [project / "runs"]) == work  # the root's parent
    assert work_dir_of(origin, [project / "runs" / "store"]) == work  # the store's folder's parent's parent
    assert work_dir_of(str(work / RESULT_FILE), [elsewhere]) == work  # absolute: as it is
    assert work_dir_of("runs/grid/work/gone/result.json", [project / "runs"]) is None
    monkeypatch.chdir(project)
    assert work_dir_of(origin) == work  # the current folder, as before
    monkeypatch.chdir(elsewhere)
    at = open_app(monkeypatch, store, root=project / "runs", page="runs")
    at.session_state["selected_run"] = ["grid", "cell", "r1", "run"]
    at.run()
    assert not at.exception
    (curves,) = figures(at)
    assert traces(curves)["loss"]["y"] == pytest.approx([2.9, 2.8, 2.7])


def attempt(number: int, start_h: float, hours: float, gpus: int) -> dict[str, Any]:
    """An attempt record of a local cell's job (2 processes x 3 threads), ``hours`` long."""
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    started, ended = ((base + datetime.timedelta(hours=h)).isoformat() for h in (start_h, start_h + hours))
    return dataclasses.asdict(Attempt(number, "local", "1", "h", 2, 3, gpus, started, ended, ended))


def test_the_status_page_shows_each_cell_s_and_the_sweep_s_compute(
    monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "runs" / "live"
    manifest = Manifest(sweep="live")
    records = {"cell0": [attempt(1, 0, 1.0, 2), attempt(1, 2, 0.5, 2)], "cell1": [attempt(1, 0, 2.0, 0)]}
    for i, (name, attempts) in enumerate(records.items()):
        work = live_cell(manifest, folder, name, str(999_970 + i), "done")
        (work / ATTEMPTS_FILE).write_text(json.dumps({"attempts": attempts}))
    save_manifest(folder, manifest)
    at = open_app(monkeypatch, store, root=folder.parent, page="status")
    table = at.dataframe[0].value
    gpu, cpu = vocabulary.metric("gpu_hours"), vocabulary.metric("cpu_hours")
    shown = zip(table["cell"], table["attempts"], table[gpu.name], table[cpu.name], strict=True)
    assert {cell: rest for cell, *rest in shown} == {
        "cell0": [
            "2",
            gpu.format(2 * 1.0 + 2 * 0.5),
            cpu.format(2 * 3 * 1.5),
        ],  # GPUs x h, processes x threads x h
        "cell1": ["1", "-", cpu.format(2 * 3 * 2.0)],  # no GPU: no GPU-hours, not 0
    }
    (line,) = [m.value for m in at.markdown if m.value.startswith("compute so far")]
    assert line.startswith("compute so far: 3 attempts, 3.0 GPU-hours, 21.0 CPU-hours")
    assert not any("expected to finish" in m.value for m in at.markdown)  # nothing runs or waits


@pytest.mark.parametrize("page", ["status", "live"])
def test_an_unreadable_manifest_is_one_warning(
    monkeypatch: pytest.MonkeyPatch, store: Store, tmp_path: Path, page: str
) -> None:
    folder = tmp_path / "runs" / "broken"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{not json")
    at = open_app(monkeypatch, store, root=folder.parent, page=page)
    assert [w.value.split(":")[0] for w in at.warning] == [str(folder)]
    assert not at.code  # nothing else (Streamlit's magic writes a bare expression's value)


def test_downloads_are_what_export_writes(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    from ablation.results.export import render
    from ablation.results.table import TableOptions, results_table

    at = open_app(monkeypatch, store, page="downloads")
    at.checkbox(key="dl-breakdown").check().run()
    at.checkbox(key="dl-timing").check().run()
    at.selectbox(key="dl-baseline").set_value("0000").run()
    assert not at.exception
    options = TableOptions(breakdown=True, timing=True, baseline="0000")
    expected = render(results_table(store.read().frame(), options), "markdown")
    assert at.markdown[-1].value == expected.rstrip("\n")
    assert len(at.get("download_button")) == 3


def test_a_long_download_table_is_summarised_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """92 cells: the best row of each code and DCN setting first, the whole table (as export writes it) in
    an expander."""
    from ablation.results.export import render
    from ablation.results.table import results_table

    store = store_with(tmp_path, axis_runs())
    at = open_app(monkeypatch, store, page="downloads")
    table = results_table(store.read().frame())
    summary = render(table.only(table.best_rows()), "markdown").rstrip("\n")
    assert [m.value for m in at.markdown][-2:] == [summary, render(table, "markdown").rstrip("\n")]
    assert len(summary.splitlines()) == 2 + 32
    (expander,) = at.expander
    assert expander.label == "all 92 rows" and expander.markdown[0].value == at.markdown[-1].value


def test_nan_metrics_and_the_sidebar_filters(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    store.put(
        RunRecord(sweep="nan", cell="c", run_id="r", source="run", code="0001", dcn=False, bbox_mAP=math.nan)
    )
    at = open_app(monkeypatch, store)
    at.sidebar.multiselect[1].set_value(["reference"]).run()
    assert not at.exception
    fps = figures(at)[1]  # after memory
    assert {name.split(",")[0] for name in traces(fps)} <= {"model zoo (published)", "Pareto frontier"}
    for page in ("effects", "runs", "downloads", "status"):
        at.radio(key="page").set_value(page).run()
        assert not at.exception, page


def test_the_loader_sees_a_new_run_at_the_next_rerun(monkeypatch: pytest.MonkeyPatch, store: Store) -> None:
    at = open_app(monkeypatch, store, page="runs")
    assert len(at.dataframe[0].value) == 31 + 6
    store.put(
        RunRecord(sweep="late", cell="c", run_id="r", source="run", code="1111", dcn=True, bbox_mAP=0.4)
    )
    at.run()
    assert len(at.dataframe[0].value) == 31 + 6 + 1  # the new sweep is shown too
    assert "c" in list(at.dataframe[0].value["cell"])
    assert any("(38 runs)" in c.value for c in at.sidebar.caption)
