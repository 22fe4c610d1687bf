"""The results table and its markdown, CSV and LaTeX exports, from frames read back from a real store."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ablation.errors import InputError
from ablation.results.export import FORMATS, ResultsTable, TableOptions, render, results_table, select
from ablation.results.records import RunRecord
from ablation.results.store import Store

BASE_HEADERS = (
    "Backbone",
    "Attention Component",
    "DCN",
    "Lr schd",
    "Mem (GB)",
    "Inf time (fps)",
    "box AP",
    "Config",
)


def run(code: str, dcn: bool, **figures: Any) -> RunRecord:
    """A done run of the cell (code, dcn) in sweep 'paper', from the reference numbers unless told."""
    defaults: dict[str, Any] = {
        "sweep": "paper",
        "cell": f"{code}-{'dcn' if dcn else 'plain'}",
        "run_id": "r1",
        "source": "reference",
        "backbone": "R-50",
        "schedule": "1x",
        "finished": datetime(2024, 1, 1, tzinfo=UTC),
    }
    defaults.update(figures)
    return RunRecord(code=code, dcn=dcn, **defaults)


def zoo(**figures: Any) -> list[RunRecord]:
    """mmdetection's published empirical-attention and baseline numbers (Faster R-CNN R-50 1x)."""
    cuda = {"memory_kind": "cuda_peak_allocated", **figures}
    return [
        run("1111", False, memory_gb=8.0, fps=13.8, bbox_mAP=0.400, **cuda),
        run("0010", False, memory_gb=4.2, fps=18.4, bbox_mAP=0.391, **cuda),
        run("1111", True, memory_gb=8.0, fps=12.7, bbox_mAP=0.421, **cuda),
        run("0010", True, memory_gb=4.2, fps=17.1, bbox_mAP=0.420, **cuda),
        run("0000", False, fps=21.4, bbox_mAP=0.374, **figures),
        run("0000", True, bbox_mAP=0.413, **figures),
    ]


def stored(tmp_path: Path, records: list[RunRecord]) -> pd.DataFrame:
    store = Store(tmp_path / "store")
    for record in records:
        store.put(record)
    return store.read().frame()


def framed(records: list[RunRecord]) -> pd.DataFrame:
    return pd.DataFrame([dataclasses.asdict(r) for r in records])


def column(table: ResultsTable, header: str) -> list[str]:
    i = table.headers.index(header)
    return [row[i] for row in table.rows]


def md_cells(text: str) -> list[list[str]]:
    """The stripped cells of a markdown table's lines (escaped pipes kept as one cell)."""
    lines = text.rstrip("\n").split("\n")
    return [[c.strip() for c in line[1:-1].replace("\\|", "\0").split("|")] for line in lines]


# --- the table ------------------------------------------------------------------------------------------


def test_reference_rows_in_the_mmdetection_layout(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()))
    assert table.headers == BASE_HEADERS
    assert table.left_out == 0
    body = [row[:7] for row in table.rows]
    assert body == [
        ("R-50", "0000", "N", "1x", "-", "21.4", "37.4"),
        ("R-50", "0000", "Y", "1x", "-", "-", "41.3"),
        ("R-50", "0010", "N", "1x", "4.2", "18.4", "39.1"),
        ("R-50", "0010", "Y", "1x", "4.2", "17.1", "42.0"),
        ("R-50", "1111", "N", "1x", "8.0", "13.8", "40.0"),
        ("R-50", "1111", "Y", "1x", "8.0", "12.7", "42.1"),
    ]
    assert column(table, "Config") == ["-"] * 6


def test_a_frame_built_from_records_reads_alike(tmp_path: Path) -> None:
    assert results_table(framed(zoo())) == results_table(stored(tmp_path, zoo()))


def test_sweep_column_only_with_several_sweeps(tmp_path: Path) -> None:
    other = [dataclasses.replace(r, sweep="again") for r in zoo()[:2]]
    table = results_table(stored(tmp_path, zoo() + other))
    assert table.headers == ("Sweep", *BASE_HEADERS)
    assert [(row[0], row[2], row[3]) for row in table.rows] == [
        ("again", "0010", "N"),
        ("again", "1111", "N"),
        ("paper", "0000", "N"),
        ("paper", "0000", "Y"),
        ("paper", "0010", "N"),
        ("paper", "0010", "Y"),
        ("paper", "1111", "N"),
        ("paper", "1111", "Y"),
    ]
    single = results_table(stored(tmp_path / "one", zoo()))
    assert "Sweep" not in single.headers


