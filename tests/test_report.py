"""`ablation report`: one HTML file of a sweep, opened offline in the real headless Chromium (every request
that is not for a file aborted), its charts drawn, the effects' intervals drawn checked against ones
recomputed here from the stored runs with numpy and scipy, its table against `ablation export`'s rows; and
`ablation run`'s ending writing it beside the store."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ablation.analysis.report import build_report
from ablation.results.modelzoo import load_reference
from ablation.results.records import RunRecord
from ablation.results.store import Store

from .helpers.browser import CHROMIUM, FLAGS
from .helpers.cli import run_cli, run_script
from .helpers.store import axis_runs, store_with

SWEEP = "grid"
CODES = ("0000", "0010", "1000", "1010")  # query-key content (bit 1) x key content only (bit 3)
SEEDS = (0, 1, 2)
ODD_CONFIG = 'configs/<odd> & "quoted".py'  # a value the HTML must escape
# the factors of the design: a store column, and the label the charts give it
FACTORS = {
    "query_key_content": "query-key content",
    "key_content": "key content only",
    "dcn": "deformable convolution",
}
# metric -> (the chart's div id, scale of the store's unit to the chart's, whether higher is better)
METRICS = {
    "bbox_mAP": ("effects-bbox_mAP", 100.0, True),
    "fps": ("effects-fps", 1.0, True),
    "memory_gb": ("effects-memory_gb-cuda_peak_allocated", 1.0, False),
    "flops": ("effects-flops", 1e-9, False),
}


def design_runs(sweep: str = SWEEP) -> list[RunRecord]:
    """A balanced replicated 2^3: query-key content x key content x DCN, three seeds per cell, with noise;
    key content does nothing to box AP, so its effect there is noise. Plus a failed run of one cell."""
    noise = np.random.default_rng(7).normal(size=(len(CODES) * 2 * len(SEEDS), 4))
    runs = []
    for i, (code, dcn, seed) in enumerate(itertools.product(CODES, (False, True), SEEDS)):
        qk, k = code[0] == "1", code[2] == "1"
        cell = f"cell-{code}-{int(dcn)}"
        runs.append(
            RunRecord(
                sweep=sweep,
                cell=cell,
                cell_id=f"id-{code}-{int(dcn)}",
                run_id=f"{cell}-s{seed}",
                seed=seed,
                source="run",
                code=code,
                dcn=dcn,
                backbone="R-50",
                schedule="1x",
                bbox_mAP=0.35 + 0.012 * qk + 0.02 * dcn + 0.004 * qk * dcn + 0.003 * noise[i, 0],
                fps=20.0 - 3 * qk - 0.5 * k - 2 * dcn + 0.3 * noise[i, 1],
                memory_gb=4.0 + 1.5 * qk + 0.3 * k + 0.5 * dcn + 0.02 * noise[i, 2],
                memory_kind="cuda_peak_allocated",
                flops=2e11 + 3e10 * qk + 1e9 * k + 2e10 * dcn + 1e8 * noise[i, 3],
                config=ODD_CONFIG if (code, dcn) == ("1010", True) else f"configs/{cell}.py",
                finished=datetime(2024, 5, 1 + seed, tzinfo=UTC),
            )
        )
    failed = RunRecord(
        sweep=sweep, cell="cell-0000-0", run_id="cell-0000-0-s9", seed=9, source="run", code="0000",
        dcn=False, status="failed", error="killed",
    )  # fmt: skip
    return [*runs, failed]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    broken = RunRecord(sweep="broken", cell="c", run_id="r", source="run", code="0010", status="failed")
    return store_with(tmp_path / "runs", [*design_runs(), *load_reference(), broken])


# --- what the test computes itself ------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    effect: float
    low: float
    high: float

    @property
    def resolved(self) -> bool:
        return not self.low <= 0.0 <= self.high


def recomputed(frame: pd.DataFrame, metric: str) -> dict[str, Interval]:
    """The main effects of the balanced replicated 2^3 in the stored runs, by hand: mean at the high level
    minus mean at the low level, se = 2 sqrt(MSE / N) with MSE the pooled within-cell variance, and a t
    interval with N - 2^k degrees of freedom."""
    done = frame[(frame["sweep"] == SWEEP) & (frame["status"] == "done")]
    levels = {c: done[c].astype(bool).to_numpy() for c in FACTORS}
    y = done[metric].astype(float).to_numpy()
    cells = pd.Series(y).groupby([levels[c] for c in FACTORS]).transform("mean").to_numpy()
    n, k = len(y), len(FACTORS)
    assert n == len(CODES) * 2 * len(SEEDS) and len(set(zip(*levels.values(), strict=True))) == 2**k
    mse = float(((y - cells) ** 2).sum()) / (n - 2**k)
    margin = float(stats.t.ppf(0.975, n - 2**k)) * 2.0 * np.sqrt(mse / n)
    found = {}
    for column, label in FACTORS.items():
        effect = float(y[levels[column]].mean() - y[~levels[column]].mean())
        found[label] = Interval(effect, effect - margin, effect + margin)
    return found


# --- the report in a browser --------------------------------------------------------------------------------

_READ_CHARTS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(div => ({
    id: div.id,
    svgs: div.querySelectorAll('svg.main-svg').length,
    drawn: Array.from(div.querySelectorAll('.barlayer path, .scatterlayer path.point'))
        .filter(p => (p.getAttribute('d') || '').length > 4).length,
    errorbars: div.querySelectorAll('.errorbar path').length,
    traces: div.data.map(t => ({
        type: t.type, name: t.name,
        x: t.x ? Array.from(t.x) : [], y: t.y ? Array.from(t.y) : [],
        plus: t.error_y && t.error_y.array ? Array.from(t.error_y.array) : null,
        minus: t.error_y && t.error_y.arrayminus ? Array.from(t.error_y.arrayminus) : null,
    })),
}))
"""
_READ_TABLE = """
() => Array.from(document.querySelectorAll('table.results tr')).map(
    tr => Array.from(tr.querySelectorAll('th, td')).map(c => c.innerText.trim()))
"""


