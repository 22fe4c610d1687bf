"""The store's side of the failure contract as a campaign (issue 31): every corrupt store file met by every
command that reads the store, a cache that disagrees with its run files, kill -9 of a harvest at seeded
moments, two harvests at once, the temp files killed writers leave, and lock files under a strict umask.
Real parquet files, real CLI processes; each part prints its counts (run with -s to see them).

A bad file met while working is one ``warning:`` line naming it, the rest is computed and written, exit 1;
a --store or --root that names a file is one ``error:`` line, exit 2, nothing written."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ablation.cli.result_commands import harvest_and_export
from ablation.errors import AblationError
from ablation.fsio import STALE_AFTER_S, _owner
from ablation.grid.sweep import load_sweep
from ablation.results.harvest import find_runs, harvest
from ablation.results.store import CACHE_FILE, Store
from ablation.run import locks

from .helpers.cli import run_cli, venv_bin, write_sweep
from .helpers.store import write_cells

SWEEP = "g"
CELLS = 32  # the paper's grid: 16 codes x DCN


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with sweep g's 32 cells' result.json files, a sweep file for them, and a store that holds
    them (its cache current), to be copied and spoilt by each case."""
    folder = tmp_path_factory.mktemp("clean")
    (folder / "base.py").write_text("model = dict(backbone=dict(type='ResNet', depth=50))\n")
    write_sweep(folder, '[model]\nbase_config = "base.py"\n', SWEEP)
    write_cells(folder / "runs" / SWEEP, SWEEP)
    store = Store(folder / "runs" / "store")
    assert not harvest(store, find_runs(folder / "runs" / SWEEP), SWEEP).problems
    assert store.read().table.num_rows == CELLS
    return folder


# 1. The corruption matrix x the commands ------------------------------------------------------------------


def _a_run_file(runs: Path) -> Path:
    return sorted(runs.glob("*.parquet"))[0]


def _bytes_of(runs: Path, data: Callable[[bytes], bytes]) -> Path:
    (runs / "bad.parquet").write_bytes(data(_a_run_file(runs).read_bytes()))
    return runs / "bad.parquet"


def _table_of(runs: Path, change: Callable[[pa.Table], pa.Table]) -> Path:
    table = change(pq.read_table(_a_run_file(runs)))
    pq.write_table(table, runs / "bad.parquet")
    return runs / "bad.parquet"


def _set(table: pa.Table, name: str, value: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, value)


def _newer(table: pa.Table) -> pa.Table:
    meta = {**(table.schema.metadata or {}), b"ablation.schema_version": b"99"}
    return _set(table, "schema_version", pa.array([99], pa.int64())).replace_schema_metadata(meta)


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _no_row(runs: Path) -> Path:
    path = _a_run_file(runs)
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    return path


def _cache(store: Path, change: Callable[[pa.Table], pa.Table]) -> Path:
    table = pq.read_table(store / CACHE_FILE)
    pq.write_table(change(table).replace_schema_metadata(table.schema.metadata), store / CACHE_FILE)
    return store / CACHE_FILE


def _inf_fps(runs: Path) -> Path:
    path = _a_run_file(runs)
    pq.write_table(_set(pq.read_table(path), "fps", pa.array([float("inf")])), path)
    return path


