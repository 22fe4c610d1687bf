"""The results store: real parquet files, real processes writing at once."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ablation import vocabulary
from ablation.errors import BadCodeError, InputError
from ablation.results import store as store_module
from ablation.results.records import SOURCES, RunRecord
from ablation.results.store import CACHE_FILE, SCHEMA, SCHEMA_VERSION, Store
from ablation.run.result_file import MEMORY_KINDS, STATUSES

from .helpers.store import axis_runs, store_with


def run(cell: str = "c", run_id: str = "r", sweep: str = "s", **values: object) -> RunRecord:
    return RunRecord(sweep=sweep, cell=cell, run_id=run_id, source="run", **values)  # type: ignore[arg-type]


def rows(store: Store) -> list[dict[str, object]]:
    result = store.read()
    assert result.problems == ()
    return sorted(result.table.to_pylist(), key=lambda r: (r["sweep"], r["cell"], r["run_id"]))


# --- round trip ------------------------------------------------------------------------------------------

texts = st.text(min_size=1, max_size=20)
maybe_text = st.none() | st.text(max_size=30)
# every figure in its valid range (records.figure_ranges): a read screens the others out (tested below)
maybe_fraction = st.none() | st.floats(min_value=0.0, max_value=1.0)
maybe_positive = st.none() | st.floats(min_value=0.0, exclude_min=True, allow_infinity=False)
maybe_float = st.none() | st.floats(min_value=0.0, allow_infinity=False, width=64)
maybe_int = st.none() | st.integers(min_value=0, max_value=2**62)
moments = st.none() | st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
records = st.builds(
    RunRecord,
    sweep=texts,
    cell=texts,
    run_id=texts,
    source=st.sampled_from(SOURCES),
    status=st.sampled_from(STATUSES),
    code=st.none() | st.sampled_from([f"{i:04b}" for i in range(16)]),
    dcn=st.none() | st.booleans(),
    backbone=maybe_text,
    bbox_mAP=maybe_fraction,
    bbox_mAP_l=maybe_fraction,
    fps=maybe_positive,
    memory_gb=maybe_float,
    memory_kind=st.none() | st.sampled_from(MEMORY_KINDS),
    params=maybe_int,
    epochs=maybe_int,
    error=maybe_text,
    log_tail=maybe_text,
    started=moments,
    finished=moments,
    url=maybe_text,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(records, min_size=1, max_size=6))
def test_round_trip_keeps_every_run_exactly(
    tmp_path_factory: pytest.TempPathFactory, batch: list[RunRecord]
) -> None:
    store = Store(tmp_path_factory.mktemp("store"))
    latest = {}
    for record in batch:  # a later record with the same key replaces the earlier one
        store.put(record)
        latest[(record.sweep, record.cell, record.run_id)] = record
    for key, record in latest.items():
        assert store.get(*key) == record
    read = {
        (r["sweep"], r["cell"], r["run_id"]): RunRecord.from_dict(r) for r in store.read().table.to_pylist()
    }
    assert read == latest
    frame = store.read().frame()  # and through pandas, with nullable columns
    assert len(frame) == len(latest)
    assert sorted(frame["cell"]) == sorted(k[1] for k in latest)


def test_factor_columns_follow_the_code(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(code="0110", dcn=True))
    (row,) = rows(store)
    assert (row["query_key_content"], row["query_content_position"], row["key_content"]) == (
        False,
        True,
        True,
    )
    assert (
        row["relative_position"] is False and row["dcn"] is True and row["schema_version"] == SCHEMA_VERSION
    )
    with pytest.raises(BadCodeError):
        run(code="2")
    with pytest.raises(ValueError, match="valid: run, log, reference"):
        RunRecord(sweep="s", cell="c", run_id="r", source="mine")


# --- upsert ----------------------------------------------------------------------------------------------


def test_upsert_replaces_by_key_and_an_identical_write_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.put(run(bbox_mAP=0.1)) == "new"
    assert store.put(run(bbox_mAP=0.2)) == "updated"  # same key: replaced
    assert store.put(run(run_id="other", bbox_mAP=0.3)) == "new"  # another run of the cell: beside it
    assert [(r["run_id"], r["bbox_mAP"]) for r in rows(store)] == [("other", 0.3), ("r", 0.2)]
    path = store.file_for("s", "c", "r")
    before = path.stat().st_mtime_ns
    assert store.put(run(bbox_mAP=0.2)) == "unchanged"
    assert path.stat().st_mtime_ns == before
    assert Store(tmp_path).put(run(bbox_mAP=0.2)) == "unchanged"  # another object, another process alike


def test_a_run_another_process_put_a_moment_before_is_unchanged_not_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between this put's look and its write, another process made the file: it is not counted new twice."""
    store, other = Store(tmp_path), Store(tmp_path)
    real = store_module.write_new

    def racing(path: Path, data: bytes) -> bool:
        monkeypatch.setattr(store_module, "write_new", real)
        assert other.put(run(bbox_mAP=0.5)) == "new"  # the other process wins the race
        return real(path, data)

    monkeypatch.setattr(store_module, "write_new", racing)
    assert store.put(run(bbox_mAP=0.5)) == "unchanged"
    assert [r["bbox_mAP"] for r in rows(store)] == [0.5]
    assert [p.name for p in store.runs_dir.iterdir()] == [store.file_for("s", "c", "r").name]