@dataclass
class Opened:
    charts: list[dict[str, Any]]
    table: list[list[str]]
    text: str
    requests: list[str]
    aborted: list[str]


def open_offline(path: Path) -> Opened:
    """The file in headless Chromium with every request that is not for a file aborted, once every chart has
    drawn its SVG."""
    from playwright.sync_api import Route, sync_playwright

    requests: list[str] = []
    aborted: list[str] = []

    def only_files(route: Route) -> None:
        url = route.request.url
        if url.startswith("file://"):
            route.continue_()
        else:
            aborted.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1400, "height": 1000})
            context.route("**/*", only_files)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            page.wait_for_function(
                "() => { const divs = document.querySelectorAll('.js-plotly-plot'); "
                "return divs.length > 0 && "
                "Array.from(divs).every(d => d.querySelector('svg.main-svg') && d._fullLayout); }",
                timeout=90_000,
            )
            page.wait_for_timeout(500)
            opened = Opened(
                page.evaluate(_READ_CHARTS),
                page.evaluate(_READ_TABLE),
                page.inner_text("body"),
                requests,
                aborted,
            )
        finally:
            browser.close()
    return opened


def md_rows(text: str) -> list[list[str]]:
    """The cells of a markdown table's header and body rows (its separator line left out)."""
    lines = [line for line in text.split("\n\n")[0].splitlines() if line.startswith("|")]
    rows = [[c.strip() for c in line[1:-1].replace("\\|", "\0").split("|")] for line in lines]
    return [[c.replace("\0", "|") for c in row] for i, row in enumerate(rows) if i != 1]


