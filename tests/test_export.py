"""The results table and its markdown, CSV and LaTeX exports, from frames read back from a real store."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ablation.errors import InputError
from ablation.results.export import FORMATS, render
from ablation.results.records import RunRecord
from ablation.results.select import select
from ablation.results.store import Store
from ablation.results.table import ResultsTable, TableOptions, results_table

from .helpers.cli import run_cli
from .helpers.store import axis_runs, framed, record, stored

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
# ... and with a memory figure in some row, what it measured in a column right after it
MEM_HEADERS = (*BASE_HEADERS[:5], "Mem kind", *BASE_HEADERS[5:])
CUDA = "CUDA peak allocated"


PAPER = {"sweep": "paper", "source": "reference", "backbone": "R-50", "schedule": "1x"}


def run(code: str, dcn: bool, **figures: Any) -> RunRecord:
    """A done run of the cell (code, dcn) in sweep 'paper', from the reference numbers unless told."""
    return record(code, dcn, **{"cell": f"{code}-{'dcn' if dcn else 'plain'}", **PAPER, **figures})


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
    assert table.headers == MEM_HEADERS
    assert table.left_out == 0
    body = [row[:8] for row in table.rows]
    assert body == [
        ("R-50", "0000", "N", "1x", "-", "-", "21.4", "37.4"),
        ("R-50", "0000", "Y", "1x", "-", "-", "-", "41.3"),
        ("R-50", "0010", "N", "1x", "4.20", CUDA, "18.4", "39.1"),
        ("R-50", "0010", "Y", "1x", "4.20", CUDA, "17.1", "42.0"),
        ("R-50", "1111", "N", "1x", "8.00", CUDA, "13.8", "40.0"),
        ("R-50", "1111", "Y", "1x", "8.00", CUDA, "12.7", "42.1"),
    ]
    assert column(table, "Config") == ["-"] * 6


def test_a_frame_built_from_records_reads_alike(tmp_path: Path) -> None:
    assert results_table(framed(zoo())) == results_table(stored(tmp_path, zoo()))


def test_sweep_column_only_with_several_sweeps(tmp_path: Path) -> None:
    other = [dataclasses.replace(r, sweep="again") for r in zoo()[:2]]
    table = results_table(stored(tmp_path, zoo() + other))
    assert table.headers == ("Sweep", *MEM_HEADERS)
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
    assert [(row[0], row[8]) for row in table.rows] == [("run", "39.8"), ("reference", "40.0")]


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
        run("0010", False, memory_gb=4.2),  # kind unknown: no label
    ]
    table = results_table(stored(tmp_path, runs))
    assert table.headers == MEM_HEADERS
    assert column(table, "Mem (GB)") == ["4.20", "3.25", "8.00"]
    assert column(table, "Mem kind") == ["-", "CPU peak RSS", CUDA]
    assert [row[4:6] for row in table.values] == [(4.2, None), (3.25, "CPU peak RSS"), (8.0, CUDA)]


def test_delta_against_the_baseline_with_the_same_dcn(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()), TableOptions(baseline="0000"))
    assert table.headers == (*MEM_HEADERS[:8], "Δ box AP", "Config")
    # one run a side: no interval, marked; the baseline rows themselves are no difference
    assert column(table, "Δ box AP") == ["+0.0", "+0.0", "+1.7 †", "+0.7 †", "+2.6 †", "+0.8 †"]
    assert table.no_interval == (False, False, True, True, True, True)
    assert table.note == NOTE_NO_REPLICATES
    assert column(table, "box AP") == ["37.4", "41.3", "39.1", "42.0", "40.0", "42.1"]
    deltas = [row[8] for row in table.values]
    assert deltas[4] == pytest.approx(2.6)
    assert results_table(stored(tmp_path / "plain", zoo())).no_interval is None  # no baseline, no marks


def test_delta_is_a_dash_without_a_baseline_in_the_group(tmp_path: Path) -> None:
    records = [r for r in zoo() if (r.code, r.dcn) != ("0000", True)]
    records.append(run("0000", True, sweep="elsewhere", bbox_mAP=0.413))  # another sweep: not a baseline
    records.append(run("0010", True, source="run", run_id="mine", bbox_mAP=0.42))  # no run-source baseline
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    got = {(r[0], r[1], r[3], r[4]): r[table.headers.index("Δ box AP")] for r in table.rows}
    assert got[("paper", "reference", "0010", "N")] == "+1.7 †"
    assert got[("paper", "reference", "0010", "Y")] == "-"
    assert got[("paper", "run", "0010", "Y")] == "-"
    assert got[("elsewhere", "reference", "0000", "Y")] == "+0.0"


def test_delta_against_a_nonzero_baseline_can_be_negative(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, zoo()), TableOptions(baseline="1111"))
    assert column(table, "Δ box AP") == ["-2.6 †", "-0.8 †", "-0.9 †", "-0.1 †", "+0.0", "+0.0"]


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
        (215.5, 41.75, "configs/empirical_attention/faster-rcnn_r50-attn1111_fpn_1x_coco.py")
    )


def test_timing_columns_are_the_stages_seconds_and_the_mean_over_replicates(tmp_path: Path) -> None:
    seconds = dict(train_s=90.04, test_s=2.0, fps_s=0.56, flops_s=0.44)
    plain = run("0010", False, source="run", **seconds)
    first, second = (
        run("1111", False, source="run", run_id=f"r{seed}", seed=seed, train_s=train, test_s=3.0)
        for seed, train in ((0, 100.0), (1, 110.0))
    )
    table = results_table(stored(tmp_path, [plain, first, second]), TableOptions(timing=True))
    timing = table.headers.index("Train (s)")
    assert table.headers[timing : timing + 5] == ("Train (s)", "Test (s)", "fps (s)", "FLOPs (s)", "Config")
    assert [row[timing : timing + 4] for row in table.rows] == [
        ("90.0", "2.0", "0.6", "0.4"),
        ("105.0", "3.0", "-", "-"),  # seconds are means, with no spread; a stage not timed is missing
    ]
    assert "Train (s)" not in results_table(stored(tmp_path, [plain]), TableOptions()).headers


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
        assert render(table, "latex").splitlines()[-4:] == [
            r"\midrule",
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
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
    assert md_cells(text)[0] == list(MEM_HEADERS)
    assert md_cells(text)[6][:8] == ["R-50", "1111", "N", "1x", "8.00", CUDA, "13.8", "40.0"]
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


def test_csv_holds_the_numbers_rounded_as_shown(tmp_path: Path) -> None:
    records = zoo()
    records[0] = dataclasses.replace(records[0], bbox_mAP=0.40049, config="configs/x.py")
    records[2] = dataclasses.replace(records[2], bbox_mAP=0.422)  # 100 * 0.422 is 42.199999999999996
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000", complexity=True))
    text = render(table, "csv")
    assert "\r" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    delta = table.headers.index("Δ box AP") + 1
    assert list(rows[0]) == [*table.headers[:delta], "Δ box AP no interval", *table.headers[delta:]]
    top = rows[4]  # 1111 without DCN
    assert (top["Attention Component"], top["DCN"]) == ("1111", "N")
    assert top["box AP"] == "40.0"  # 40.049 as the table shows it
    assert top["Δ box AP"] == "2.6"  # 40.049 - 37.4 as the table shows it: the number, the mark apart
    assert [r["Δ box AP no interval"] for r in rows] == ["", "", "yes", "yes", "yes", "yes"]
    assert (rows[5]["box AP"], rows[5]["Δ box AP"]) == ("42.2", "0.9")
    assert (top["Mem (GB)"], top["Mem kind"]) == ("8.0", CUDA)
    assert top["Inf time (fps)"] == "13.8"
    assert top["Config"] == "configs/x.py"
    assert (top["GFLOPs"], top["Params (M)"]) == ("", "")
    assert rows[1]["Inf time (fps)"] == ""
    assert (rows[1]["Mem (GB)"], rows[1]["Mem kind"]) == ("", "")
    assert table.rows[4][7] == "40.0"


def test_latex_is_booktabs_without_config_and_escaped(tmp_path: Path) -> None:
    records = [*zoo()[:2], run("1111", False, sweep="lr_5%", memory_gb=2.0, memory_kind="cpu_peak_rss")]
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    text = render(table, "latex")
    lines = text.splitlines()
    assert lines[:4] == [
        r"\begin{table}",
        r"\centering",
        r"\caption{Sweeps lr\_5\%, paper: 3 runs of 3 cells.}",
        r"\begin{tabular}{lllllrlrrr}",
    ]
    assert lines[4:7] == [
        r"\toprule",
        r"Sweep & Backbone & Attention Component & DCN & Lr schd & Mem (GB) & Mem kind & Inf time (fps) & "
        r"box AP & $\Delta$ box AP \\",
        r"\midrule",
    ]
    assert lines[7] == r"lr\_5\% & R-50 & 1111 & N & 1x & 2.00 & CPU peak RSS & - & - & - \\"
    assert lines[8] == r"paper & R-50 & 0010 & N & 1x & 4.20 & CUDA peak allocated & 18.4 & 39.1 & - \\"
    assert lines[-3:] == [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    assert "config" not in text.lower()


def test_latex_escapes_every_special_character() -> None:
    special = "a&b%c$d#e_f{g}h~i^j\\k"
    table = ResultsTable(headers=("Sweep",), rows=((special,),), values=((special,),), left_out=0)
    line = render(table, "latex").splitlines()[6]  # a table without a caption has no \caption line
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


# --- replicates -----------------------------------------------------------------------------------------

# Student's t's 0.975 quantiles for 2 and 4 degrees of freedom: (2p - 1) / sqrt(2p(1 - p)) in closed form for
# 2, and the printed tables' value for 4.
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
T975_DF4 = 2.776445105

# Three seeds of each cell: (box AP, fps) per seed, and memory.
REPLICATES = {
    "0000": ([0.370, 0.372, 0.374], [20.0, 21.0, 22.0], 4.0),
    "1111": ([0.400, 0.402, 0.404], [13.0, 13.5, 14.0], 8.0),
    "0010": ([0.366, 0.371, 0.380], [18.0, 18.0, 18.0], 4.2),
}
NOTE_CI = (
    "±: half-width of the 95% confidence interval of the mean of a row's n runs (Student's t, n-1 degrees of "
    "freedom); figures are means of the runs that have them, without ± where one run has."
)
NOTE_SD = (
    "±: sample standard deviation of a row's n runs (n-1 in the denominator); figures are means of the runs "
    "that have them, without ± where one run has."
)
NOTE_DELTA = (
    " Δ box AP ±: half-width of Welch's 95% interval of the difference to the baseline row's mean; (ns): the "
    "interval contains 0."
)
NOTE_NO_REPLICATES = (
    "†: no interval, a side of the difference has one run; no row has replicates to tell the seed-to-seed "
    "noise of box AP."
)


def seeded(
    codes: tuple[str, ...] = ("0000", "1111"), seeds: tuple[int, ...] = (0, 1, 2), **more: Any
) -> list:
    """The cells ``codes`` of sweep 'paper', run once per seed, with the figures of REPLICATES."""
    records = []
    for code in codes:
        aps, fps, memory = REPLICATES[code]
        for seed in seeds:
            records.append(
                run(
                    code,
                    False,
                    source="run",
                    seed=seed,
                    cell_id=f"id{code}",
                    run_id=f"id{code}-s{seed}",
                    bbox_mAP=aps[seed],
                    fps=fps[seed],
                    memory_gb=memory,
                    memory_kind="cuda_peak_allocated",
                    config=f"configs/c{code}-s{seed}.py",
                    **more,
                )
            )
    return records


def test_one_run_per_cell_is_todays_table_in_every_format(tmp_path: Path) -> None:
    """Seeded runs, one per cell, give the table an unseeded store gives, byte for byte."""
    from ablation.results.modelzoo import load_reference

    plain = stored(tmp_path / "plain", zoo())
    single = stored(tmp_path / "single", [dataclasses.replace(r, seed=0, cell_id="id") for r in zoo()])
    for options in (
        TableOptions(),
        TableOptions(baseline="0000", breakdown=True, complexity=True, spread="sd"),
    ):
        for fmt in FORMATS:
            assert render(results_table(single, options), fmt) == render(results_table(plain, options), fmt)
    table = results_table(single, TableOptions(baseline="0000"))
    assert (table.spreads, table.spread_headers, table.note, table.axes) == ((), (), NOTE_NO_REPLICATES, ())
    assert "n" not in table.headers and "±" not in render(table, "markdown")
    golden = (Path(__file__).parent / "golden" / "export-reference.md").read_text()
    assert render(results_table(stored(tmp_path / "zoo", load_reference())), "markdown") == golden


def test_replicates_in_markdown(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, seeded()))
    assert results_table(framed(seeded())) == table  # a frame built by hand: seeds as floats
    assert table.headers == (*MEM_HEADERS[:8], "n", "Config")
    assert table.left_out == 0
    assert render(table, "markdown") == (
        "| Backbone | Attention Component | DCN | Lr schd | Mem (GB) |       Mem kind      | Inf time (fps) |"
        "   box AP   |  n  |             Config            |\n"
        "| :------: | :-----------------: | :-: | :-----: | :------: | :-----------------: | :------------: |"
        " :--------: | :-: | :---------------------------: |\n"
        "|   R-50   |         0000        |  N  |    1x   |   4.00   | CUDA peak allocated |   21.0 ± 2.5   |"
        " 37.2 ± 0.5 |  3  | [config](configs/c0000-s0.py) |\n"
        "|   R-50   |         1111        |  N  |    1x   |   8.00   | CUDA peak allocated |   13.5 ± 1.2   |"
        " 40.2 ± 0.5 |  3  | [config](configs/c1111-s0.py) |\n"
        "\n" + NOTE_CI + "\n"
    )


def test_replicates_in_csv_and_latex(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, seeded()))
    assert render(table, "csv") == (
        "Backbone,Attention Component,DCN,Lr schd,Mem (GB),Mem kind,Inf time (fps),Inf time (fps) ±,box AP,"
        "box AP ±,n,Config\n"
        "R-50,0000,N,1x,4.0,CUDA peak allocated,21.0,2.5,37.2,0.5,3,configs/c0000-s0.py\n"
        "R-50,1111,N,1x,8.0,CUDA peak allocated,13.5,1.2,40.2,0.5,3,configs/c1111-s0.py\n"
    )
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    # the half-widths are t(0.975, 2) * sd / sqrt(3): sd 1 and 0.5 fps, 0.2 AP, rounded as shown
    assert float(rows[0]["Inf time (fps) ±"]) == round(T975_DF2 / math.sqrt(3), 1)
    assert float(rows[1]["Inf time (fps) ±"]) == round(0.5 * T975_DF2 / math.sqrt(3), 1)
    assert float(rows[1]["box AP ±"]) == round(0.2 * T975_DF2 / math.sqrt(3), 1)
    assert render(table, "latex") == (
        "\\begin{table}\n"
        "\\centering\n"
        "\\caption{Sweep paper: 6 runs of 2 cells.}\n"
        "\\begin{tabular}{llllrlrrr}\n"
        "\\toprule\n"
        "Backbone & Attention Component & DCN & Lr schd & Mem (GB) & Mem kind & Inf time (fps) & box AP & "
        "n \\\\\n"
        "\\midrule\n"
        "R-50 & 0000 & N & 1x & 4.00 & CUDA peak allocated & 21.0 $\\pm$ 2.5 & 37.2 $\\pm$ 0.5 & 3 \\\\\n"
        "R-50 & 1111 & N & 1x & 8.00 & CUDA peak allocated & 13.5 $\\pm$ 1.2 & 40.2 $\\pm$ 0.5 & 3 \\\\\n"
        "\\bottomrule\n"
        "\\end{tabular}\n"
        "\\end{table}\n"
    )


def test_spread_sd_shows_the_standard_deviation(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, seeded()), TableOptions(spread="sd"))
    assert column(table, "box AP") == ["37.2 ± 0.2", "40.2 ± 0.2"]
    assert column(table, "Inf time (fps)") == ["21.0 ± 1.0", "13.5 ± 0.5"]
    assert render(table, "markdown").endswith("\n\n" + NOTE_SD + "\n")
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [float(r["Inf time (fps) ±"]) for r in rows] == pytest.approx([1.0, 0.5])
    with pytest.raises(InputError, match="unknown spread 'iqr'; valid spreads: ci, sd"):
        results_table(stored(tmp_path / "again", seeded()), TableOptions(spread="iqr"))


def test_a_row_of_one_run_among_replicates_shows_its_value(tmp_path: Path) -> None:
    records = [*seeded(("1111",)), *seeded(("0000",), seeds=(0,))]
    records[1] = dataclasses.replace(records[1], fps=None)  # one fps fewer: a mean of two
    table = results_table(stored(tmp_path, records), TableOptions(breakdown=True))
    assert column(table, "n") == ["1", "3"]
    assert column(table, "box AP") == ["37.0", "40.2 ± 0.5"]
    assert column(table, "Inf time (fps)") == ["20.0", f"13.5 ± {0.5 * 12.706204736174707:.1f}"]
    assert column(table, "AP50") == ["-", "-"]
    assert table.spreads[0][table.headers.index("box AP")] is None


def test_baseline_difference_with_welchs_interval(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, seeded(("0000", "1111", "0010"))), TableOptions(baseline="0000"))
    assert table.headers == (*MEM_HEADERS[:8], "n", "Δ box AP", "Config")
    # 0010 - 0000: +0.03 with an interval that holds 0; 1111 - 0000: +3.0, se sqrt(2 * 0.2^2 / 3), df 4
    assert column(table, "Δ box AP") == ["+0.0", "+0.0 ± 1.6 (ns)", "+3.0 ± 0.5"]
    i = table.headers.index("Δ box AP")
    assert table.values[2][i] == 3.0
    assert table.spreads[2][i] == round(T975_DF4 * math.sqrt(2 * 0.2**2 / 3), 1)  # rounded as shown
    assert table.spreads[0][i] is None
    text = render(table, "markdown")
    assert text.endswith("\n\n" + NOTE_CI + NOTE_DELTA + "\n")
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [r["Δ box AP ±"] == "" for r in rows] == [True, False, False]
    assert "+0.0 $\\pm$ 1.6 (ns)" in render(table, "latex")
    # with sd, Δ keeps Welch's interval
    sd = results_table(
        stored(tmp_path / "sd", seeded(("0000", "1111"))), TableOptions(baseline="0000", spread="sd")
    )
    assert column(sd, "Δ box AP") == ["+0.0", "+3.0 ± 0.5"]


def test_baseline_of_one_run_gives_the_difference_alone(tmp_path: Path) -> None:
    records = [*seeded(("1111",)), *seeded(("0000",), seeds=(1,))]
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    assert column(table, "Δ box AP") == ["+0.0", "+3.0 †"]
    # the seed-to-seed sd the 1111 row's three runs measure: 0.2 AP points
    assert (
        table.note == NOTE_CI + NOTE_DELTA + " †: no interval, a side of the difference has one run; the "
        "seed-to-seed sd of a run's box AP, pooled over the rows with replicates, is 0.20 AP points."
    )


def test_the_no_interval_mark_is_where_a_side_has_one_run(tmp_path: Path) -> None:
    """† marks a difference exactly where its row or its baseline has one run, in every format; a difference
    of replicates on both sides is never marked."""
    records = [*seeded(("0000", "1111")), *seeded(("0010",), seeds=(0,))]
    table = results_table(stored(tmp_path, records), TableOptions(baseline="0000"))
    assert column(table, "Attention Component") == ["0000", "0010", "1111"]
    assert column(table, "n") == ["3", "1", "3"]
    assert column(table, "Δ box AP") == ["+0.0", "-0.6 †", "+3.0 ± 0.5"]
    assert table.no_interval == (False, True, False)
    text = render(table, "markdown")
    assert text.count("†") == 2 and text.endswith("0.20 AP points.\n")  # the row and the note
    rows = list(csv.DictReader(io.StringIO(render(table, "csv"))))
    assert [(r["Δ box AP"], r["Δ box AP ±"], r["Δ box AP no interval"]) for r in rows] == [
        ("0.0", "", ""),
        ("-0.6", "", "yes"),
        ("3.0", "0.5", ""),
    ]
    latex = render(table, "latex")
    assert "-0.6 \\textdagger{}" in latex and "†" not in latex
    assert "pooled over the rows with replicates, is 0.20 AP points.}" in latex.splitlines()[2]  # the caption
    assert table.only([1]).no_interval == (True,)
    # replicates on both sides of every difference: no mark, and the note as it was
    both = results_table(stored(tmp_path / "both", seeded(("0000", "1111"))), TableOptions(baseline="0000"))
    assert both.no_interval == (False, False)
    assert "†" not in render(both, "markdown") and both.note == NOTE_CI + NOTE_DELTA
    assert {r["Δ box AP no interval"] for r in csv.DictReader(io.StringIO(render(both, "csv")))} == {""}


def test_stale_replicates_of_an_older_config_are_left_out(tmp_path: Path) -> None:
    old = [
        dataclasses.replace(r, cell_id="old1111", run_id=f"old-s{r.seed}", bbox_mAP=0.3)
        for r in seeded(("1111",))
    ]
    new = [
        dataclasses.replace(r, finished=datetime(2024, 6, 1, tzinfo=UTC))
        for r in seeded(("1111",), seeds=(0,))
    ]
    table = results_table(stored(tmp_path, [*seeded(("0000",)), *old, *new]))
    assert column(table, "box AP") == ["37.2 ± 0.5", "40.0"]
    assert column(table, "n") == ["3", "1"]
    assert table.left_out == 3


# --- axes -----------------------------------------------------------------------------------------------


def with_axes() -> list[RunRecord]:
    """Sweep 'kv': 0000 (no attention axis) and 1111 at kv_stride 1 and 2, two seeds each, at two lrs."""
    records = []
    for lr in (0.01, 0.02):
        for stride in (None, 1, 2):
            code = "0000" if stride is None else "1111"
            axes: dict[str, Any] = {"train.optimizer.lr": lr}
            if stride is not None:
                axes["model.attention.kv_stride"] = stride
                axes["model.attention.stages"] = [False, False, True, stride == 2]
            name = f"{code}_kv-stride-{stride}_lr-{lr}"
            for seed in (0, 1):
                records.append(
                    run(
                        code,
                        False,
                        sweep="kv",
                        source="run",
                        cell=name,
                        seed=seed,
                        cell_id=f"id-{name}",
                        run_id=f"id-{name}-s{seed}",
                        bbox_mAP=0.40 + 0.01 * (stride or 0) + lr + 0.001 * seed,
                        axes=axes,
                    )
                )
    return records


def test_axis_columns_after_lr_schd_with_short_headers(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, with_axes()))
    assert table.headers[:8] == (*BASE_HEADERS[:4], "kv_stride", "stages", "lr", "Mem (GB)")
    assert table.axes == ("kv_stride", "stages", "lr")
    got = [row[1:2] + row[4:7] for row in table.rows]
    assert got == [
        ("0000", "-", "-", "0.01"),
        ("0000", "-", "-", "0.02"),
        ("1111", "1", "[false, false, true, false]", "0.01"),
        ("1111", "1", "[false, false, true, false]", "0.02"),
        ("1111", "2", "[false, false, true, true]", "0.01"),
        ("1111", "2", "[false, false, true, true]", "0.02"),
    ]
    assert table.values[2][4:7] == (1, "[false, false, true, false]", 0.01)
    assert render(table, "latex").splitlines()[3] == r"\begin{tabular}{lllllllrrrr}"
    assert "kv\\_stride & stages & lr" in render(table, "latex")


def test_axis_headers_keep_as_much_of_the_name_as_tells_them_apart(tmp_path: Path) -> None:
    records = [
        run(
            "1111",
            False,
            cell="a",
            axes={"model.attention.stride": 1, "model.dcn.stride": 2, "x.model.dcn.stride": 3},
        )
    ]
    table = results_table(stored(tmp_path, records))
    assert table.axes == ("attention.stride", "model.dcn.stride", "x.model.dcn.stride")


def test_baseline_matches_the_axes_both_rows_have(tmp_path: Path) -> None:
    table = results_table(stored(tmp_path, with_axes()), TableOptions(baseline="0000"))
    deltas = column(table, "Δ box AP")
    assert [d.split(" ")[0] for d in deltas] == ["+0.0", "+0.0", "+1.0", "+1.0", "+2.0", "+2.0"]
    # a 1111 baseline: one per stride; 0000 (no stride) matches both, so has none
    other = results_table(stored(tmp_path / "b", with_axes()), TableOptions(baseline="1111"))
    assert [d.split(" ")[0] for d in column(other, "Δ box AP")] == ["-", "-", "+0.0", "+0.0", "+0.0", "+0.0"]


def test_baseline_prefers_the_row_with_the_same_axes(tmp_path: Path) -> None:
    """Cells without axes next to cells with them: of the baselines that match, the one that shares the row's
    values (null for null) on the most axes."""
    mixed = [*seeded(("0000", "1111")), *(dataclasses.replace(r, sweep="paper") for r in with_axes())]
    table = results_table(stored(tmp_path, mixed), TableOptions(baseline="0000"))
    got = {(r[1], r[4], r[6]): r[table.headers.index("Δ box AP")] for r in table.rows}
    assert got[("0000", "-", "-")] == got[("0000", "-", "0.01")] == "+0.0"
    assert got[("1111", "-", "-")] == "+3.0 ± 0.5"
    assert got[("1111", "2", "0.02")].startswith("+2.0 ± ")


def test_a_long_tables_summary_is_the_best_row_of_each_code_and_dcn(tmp_path: Path) -> None:
    """92 cells (the attention cells at three kv_strides): the summary is 32 rows, each the row with the
    highest box AP of its code and DCN setting, in the table's order; ``only`` keeps rows and their values."""
    runs = axis_runs()
    runs[-1] = dataclasses.replace(runs[-1], bbox_mAP=0.9)  # 1111 + DCN: the last stride is its best
    table = results_table(stored(tmp_path, runs))
    assert len(table.rows) == 92
    best = table.best_rows()
    ap, code, dcn = (table.headers.index(h) for h in ("box AP", "Attention Component", "DCN"))
    assert len(best) == 32 and list(best) == sorted(best)
    for i in best:
        same = [v for v in table.values if (v[code], v[dcn]) == (table.values[i][code], table.values[i][dcn])]
        assert table.values[i][ap] == max(v[ap] for v in same)
    stride = table.headers.index("kv_stride")
    assert [table.rows[best[-1]][i] for i in (ap, stride)] == ["90.0", "4"]  # 1111 + DCN
    assert table.rows[best[-2]][stride] == "1"  # 1111 without DCN: its first stride, the highest AP
    summary = table.only(best)
    assert summary.rows == tuple(table.rows[i] for i in best)
    assert summary.values == tuple(table.values[i] for i in best)
    assert (summary.headers, summary.note, summary.spreads) == (table.headers, table.note, ())


