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

Reading 10,000 small files costs seconds, so a read also keeps ``_cache.parquet``: the unified table plus
the name, size, mtime and row count of every run file in it. The next read re-reads only files that are new
or changed and drops runs whose file is gone. The cache is never the only copy of anything: deleting it
loses nothing, and a cache that disagrees with itself (rows of a file it does not list, fewer rows of a file
than it lists, columns of other types) or cannot be read is named in ``problems`` and rebuilt from the run
files. Its name starts with ``_``, which pyarrow's (and so pandas') directory reads skip:
``pd.read_parquet(store)`` reads each run once. ``locate`` is the one rule of where the store is when
nobody says.

Every read names, in ``problems``, each run file it cannot use (unreadable, of a newer schema, a column of
another type, no row) and each figure that is not a finite number in its valid range, which it reads as
missing (``records.screen_figures``): every reader gets the rest. The first write of a ``Store`` removes
the temp files that killed writers left in runs/ (``fsio.remove_stale_temps``), and each cache write those
beside the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ablation.errors import InputError, StoreError, WriteError
from ablation.fsio import remove_stale_temps, root_dir, write_atomic, write_new
from ablation.results.records import RunRecord, screen_figures
from ablation.results.runfile import (
    FILE_COLUMN,
    SCHEMA,
    SCHEMA_VERSION,
    UPGRADES,
    VERSION_KEY,
    first_line,
    read_run_file,
    unify,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "RUNS_DIR",
    "SCHEMA",
    "SCHEMA_VERSION",
    "UPGRADES",
    "Put",
    "ReadResult",
    "Store",
    "locate",
    "not_a_folder",
]

Put = Literal["new", "updated", "unchanged"]  # what Store.put did

RUNS_DIR = "runs"
CACHE_FILE = "_cache.parquet"
_OLD_CACHE_FILE = (
    "cache.parquet"  # before schema 4's stores named it with "_"; removed when the cache is written
)
STORE_DIR = "store"  # the store's folder under the root of the runs
_CACHE_FILES_KEY = b"ablation.files"
# How a run file is written: one row, so no dictionaries, statistics or compression, which only slow its
# read (1.8 -> 0.7 ms a file), but for the texts that can be long (a failed run's error and log tail).
_RUN_FILE_OPTIONS: dict[str, Any] = {
    "compression": {"error": "zstd", "log_tail": "zstd"},
    "use_dictionary": False,
    "write_statistics": False,
}
_KEEP_WRITTEN = 2048  # the runs a Store keeps in memory after writing them, until its next read


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