@pytest.mark.browser
def test_the_report_opens_offline_with_every_chart_drawn_and_the_recomputed_intervals(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: `bash .ci/setup` installs Debian's as root"
    out_file = tmp_path / "new folder" / "deeper" / "report.html"
    code, out, err = run_cli(
        "report", "--store", str(store.path), "--sweep", SWEEP, "-o", str(out_file), capsys=capsys
    )
    assert (code, err) == (0, "")
    assert out == f"report: {out_file} (24 runs of 8 cells, 8 charts)\n"
    assert sorted(p.name for p in out_file.parent.iterdir()) == ["report.html"]  # no temp file left
    text = out_file.read_text(encoding="utf-8")

    # self-contained: plotly.js once, inline; no file, style or script loaded from anywhere
    scripts = re.findall(r"<script\b[^>]*>", text)
    assert len([s for s in scripts if "src" in s]) == 0
    bundle = max(re.findall(r"<script[^>]*>(.*?)</script>", text, re.S), key=len)
    assert len(bundle) > 1_000_000 and text.count(bundle) == 1
    assert "Plotly" in bundle and "<link" not in text
    rest = text.replace(bundle, "")
    assert not re.search(r"https?://|@import|url\(", rest), re.findall(r".{40}https?://.{40}", rest)[:3]
    assert "&lt;odd&gt; &amp; &quot;quoted&quot;.py" in rest and ODD_CONFIG not in rest

    opened = open_offline(out_file)
    assert opened.aborted == [] and all(u.startswith("file://") for u in opened.requests), opened.requests
    assert "Sweep grid" in opened.text and "24 runs of 8 cells" in opened.text
    assert "Not resolved from noise" in opened.text

    charts = {c["id"]: c for c in opened.charts}
    assert sorted(charts) == sorted(
        [
            "tradeoff-fps",
            "tradeoff-memory_gb-cuda_peak_allocated",
            "tradeoff-flops",
            "effects-bbox_mAP",
            "half-normal",
            "effects-fps",
            "effects-memory_gb-cuda_peak_allocated",
            "effects-flops",
        ]
    )
    for name, chart in charts.items():
        assert chart["svgs"] >= 1, name
        assert chart["drawn"] >= (3 if name.startswith("effects") else 7), (name, chart["drawn"])
    for name in ("tradeoff-fps", "tradeoff-flops"):  # SVG points, with the frontier and error bars
        traces = charts[name]["traces"]
        assert all(t["type"] == "scatter" for t in traces)
        assert sum(len(t["x"]) for t in traces if t["name"] != "Pareto frontier") == 8
        assert "Pareto frontier" in {t["name"] for t in traces}
        assert charts[name]["errorbars"] > 0

    frame = store.read().frame()
    for metric, (div, scale, higher) in METRICS.items():
        chart = charts[div]
        assert chart["errorbars"] >= 3, div
        drawn = {}
        for trace in chart["traces"]:
            assert trace["type"] == "bar" and trace["plus"] is not None and trace["minus"] is not None
            for label, y, plus, minus in zip(
                trace["x"], trace["y"], trace["plus"], trace["minus"], strict=True
            ):
                drawn[label] = (trace["name"], Interval(y, y - minus, y + plus))
        expected = recomputed(frame, metric)
        assert set(drawn) == set(expected), div
        for label, want in expected.items():
            name, got = drawn[label]
            assert got.effect == pytest.approx(want.effect * scale, rel=1e-9, abs=1e-12), (div, label)
            assert got.low == pytest.approx(want.low * scale, rel=1e-9, abs=1e-12), (div, label)
            assert got.high == pytest.approx(want.high * scale, rel=1e-9, abs=1e-12), (div, label)
            if not want.resolved:
                assert name.startswith("not resolved"), (div, label, name)
            else:
                better = (want.effect > 0) == higher
                assert name.startswith("improves" if better else "worsens"), (div, label, name)
    ap = recomputed(frame, "bbox_mAP")
    assert not ap["key content only"].resolved and ap["deformable convolution"].resolved  # the design's truth

    code, exported, _ = run_cli("export", "--store", str(store.path), "--sweep", SWEEP, capsys=capsys)
    assert code == 0
    want_rows = md_rows(exported)
    config = want_rows[0].index("Config")
    for row in want_rows[1:]:
        row[config] = re.fullmatch(r"\[config\]\(<?(.*?)>?\)", row[config]).group(1)  # type: ignore[union-attr]
    assert opened.table == want_rows
    assert len(opened.table) == 1 + 8 and any(ODD_CONFIG in row for row in opened.table)


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--sweep", "nope"],
            "error: unknown sweep 'nope'; sweeps in the store: broken, grid, mmdet-model-zoo",
        ),
        (
            ["--sweep", "broken"],
            "error: sweep 'broken' has no finished run (1 run, none done) in the store; sweeps with finished "
            "runs: grid, mmdet-model-zoo",
        ),
        (
            ["--sweep", "grid", "--source", "log"],
            "error: sweep 'grid' has no run from source log in the store; sweeps with finished runs from "
            "source log: none",
        ),
        (["--sweep", "grid", "--source", "mine"], "error: argument --source: invalid choice: 'mine'"),
        ([], "error: the following arguments are required: --sweep (see ablation report --help)"),
    ],
)
def test_report_errors_are_one_line_and_exit_2(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], line: str
) -> None:
    target = tmp_path / "out" / "report.html"
    code, out, err = run_cli("report", "--store", str(store.path), *flags, "-o", str(target), capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith(line) and err.count("\n") == 1, err
    assert not target.exists() and not target.parent.exists()


def test_an_empty_store_names_no_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli("report", "--store", str(tmp_path / "store"), "--sweep", SWEEP, capsys=capsys)
    assert (code, err) == (2, "error: unknown sweep 'grid'; sweeps in the store: none\n")


def test_the_default_output_is_beside_the_store(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("report", "--store", str(store.path), "--sweep", "mmdet-model-zoo", capsys=capsys)
    path = store.path.parent / "mmdet-model-zoo-report.html"
    assert code == 0 and out.startswith(f"report: {path} (")
    assert "Sweep mmdet-model-zoo" in path.read_text(encoding="utf-8")


def test_several_sources_and_memory_kinds_get_their_own_charts(tmp_path: Path) -> None:
    """Memory of two kinds is never on one axis, nor in one analysis; each source is its own design."""
    runs = [r for r in design_runs() if r.status == "done"]
    cpu = [
        RunRecord(
            **{**vars_of(r), "source": "log", "memory_kind": "cpu_peak_rss", "run_id": r.run_id + "-log"}
        )
        for r in runs
    ]
    store = store_with(tmp_path, [*runs, *cpu])
    report = build_report(store.read().frame(), SWEEP, now=datetime(2025, 1, 2, 3, 4, tzinfo=UTC))
    ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', report.html)
    assert "tradeoff-memory_gb-cuda_peak_allocated" in ids and "tradeoff-memory_gb-cpu_peak_rss" in ids
    assert "effects-run-memory_gb-cuda_peak_allocated" in ids and "effects-log-memory_gb-cpu_peak_rss" in ids
    assert "effects-run-memory_gb-cpu_peak_rss" not in ids and "half-normal-log" in ids
    # trade-offs: fps, memory of each kind, GFLOPs; per source: box AP, its half-normal, fps, memory, GFLOPs
    assert (report.runs, report.cells, report.charts, len(ids)) == (48, 16, 4 + 2 * 5, 4 + 2 * 5)
    assert "Written 2025-01-02 03:04 UTC" in report.html
    verdicts = re.findall(r'<p class="verdict">(.*?)</p>', report.html)  # one per source, each named
    assert [v.split(": On box AP")[0] for v in verdicts] == ["Runs of source run", "Runs of source log"]


def test_the_report_opens_with_the_verdict_on_box_ap_before_any_chart(store: Store) -> None:
    """The first words under the title: the verdict on box AP that ``ablation effects`` prints, naming the
    planted effects resolved and key content (nothing planted on box AP) among those that are not."""
    import html as markup

    from ablation.analysis.effects import analyse
    from ablation.analysis.effects_text import verdict
    from ablation.results.latest import latest_runs

    frame = store.read().frame()
    page = build_report(frame, SWEEP).html
    said = verdict(analyse(latest_runs(frame[frame["sweep"] == SWEEP]), "box AP"))
    assert said.startswith("On box AP (AP points), 2 of 3 main effects are resolved from noise at 95%: ")
    assert "The other one, key content only " in said
    opening = f'<p class="verdict">{markup.escape(said)}</p>'
    assert page.count('class="verdict"') == 1
    assert page.index("</h1>") < page.index(opening) < page.index("<nav>") < page.index('class="chart"')


def test_a_long_results_table_is_summarised_first_and_whole_in_details(tmp_path: Path) -> None:
    """92 cells: the best cell of each code and DCN setting (32 rows) first, all 92 in a closed <details>;
    the trade-off charts' points are SVG traces."""
    store = store_with(tmp_path, axis_runs())
    html = build_report(store.read().frame(), "axes").html
    summary = re.search(r'<table class="summary">(.*?)</table>', html, re.S)
    whole = re.search(
        r"<details><summary>All 92 rows</summary>\s*<table class=\"results\">(.*?)</table>", html, re.S
    )
    assert summary and whole and "<details open" not in html
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", whole.group(1))]
    best = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", summary.group(1))]
    rows, best = [r for r in rows if r], [r for r in best if r]  # the header rows hold <th>s
    assert len(rows) == 92 and len(best) == 32 and all(b in rows for b in best)
    head = re.findall(r"<th>(.*?)</th>", whole.group(1))
    code, dcn, ap = (head.index(h) for h in ("Attention Component", "DCN", "box AP"))
    for row in best:
        same = [float(r[ap]) for r in rows if (r[code], r[dcn]) == (row[code], row[dcn])]
        assert float(row[ap]) == max(same)
    call = re.search(r'Plotly\.newPlot\(\s*"tradeoff-fps",\s*', html)
    assert call
    data, _ = json.JSONDecoder().raw_decode(html, call.end())
    assert {t["type"] for t in data} == {"scatter"} and sum(len(t["x"]) for t in data[:-1]) == 92


def vars_of(record: RunRecord) -> dict[str, Any]:
    """A record's init fields (its derived factor fields left out), to make a changed copy."""
    import dataclasses

    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.init}


# --- ablation run's ending ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_ablation_run_ends_with_the_report_beside_the_store(tmp_path: Path) -> None:
    """A real `ablation run` of one smoke cell (about 30 s): the line saying where follows the harvest's and
    the verdict's, and the report of its one cell has its trade-off charts and says why it has no factor
    effects."""
    env = {**os.environ, "ABLATION_ROOT": str(tmp_path / "runs")}
    done = run_script(
        "ablation", "run", "--sweep", "smoke", "--codes", "0010", "--dcn", "on", cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    where = lines.index("report: runs/smoke-report.html")
    (harvested,) = [i for i, line in enumerate(lines) if line.startswith("harvested 1 run: 1 new")]
    # between them, the verdict: with one cell, why nothing could be estimated
    verdict = " ".join(lines[harvested + 1 : where]).strip()
    assert verdict.startswith("No effect on box AP (AP points) could be estimated"), verdict
    assert lines[-1] == "1 cell: 1 done"
    html = (tmp_path / "runs" / "smoke-report.html").read_text(encoding="utf-8")
    ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', html)
    assert ids == [
        "tradeoff-memory_gb-cpu_peak_rss",
        "tradeoff-fps",
        "tradeoff-flops",
        "tradeoff-cpu_hours",  # a CPU cell: its jobs' CPU-hours (no GPU-hours)
    ]  # the vocabulary's order
    assert "No factor effects to show: no factor or setting has two levels among the runs." in html
    assert "1 cell, one run each" in html and "faster-rcnn_r50-attn0010-dcn_fpn_2e_shapes.py" in html


def test_run_s_ending_writes_the_report_beside_the_store_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ending on a store of the smoke sweep's runs (a full `ablation run` trains; tests/test_readme.py
    runs one)."""
    from ablation.cli.result_commands import harvest_and_export
    from ablation.grid.sweep import load_sweep

    monkeypatch.chdir(tmp_path)
    sweep = load_sweep("smoke")
    store = store_with(tmp_path / "runs", design_runs(sweep.name))
    harvest_and_export(sweep, argparse.Namespace(root=Path("runs"), store=None))
    captured = capsys.readouterr()
    lines = captured.out.rstrip("\n").splitlines()
    assert lines[-1] == "report: runs/smoke-report.html", lines[-3:]
    assert "Backbone" in lines[0]
    # the table, the harvest's line, then the report's verdict: what of the table is noise
    verdict = captured.out.split("harvested 0 runs", 1)[1].split("\n", 1)[1].split("report:")[0]
    assert " ".join(verdict.split()).startswith("On box AP (AP points), ")
    assert "resolved from noise" in verdict or "within the noise" in verdict
    html = (tmp_path / "runs" / "smoke-report.html").read_text(encoding="utf-8")
    assert "<h1>Sweep smoke</h1>" in html and html.count('class="plotly-graph-div"') == 8

    for record in design_runs(sweep.name):  # no cell finished: a warning, not the run's failure
        store.put(RunRecord(**{**vars_of(record), "status": "failed"}))
    (tmp_path / "runs" / "smoke-report.html").unlink()
    harvest_and_export(sweep, argparse.Namespace(root=Path("runs"), store=None))
    captured = capsys.readouterr()
    assert "report:" not in captured.out
    assert (
        "warning: no report of sweep smoke: sweep 'smoke' has no finished run (25 runs, none done)"
        in captured.err
    )
    assert not (tmp_path / "runs" / "smoke-report.html").exists()