def test_select_where_an_axis_has_a_value(tmp_path: Path) -> None:
    frame = stored(tmp_path, with_axes())
    for name in ("kv_stride", "attention.kv_stride", "model.attention.kv_stride"):
        chosen = select(frame, where=[(name, "2")])
        assert sorted(set(chosen["cell"])) == [
            "0000_kv-stride-None_lr-0.01",  # the axis does not vary 0000: it stays
            "0000_kv-stride-None_lr-0.02",
            "1111_kv-stride-2_lr-0.01",
            "1111_kv-stride-2_lr-0.02",
        ]
    both = select(frame, where=[("kv_stride", "1"), ("lr", "0.02")])
    assert sorted(set(both["cell"])) == ["0000_kv-stride-None_lr-0.02", "1111_kv-stride-1_lr-0.02"]
    stages = select(frame, where=[("stages", "[false, false, true, true]")])
    assert sorted(set(stages["cell"]) - {c for c in stages["cell"] if c.startswith("0000")}) == [
        "1111_kv-stride-2_lr-0.01",
        "1111_kv-stride-2_lr-0.02",
    ]
    assert len(select(frame, where=[("stages", "[false,false,true,true]")])) == len(stages)


def test_select_where_compares_types_and_bare_words(tmp_path: Path) -> None:
    records = [
        run(
            "1111",
            False,
            cell=f"c{i}",
            run_id=f"r{i}",
            axes={"a.flag": flag, "a.impl": impl, "a.count": count},
        )
        for i, (flag, impl, count) in enumerate([(True, "sdpa", 1), (False, "reference", 2)])
    ]
    frame = stored(tmp_path, records)
    assert list(select(frame, where=[("flag", "true")])["cell"]) == ["c0"]
    assert list(select(frame, where=[("impl", "reference")])["cell"]) == ["c1"]  # a bare word
    assert list(select(frame, where=[("impl", '"sdpa"')])["cell"]) == ["c0"]
    assert list(select(frame, where=[("count", "1")])["cell"]) == ["c0"]
    with pytest.raises(InputError, match=r"no run has this value of a\.count; its values: 1, 2"):
        select(frame, where=[("count", "true")])  # true is not 1
    with pytest.raises(InputError, match=r"no run has this value of a\.flag; its values: false, true"):
        select(frame, where=[("flag", "1")])


