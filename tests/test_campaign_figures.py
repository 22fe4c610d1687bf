"""Non-finite and out-of-range figures (issue 31: a result with ``"fps": Infinity`` took down export, report
and the dashboard). Every figure of the vocabulary and of the store record, given inf, -inf, NaN, 1e309, a
negative value or a value just outside its valid range: the record check and the table screen drop it with a
line naming the run, the figure, the value and the range; every reader given a frame holding it (the
results table in each format, the effects, the report, the Python API, the dashboard's pages, ``export`` and
``report`` as commands) reads it as missing for that run, says so, and computes the rest exactly as if it
had never been measured. The counts are printed (``pytest -s``) and the failures asserted zero."""

from __future__ import annotations

import dataclasses
import functools
import math
import subprocess
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

import ablation
from ablation import vocabulary
from ablation.analysis.effects import analyse
from ablation.analysis.report import build_report
from ablation.analysis.runs import Runs
from ablation.errors import BadFigureWarning
from ablation.results.export import FORMATS, render
from ablation.results.records import (
    SCREEN_LINES,
    RunRecord,
    figure_ranges,
    screen_figures,
    screen_frame,
)
from ablation.results.runfile import SCHEMA
from ablation.results.store import Store
from ablation.results.table import TableOptions, results_table
from ablation.vocabulary import Range

from .helpers.cli import REPO, venv_bin
from .helpers.store import grid_runs, store_with

RANGES = figure_ranges()
FIGURES = tuple(RANGES)
INTEGERS = tuple(f for f in FIGURES if pa.types.is_integer(SCHEMA.field(f).type))  # no inf or NaN in int64
EVERY_OPTION = TableOptions(breakdown=True, complexity=True, timing=True, baseline="0000")


def _outside(valid: Range) -> float:
    """A value just outside ``valid``: a box AP in AP points (40.0) where a fraction is kept, an fps of 0,
    a hair below 0 for the rest."""
    if math.isfinite(valid.high):
        return 40.0
    return valid.low if valid.above else valid.low - 1e-9


CASES: dict[str, Callable[[Range], float]] = {
    "inf": lambda valid: math.inf,
    "-inf": lambda valid: -math.inf,
    "nan": lambda valid: math.nan,
    "1e309": lambda valid: float("1e309"),  # what JSON's 1e309 parses to
    "negative": lambda valid: -1.0,
    "out of range": _outside,
}


def bad_values() -> Iterator[tuple[str, str, float]]:
    """(label, figure, value): every figure with every case."""
    for figure, valid in RANGES.items():
        for kind, bad in CASES.items():
            yield f"{figure} {kind}", figure, bad(valid)


def with_figure(record: RunRecord, figure: str, value: float) -> RunRecord:
    """A copy of ``record`` holding ``value`` in ``figure``."""
    copy = dataclasses.replace(record)
    setattr(copy, figure, value)
    return copy


def good(record: RunRecord, i: int = 0) -> RunRecord:
    """``record`` with every figure measured and valid, varying a little with ``i``."""
    return dataclasses.replace(
        record,
        bbox_mAP_50=0.55 + 0.001 * i, bbox_mAP_75=0.32, bbox_mAP_s=0.15, bbox_mAP_m=0.33, bbox_mAP_l=0.41,
        params=41_000_000 + 1000 * i, epochs=12, iterations=1000 + i, train_s=100.0 + i, test_s=10.0,
        fps_s=5.0, flops_s=2.0,
    )  # fmt: skip


def good_runs() -> list[RunRecord]:
    """The paper's 32 cells, one run each, every figure measured."""
    return [good(r, i) for i, r in enumerate(grid_runs("grid"))]


def edges() -> Iterator[tuple[str, float]]:
    """The valid values at each range's edges, which stay."""
    for name, valid in RANGES.items():
        yield name, (math.nextafter(valid.low, math.inf) if valid.above else valid.low)
        if math.isfinite(valid.high):
            yield name, valid.high