# name -> (spoil the store, returning the file the line names; runs the output keeps)
CORRUPTIONS: dict[str, tuple[Callable[[Path], Path], int]] = {
    "truncated": (lambda s: _bytes_of(s / "runs", lambda b: b[: len(b) // 2]), CELLS),
    "random bytes": (lambda s: _bytes_of(s / "runs", lambda b: random.Random(1).randbytes(len(b))), CELLS),
    "empty": (lambda s: _bytes_of(s / "runs", lambda b: b""), CELLS),
    "newer schema": (lambda s: _table_of(s / "runs", _newer), CELLS),
    "wrong column type": (lambda s: _table_of(s / "runs", lambda t: _set(t, "fps", pa.array(["x"]))), CELLS),
    "a folder named .parquet": (lambda s: _folder(s / "runs" / "bad.parquet"), CELLS),
    "no row": (lambda s: _no_row(s / "runs"), CELLS - 1),
    "cache of half the rows": (lambda s: _cache(s, lambda t: t.slice(0, CELLS // 2)), CELLS),
    "cache of unlisted files": (
        lambda s: _cache(s, lambda t: _set(t, "_file", pa.array(["other.parquet"] * t.num_rows))),
        CELLS,
    ),
    "fps inf": (lambda s: _inf_fps(s / "runs"), CELLS),
}
# a harvest puts these runs again from their result.json: the store is whole again, nothing to name
REPAIRED_BY_HARVEST = {("no row", "harvest"), ("no row", "run's ending")}
REPAIRED_BY_HARVEST |= {("fps inf", "harvest"), ("fps inf", "run's ending")}


def _export(folder: Path, store: Path) -> tuple[tuple[int, str, str], int]:
    done = run_cli("export", "--store", str(store), "--format", "csv")
    return done, len(done[1].splitlines()) - 1  # the CSV's rows less its header


def _report(folder: Path, store: Path) -> tuple[tuple[int, str, str], int]:
    done = run_cli("report", "--store", str(store), "--sweep", SWEEP, "-o", str(folder / "r.html"))
    runs = re.search(r"\((\d+) runs of", done[1])
    return done, int(runs[1]) if runs and (folder / "r.html").exists() else 0


def _effects(folder: Path, store: Path) -> tuple[tuple[int, str, str], int]:
    done = run_cli("effects", "--store", str(store), "--sweep", SWEEP, "--format", "csv")
    return done, CELLS if ",key content only," in done[1] else 0  # the effects computed


def _harvest(folder: Path, store: Path) -> tuple[tuple[int, str, str], int]:
    runs = folder / "runs" / SWEEP
    done = run_cli("harvest", "--sweep", str(runs), "--store", str(store), "--no-reference")
    held = re.search(r"\((\d+) runs in the store\)", done[1])
    return done, int(held[1]) if held else 0


def _run_ending(folder: Path, store: Path) -> tuple[tuple[int, str, str], int]:
    """``ablation run``'s ending (harvest, table, report) on the cells its jobs left, as ``main`` runs a
    command: its exit status, and one line for an error."""
    args = argparse.Namespace(root=folder / "runs", store=store)
    sweep = load_sweep(str(folder / f"{SWEEP}.toml"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = harvest_and_export(sweep, args)
        except AblationError as error:
            print(f"error: {error}", file=sys.stderr)
            code = error.exit_code
        except Exception as error:  # counted, as main would print it
            print(f"internal error: {type(error).__name__}: {error}", file=sys.stderr)
            code = 1
    rows = [line for line in out.getvalue().splitlines() if re.match(r"\|\s+R-50\s+\|", line)]
    return (code, out.getvalue(), err.getvalue()), len(rows)


COMMANDS = {
    "export": _export,
    "report": _report,
    "effects": _effects,
    "harvest": _harvest,
    "run's ending": _run_ending,
}


@pytest.mark.slow
def test_every_corrupt_store_file_is_one_line_naming_it_exit_1_and_the_rest_computed(
    clean: Path, tmp_path: Path
) -> None:
    counts = dict.fromkeys(("tracebacks", "internal errors", "silent wrong results", "data lost"), 0)
    failures: list[str] = []
    for (name, (spoil, keeps)), (command, call) in (
        (c, m) for c in CORRUPTIONS.items() for m in COMMANDS.items()
    ):
        folder = tmp_path / f"{len(failures)}-{name}-{command}".replace(" ", "_").replace("'", "")
        shutil.copytree(clean, folder)
        store = folder / "runs" / "store"
        named = spoil(store)
        (code, _, err), kept = call(folder, store)
        warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
        counts["tracebacks"] += "Traceback" in err
        counts["internal errors"] += "internal error" in err
        key = f"{SWEEP}/" if name == "fps inf" else str(named)  # a figure's line names its run
        if (name, command) in REPAIRED_BY_HARVEST:
            wrong = (code, err) != (0, "")
        else:
            wrong = code != 1 or len(warnings) != 1 or key not in warnings[0] or len(err.splitlines()) != 1
        if wrong:
            counts["silent wrong results"] += 1
            failures.append(f"{name} x {command}: exit {code}, {err!r}")
        if kept < keeps:
            counts["data lost"] += 1
            failures.append(f"{name} x {command}: {kept} of {keeps} runs in the output")
    cases = len(CORRUPTIONS) * len(COMMANDS)
    print(f"\nstore corruption: {cases} cases, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    assert failures == [] and set(counts.values()) == {0}


def test_a_harvest_leaves_a_cache_that_disagreed_repaired(clean: Path, tmp_path: Path) -> None:
    shutil.copytree(clean, tmp_path / "c")
    store = tmp_path / "c" / "runs" / "store"
    _cache(store, lambda t: t.slice(0, CELLS // 2))
    (code, _, err), held = _harvest(tmp_path / "c", store)
    assert (code, held) == (1, CELLS) and "_cache.parquet: holds 16 rows for the 32 run files" in err
    assert pq.read_table(store / CACHE_FILE).num_rows == CELLS
    code, out, err = run_cli("export", "--store", str(store), "--format", "csv")
    assert (code, err, len(out.splitlines())) == (0, "", CELLS + 1)


def test_a_bad_figure_is_harvested_missing_named_and_every_reader_computes(tmp_path: Path) -> None:
    """fps Infinity and a box AP of 1.5 in a result.json: harvested with those figures missing, named, exit
    1 (it was exit 0, and then export and report failed with an internal error)."""
    runs = tmp_path / "runs" / SWEEP
    write_cells(runs, SWEEP)
    bad = sorted(runs.glob("*/result.json"))[0]
    result = json.loads(bad.read_text())
    result.update(fps=float("inf"), metrics={**result["metrics"], "bbox_mAP": 1.5})
    bad.write_text(json.dumps(result))
    store = tmp_path / "store"
    code, out, err = run_cli("harvest", "--sweep", str(runs), "--store", str(store), "--no-reference")
    assert code == 1 and "harvested 32 runs: 32 new, 0 updated, 0 unchanged; 2 figures left out" in out
    run = f"{SWEEP}/{result['cell']}/{result['cell_id']}"
    assert sorted(err.splitlines()) == [
        f"warning: {bad}: {run}: bbox_mAP = 1.5 is out of range (valid: [0, 1]); left out, read as missing",
        f"warning: {bad}: {run}: fps = inf is not a finite number (valid: > 0); left out, read as missing",
    ]
    code, out, err = run_cli("export", "--store", str(store), "--format", "csv")
    assert (code, err, len(out.splitlines())) == (0, "", CELLS + 1)
    code, out, err = run_cli(
        "report", "--store", str(store), "--sweep", SWEEP, "-o", str(tmp_path / "r.html")
    )
    assert (code, err) == (0, "") and "(32 runs of 32 cells" in out


# 2. Flags that name a file: one line, exit 2, nothing written ---------------------------------------------


def test_a_store_or_root_that_is_a_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    store, root = ["--store", str(blocker)], ["--root", str(blocker)]
    cases = [
        (["export", *store], f"--store {blocker}: a file, not a folder; give the store's folder"),
        (["export", *root], f"--root {blocker}: a file, not a folder; give the folder of the sweep folders"),
        (["report", "--sweep", SWEEP, *store], f"--store {blocker}: a file"),
        (["report", "--sweep", SWEEP, *root], f"--root {blocker}: a file"),
        (["effects", "--sweep", SWEEP, *store], f"--store {blocker}: a file"),
        (["effects", "--sweep", SWEEP, *root], f"--root {blocker}: a file"),
        (["export", "--store", str(blocker / "store")], f"--store {blocker / 'store'}: {blocker} is a file"),
        (["harvest", *root], f"--root {blocker}: a file"),
        (["harvest", *store, "--root", str(tmp_path)], f"--store {blocker}: a file"),
        (["harvest", "--root", str(tmp_path / "none")], f"--root {tmp_path / 'none'}: no such folder; "),
        (["import-log", "x.log.json", *store], f"--store {blocker}: a file"),
    ]
    for argv, line in cases:
        code, out, err = run_cli(*argv)
        assert (code, out, err.count("\n")) == (2, "", 1), (argv, err)
        assert err.startswith(f"error: {line}"), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing written
    print(f"\nflags naming a file: {len(cases)} cases, 0 tracebacks, 0 internal errors")


# 3. kill -9 and two harvests at once ----------------------------------------------------------------------


def _harvester(runs: Path, store: Path) -> subprocess.Popen[str]:
    argv = [venv_bin("ablation"), "harvest", "--sweep", str(runs), "--store", str(store), "--no-reference"]
    env = {k: v for k, v in os.environ.items() if k != "ABLATION_DEBUG"}
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:  # none outlives the test
        process.kill()
        process.communicate()


def _fps_by_cell(store: Path) -> dict[str, float]:
    """Each run file's cell and fps, read one by one: a half-written file fails here."""
    found = {}
    for path in (store / "runs").iterdir():
        assert path.suffix in (".parquet", ".tmp"), path
        if path.suffix == ".parquet":
            (row,) = pq.read_table(path).to_pylist()
            found[row["cell"]] = row["fps"]
    return found


CELLS_KILLED = 120


@pytest.mark.slow
def test_kill_9_of_a_harvest_leaves_every_run_file_old_or_new_and_the_next_harvest_completes(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    """Half the cells harvested with fps 1 (old), then every result rewritten with fps 2 (new) and harvested
    in a process killed (SIGKILL) when it has written a seeded number of the new files."""
    rng = random.Random(31)
    moments = [*sorted(rng.sample(range(1, CELLS_KILLED // 2), 2)), CELLS_KILLED // 2]  # the last: the end
    lost = torn = killed = 0
    for moment in moments:
        runs, store = tmp_path / f"k{moment}" / "runs", tmp_path / f"k{moment}" / "store"
        cells = write_cells(runs, SWEEP, count=CELLS_KILLED, fps=1.0)
        harvest(Store(store), find_runs(runs), SWEEP)
        for path in cells[1::2]:  # the odd ones: not in the store yet
            Store(store).file_for(SWEEP, *_key(path)).unlink()
        write_cells(runs, SWEEP, count=CELLS_KILLED, fps=2.0)
        process = _harvester(runs, store)
        processes.append(process)
        while len(list((store / "runs").glob("*.parquet"))) < CELLS_KILLED // 2 + moment:
            if process.poll() is not None:  # done before the moment came: nothing to kill
                break
            time.sleep(0.005)
        killed += process.poll() is None
        process.send_signal(signal.SIGKILL)
        process.wait()
        found = _fps_by_cell(store)  # every file whole ...
        torn += sum(fps not in (1.0, 2.0) for fps in found.values())  # ... and old or new
        lost += sum(json.loads(p.read_text())["cell"] not in found for p in cells[::2])
        code, out, err = run_cli("harvest", "--sweep", str(runs), "--store", str(store), "--no-reference")
        assert (code, err) == (0, ""), out + err
        assert f"harvested {CELLS_KILLED} runs" in out
        assert set(_fps_by_cell(store).values()) == {2.0}
        assert not list(store.rglob("*.tmp")), "the killed writer's temp files are removed"
        assert Store(store).read().problems == ()
    print(
        f"\nkill -9 of a harvest: {len(moments)} moments {moments}, {killed} killed while running, "
        f"{torn} torn files, {lost} runs lost, 0 temp files left"
    )
    assert torn == lost == 0 and killed >= len(moments) - 1


def _key(result_json: Path) -> tuple[str, str]:
    result = json.loads(result_json.read_text())
    return result["cell"], result["cell_id"]


@pytest.mark.slow
def test_two_harvests_at_once_count_each_new_run_once_and_lose_nothing(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    runs, store = tmp_path / "runs", tmp_path / "store"
    count = 300
    write_cells(runs, SWEEP, count=count, fps=3.0)
    processes.extend([_harvester(runs, store), _harvester(runs, store)])
    outs = [process.communicate(timeout=120) for process in processes]
    counts = []
    for process, (out, err) in zip(processes, outs, strict=True):
        assert (process.returncode, err) == (0, ""), out + err
        found = re.search(r"harvested (\d+) runs: (\d+) new, (\d+) updated, (\d+) unchanged", out)
        assert found, out
        counts.append([int(n) for n in found.groups()])
    new = sum(c[1] for c in counts)
    print(
        f"\ntwo harvests at once: {count} runs, new {[c[1] for c in counts]} (sum {new}), updated "
        f"{[c[2] for c in counts]}, unchanged {[c[3] for c in counts]}"
    )
    assert all(c[0] == count and c[2] == 0 for c in counts) and new == count
    assert _fps_by_cell(store) == {json.loads(p.read_text())["cell"]: 3.0 for p in runs.glob("*/result.json")}
    read = Store(store).read()
    assert read.problems == () and read.table.num_rows == count


# 4. Temp files of killed writers, and lock files under the umask ------------------------------------------


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_killed_writer_s_temp_files_are_removed_and_a_live_one_s_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.runs_dir.mkdir(parents=True)
    old = time.time() - STALE_AFTER_S - 60
    me, dead, other = _owner(), _dead_pid(), "0badf00d"
    made = {
        f".a.parquet.{me}-{dead}.0000000a.tmp": (None, "removed"),  # this host, its writer gone
        f".b.parquet.{me}-{os.getpid()}.0000000b.tmp": (None, "kept"),  # a live writer (this one)
        f".c.parquet.{other}-{dead}.0000000c.tmp": (None, "kept"),  # another host's, fresh: maybe live
        f".d.parquet.{other}-{dead}.0000000d.tmp": (old, "removed"),  # another host's, an hour old
        ".e.parquet.0000000e.tmp": (None, "kept"),  # an older version's naming, fresh
        ".f.parquet.0000000f.tmp": (old, "removed"),  # and an hour old
        "notes.tmp": (old, "kept"),  # not a temp file of ours
    }
    for name, (mtime, _) in made.items():
        (store.runs_dir / name).write_bytes(b"half a run")
        if mtime is not None:
            os.utime(store.runs_dir / name, (mtime, mtime))
    cache_temp = store.path / f".{CACHE_FILE}.{me}-{dead}.00000001.tmp"
    cache_temp.write_bytes(b"half a cache")
    runs = tmp_path / "runs" / SWEEP
    write_cells(runs, SWEEP, count=1)
    code, out, err = run_cli("harvest", "--sweep", str(runs), "--store", str(store.path), "--no-reference")
    assert (code, err) == (0, "") and "1 new" in out
    kept = {p.name for p in store.runs_dir.iterdir() if p.suffix != ".parquet"}
    assert kept == {name for name, (_, fate) in made.items() if fate == "kept"}
    assert not cache_temp.exists()
    removed = sum(fate == "removed" for _, fate in made.values()) + 1
    print(f"\ntemp files: {len(made) + 1} made, {removed} removed, {len(kept)} kept (live or maybe live)")


@pytest.mark.parametrize("umask", [0o077, 0o002])
def test_lock_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    before = os.umask(umask)
    try:
        with locks.exclusive(tmp_path / "x.lock"):
            pass
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "x.lock").stat().st_mode) == 0o666 & ~umask


def test_import_log_keeps_a_run_with_a_bad_figure_missing_and_names_it(tmp_path: Path) -> None:
    name = "faster_rcnn_r50_fpn_attention_1111_1x_coco_20200130_210344.log.json"
    path = tmp_path / name  # an mmdet v1 log whose six APs read as percent-like numbers past 1
    ap = dict(zip(("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l"),
                  (1.414, 1.591, 1.415, 1.32, 1.435, 1.481), strict=True))  # fmt: skip
    train = {"mode": "train", "epoch": 12, "iter": 50, "lr": 0.02, "memory": 8029, "loss": 1.2, "time": 0.9}
    val = {"mode": "val", "epoch": 12, "iter": 7330, "lr": 0.02, **ap}
    path.write_text(json.dumps(train) + "\n" + json.dumps(val) + "\n")
    store = tmp_path / "store"
    code, out, err = run_cli("import-log", str(path), "--store", str(store))
    assert code == 1 and "imported 1 run: 1 new, 0 updated, 0 unchanged; 6 figures left out" in out
    lines = err.splitlines()
    assert len(lines) == 6 and all(line.startswith(f"warning: {path}: mmdet-logs/") for line in lines)
    assert "bbox_mAP = 1.414 is out of range (valid: [0, 1]); left out, read as missing" in lines[0]
    (row,) = Store(store).read().table.to_pylist()
    assert row["bbox_mAP"] is None and row["memory_gb"] == pytest.approx(7.84, abs=0.01)