def test_source_column_with_several_sources_keeps_both_runs_of_a_cell(tmp_path: Path) -> None:
    mine = run("1111", False, source="run", run_id="a", bbox_mAP=0.398)
    table = results_table(stored(tmp_path, [*zoo()[:1], mine]))
    assert table.headers[:2] == ("Source", "Backbone")
    assert [(row[0], row[7]) for row in table.rows] == [("run", "39.8"), ("reference", "40.0")]


def test_latest_run_of_a_cell_wins_and_the_rest_are_counted(tmp_path: Path) -> None:
    def at(day: int | None) -> datetime | None:
        return None if day is None else datetime(2024, 3, day, tzinfo=UTC)

    runs = [
        run("0010", False, source="run", run_id="b", finished=at(2), bbox_mAP=0.385),
        run("0010", False, source="run", run_id="a", finished=at(5), bbox_mAP=0.391),  # latest
        run("0010", False, source="run", run_id="c", finished=None, bbox_mAP=0.300),  # NA: oldest
        run("1111", False, source="run", run_id="x", finished=at(1), bbox_mAP=0.399),
        run("1111", False, source="run", run_id="y", finished=at(1), bbox_mAP=0.401),  # tie: last id
        run("0000", False, source="run", run_id="z", status="failed", bbox_mAP=None),
        run("0000", True, source="run", run_id="z", status="running", finished=None),
    ]
    table = results_table(stored(tmp_path, runs))
    assert [(row[1], row[6]) for row in table.rows] == [("0010", "39.1"), ("1111", "40.1")]
    assert table.left_out == 5


def test_failed_runs_are_left_out_even_when_newer(tmp_path: Path) -> None:
    done = run("1111", True, run_id="a", bbox_mAP=0.421)
    failed = run("1111", True, run_id="b", status="failed", finished=datetime(2025, 1, 1, tzinfo=UTC))
    table = results_table(stored(tmp_path, [done, failed]))
    assert column(table, "box AP") == ["42.1"]
    assert table.left_out == 1


def test_missing_values_show_as_a_dash(tmp_path: Path) -> None:
    bare = RunRecord(sweep="s", cell="c", run_id="r", source="run")
    frame = stored(tmp_path, [bare])
    for table in (results_table(frame), results_table(framed([bare]))):
        assert table.rows == (("-",) * len(BASE_HEADERS),)
        assert table.values == ((None,) * len(BASE_HEADERS),)
    nan = framed([run("1111", False, bbox_mAP=0.4)])
    nan["fps"] = float("nan")
    nan["backbone"] = pd.NA
    assert results_table(nan).rows[0][:7] == ("-", "1111", "N", "1x", "-", "-", "40.0")


def test_cpu_memory_is_marked(tmp_path: Path) -> None:
    runs = [
        run("1111", False, memory_gb=3.25, memory_kind="cpu_peak_rss"),
        run("1111", True, memory_gb=8.0, memory_kind="cuda_peak_allocated"),
        run("0010", False, memory_gb=4.2),  # kind unknown: no mark
    ]
    table = results_table(stored(tmp_path, runs))
    assert column(table, "Mem (GB)") == ["4.2", "3.2 (CPU RSS)", "8.0"]
    assert [row[4] for row in table.values] == [4.2, 3.25, 8.0]


def test_delta_against_the_baseline_with_the_same_dcn(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()), TableOptions(baseline="0000"))
    assert table.headers == (*BASE_HEADERS[:7], "Δ box AP", "Config")
    assert column(table, "Δ box AP") == ["+0.0", "+0.0", "+1.7", "+0.7", "+2.6", "+0.8"]
    assert column(table, "box AP") == ["37.4", "41.3", "39.1", "42.0", "40.0", "42.1"]
    deltas = [row[7] for row in table.values]
    assert deltas[4] == pytest.approx(2.6)


def test_delta_is_a_dash_without_a_baseline_in_the_group(tmp_path: Path) -> None:
    records = [r for r in zoo() if (r.code, r.dcn) != ("0000", True)]
    records.append(run("0000", True, sweep="elsewhere", bbox_mAP=0.413))  # another sweep: not a baseline
    records.append(run("0010", True, source="run", run_id="mine", bbox_mAP=0.42))  # no run-source baseline
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    got = {(r[0], r[1], r[3], r[4]): r[table.headers.index("Δ box AP")] for r in table.rows}
    assert got[("paper", "reference", "0010", "N")] == "+1.7"
    assert got[("paper", "reference", "0010", "Y")] == "-"
    assert got[("paper", "run", "0010", "Y")] == "-"
    assert got[("elsewhere", "reference", "0000", "Y")] == "+0.0"