class Tally:
    """A campaign's counts: cases, exceptions and silent wrong results (each failure kept, to be shown)."""

    def __init__(self, name: str) -> None:
        self.name, self.cases = name, 0
        self.exceptions: list[str] = []
        self.wrong: list[str] = []

    def check(self, label: str, case: Callable[[], list[str]]) -> None:
        """Run one case: it returns what it got wrong (nothing: right)."""
        self.cases += 1
        try:
            self.wrong += [f"{label}: {why}" for why in case()]
        except Exception as error:  # counted and shown: the point of the campaign
            self.exceptions.append(f"{label}: {type(error).__name__}: {error}")

    def done(self) -> None:
        print(
            f"{self.name}: {self.cases} cases, {len(self.exceptions)} exceptions, "
            f"{len(self.wrong)} silent wrong results"
        )
        assert not self.exceptions, self.exceptions[:5]
        assert not self.wrong, self.wrong[:5]


def named(lines: list[str], run: str, figure: str, value: float) -> list[str]:
    """What is wrong with ``lines`` as the one line dropping ``value`` from ``figure`` of ``run``."""
    text = f"{run}: {figure} = {value!r} "
    if len(lines) != 1 or not lines[0].startswith(text) or f"(valid: {RANGES[figure]})" not in lines[0]:
        return [f"expected one line naming {text!r} and its range, got {lines}"]
    return []


# --- the record check ----------------------------------------------------------------------------------


def test_the_record_check_drops_each_bad_figure_and_names_it() -> None:
    tally = Tally("record check")
    base = good(grid_runs("grid")[0])
    run = f"{base.sweep}/{base.cell}/{base.run_id}"

    def case(figure: str, value: float) -> list[str]:
        record = with_figure(base, figure, value)
        wrong = named(record.drop_bad_figures(), run, figure, value)
        wrong += (
            [f"{figure} kept as {getattr(record, figure)!r}"] if getattr(record, figure) is not None else []
        )
        changed = [f for f in FIGURES if f != figure and getattr(record, f) != getattr(base, f)]
        return wrong + [f"also changed {changed}"] * bool(changed)

    for label, figure, value in bad_values():
        tally.check(label, functools.partial(case, figure, value))

    def edge(figure: str, value: float) -> list[str]:
        return [f"dropped: {line}" for line in with_figure(base, figure, value).drop_bad_figures()]

    for figure, value in edges():
        tally.check(f"{figure} edge {value}", functools.partial(edge, figure, value))
    tally.done()
    assert tally.cases == len(FIGURES) * len(CASES) + len(list(edges()))


def test_every_figure_declares_its_range_once() -> None:
    assert RANGES["bbox_mAP"] == Range(0.0, 1.0) and str(RANGES["bbox_mAP"]) == "[0, 1]"  # a fraction
    assert str(RANGES["fps"]) == "> 0" and str(RANGES["memory_gb"]) == ">= 0"
    assert set(FIGURES) >= {m.column for m in vocabulary.METRICS} | {s.column for s in vocabulary.STAGES}
    assert set(FIGURES) - {m.column for m in vocabulary.METRICS} - {s.column for s in vocabulary.STAGES} == {
        "epochs",
        "iterations",
    }


# --- the table screen ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_table(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """The 32 good runs as a real store reads them back."""
    return store_with(tmp_path_factory.mktemp("good"), good_runs()).read().table


def with_value(table: pa.Table, figure: str, row: int, value: float | None) -> pa.Table:
    """``table`` with ``value`` in ``figure`` at ``row``; an integer figure's column as floats to hold it
    (as a file of another writer could)."""
    values = table[figure].to_pylist()
    values[row] = value
    kind = pa.float64() if figure in INTEGERS and isinstance(value, float) else table[figure].type
    return table.set_column(table.column_names.index(figure), figure, pa.array(values, kind))


def test_the_table_screen_nulls_each_bad_figure_and_names_it(store_table: pa.Table) -> None:
    tally = Tally("table screen")
    row = 5
    run = "/".join(str(store_table[k][row].as_py()) for k in ("sweep", "cell", "run_id"))

    def case(figure: str, value: float) -> list[str]:
        given = with_value(store_table, figure, row, value)
        screened, lines = screen_figures(given)
        wrong = named(lines, run, figure, value)
        if screened[figure][row].is_valid:
            wrong.append(f"kept {screened[figure][row]}")
        expected = with_value(store_table, figure, row, None).cast(given.schema)
        return wrong + ["other values changed"] * (not screened.equals(expected))

    for label, figure, value in bad_values():
        tally.check(label, functools.partial(case, figure, value))
    tally.done()