def test_keys_that_read_alike_get_their_own_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for cell in ("a/b", "a_b", "a b", "a~b"):
        store.put(run(cell=cell))
    assert sorted(r["cell"] for r in rows(store)) == ["a b", "a/b", "a_b", "a~b"]


# --- many writers ----------------------------------------------------------------------------------------


def _writer(path: str, worker: int, count: int) -> None:
    store = Store(Path(path))
    for i in range(count):
        store.put(
            run(sweep="many", cell=f"w{worker:02d}", run_id=f"{i:03d}", bbox_mAP=(worker + i / 100) / 100)
        )
        store.put(
            run(sweep="many", cell="shared", run_id="same", fps=float(worker + 1))
        )  # all race on one key


@pytest.mark.slow
def test_sixteen_processes_writing_at_once_lose_no_row(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier_free = [context.Process(target=_writer, args=(str(tmp_path), w, 25)) for w in range(16)]
    for process in barrier_free:
        process.start()
    for process in barrier_free:
        process.join(120)
        assert process.exitcode == 0
    found = rows(Store(tmp_path))
    assert len(found) == 16 * 25 + 1
    mine = {(r["cell"], r["run_id"]): r["bbox_mAP"] for r in found if r["cell"] != "shared"}
    assert mine == {(f"w{w:02d}", f"{i:03d}"): (w + i / 100) / 100 for w in range(16) for i in range(25)}
    (shared,) = [r for r in found if r["cell"] == "shared"]
    assert shared["fps"] in {float(w + 1) for w in range(16)}  # one whole write won
    assert not [p for p in (tmp_path / "runs").iterdir() if p.suffix == ".tmp"], "temp files left"


# --- schemas ---------------------------------------------------------------------------------------------


def _write_raw(store: Store, name: str, table: pa.Table) -> Path:
    store.runs_dir.mkdir(parents=True, exist_ok=True)
    path = store.runs_dir / name
    pq.write_table(table, path)
    return path


def test_files_with_different_columns_read_back_with_every_column(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(cell="plain", bbox_mAP=0.4))
    extra = pa.Table.from_pylist([dict(run(cell="extra").row(), schema_version=1, batch=7, note="lr 0.01")])
    _write_raw(store, "zz-extra.parquet", extra)
    narrow = pa.table(
        {"sweep": ["s"], "cell": ["narrow"], "run_id": ["r"], "source": ["log"], "schema_version": [1]}
    )
    _write_raw(store, "aa-narrow.parquet", narrow)

    # pyarrow's own directory read takes one file's columns and drops the rest:
    assert "batch" not in pq.read_table(store.runs_dir).column_names
    table = store.read().table
    assert set(SCHEMA.names) <= set(table.column_names)
    assert {"batch", "note"} <= set(table.column_names)
    by_cell = {r["cell"]: r for r in table.to_pylist()}
    assert by_cell["extra"]["batch"] == 7 and by_cell["plain"]["batch"] is None
    assert by_cell["narrow"]["source"] == "log" and by_cell["narrow"]["bbox_mAP"] is None
    assert by_cell["plain"]["bbox_mAP"] == 0.4
    assert table.schema.field("bbox_mAP").type == pa.float64()


def test_old_schema_versions_are_upgraded_on_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version-0 file kept memory in MB under another name; the registered upgrade converts it."""

    def zero_to_one(table: pa.Table) -> pa.Table:
        gb = pa.compute.divide(table["memory_mb"], 1024.0)
        return table.drop_columns(["memory_mb"]).append_column("memory_gb", gb)

    monkeypatch.setitem(store_module.UPGRADES, 0, zero_to_one)
    store = Store(tmp_path)
    old = pa.table(
        {
            "sweep": ["s"],
            "cell": ["old"],
            "run_id": ["r"],
            "source": ["run"],
            "status": ["done"],
            "memory_mb": [8192.0],
            "schema_version": [0],
        }
    )
    _write_raw(store, "old.parquet", old)
    (row,) = rows(store)
    assert row["memory_gb"] == 8.0 and "memory_mb" not in row and row["schema_version"] == SCHEMA_VERSION


def test_a_version_1_file_reads_as_the_current_schema(tmp_path: Path) -> None:
    """Version 1 had the cell's setting after ``source`` and ``status``, and no seed or cell_id; version 2
    only reorders, version 3 adds those two (null in older files)."""
    store = Store(tmp_path)
    store.put(run(cell="c", code="0110", dcn=True, backbone="R-50", attention_impl="sdpa"))
    (path,) = store.runs_dir.glob("*.parquet")
    current = pq.read_table(path).drop_columns(["seed", "cell_id"])
    setting = ["code", "dcn", "backbone", "schedule", "dataset", "attention_module", "attention_impl"]
    rest = [n for n in current.column_names if n not in setting and n != "schema_version"]
    order = [*rest[:5], *setting, *rest[5:]]
    assert order[:5] == ["sweep", "cell", "run_id", "source", "status"]
    old = current.select(order).append_column("schema_version", pa.array([1], pa.int64()))
    _write_raw(store, path.name, old)
    (row,) = rows(store)
    assert row == {**current.to_pylist()[0], "seed": None, "cell_id": None}


def test_a_version_3_file_reads_with_no_stage_timings_but_training(tmp_path: Path) -> None:
    """Version 4 adds the seconds of the test, the fps measurement and the FLOPs count (null before)."""
    store = Store(tmp_path)
    store.put(run(cell="c", train_s=90.0, test_s=2.0, fps_s=0.5, flops_s=0.4))
    (path,) = store.runs_dir.glob("*.parquet")
    current = pq.read_table(path)
    old = current.drop_columns(["test_s", "fps_s", "flops_s", "schema_version"])
    _write_raw(store, path.name, old.append_column("schema_version", pa.array([3], pa.int64())))
    (row,) = rows(store)
    assert row == {**current.to_pylist()[0], "test_s": None, "fps_s": None, "flops_s": None}
    assert row["train_s"] == 90.0


def test_a_version_4_file_reads_with_no_cost(tmp_path: Path) -> None:
    """Version 5 adds the compute of a run's jobs over all attempts (null before: not known)."""
    store = Store(tmp_path)
    store.put(run(cell="c", train_s=90.0, attempts=2, gpu_hours=1.5, cpu_hours=3.0, wall_hours=0.75))
    (path,) = store.runs_dir.glob("*.parquet")
    current = pq.read_table(path)
    cost = [m.column for m in vocabulary.metrics("cost")]
    assert set(cost) <= set(current.column_names) and current.to_pylist()[0]["attempts"] == 2
    old = current.drop_columns([*cost, "schema_version"])
    _write_raw(store, path.name, old.append_column("schema_version", pa.array([4], pa.int64())))
    (row,) = rows(store)
    assert row == {**current.to_pylist()[0], **dict.fromkeys(cost)}
    assert row["train_s"] == 90.0 and row["schema_version"] == SCHEMA_VERSION


def test_unreadable_files_are_named_and_the_rest_is_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(cell="good"))
    good = store.file_for("s", "good", "r").read_bytes()
    (store.runs_dir / "garbage.parquet").write_bytes(b"not parquet at all")
    (store.runs_dir / "truncated.parquet").write_bytes(good[: len(good) // 2])
    newer = pa.table(
        {"sweep": ["s"], "cell": ["future"], "run_id": ["r"], "source": ["run"], "schema_version": [99]}
    )
    _write_raw(store, "future.parquet", newer)
    _write_raw(store, "foreign.parquet", pa.table({"x": [1]}))
    result = store.read()
    assert [r["cell"] for r in result.table.to_pylist()] == ["good"]
    assert len(result.problems) == 4
    assert all("\n" not in p for p in result.problems)
    text = " ".join(result.problems)
    assert "garbage.parquet: not a readable parquet file" in text
    assert "truncated.parquet: not a readable parquet file" in text
    assert (
        f"future.parquet: written with store schema 99, newer than this ablation's {SCHEMA_VERSION}" in text
    )
    assert "foreign.parquet: no schema_version" in text


def test_an_empty_store_reads_as_an_empty_table_of_the_schema(tmp_path: Path) -> None:
    result = Store(tmp_path / "nothing").read()
    assert result.table.num_rows == 0 and result.table.column_names[: len(SCHEMA)] == SCHEMA.names
    assert result.frame().empty


# --- the cache -------------------------------------------------------------------------------------------


def test_the_cache_follows_changed_new_and_removed_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for i in range(5):
        store.put(run(cell=f"c{i}", fps=float(i + 1)))
    assert len(rows(store)) == 5 and (tmp_path / CACHE_FILE).exists()
    store.put(run(cell="c1", fps=10.0))  # changed
    store.put(run(cell="c9"))  # new
    store.file_for("s", "c3", "r").unlink()  # removed
    found = {r["cell"]: r["fps"] for r in rows(store)}
    assert found == {"c0": 1.0, "c1": 10.0, "c2": 3.0, "c4": 5.0, "c9": None}
    assert {r["cell"] for r in store.read(cache=False).table.to_pylist()} == set(found)


def test_a_broken_cache_is_named_and_rebuilt(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(cell="a"))
    store.read()
    (tmp_path / CACHE_FILE).write_bytes(b"broken")
    result = store.read()
    assert [r["cell"] for r in result.table.to_pylist()] == ["a"]
    (problem,) = result.problems
    assert problem.startswith(f"{tmp_path / CACHE_FILE}: not a readable parquet file (")
    assert problem.endswith("); rebuilt from the run files")
    assert pq.read_table(tmp_path / CACHE_FILE).num_rows == 1
    assert [r["cell"] for r in rows(store)] == ["a"]  # rebuilt: no problem left


def _cache(store: Store) -> pa.Table:
    return pq.read_table(store.path / CACHE_FILE)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda cache: cache.slice(0, 3),
            "holds 3 rows for the 6 run files it lists (3 of them with too few or too many, ",
        ),
        (
            lambda cache: pa.concat_tables([cache, cache.slice(0, 1)]),
            "holds 7 rows for the 6 run files it lists (1 of them with too few or too many, ",
        ),
        (
            lambda cache: cache.set_column(
                cache.column_names.index("_file"), "_file", pa.array(["elsewhere.parquet"] * 6)
            ),
            "holds rows of 1 run files it does not list (elsewhere.parquet, ...)",
        ),
        (
            lambda cache: cache.set_column(cache.column_names.index("fps"), "fps", pa.array(["fast"] * 6)),
            "column fps holds string, not fps of double",
        ),
        (lambda cache: cache.drop_columns(["_file"]), "no _file column"),
    ],
)
def test_a_cache_that_disagrees_with_its_run_files_is_named_and_rebuilt(
    tmp_path: Path, change: Callable[[pa.Table], pa.Table], problem: str
) -> None:
    """A cache whose rows do not match the run files it lists is not trusted: the run files are read, and
    the cache written anew (export showed 16 of 32 runs from a cache with half its rows removed)."""
    store = Store(tmp_path)
    for i in range(6):
        store.put(run(cell=f"c{i}", fps=float(i + 1)))
    afresh = store.read().table
    cache = _cache(store)
    pq.write_table(change(cache).replace_schema_metadata(cache.schema.metadata), store.path / CACHE_FILE)
    result = Store(tmp_path).read()
    assert result.table.equals(afresh)
    (line,) = result.problems
    assert line.startswith(f"{store.path / CACHE_FILE}: {problem}")
    assert line.endswith("; rebuilt from the run files")
    assert _cache(store).num_rows == 6 and Store(tmp_path).read().problems == ()


