"""The Python API (``ablation.open_store``, ``effects``, ``results_table``, ``status``) and ``ablation
effects``: what a notebook and a terminal get, and that they agree with the report."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pandas as pd
import pytest

import ablation
from ablation.analysis.effects_text import effects_rows
from ablation.analysis.report import build_report
from ablation.results.store import locate

from .helpers.cli import REPO, run_cli
from .helpers.store import grid_runs, record, store_with

README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_python() -> str:
    (block,) = re.findall(r"```python\n(.*?)```", README, re.S)
    return block


def test_the_readme_s_python_example_runs_on_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store_with(tmp_path / "runs", grid_runs("study"))
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_python(), "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0] == "32 runs"
    assert lines[1].startswith("Lenth's method on the 31 effects") and "AP points" in lines[1]
    assert "key content only" in printed.getvalue()


def test_the_public_api_is_what_dir_and_all_show() -> None:
    for name in ("open_store", "effects", "results_table", "status", "ResultStore", "Runs", "metric"):
        assert name in ablation.__all__ and name in dir(ablation)
    for name in ablation.errors.__all__:  # every exception
        assert getattr(ablation, name) is getattr(ablation.errors, name)
    assert "importlib" not in dir(ablation)
    assert ablation.open_store.__doc__ and ablation.effects.__doc__


def test_a_store_read_with_pandas_holds_each_run_once(tmp_path: Path) -> None:
    store = store_with(tmp_path, grid_runs("study"))
    store.read()  # writes the cache beside the run files
    assert len(pd.read_parquet(store.path)) == 32
    assert len(ablation.open_store(store.path).runs(sweep="study")) == 32


def test_the_store_location_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert locate() == Path("runs/store")
    assert locate(root=tmp_path) == tmp_path / "store"
    monkeypatch.setenv("ABLATION_ROOT", str(tmp_path / "r"))
    assert locate() == tmp_path / "r" / "store"
    monkeypatch.setenv("ABLATION_STORE", str(tmp_path / "s"))
    assert locate() == tmp_path / "s" and locate(tmp_path / "x") == tmp_path / "x"
    (tmp_path / "file").write_text("", encoding="utf-8")
    with pytest.raises(ablation.InputError, match="is a file, not a results store"):
        ablation.open_store(tmp_path / "file")


def test_runs_latest_and_all(tmp_path: Path) -> None:
    older = record("0000", False, sweep="study", run_id="r0", bbox_mAP=0.1, status="failed")
    store = ablation.open_store(store_with(tmp_path, [*grid_runs("study"), older]).path)
    assert len(store.runs(sweep="study")) == 32
    assert len(store.runs(sweep="study", latest=False)) == 33
    with pytest.raises(ablation.InputError, match="unknown sweep 'nope'; sweeps in the store: study"):
        store.runs(sweep="nope")


def test_effects_refuse_a_frame_of_two_sweeps_naming_them(tmp_path: Path) -> None:
    store = ablation.open_store(store_with(tmp_path, [*grid_runs("a"), *grid_runs("b")]).path)
    with pytest.raises(ablation.InputError, match=r"the runs are of 2 sweeps \(a, b\)"):
        ablation.effects(store.runs())
    with pytest.raises(ablation.InputError, match="metric: unknown metric 'mAP'"):
        ablation.effects(store.runs(sweep="a"), metric="mAP")


def test_results_table_takes_options_as_keywords(tmp_path: Path) -> None:
    runs = ablation.open_store(store_with(tmp_path, grid_runs("study")).path).runs()
    table = ablation.results_table(runs, breakdown=True, baseline="0000")
    assert "AP50" in table.headers and "Δ box AP" in table.headers
    with pytest.raises(ablation.InputError, match="valid: breakdown, complexity"):
        ablation.results_table(runs, colour=True)


def test_ablation_effects_prints_what_the_report_shows(tmp_path: Path) -> None:
    store = store_with(tmp_path, grid_runs("study"))
    code, out, err = run_cli("effects", "--sweep", "study", "--store", str(store.path))
    assert (code, err) == (0, "")
    html = build_report(store.read().frame(), "study").html
    runs = ablation.open_store(store.path).select(sweep="study")
    for found in runs.analyses():
        assert f"effects on {found.metric.name} ({found.metric.unit}" in out
        for label, effect, interval, resolved in effects_rows(found.result):
            assert f"| {label} | {effect} | {interval} | {resolved} |" in out
            assert f"<td>{effect}</td><td>{interval}</td><td>{resolved}</td>" in html
    assert "Lenth's method over m = 31 effects: PSE" in out


def test_ablation_effects_of_one_metric_as_csv_and_latex(tmp_path: Path) -> None:
    store = store_with(tmp_path, grid_runs("study"))
    code, out, _ = run_cli("effects", "--sweep", "study", "--store", str(store.path), "--metric", "box AP",
                           "--format", "csv")  # fmt: skip
    assert code == 0
    rows = out.splitlines()
    assert rows[0].startswith("design,metric,unit,order,factor,within,effect") and len(rows) == 1 + 31
    assert "study (run),box AP,AP points,1,key content only,every cell,2," in out
    code, out, _ = run_cli("effects", "--sweep", "study", "--store", str(store.path), "--metric", "fps",
                           "--format", "latex")  # fmt: skip
    assert code == 0 and out.startswith("\\begin{table}") and "effects on fps (img/s)" in out


def test_ablation_effects_errors_name_the_flag_and_the_valid_values(tmp_path: Path) -> None:
    store = store_with(tmp_path, grid_runs("study"))
    code, _, err = run_cli("effects", "--sweep", "nope", "--store", str(store.path))
    assert (code, err) == (2, "error: unknown sweep 'nope'; sweeps in the store: study\n")
    code, _, err = run_cli("effects", "--sweep", "study", "--metric", "mAP", "--store", str(store.path))
    assert code == 2 and "invalid choice: 'mAP' (choose from 'memory', 'fps', 'box AP', 'GFLOPs')" in err


def test_status_is_the_status_table_as_a_frame(tmp_path: Path) -> None:
    table = ablation.status("smoke", root=tmp_path)
    assert list(table.columns[:3]) == ["cell", "code", "dcn"]
    assert set(table["state"]) == {"planned"} and len(table) == 32
    assert "box AP" in table.columns