def test_the_table_screen_names_twenty_then_counts_and_is_fast_when_clean(store_table: pa.Table) -> None:
    import time

    fps = [-1.0] * store_table.num_rows
    ap = [2.0] * 18 + store_table["bbox_mAP"].to_pylist()[18:]
    given = store_table.set_column(store_table.column_names.index("fps"), "fps", pa.array(fps))
    given = given.set_column(given.column_names.index("bbox_mAP"), "bbox_mAP", pa.array(ap))
    screened, lines = screen_figures(given)
    assert len(lines) == SCREEN_LINES + 1 and lines[-1].startswith(f"and {32 + 18 - SCREEN_LINES} more")
    assert screened["fps"].null_count == 32 and screened["bbox_mAP"].null_count == 18

    big = pa.concat_tables([store_table] * 313).combine_chunks()  # 10,016 runs, as a cache reads them
    timings = []
    for _ in range(15):
        start = time.perf_counter()
        same, none = screen_figures(big)
        timings.append(time.perf_counter() - start)
        assert same is big and none == []
    print(f"table screen: 10,016 clean runs in {min(timings) * 1e3:.2f} ms (fastest of 15)")
    assert min(timings) < 0.010


# --- the readers, given a frame ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The 32 good runs as a real store's frame."""
    return store_with(tmp_path_factory.mktemp("frame"), good_runs()).read().frame()


def holding(frame: pd.DataFrame, figure: str, row: int, value: float | None) -> pd.DataFrame:
    """``frame`` with ``value`` in ``figure`` at ``row`` (None: missing), as a caller could hand it over."""
    given = frame.copy()
    given[figure] = given[figure].astype("float64")  # an integer figure as floats, to hold inf or None
    given.loc[given.index[row], figure] = math.nan if value is None else value
    return given


def said(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``call()`` and the BadFigureWarning lines it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, BadFigureWarning)]


def effects_metric(figure: str) -> str:
    """The metric analysed for ``figure``: itself where it is analysed, else box AP."""
    return figure if figure in {m.column for m in vocabulary.metrics("effects")} else "bbox_mAP"


def same_table(a: Any, b: Any) -> bool:
    return bool(a.rows == b.rows and a.values == b.values and a.spreads == b.spreads and a.note == b.note)


def test_every_reader_given_a_frame_reads_a_bad_figure_as_missing(frame: pd.DataFrame) -> None:
    """The results table (directly and through the API) in every format, the runs' cells and the effects:
    no exception, the value named (NaN is pandas' missing value, so it is read as missing without a word),
    and the result exactly the one of the frame without that figure."""
    tally = Tally("readers")
    row = 3
    run = "/".join(str(frame[k].iat[row]) for k in ("sweep", "cell", "run_id"))

    @functools.cache
    def without(figure: str) -> tuple[Any, pd.DataFrame, Any]:
        """What the readers give for the frame without that figure of that run: the table, the cells and
        the effects."""
        missing = holding(frame, figure, row, None)
        effects = analyse(missing, effects_metric(figure))
        return results_table(missing, EVERY_OPTION), Runs(missing).cells, effects

    def case(figure: str, value: float) -> list[str]:
        given, (expected, expected_cells, analysed) = holding(frame, figure, row, value), without(figure)
        wrong: list[str] = []

        def spoken(lines: list[str], where: str) -> None:
            if not math.isnan(value):
                wrong.extend(f"{where}: {why}" for why in named(lines, run, figure, value))

        table, lines = said(lambda: results_table(given, EVERY_OPTION))
        spoken(lines, "results_table")
        wrong += ["results_table differs"] * (not same_table(table, expected))
        wrong += [f"{fmt} differs" for fmt in FORMATS if render(table, fmt) != render(expected, fmt)]
        api, lines = said(lambda: ablation.results_table(given, EVERY_OPTION))
        spoken(lines, "api.results_table")
        wrong += ["api.results_table differs"] * (not same_table(api, table))
        runs, lines = said(lambda: Runs(given))
        spoken(list(runs.dropped), "Runs.dropped")
        cells = runs.cells
        if not cells.equals(expected_cells):
            wrong.append("Runs.cells differ")
        metric = effects_metric(figure)
        found, lines = said(lambda: analyse(given, metric))
        spoken(lines, "analyse")
        if not found.effects.equals(analysed.effects) or found.runs != analysed.runs:
            wrong.append(f"effects on {metric} differ")
        if metric == figure:  # the API's effects, where the figure is the one analysed
            api, lines = said(lambda: ablation.effects(given, metric))
            spoken(lines, "api.effects")
            wrong += [f"api.effects on {metric} differ"] * (not api.effects.equals(analysed.effects))
        return wrong

    for label, figure, value in bad_values():
        tally.check(label, functools.partial(case, figure, value))
    tally.done()