def test_select_where_errors_name_the_axis_columns(tmp_path: Path) -> None:
    frame = stored(tmp_path, with_axes())
    axes = "model.attention.kv_stride, model.attention.stages, train.optimizer.lr"
    with pytest.raises(InputError) as error:
        select(frame, where=[("kv", "2")])
    assert str(error.value) == (
        f"where kv=2: 'kv' is not an axis column of the store; axis columns in the store: {axes}"
    )
    with pytest.raises(InputError) as error:
        select(frame, where=[("attention", "2")])
    assert "'attention' is not an axis column" in str(error.value)
    several = stored(tmp_path / "several", [run("1111", False, axes={"a.stride": 1, "b.stride": 2})])
    with pytest.raises(InputError, match=r"'stride' names several axis columns; .*: a\.stride, b\.stride$"):
        select(several, where=[("stride", "1")])
    with pytest.raises(
        InputError, match=r"no run has this value of model\.attention\.kv_stride; its values: 1, 2"
    ):
        select(frame, where=[("kv_stride", "3")])
    with pytest.raises(InputError, match=r"axis columns in the store: none"):
        select(stored(tmp_path / "none", zoo()), where=[("kv_stride", "2")])


def test_select_seeds(tmp_path: Path) -> None:
    frame = stored(tmp_path, [*seeded(), *zoo()[:1]])
    chosen = select(frame, seeds=[0, 2])
    assert sorted(chosen["run_id"]) == ["id0000-s0", "id0000-s2", "id1111-s0", "id1111-s2", "r1"]
    table = results_table(select(frame, sources=["run"], seeds=[1]))
    assert column(table, "box AP") == ["37.2", "40.2"]  # one run each: no spread, no n
    assert "n" not in table.headers
    with pytest.raises(InputError) as error:
        select(frame, seeds=[0, 7])
    assert str(error.value) == "seeds: seed 7 not in the store; seeds in the store: 0, 1, 2"
    with pytest.raises(InputError, match="seeds in the store: none"):
        select(stored(tmp_path / "zoo", zoo()), seeds=[0])