def not_a_folder(path: Path) -> Path | None:
    """The file that keeps ``path`` from being a folder: ``path`` itself or the nearest existing folder above
    it, when that is a file; None when ``path`` is a folder or can be made one."""
    for where in (path, *path.parents):
        if where.is_dir():
            return None
        if where.exists() or where.is_symlink():
            return where
    return None


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
        self._swept = False  # whether this object's first write removed the stale temp files yet

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

    def check(self) -> None:
        """``InputError`` when the store's folder, its runs/ or a folder above is a file: nothing can be read
        or written there."""
        for folder in (self.runs_dir, self.path):
            if (blocker := not_a_folder(folder)) is not None:
                raise InputError(
                    f"store {self.path}: {blocker} is a file, not a folder; give the store's folder "
                    "(made by the first harvest)",
                    argument="store",
                )

    def put(self, record: RunRecord) -> Put:
        """Insert or replace the run: "new" when this call made its file, "updated" when it replaced a file
        that held another version, "unchanged" when the store already held exactly this run. When two
        processes put the same new run at once, one is told "new" and the other "unchanged"."""
        if not self._swept:
            self._swept = True
            remove_stale_temps(self.runs_dir)
        row = record.row()
        row["schema_version"] = SCHEMA_VERSION
        table = pa.Table.from_pylist([row], schema=SCHEMA)
        for name in (n for n in row if n not in SCHEMA.names):  # the axes: their values' own types
            table = table.append_column(name, pa.array([row[name]]))
        buffer = io.BytesIO()
        pq.write_table(table, buffer, **_RUN_FILE_OPTIONS)
        path = self.file_for(record.sweep, record.cell, record.run_id)
        data = buffer.getvalue()
        if _holds(path, data, table):
            return "unchanged"
        # no file there: made by this call alone (a link fails if the name is taken)
        if write_new(path, data):
            outcome: Put = "new"
        elif _holds(path, data, table) or not write_atomic(path, data):  # another process put it just now
            return "unchanged"
        else:
            outcome = "updated"
        with contextlib.suppress(OSError):  # gone already: the next read finds out
            stat = path.stat()
            self._written[path.name] = ([stat.st_size, stat.st_mtime_ns], table)
        if len(self._written) >= _KEEP_WRITTEN:
            self.read()  # into the cache, out of memory
        return outcome

    def get(self, sweep: str, cell: str, run_id: str) -> RunRecord | None:
        path = self.file_for(sweep, cell, run_id)
        if not path.exists():
            return None
        rows = read_run_file(path).to_pylist()
        if not rows:
            return None
        record = RunRecord.from_dict(rows[0])
        record.drop_bad_figures()
        return record

    def read(self, cache: bool = True) -> ReadResult:
        """Every run, in one table of the declared schema plus any extra columns some file has. Unreadable
        files (and files of no row) are left out, and figures that are not finite numbers in their valid
        ranges read as missing; each is named in ``problems``, as is a cache rebuilt because it disagreed
        with itself. ``cache`` False reads every file afresh."""
        try:
            files = _run_files(self.runs_dir)
        except NotADirectoryError:
            self.check()
            raise
        problems: list[str] = []
        cached, known = self._read_cache(problems) if cache else (None, {})
        keep = [name for name in files if known.get(name, [])[:2] == files[name]]
        fresh = [name for name in files if known.get(name, [])[:2] != files[name]]
        tables, read_files = [], {n: known[n] for n in keep}
        if cached is not None and keep:
            if len(keep) == len(known):
                tables.append(cached)
            else:
                mask = pc.is_in(cached[FILE_COLUMN], value_set=pa.array(keep, pa.string()))
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
            if not outcome.num_rows:  # read again, and named again, by every read until it is fixed
                problems.append(f"{self.runs_dir / name}: holds no run (a run file of no row); left out")
                continue
            rows = pa.array([name] * outcome.num_rows, pa.string())
            tables.append(outcome.append_column(FILE_COLUMN, rows))
            read_files[name] = [*files[name], outcome.num_rows]
        table = unify(tables)
        if cache and read_files != known:  # a run file new, changed or gone, or the cache rebuilt
            self._write_cache(table, read_files)
        if cache:
            self._written.clear()  # in the cache now (or, in a store that cannot be written, read again)
        screened, dropped = screen_figures(table.drop_columns([FILE_COLUMN]))
        return ReadResult(screened, (*problems, *dropped))

    def _read_cache(self, problems: list[str]) -> tuple[pa.Table | None, dict[str, list[int]]]:
        """The cache's table and its run files' [size, mtime_ns, rows]; (None, {}) when there is none, it is
        of another schema version, or it disagrees with itself (named in ``problems``): read the files."""
        path = self.path / CACHE_FILE
        try:
            table = pq.read_table(path)
        except FileNotFoundError:
            return None, {}
        except (OSError, pa.ArrowException) as error:
            problems.append(f"{path}: not a readable parquet file ({first_line(error)}); {_REBUILT}")
            return None, {}
        meta = table.schema.metadata or {}
        if meta.get(VERSION_KEY) != str(SCHEMA_VERSION).encode():
            return None, {}  # an older version's: rebuilt in this version's
        try:
            known: dict[str, list[int]] = json.loads(meta[_CACHE_FILES_KEY])
            wrong = _cache_disagrees(table, known)
        except (KeyError, ValueError, TypeError, AttributeError, pa.ArrowException):
            wrong = "no readable list of the run files it holds"
        if wrong:
            problems.append(f"{path}: {wrong}; {_REBUILT}")
            return None, {}
        return table, known

    def _write_cache(self, table: pa.Table, files: dict[str, list[int]]) -> None:
        meta = dict(SCHEMA.metadata)
        meta[_CACHE_FILES_KEY] = json.dumps(files, sort_keys=True).encode()
        buffer = io.BytesIO()
        pq.write_table(table.replace_schema_metadata(meta), buffer, compression="zstd")
        with contextlib.suppress(WriteError):  # a read-only store still reads
            write_atomic(self.path / CACHE_FILE, buffer.getvalue())
            (self.path / _OLD_CACHE_FILE).unlink(missing_ok=True)
            remove_stale_temps(self.path)


_REBUILT = "rebuilt from the run files"


def _cache_disagrees(table: pa.Table, known: dict[str, list[int]]) -> str | None:
    """Why the cache's table does not match the run files it lists, or None: each listed file's rows (a
    count of them, in caches that recorded one), no row of a file it does not list, the declared columns of
    their types. About a millisecond for 10,000 runs."""
    if table.num_columns <= len(SCHEMA) or table.schema.field(len(SCHEMA)).name != FILE_COLUMN:
        return f"no {FILE_COLUMN} column"
    for i, declared in enumerate(SCHEMA):
        if not table.schema.field(i).equals(declared):
            found = table.schema.field(i)
            return f"column {found.name} holds {found.type}, not {declared.name} of {declared.type}"
    counts = pc.value_counts(table[FILE_COLUMN])
    held = dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    unlisted = [name for name in held if name not in known]
    if unlisted:
        return f"holds rows of {len(unlisted)} run files it does not list ({unlisted[0]}, ...)"
    # a listed file's rows: as many as it recorded (an older cache recorded no count: at least one)
    wrong = [n for n, entry in known.items() if not _rows_match(held.get(n, 0), entry)]
    if wrong:
        return (
            f"holds {sum(held.values())} rows for the {len(known)} run files it lists "
            f"({len(wrong)} of them with too few or too many, {wrong[0]}, ...)"
        )
    return None


def _rows_match(rows: int, entry: list[int]) -> bool:
    return rows == entry[2] if len(entry) > 2 else rows >= 1


def _holds(path: Path, data: bytes, table: pa.Table) -> bool:
    """Whether the run file ``path`` holds this run: the same bytes, or (written otherwise, by an earlier
    version) the same table; False when there is none, or it cannot be read (it is then replaced)."""
    try:
        held = path.read_bytes()
        return held == data or pq.read_table(pa.BufferReader(held)).equals(table)
    except (OSError, pa.ArrowException):
        return False


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
        return read_run_file(path)
    except StoreError as error:
        return error