def test_the_report_names_each_bad_figure_and_computes_the_rest(frame: pd.DataFrame, tmp_path: Path) -> None:
    """One report per figure (the cases taken in turn), and one of a frame holding every figure's every
    case at once."""
    import html
    from datetime import UTC, datetime

    from ablation.analysis.report import write_report

    tally = Tally("report")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    clean = build_report(frame, "grid", now=now)
    kinds = list(CASES.items())

    def case(figure: str, value: float) -> list[str]:
        row = FIGURES.index(figure) % len(frame)
        run = "/".join(str(frame[k].iat[row]) for k in ("sweep", "cell", "run_id"))
        path = tmp_path / f"{figure}.html"
        report, _ = said(lambda: write_report(holding(frame, figure, row, value), "grid", path, now=now))
        wrong = [] if math.isnan(value) else named(list(report.dropped), run, figure, value)
        if not math.isnan(value) and html.escape(report.dropped[0]) not in path.read_text(encoding="utf-8"):
            wrong.append("the page does not name it")
        if (report.runs, report.cells) != (clean.runs, clean.cells):
            wrong.append(f"{report.runs} runs of {report.cells} cells, not {clean.runs} of {clean.cells}")
        return wrong

    for i, figure in enumerate(FIGURES):
        kind, bad = kinds[i % len(kinds)]
        tally.check(f"{figure} {kind}", functools.partial(case, figure, bad(RANGES[figure])))

    def everything() -> list[str]:
        given, count = frame.copy(), 0
        for i, (_, figure, value) in enumerate(bad_values()):
            given = holding(given, figure, i % len(frame), value)
            count += not math.isnan(value)
        report, _ = said(lambda: build_report(given, "grid", now=now))
        more = f"and {count - SCREEN_LINES} more"
        wrong = [] if report.dropped[-1].startswith(more) else [f"no {more!r}: {report.dropped[-1]}"]
        return wrong + ["runs lost"] * (report.runs != clean.runs)

    tally.check("every figure, every case", everything)
    tally.done()


# --- the dashboard and the commands, on a store holding bad figures --------------------------------------

BAD = {  # one bad figure per run of these cells
    "cell-0001-1": ("fps", math.inf),
    "cell-0010-1": ("bbox_mAP", 40.0),
    "cell-0011-0": ("memory_gb", -1.0),
    "cell-0100-0": ("train_s", float("1e309")),
    "cell-0101-0": ("flops", -math.inf),
}


def bad_runs() -> list[RunRecord]:
    return [with_figure(r, *BAD[r.cell]) if r.cell in BAD else r for r in good_runs()]


@pytest.fixture
def bad_store(tmp_path: Path) -> Store:
    return store_with(tmp_path, bad_runs())


def bad_lines() -> list[str]:
    return [f"grid/{cell}/r1: {figure} = {value!r} " for cell, (figure, value) in BAD.items()]


@pytest.mark.parametrize("screened_by", ["the store's read", "the dashboard"])
def test_every_dashboard_page_names_the_bad_figures_and_shows_every_run(
    monkeypatch: pytest.MonkeyPatch, bad_store: Store, screened_by: str
) -> None:
    """Whether the store's read screens the figures or (a frame that reaches the pages unscreened) the
    dashboard itself does."""
    from ablation.results.store import ReadResult

    monkeypatch.setenv("ABLATION_STORE", str(bad_store.path))
    monkeypatch.setenv("ABLATION_ROOT", str(bad_store.path.parent / "runs"))
    if screened_by == "the dashboard":  # the app runs in this process: its store read gives the raw rows
        raw = pa.Table.from_pylist([r.row() for r in bad_runs()])
        monkeypatch.setattr(Store, "read", lambda self, cache=True: ReadResult(raw))
    tally = Tally(f"dashboard, screened by {screened_by}")
    at = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=120)
    shown = {
        "trade-offs": lambda: any("32 cells" in c.value for c in at.caption),
        "effects": lambda: any(h.value == "Factor effects" for h in at.header),
        "runs": lambda: (
            len(at.dataframe[0].value) == 32 and any(c.value.startswith("32 runs") for c in at.caption)
        ),
        "downloads": lambda: any(c.value.startswith("32 rows") for c in at.caption),
    }

    def page(name: str) -> list[str]:
        if at.session_state is None or "page" not in at.session_state:
            at.run()  # the first page: trade-offs
        at.radio(key="page").set_value(name).run()
        if at.exception:
            raise RuntimeError([e.value for e in at.exception])
        warned = " ".join(w.value for w in at.warning)
        wrong = [f"{line!r} not said" for line in bad_lines() if line not in warned]
        return wrong + ["runs missing"] * (not shown[name]())

    for name in shown:
        tally.check(name, functools.partial(page, name))
    tally.done()