def test_a_run_file_of_no_row_is_named_every_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(cell="a"))
    store.put(run(cell="b"))
    path = store.file_for("s", "b", "r")
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    for _ in range(2):  # not taken into the cache: named again
        result = Store(tmp_path).read()
        assert [r["cell"] for r in result.table.to_pylist()] == ["a"]
        assert result.problems == (f"{path}: holds no run (a run file of no row); left out",)
    assert Store(tmp_path).get("s", "b", "r") is None


def test_figures_out_of_their_range_read_as_missing_and_are_named(tmp_path: Path) -> None:
    """A run file written by another tool (or an older harvest) with fps inf or a box AP of 1.5: every
    reader gets the run with that figure missing, and a line naming it."""
    store = Store(tmp_path)
    store.put(run(cell="good", fps=10.0, bbox_mAP=0.4))
    store.put(run(cell="bad", fps=10.0, bbox_mAP=0.4))
    path = store.file_for("s", "bad", "r")
    table = pq.read_table(path)
    for name, value in (("fps", math.inf), ("bbox_mAP", 1.5)):
        table = table.set_column(table.column_names.index(name), name, pa.array([value]))
    pq.write_table(table, path)
    for _ in range(2):  # from the files, then from the cache
        result = Store(tmp_path).read()
        found = {r["cell"]: (r["fps"], r["bbox_mAP"]) for r in result.table.to_pylist()}
        assert found == {"good": (10.0, 0.4), "bad": (None, None)}
        assert sorted(result.problems) == [
            "s/bad/r: bbox_mAP = 1.5 is out of range (valid: [0, 1]); left out, read as missing",
            "s/bad/r: fps = inf is not a finite number (valid: > 0); left out, read as missing",
        ]
    record = Store(tmp_path).get("s", "bad", "r")
    assert record is not None and (record.fps, record.bbox_mAP) == (None, None)


