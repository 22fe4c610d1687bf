"""A real sweep with seeds and an extra axis, end to end on the CPU: planned, run as local jobs, harvested and
exported with each cell's mean, interval and n; a deleted replicate is the only one submitted again.

The grid: 0000 and 1111 without DCN, kv_stride 1 or 2 (which varies 1111 only), seeds 0, 1, 2: 3 cells of
3 replicates each, 9 runs of the smoke sweep's small detector.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablation import load_sweep
from ablation.run.launch import status, work_dir
from ablation.run.result_file import RESULT_FILE, read_result

from .helpers.cli import REPO, run_script, write_sweep

pytestmark = pytest.mark.slow  # its module fixture runs 9 cells of the smoke sweep (about 2 min)

NAME = "replicated"
SWEEP = (
    (REPO / "experiments/sweeps/smoke.toml")
    .read_text()
    .replace('codes = "all"', 'codes = ["0000", "1111"]')
    .replace(
        "dcn = [false, true]",
        'dcn = [false]\nseeds = [0, 1, 2]\n\n[grid.axes]\n"model.attention.kv_stride" = [1, 2]',
    )
    .replace("synthetic = [6, 3]", "synthetic = [4, 2]")
)
CELLS = {
    "faster-rcnn_r50_fpn_2e_shapes": "0000",
    "faster-rcnn_r50-attn1111_fpn_2e_shapes_kv-stride-1": "1111",
    "faster-rcnn_r50-attn1111_fpn_2e_shapes_kv-stride-2": "1111",
}


@dataclasses.dataclass
class Ran:
    folder: Path
    sweep: Path
    root: Path
    output: str
    code: int


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    assert "dcn = [false]\nseeds" in SWEEP and "synthetic = [4, 2]" in SWEEP  # the smoke sweep still reads so
    folder = tmp_path_factory.mktemp("replicated")
    sweep = write_sweep(folder, SWEEP, NAME)
    root = folder / "runs"
    done = run_script(
        "ablation", "run", "--sweep", str(sweep), "--root", str(root), "--parallel", "2", cwd=folder
    )
    yield Ran(folder, sweep, root, done.stdout + done.stderr, done.returncode)


def ablation(ran: Ran, *args: str) -> tuple[int, str]:
    done = run_script("ablation", *args, cwd=ran.folder)
    return done.returncode, done.stdout + done.stderr


def test_every_replicate_runs_with_its_seed(ran: Ran) -> None:
    assert ran.code == 0, ran.output
    assert "9 runs of 3 cells: 9 done" in ran.output
    results = [read_result(p.parent) for p in (ran.root / NAME / "work").glob(f"*/*/{RESULT_FILE}")]
    seen = sorted((r.cell, r.seed) for r in results if r is not None and r.status == "done")
    assert seen == sorted((cell, seed) for cell in CELLS for seed in (0, 1, 2))
    for r in results:
        assert r is not None
        assert r.axes == ({} if r.code == "0000" else {"model.attention.kv_stride": int(r.cell[-1])})
        (log,) = Path(r.config).parent.parent.glob(f"work/{Path(r.config).stem}/*/*/*.log")
        assert f"randomness = dict(seed={r.seed})" in log.read_text()  # mmengine's Runner got the seed
    assert len({r.cell_id for r in results if r is not None}) == 3  # a cell's replicates share its id


def test_the_export_shows_each_cell_s_mean_interval_and_n(ran: Ran) -> None:
    code, out = ablation(
        ran, "export", "--store", str(ran.root / "store"), "--sweep", NAME, "--baseline", "0000"
    )
    assert code == 0, out
    lines = out.splitlines()
    header = [h.strip() for h in lines[0].strip("|").split("|")]
    assert header[:10] == [
        "Backbone",
        "Attention Component",
        "DCN",
        "Lr schd",
        "kv_stride",
        "Mem (GB)",
        "Mem kind",
        "Inf time (fps)",
        "box AP",
        "n",
    ]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:5]]
    assert [(r[1], r[4], r[9]) for r in rows] == [("0000", "-", "3"), ("1111", "1", "3"), ("1111", "2", "3")]
    assert all(r[6] == "CPU peak RSS" for r in rows)
    assert all(" ± " in r[8] for r in rows)  # box AP: mean ± half-width of its 95% interval
    assert "95%" in out


def test_status_selects_by_axis_and_seed(ran: Ran) -> None:
    code, out = ablation(
        ran,
        "status",
        "--sweep",
        str(ran.sweep),
        "--root",
        str(ran.root),
        "--where",
        "kv_stride=2",
        "--seeds",
        "1",
    )
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["cell", "code", "dcn", "kv_stride", "seed", "state"]
    assert [line.split()[:6] for line in lines[2:4]] == [
        ["faster-rcnn_r50_fpn_2e_shapes_seed1", "0000", "off", "-", "1", "done"],
        ["faster-rcnn_r50-attn1111_fpn_2e_shapes_kv-stride-2_seed1", "1111", "off", "2", "1", "done"],
    ]
    assert lines[-1] == "2 runs of 2 cells: 2 done"


def copy_of(ran: Ran, tmp_path: Path) -> Ran:
    """The module's run as the fixture left it, in a folder of its own (hard links: the tool replaces files,
    it never writes through them)."""
    folder = tmp_path / "copy"
    shutil.copytree(ran.folder, folder, copy_function=os.link)
    return dataclasses.replace(ran, folder=folder, sweep=folder / ran.sweep.name, root=folder / ran.root.name)


def test_a_new_seed_plans_only_its_replicates(ran: Ran, tmp_path: Path) -> None:
    """The seed is not in a cell's id: the finished replicates stay done, whatever seeds come."""
    ran = copy_of(ran, tmp_path)
    text = ran.sweep.read_text().replace("seeds = [0, 1, 2]", "seeds = [0, 1, 2, 3]")
    ran.sweep.unlink()  # a hard link to the module's sweep file: a new file, not a write through it
    ran.sweep.write_text(text)
    states = status(load_sweep(ran.sweep), ran.root)
    assert sorted((s.planned.cell.seed, s.state) for s in states) == sorted(
        [(seed, "done") for seed in (0, 1, 2) for _ in CELLS] + [(3, "planned")] * len(CELLS)
    )


def test_a_deleted_replicate_is_the_only_one_submitted_again(ran: Ran, tmp_path: Path) -> None:
    ran = copy_of(ran, tmp_path)
    sweep = load_sweep(ran.sweep)
    (one,) = [
        s
        for s in status(sweep, ran.root)
        if s.name == "faster-rcnn_r50-attn1111_fpn_2e_shapes_kv-stride-2_seed1"
    ]
    (work_dir(ran.root / NAME, one.planned) / RESULT_FILE).unlink()
    args = ("--sweep", str(ran.sweep), "--root", str(ran.root))
    code, out = ablation(ran, "launch", *args)
    assert code == 0, out
    assert out.startswith(
        f"submitted 0 of 9 cells of sweep {NAME} (local); left alone: 8 done, 1 lost "
        "(--retry-failed resubmits them)"
    )
    code, out = ablation(ran, "launch", *args, "--retry-failed", "--wait", "--parallel", "1")
    assert code == 0, out
    assert out.startswith(f"submitted 1 of 9 cells of sweep {NAME} (local); left alone: 8 done")
    assert "9 runs of 3 cells: 9 done" in out.splitlines()