def test_export_and_report_name_the_bad_figures_and_go_on(bad_store: Store, tmp_path: Path) -> None:
    """As commands, in their own processes: the bad figures named, the rest written, exit 1 (the README's
    promise for a bad file met while working)."""
    tally = Tally("commands")
    where = str(bad_store.path)

    def command(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [venv_bin("ablation"), *argv], capture_output=True, text=True, check=False, cwd=tmp_path
        )

    def case(*argv: str, rows: Callable[[str], bool]) -> list[str]:
        done = command(*argv)
        wrong = [f"exit {done.returncode}, not 1 (a bad figure met, the rest done)"] * (done.returncode != 1)
        wrong += ["internal error or traceback"] * (
            "internal error" in done.stderr or "Traceback" in done.stderr
        )
        wrong += [f"{line!r} not said" for line in bad_lines() if line not in done.stderr]
        return wrong + ["runs missing"] * (not rows(done.stdout))

    tally.check(
        "export",
        lambda: case("export", "--store", where, "--format", "csv", rows=lambda out: out.count("\n") == 33),
    )
    report = tmp_path / "r.html"
    tally.check(
        "report",
        lambda: case(
            "report",
            "--sweep",
            "grid",
            "--store",
            where,
            "--output",
            str(report),
            rows=lambda out: "32 runs" in out,
        ),
    )
    tally.done()


def test_a_frame_screen_leaves_a_clean_frame_as_it_is(frame: pd.DataFrame) -> None:
    same, lines = screen_frame(frame)
    assert same is frame and lines == []


def test_the_issues_reproduction_a_result_with_infinite_fps(tmp_path: Path) -> None:
    """A cell's result.json with ``"fps": Infinity`` (and one with a box AP of 40, in points): harvest
    names both and exits 1, keeping the runs with their other figures; export and report then run on the
    store (before: ``internal error: ValueError: estimate: a value is not a finite number``)."""
    from ablation.run.result_file import CellResult, write_result

    folder = tmp_path / "mine"
    for i, (code, dcn) in enumerate((("0000", False), ("0000", True), ("0010", False), ("0010", True))):
        result = CellResult(
            sweep="mine", cell=f"cell-{code}-{int(dcn)}", status="done", cell_id=f"id{i}", code=code, dcn=dcn,
            config="c.py", config_hash="h", attempt=1, host="h", pid=1, started="2026-01-01T00:00:00",
            finished="2026-01-01T01:00:00", metrics={"bbox_mAP": 40.0 if i == 2 else 0.30 + 0.01 * i},
            fps=math.inf if i == 1 else 20.0 - i, memory_mb=4096.0, memory_kind="cuda_peak_allocated",
        )  # fmt: skip
        work = folder / "work" / result.cell / result.cell_id
        work.mkdir(parents=True)
        write_result(work, result)
    assert '"fps": Infinity' in (folder / "work" / "cell-0000-1" / "id1" / "result.json").read_text()
    store = str(tmp_path / "store")

    def command(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [venv_bin("ablation"), *argv], capture_output=True, text=True, check=False, cwd=tmp_path
        )

    harvested = command("harvest", "--sweep", str(folder), "--store", store, "--no-reference")
    assert harvested.returncode == 1, harvested.stderr
    assert "fps = inf is not a finite number (valid: > 0)" in harvested.stderr
    assert "bbox_mAP = 40.0 is out of range (valid: [0, 1])" in harvested.stderr
    exported = command("export", "--store", store, "--format", "csv")
    assert exported.returncode == 0, exported.stderr  # the store holds nothing bad now
    rows = exported.stdout.splitlines()
    assert len(rows) == 1 + 4 and "internal error" not in exported.stderr
    reported = command("report", "--sweep", "mine", "--store", store, "--output", str(tmp_path / "r.html"))
    assert reported.returncode == 0 and "4 runs of 4 cells" in reported.stdout, reported.stderr