def test_a_store_under_a_file_is_a_user_mistake(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a store")
    for path in (blocker, blocker / "store"):
        with pytest.raises(InputError, match=rf"^store {path}: {blocker} is a file, not a folder; "):
            Store(path).read()
    Store(tmp_path / "store").put(run())
    (tmp_path / "store" / "runs").rename(tmp_path / "gone")
    (tmp_path / "store" / "runs").write_text("")
    with pytest.raises(InputError, match=r"/store/runs is a file, not a folder"):
        Store(tmp_path / "store").read()


def test_nan_metrics_survive_as_missing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put(run(bbox_mAP=math.nan, fps=None))
    frame = store.read().frame()
    assert pd.isna(frame.loc[0, "bbox_mAP"]) and pd.isna(frame.loc[0, "fps"])
    assert os.listdir(store.runs_dir)


# --- what a Store wrote: read from memory, into the cache -------------------------------------------------


def test_a_harvest_s_read_takes_what_it_wrote_from_memory_and_leaves_the_cache_current(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs a Store wrote (with axis columns, as a sweep's) are not read back from their files, and the
    table is the one every file read afresh gives; the next process' read is then from the cache alone."""
    writer = store_with(tmp_path, axis_runs())
    Store(tmp_path / "store").put(run(cell="another process"))  # not this object's: read from its file
    reads: list[Path] = []
    real = store_module.read_run_file
    monkeypatch.setattr(store_module, "read_run_file", lambda path: reads.append(path) or real(path))
    from_memory = writer.read()
    assert [p.name for p in reads] == [writer.file_for("s", "another process", "r").name]
    monkeypatch.setattr(store_module, "read_run_file", real)
    afresh = Store(tmp_path / "store").read(cache=False)
    assert from_memory.table.equals(afresh.table) and from_memory.table.num_rows == 93
    monkeypatch.setattr(store_module, "read_run_file", lambda path: pytest.fail(f"read {path}"))
    assert Store(tmp_path / "store").read().table.equals(afresh.table)  # a restart: the cache alone


def test_a_run_replaced_since_this_store_wrote_it_is_read_from_its_file(tmp_path: Path) -> None:
    mine, theirs = Store(tmp_path), Store(tmp_path)
    mine.put(run(cell="c", fps=1.0))
    theirs.put(run(cell="c", fps=2.0))
    path = mine.file_for("s", "c", "r")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # surely another mtime
    assert [r["fps"] for r in rows(mine)] == [2.0]


def test_a_store_that_wrote_many_runs_keeps_a_bounded_number_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_KEEP_WRITTEN", 3)
    store = Store(tmp_path)
    for i in range(5):
        store.put(run(cell=f"c{i}"))
    assert pq.read_table(tmp_path / CACHE_FILE).num_rows == 3  # the first 3, into the cache at the 3rd
    assert [r["cell"] for r in rows(store)] == ["c0", "c1", "c2", "c3", "c4"]


def test_a_current_file_with_axis_columns_of_a_newer_version_is_refused(tmp_path: Path) -> None:
    """The fast read of files with axis columns still checks their version."""
    store = Store(tmp_path)
    store.put(run(cell="c", axes={"model.attention.kv_stride": 2}))
    path = store.file_for("s", "c", "r")
    table = pq.read_table(path)
    meta = {**table.schema.metadata, b"ablation.schema_version": b"99"}
    newer = table.set_column(
        table.column_names.index("schema_version"), "schema_version", pa.array([99], pa.int64())
    )
    pq.write_table(newer.replace_schema_metadata(meta), path)
    result = Store(tmp_path).read()
    assert result.table.num_rows == 0
    assert "written with store schema 99, newer than" in result.problems[0]