# --- the command ----------------------------------------------------------------------------------------


def test_export_command_with_replicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ablation.cli.commands import main

    store = tmp_path / "store"
    stored(tmp_path, [*seeded(("0000", "1111", "0010")), *with_axes()])
    kv = ["export", "--store", str(store), "--sweep", "kv", "--baseline", "0000"]
    assert main([*kv, "--where", "kv_stride=2", "--where", "lr=0.01"]) == 0
    out = capsys.readouterr().out
    # 1111 - 0000 at lr 0.01: 43.0, 43.1 against 41.0, 41.1; Welch's df 2, se 0.0707: t(0.975, 2) * se = 0.3
    assert [(row[1], row[4], row[6], row[9], row[11]) for row in md_cells(out.split("\n\n")[0])[2:]] == [
        ("0000", "-", "0.01", "41.1 ± 0.6", "+0.0"),
        ("1111", "2", "0.01", "43.1 ± 0.6", "+2.0 ± 0.3"),
    ]
    assert out.endswith("\n\n" + NOTE_CI + NOTE_DELTA + "\n")
    paper = ["export", "--store", str(store), "--sweep", "paper", "--format", "csv"]
    assert main([*paper, "--seeds", "0,1", "--seeds", "2", "--spread", "sd"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["Attention Component"], r["n"]) for r in rows] == [("0000", "3"), ("0010", "3"), ("1111", "3")]
    assert float(rows[0]["box AP ±"]) == pytest.approx(0.2)
    assert main([*paper, "--seeds", "0,2"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["n"], float(r["box AP"])) for r in rows] == [("2", 37.2), ("2", 37.3), ("2", 40.2)]
    assert main([*paper, "--seeds", "1"]) == 0
    assert "±" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            ["--where", "nope=1"],
            "error: --where nope=1: 'nope' is not an axis column of the store; axis columns "
            "in the store: model.attention.kv_stride, model.attention.stages, train.optimizer.lr",
        ),
        (["--seeds", "9"], "error: --seeds: seed 9 not in the store; seeds in the store: 0, 1"),
        (
            ["--where", "kv_stride=3"],
            "error: --where kv_stride=3: no run has this value of "
            "model.attention.kv_stride; its values: 1, 2",
        ),
        (
            ["--where", "kv_stride"],
            "error: argument --where: expected AXIS=VALUE such as kv_stride=2, got "
            "'kv_stride' (see ablation export --help)",
        ),
        (
            ["--seeds", "a"],
            "error: argument --seeds: expected seeds such as 0,1,2, got 'a' (see ablation export --help)",
        ),
        (
            ["--spread", "iqr"],
            "error: argument --spread: invalid choice: 'iqr' (choose from 'ci', 'sd') (see "
            "ablation export --help)",
        ),
    ],
)
def test_export_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], line: str
) -> None:
    stored(tmp_path, with_axes())
    code, out, err = run_cli("export", "--store", str(tmp_path / "store"), *flags, capsys=capsys)
    assert code == 2
    assert err == line + "\n"
    assert out == ""