def test_delta_against_a_nonzero_baseline_can_be_negative(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()), TableOptions(baseline="1111"))
    assert column(table, "Δ box AP") == ["-2.6", "-0.8", "-0.9", "-0.1", "+0.0", "+0.0"]


def test_bad_baseline_code_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="attention code"):
        results_table(stored(tmp_path, zoo()), TableOptions(baseline="12"))


def test_breakdown_and_complexity_columns(tmp_path: Path) -> None:
    record = run(
        "1111",
        False,
        bbox_mAP=0.400,
        bbox_mAP_50=0.613,
        bbox_mAP_75=0.435,
        bbox_mAP_s=0.237,
        bbox_mAP_m=0.439,
        bbox_mAP_l=0.519,
        flops=215.5e9,
        params=41_748_003,
        config="configs/empirical_attention/faster-rcnn_r50-attn1111_fpn_1x_coco.py",
    )
    options = TableOptions(breakdown=True, complexity=True, baseline="0000")
    table = results_table(stored(tmp_path, [record]), options)
    assert table.headers == (
        *BASE_HEADERS[:7],
        "Δ box AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "GFLOPs",
        "Params (M)",
        "Config",
    )
    assert table.rows[0][6:] == (
        "40.0",
        "-",
        "61.3",
        "43.5",
        "23.7",
        "43.9",
        "51.9",
        "215.5",
        "41.75",
        "[config](configs/empirical_attention/faster-rcnn_r50-attn1111_fpn_1x_coco.py)",
    )
    assert table.values[0][-3:] == pytest.approx(
        (215.5, 41.748003, "configs/empirical_attention/faster-rcnn_r50-attn1111_fpn_1x_coco.py")
    )


def test_config_under_the_current_directory_is_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runs = [
        run("1111", False, config=str(tmp_path / "configs" / "a.py")),
        run("1111", True, config="/elsewhere/b.py"),
        run("0010", False, config="https://download.openmmlab.com/x.py"),
        run("0010", True, config=str(tmp_path / "my configs" / "c (v2).py")),
    ]
    table = results_table(stored(tmp_path, runs))
    assert column(table, "Config") == [
        "[config](https://download.openmmlab.com/x.py)",
        "[config](<my configs/c (v2).py>)",
        "[config](configs/a.py)",
        "[config](/elsewhere/b.py)",
    ]


def test_nothing_done_gives_headers_only(tmp_path: Path) -> None:
    empty = Store(tmp_path / "none").read().frame()
    failed = stored(tmp_path, [run("1111", False, status="failed")])
    for frame, left_out in ((empty, 0), (failed, 1)):
        table = results_table(frame)
        assert (table.headers, table.rows, table.values, table.left_out) == (BASE_HEADERS, (), (), left_out)
        assert md_cells(render(table, "markdown"))[0] == list(BASE_HEADERS)
        assert len(render(table, "markdown").splitlines()) == 2
        assert list(csv.reader(io.StringIO(render(table, "csv")))) == [list(BASE_HEADERS)]
        assert render(table, "latex").splitlines()[-3:] == [r"\midrule", r"\bottomrule", r"\end{tabular}"]
    assert results_table(pd.DataFrame()).rows == ()


# --- formats --------------------------------------------------------------------------------------------


def test_markdown_is_aligned_and_centred(tmp_path: Path) -> None:
    text = render(results_table(stored(tmp_path, zoo())), "markdown")
    lines = text.splitlines()
    assert text.endswith("\n")
    assert len({len(line) for line in lines}) == 1
    pipes = {tuple(i for i, c in enumerate(line) if c == "|") for line in lines}
    assert len(pipes) == 1
    assert all(cell.startswith(":-") and cell.endswith("-:") for cell in md_cells(text)[1])
    assert md_cells(text)[0] == list(BASE_HEADERS)
    assert md_cells(text)[6][:7] == ["R-50", "1111", "N", "1x", "8.0", "13.8", "40.0"]
    assert "|   R-50   |" in lines[2]
    assert render(results_table(stored(tmp_path, zoo())), "markdown") == text  # deterministic


def test_markdown_escapes_pipes(tmp_path: Path) -> None:
    record = run("1111", False, backbone="R|50", config="a|b.py")
    text = render(results_table(stored(tmp_path, [record])), "markdown")
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1
    assert "R\\|50" in lines[2]
    cells = md_cells(text)[2]
    assert len(cells) == len(BASE_HEADERS)
    assert cells[0] == "R\0" + "50"
    assert cells[-1] == "[config](a\0b.py)"


