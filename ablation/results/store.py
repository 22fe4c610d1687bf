"""The results store: a folder of parquet files, one per run, that many jobs can write at once.

Layout (names are the constants below)::

    <store>/runs/<sweep>~<cell>~<run id>~<hash>.parquet   one run each: the truth
    <store>/_cache.parquet                                every run in one file: a cache, rebuilt at will

A run's file name comes from its key (sweep, cell, run_id), so writing a run again replaces its file
(upsert), and two runs never share a file. Each file is written to a temp file in the same folder and moved
into place with ``os.replace``: a reader sees the old file or the new one, never half of one, and writers
need no lock. Files carry ``schema_version`` (a column, and the schema's metadata); reading upgrades older
versions through ``UPGRADES`` and unifies the files' columns, so a column that only some files have is
kept (null elsewhere) instead of being dropped as pandas' and pyarrow's directory reads do.

Reading 10,000 small files costs seconds, so a read also keeps ``cache.parquet``: the unified table plus the
name, size and mtime of every run file in it. The next read re-reads only files that are new or changed and
drops runs whose file is gone. The cache is never the only copy of anything: deleting it loses nothing. Its
name starts with ``_``, which pyarrow's (and so pandas') directory reads skip: ``pd.read_parquet(store)``
reads each run once. ``locate`` is the one rule of where the store is when nobody says.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ablation.errors import StoreError, WriteError
from ablation.fsio import root_dir, write_atomic
from ablation.results.records import KEY, RunRecord

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RUNS_DIR", "SCHEMA", "SCHEMA_VERSION", "UPGRADES", "ReadResult", "Store", "locate"]

SCHEMA_VERSION = 4
RUNS_DIR = "runs"
CACHE_FILE = "_cache.parquet"
_OLD_CACHE_FILE = (
    "cache.parquet"  # before schema 4's stores named it with "_"; removed when the cache is written
)
STORE_DIR = "store"  # the store's folder under the root of the runs
_VERSION_KEY = b"ablation.schema_version"
_CACHE_FILES_KEY = b"ablation.files"
_FILE_COLUMN = "_file"  # the cache's record of which run file a row came from
# How a run file is written: one row, so no dictionaries, statistics or compression, which only slow its
# read (1.8 -> 0.7 ms a file), but for the texts that can be long (a failed run's error and log tail).
_RUN_FILE_OPTIONS: dict[str, Any] = {
    "compression": {"error": "zstd", "log_tail": "zstd"},
    "use_dictionary": False,
    "write_statistics": False,
}
_KEEP_WRITTEN = 2048  # the runs a Store keeps in memory after writing them, until its next read


def _arrow_type(annotation: str) -> pa.DataType:
    base = annotation.replace(" | None", "")
    types = {
        "str": pa.string(),
        "bool": pa.bool_(),
        "int": pa.int64(),
        "float": pa.float64(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }
    return types[base]


# The declared schema: the key's columns, then one column per other RunRecord field in its order, then the
# schema version.
SCHEMA = pa.schema(
    [
        pa.field(f.name, _arrow_type(str(f.type)), nullable=f.name not in KEY)
        for f in sorted(dataclasses.fields(RunRecord), key=lambda f: f.name not in KEY)
        if f.name != "axes"  # one column per axis instead, after the declared ones (RunRecord.row)
    ]
    + [pa.field("schema_version", pa.int64(), nullable=False)],
    metadata={_VERSION_KEY: str(SCHEMA_VERSION).encode()},
)

# UPGRADES[v] turns a table of schema version v into version v + 1 (renames, unit changes, ...).
# Columns that a newer version only adds need no entry: unifying fills them with nulls.
UPGRADES: dict[int, Callable[[pa.Table], pa.Table]] = {
    1: lambda table: table,  # 2 only orders the columns of a cell's identity (ablation.grid.identity) anew
    2: lambda table: table,  # 3 adds seed and cell_id (null: unseeded, not recorded) and the axis columns
    3: lambda table: table,  # 4 adds test_s, fps_s and flops_s (null: not recorded)
}


@dataclass(frozen=True)
class ReadResult:
    """The runs read, and a one-line reason for every file that could not be."""

    table: pa.Table
    problems: tuple[str, ...] = ()

    def frame(self) -> pd.DataFrame:
        """The runs as a DataFrame: nullable columns stay nullable, timestamps are tz-aware."""
        import pandas as pd

        return self.table.to_pandas(types_mapper=_pandas_types(pd))


def _pandas_types(pd: Any) -> Callable[[pa.DataType], Any]:
    mapping = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype(), pa.string(): pd.StringDtype()}
    return mapping.get


def locate(path: Path | str | None = None, root: Path | str | None = None) -> Path:
    """Where the store is: ``path`` when given; else $ABLATION_STORE; else ``<root>/store``, the root being
    ``root`` when given, else $ABLATION_ROOT, else ``runs``. The CLI (``--store``, ``--root``), the dashboard
    and ``ablation.open_store`` all use this rule."""
    if path is not None:
        return Path(path)
    if os.environ.get("ABLATION_STORE"):
        return Path(os.environ["ABLATION_STORE"])
    return root_dir(root) / STORE_DIR


class Store:
    """The store at ``path`` (created on the first write).

    The runs this object writes are kept until its next read, which takes them from memory instead of
    reading their files again and brings the cache up to date with them: a harvest leaves the cache current
    without reading back what it wrote (every ``_KEEP_WRITTEN`` runs, it is brought up to date, which
    bounds the memory)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # run file name -> its [size, mtime_ns] once written, and the table written to it
        self._written: dict[str, tuple[list[int], pa.Table]] = {}

    @property
    def runs_dir(self) -> Path:
        return self.path / RUNS_DIR

    def file_for(self, sweep: str, cell: str, run_id: str) -> Path:
        """The file of the run with this key: readable parts, and a hash of the exact key so that two keys
        that read alike after cleaning never share a file."""
        digest = hashlib.sha256("\0".join((sweep, cell, run_id)).encode()).hexdigest()[:12]
        parts = [re.sub(r"[^A-Za-z0-9._-]+", "_", p)[:60] for p in (sweep, cell, run_id)]
        return self.runs_dir / f"{'~'.join(parts)}~{digest}.parquet"

    def signature(self) -> tuple[int, int, int]:
        """(run files, their total size, the newest mtime): changes whenever a run is written or removed, so a
        reader can tell cheaply that its copy is stale."""
        files = _run_files(self.runs_dir)
        sizes = [size for size, _ in files.values()]
        return len(files), sum(sizes), max((mtime for _, mtime in files.values()), default=0)

    def put(self, record: RunRecord) -> bool:
        """Insert or replace the run; False when the store already held exactly this run."""
        row = record.row()
        row["schema_version"] = SCHEMA_VERSION
        table = pa.Table.from_pylist([row], schema=SCHEMA)
        for name in (n for n in row if n not in SCHEMA.names):  # the axes: their values' own types
            table = table.append_column(name, pa.array([row[name]]))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **_RUN_FILE_OPTIONS)
        path = self.file_for(record.sweep, record.cell, record.run_id)
        data = buffer.getvalue()
        try:  # the same bytes, or (written otherwise, by an earlier version) the same table: unchanged
            held = path.read_bytes()
            if held == data or pq.read_table(pa.BufferReader(held)).equals(table):
                return False
        except (OSError, pa.ArrowException):  # none, or unreadable: (re)place it
            pass
        if not write_atomic(path, data):
            return False
        with contextlib.suppress(OSError):  # gone already: the next read finds out
            stat = path.stat()
            self._written[path.name] = ([stat.st_size, stat.st_mtime_ns], table)
        if len(self._written) >= _KEEP_WRITTEN:
            self.read()  # into the cache, out of memory
        return True

    def get(self, sweep: str, cell: str, run_id: str) -> RunRecord | None:
        path = self.file_for(sweep, cell, run_id)
        if not path.exists():
            return None
        rows = _read_run_file(path).to_pylist()
        return RunRecord.from_dict(rows[0]) if rows else None

    def read(self, cache: bool = True) -> ReadResult:
        """Every run, in one table of the declared schema plus any extra columns some file has. Unreadable
        files are left out and named in ``problems``. ``cache`` False reads every file afresh."""
        files = _run_files(self.runs_dir)
        cached, known = self._read_cache() if cache else (None, {})
        keep = [name for name in files if known.get(name) == files[name]]
        fresh = [name for name in files if known.get(name) != files[name]]
        tables, problems, read_files = [], [], {n: files[n] for n in keep}
        if cached is not None and keep:
            if len(keep) == len(known):
                tables.append(cached)
            else:
                mask = pc.is_in(cached[_FILE_COLUMN], value_set=pa.array(keep, pa.string()))
                tables.append(cached.filter(mask))
        # what this object wrote and nobody replaced since: from memory (not with cache=False: every file)
        written = {n: w[1] for n in fresh if cache and (w := self._written.get(n)) and w[0] == files[n]}
        unread = [name for name in sorted(fresh) if name not in written]
        with ThreadPoolExecutor(max_workers=4) as pool:  # parquet reads release the GIL
            try:
                outcomes = dict(
                    zip(unread, pool.map(_try_read, [self.runs_dir / n for n in unread]), strict=True)
                )
            except BaseException:  # Ctrl-C: stop at once, not after the thousands of reads still queued
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        for name in sorted(fresh):
            outcome = written[name] if name in written else outcomes[name]
            if isinstance(outcome, StoreError):
                problems.append(str(outcome))
                continue
            rows = pa.array([name] * outcome.num_rows, pa.string())
            tables.append(outcome.append_column(_FILE_COLUMN, rows))
            read_files[name] = files[name]
        table = _unify(tables)
        if cache and (fresh or len(known) != len(keep)):
            self._write_cache(table, read_files)
        if cache:
            self._written.clear()  # in the cache now (or, in a store that cannot be written, read again)
        return ReadResult(table.drop_columns([_FILE_COLUMN]), tuple(problems))

    def _read_cache(self) -> tuple[pa.Table | None, dict[str, list[int]]]:
        try:
            table = pq.read_table(self.path / CACHE_FILE)
            meta = table.schema.metadata or {}
            if meta.get(_VERSION_KEY) != str(SCHEMA_VERSION).encode():
                return None, {}
            known: dict[str, list[int]] = json.loads(meta[_CACHE_FILES_KEY])
            return table, known
        except (OSError, KeyError, ValueError, pa.ArrowException):
            return None, {}  # no cache, or a broken one: read the files

    def _write_cache(self, table: pa.Table, files: dict[str, list[int]]) -> None:
        meta = dict(SCHEMA.metadata)
        meta[_CACHE_FILES_KEY] = json.dumps(files, sort_keys=True).encode()
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(meta), buffer, compression="zstd")
        with contextlib.suppress(WriteError):  # a read-only store still reads
            write_atomic(self.path / CACHE_FILE, buffer.getvalue())
            (self.path / _OLD_CACHE_FILE).unlink(missing_ok=True)


