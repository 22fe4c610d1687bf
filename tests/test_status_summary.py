"""Terminal tables of big grids: ``plan``, ``status`` and ``launch --wait`` sum a grid of more than
``LIST_AT_MOST`` rows up by code, DCN, axis value and seed (with each state's count), and list every row
with ``--cells``; smaller grids are listed as before (tests/test_cli.py pins those tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablation.grid.sweep import load_sweep
from ablation.run.status_table import LIST_AT_MOST, breakdown

from .helpers.cli import run_cli, write_sweep

# 2 cells of 0000 (no kv_stride) + 30 attention cells x 2 strides = 62 cells, x 4 seeds = 248 runs
BIG = """
[grid]
seeds = [0, 1, 2, 3]
[grid.axes]
"model.attention.kv_stride" = [1, 2]
"""


def rows_of(out: str) -> dict[tuple[str, str], list[str]]:
    """The summary's rows, (by, value) -> the counts, from the command's output."""
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["by", "value", "runs"]
    found = {}
    for line in lines[2:]:
        if not line.strip():
            break
        by, value, *counts = line.split()
        found[(by, value)] = counts
    return found


@pytest.fixture
def big(tmp_path: Path) -> Path:
    return write_sweep(tmp_path, BIG, name="big")


def test_plan_sums_a_big_grid_up_and_lists_it_with_cells(
    big: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(load_sweep(big).cells) == 248 > LIST_AT_MOST
    code, out, err = run_cli("plan", "--sweep", str(big), "--root", str(tmp_path / "R"), capsys=capsys)
    assert (code, err) == (0, "")
    rows = rows_of(out)
    assert rows[("code", "0000")] == ["8"] and rows[("code", "1111")] == ["16"]
    assert rows[("dcn", "off")] == rows[("dcn", "on")] == ["124"]
    assert rows[("kv_stride", "-")] == ["8"]  # the 0000 cells, which the attention setting does not vary
    assert rows[("kv_stride", "1")] == rows[("kv_stride", "2")] == ["120"]
    assert [rows[("seed", str(s))] for s in range(4)] == [["62"]] * 4
    for by in ("code", "dcn", "kv_stride", "seed"):
        assert sum(int(n[0]) for (b, _), n in rows.items() if b == by) == 248
    assert "faster-rcnn" not in out  # no cell's row
    assert "248 runs of 62 cells of sweep big" in out
    assert "--cells lists each one" in out
    assert len(list((tmp_path / "R" / "big" / "configs").glob("*.py"))) == 248  # planned all the same

    code, out, _ = run_cli(
        "plan", "--sweep", str(big), "--root", str(tmp_path / "R"), "--cells", capsys=capsys
    )
    assert code == 0
    assert out.splitlines()[0].split()[:5] == ["cell", "id", "code", "factors", "dcn"]
    assert sum(line.startswith("faster-rcnn") for line in out.splitlines()) == 248
    assert "--cells lists" not in out


def test_status_sums_a_big_grid_up_by_state_and_lists_it_with_cells(
    big: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("status", "--sweep", str(big), "--root", str(tmp_path / "R"))
    code, out, err = run_cli(*argv, capsys=capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0].split() == ["by", "value", "runs", "planned"]
    assert rows_of(out)[("kv_stride", "2")] == ["120", "120"]
    assert "248 runs of 62 cells: 248 planned" in out

    code, out, _ = run_cli(*argv, "--cells", capsys=capsys)
    assert code == 0
    listed = [line.split() for line in out.splitlines() if line.startswith("faster-rcnn")]
    assert len(listed) == 248 and {row[-1] for row in listed} == {"-"}  # a figure column; planned: none
    assert sum("planned" in row for row in listed) == 248


def test_the_breakdown_counts_each_state_by_value(big: Path) -> None:
    sweep = load_sweep(big)
    cells = sweep.cells
    states = ["done" if c.seed in (0, 1) else "failed" if c.seed == 2 else "lost" for c in cells]
    head, rows = breakdown(cells, sweep.axes, states)
    assert head == ("by", "value", "runs", "done", "failed", "lost")  # the states present, in their order
    by_key = {(r[0], r[1]): r[2:] for r in rows}
    assert by_key[("seed", "1")] == ("62", "62", "0", "0")
    assert by_key[("seed", "3")] == ("62", "0", "0", "62")
    assert by_key[("kv_stride", "-")] == ("8", "4", "2", "2")
    assert [r[0] for r in rows] == sorted(
        (r[0] for r in rows), key=["code", "dcn", "kv_stride", "seed"].index
    )