def test_csv_parses_back_to_unrounded_numbers(tmp_path: Path) -> None:
    records = zoo()
    records[0] = dataclasses.replace(records[0], bbox_mAP=0.40049, config="configs/x.py")
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000", complexity=True))
    text = render(table, "csv")
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(table.headers)
    top = rows[4]  # 1111 without DCN
    assert (top["Attention Component"], top["DCN"]) == ("1111", "N")
    assert float(top["box AP"]) == pytest.approx(40.049)
    assert float(top["Δ box AP"]) == pytest.approx(40.049 - 37.4)
    assert float(top["Mem (GB)"]) == 8.0
    assert float(top["Inf time (fps)"]) == 13.8
    assert top["Config"] == "configs/x.py"
    assert (top["GFLOPs"], top["Params (M)"]) == ("", "")
    assert rows[1]["Inf time (fps)"] == ""
    assert rows[1]["Mem (GB)"] == ""
    assert table.rows[4][6] == "40.0"


def test_latex_is_booktabs_without_config_and_escaped(tmp_path: Path) -> None:
    records = [*zoo()[:2], run("1111", False, sweep="lr_5%", memory_gb=2.0, memory_kind="cpu_peak_rss")]
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    text = render(table, "latex")
    lines = text.splitlines()
    assert lines[0] == r"\begin{tabular}{lllllrrrr}"
    assert lines[1:4] == [
        r"\toprule",
        r"Sweep & Backbone & Attention Component & DCN & Lr schd & Mem (GB) & Inf time (fps) & box AP & "
        r"$\Delta$ box AP \\",
        r"\midrule",
    ]
    assert lines[4] == r"lr\_5\% & R-50 & 1111 & N & 1x & 2.0 (CPU RSS) & - & - & - \\"
    assert lines[5] == r"paper & R-50 & 0010 & N & 1x & 4.2 & 18.4 & 39.1 & - \\"
    assert lines[-2:] == [r"\bottomrule", r"\end{tabular}"]
    assert "config" not in text.lower()


def test_latex_escapes_every_special_character() -> None:
    special = "a&b%c$d#e_f{g}h~i^j\\k"
    table = ResultsTable(headers=("Sweep",), rows=((special,),), values=((special,),), left_out=0)
    line = render(table, "latex").splitlines()[4]
    assert line == (r"a\&b\%c\$d\#e\_f\{g\}h\textasciitilde{}i\textasciicircum{}j\textbackslash{}k \\")


def test_unknown_format_names_the_valid_ones(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()))
    assert FORMATS == ("markdown", "csv", "latex")
    with pytest.raises(InputError) as error:
        render(table, "html")
    assert "'html'" in str(error.value)
    assert all(fmt in str(error.value) for fmt in FORMATS)


# --- select ---------------------------------------------------------------------------------------------


def test_select_filters_sweeps_and_sources(tmp_path: Path) -> None:
    records = [
        *zoo()[:2],
        run("1111", False, sweep="b", source="run", run_id="x"),
        run("0010", False, sweep="b", source="log", run_id="y"),
    ]
    frame = stored(tmp_path, records)
    assert len(select(frame)) == 4
    assert sorted(select(frame, sweeps=["b"])["run_id"]) == ["x", "y"]
    assert list(select(frame, sweeps=["b"], sources=["log"])["run_id"]) == ["y"]
    assert sorted(select(frame, sources=["reference", "run"])["sweep"]) == ["b", "paper", "paper"]
    assert len(select(frame, sweeps=["paper"], sources=["log"])) == 0
    table = results_table(select(frame, sweeps=["paper"]))
    assert "Sweep" not in table.headers
    assert len(table.rows) == 2


def test_select_unknown_source_is_a_one_line_input_error(tmp_path: Path) -> None:
    frame = stored(tmp_path, zoo())
    with pytest.raises(InputError) as error:
        select(frame, sources=["reference", "paper"])
    message = str(error.value)
    assert "\n" not in message
    assert "'paper'" in message
    assert all(name in message for name in ("run", "log", "reference"))


def test_select_unknown_sweep_names_the_stores_sweeps(tmp_path: Path) -> None:
    frame = stored(tmp_path, [*zoo(), run("1111", False, sweep="zeta")])
    with pytest.raises(InputError) as error:
        select(frame, sweeps=["papr"])
    message = str(error.value)
    assert "\n" not in message
    assert "'papr'" in message
    assert "paper, zeta" in message
    empty = Store(tmp_path / "empty").read().frame()
    with pytest.raises(InputError, match="none"):
        select(empty, sweeps=["paper"])