def _run_files(folder: Path) -> dict[str, list[int]]:
    """Run file name -> [size, mtime_ns]: what tells the cache that a file changed."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return {}
    files = {}
    for entry in entries:
        if entry.name.endswith(".parquet"):  # not the .tmp files of writes under way
            try:
                stat = entry.stat()
            except FileNotFoundError:  # replaced between listing and stat: the next read sees it
                continue
            files[entry.name] = [stat.st_size, stat.st_mtime_ns]
    return files


def _try_read(path: Path) -> pa.Table | StoreError:
    try:
        return _read_run_file(path)
    except StoreError as error:
        return error


def _read_run_file(path: Path) -> pa.Table:
    """A run file as a table of the current schema version."""
    try:
        # one row: pyarrow's read-ahead and threads cost more than they save (bench/scale.py)
        table = pq.ParquetFile(path, pre_buffer=False).read(use_threads=False)
    except (OSError, pa.ArrowException) as error:
        raise StoreError(f"{path}: not a readable parquet file ({_first_line(error)})") from None
    if _current(table.schema):  # the common case: written by this version
        return table
    version = _version(table, path)
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: written with store schema {version}, newer than this ablation's {SCHEMA_VERSION}; "
            "upgrade ablation to read it"
        )
    while version < SCHEMA_VERSION:
        if version not in UPGRADES:
            raise StoreError(f"{path}: store schema {version} has no upgrade to {version + 1}")
        table = UPGRADES[version](table)
        version += 1
    table = table.drop_columns(["schema_version"]) if "schema_version" in table.column_names else table
    table = table.append_column("schema_version", pa.array([SCHEMA_VERSION] * table.num_rows, pa.int64()))
    columns, names = [], []
    for f in SCHEMA:  # the declared columns, in order and of their types; extra columns after them
        if f.name in table.column_names:
            try:
                columns.append(table[f.name].cast(f.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise StoreError(
                    f"{path}: column {f.name} holds {table[f.name].type}, not {f.type}"
                ) from None
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
        names.append(f.name)
    for name in table.column_names:
        if name not in SCHEMA.names:
            columns.append(table[name])
            names.append(name)
    return pa.Table.from_arrays(columns, names=names)


def _current(schema: pa.Schema) -> bool:
    """Whether a run file is of this version as written: the declared columns in order and of their
    types, then only its axes' columns (the version in the schema's metadata, as ``put`` writes it)."""
    if schema.equals(SCHEMA):
        return True
    if (schema.metadata or {}).get(_VERSION_KEY) != SCHEMA.metadata[_VERSION_KEY] or len(schema) < len(
        SCHEMA
    ):
        return False
    declared = all(schema.field(i).equals(f) for i, f in enumerate(SCHEMA))
    return declared and not any(name in SCHEMA.names for name in schema.names[len(SCHEMA) :])


def _version(table: pa.Table, path: Path) -> int:
    try:
        if "schema_version" in table.column_names:
            return int(table["schema_version"][0].as_py())
        return int((table.schema.metadata or {})[_VERSION_KEY])
    except (KeyError, ValueError, TypeError, IndexError):
        raise StoreError(f"{path}: no schema_version; not a run file of an ablation store") from None


def _unify(tables: Iterable[pa.Table]) -> pa.Table:
    """One table with the declared columns first and every extra column any table has; a column a table
    lacks is null there. An extra column whose type differs between files becomes text."""
    groups: dict[pa.Schema, list[pa.Table]] = {}
    for table in tables:  # most files share one schema: concatenate those first, align each group once
        groups.setdefault(table.schema.remove_metadata(), []).append(table)
    tables = [pa.concat_tables(group) for group in groups.values()]
    extra: dict[str, pa.DataType] = {}
    for table in tables:
        for f in table.schema:
            if f.name not in SCHEMA.names and f.name != _FILE_COLUMN:
                known = extra.setdefault(f.name, f.type)
                if known != f.type and not pa.types.is_null(f.type):
                    extra[f.name] = f.type if pa.types.is_null(known) else pa.string()
    schema = pa.schema(
        [*SCHEMA, pa.field(_FILE_COLUMN, pa.string())] + [pa.field(n, t) for n, t in extra.items()]
    )
    aligned = []
    for table in tables:
        columns = []
        for f in schema:
            if f.name not in table.column_names:
                columns.append(pa.nulls(table.num_rows, f.type))
                continue
            column = table[f.name]
            if column.type != f.type:
                try:
                    column = column.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. a struct: keep it readable
                    column = pa.array(
                        [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()],
                        f.type,
                    )
            columns.append(column)
        aligned.append(pa.Table.from_arrays(columns, schema=schema))
    return pa.concat_tables(aligned) if aligned else schema.empty_table()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
