"""One run file of the results store (``ablation.results.store``): its declared schema and version, reading
one as a table of the current version (``UPGRADES`` from older ones; a newer one, a column of another type,
or a file that is no parquet is a ``StoreError`` naming it), and unifying many files' tables into one that
keeps every column any of them has.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ablation.errors import StoreError
from ablation.results.records import KEY, RunRecord

__all__ = [
    "FILE_COLUMN",
    "SCHEMA",
    "SCHEMA_VERSION",
    "UPGRADES",
    "VERSION_KEY",
    "first_line",
    "read_run_file",
    "unify",
]

SCHEMA_VERSION = 5
VERSION_KEY = b"ablation.schema_version"
FILE_COLUMN = "_file"  # the store cache's record of which run file a row came from


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
    metadata={VERSION_KEY: str(SCHEMA_VERSION).encode()},
)

# UPGRADES[v] turns a table of schema version v into version v + 1 (renames, unit changes, ...).
# Columns that a newer version only adds need no entry: unifying fills them with nulls.
UPGRADES: dict[int, Callable[[pa.Table], pa.Table]] = {
    1: lambda table: table,  # 2 only orders the columns of a cell's identity (ablation.grid.identity) anew
    2: lambda table: table,  # 3 adds seed and cell_id (null: unseeded, not recorded) and the axis columns
    3: lambda table: table,  # 4 adds test_s, fps_s and flops_s (null: not recorded)
    4: lambda table: table,  # 5 adds attempts, gpu_hours, cpu_hours and wall_hours (null: cost not known)
}


def read_run_file(path: Path) -> pa.Table:
    """A run file as a table of the current schema version."""
    try:
        # one row: pyarrow's read-ahead and threads cost more than they save (bench/scale.py)
        table = pq.ParquetFile(path, pre_buffer=False).read(use_threads=False)
    except (OSError, pa.ArrowException) as error:
        raise StoreError(f"{path}: not a readable parquet file ({first_line(error)})") from None
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
    if (schema.metadata or {}).get(VERSION_KEY) != SCHEMA.metadata[VERSION_KEY] or len(schema) < len(SCHEMA):
        return False
    declared = all(schema.field(i).equals(f) for i, f in enumerate(SCHEMA))
    return declared and not any(name in SCHEMA.names for name in schema.names[len(SCHEMA) :])


def _version(table: pa.Table, path: Path) -> int:
    try:
        if "schema_version" in table.column_names:
            return int(table["schema_version"][0].as_py())
        return int((table.schema.metadata or {})[VERSION_KEY])
    except (KeyError, ValueError, TypeError, IndexError):
        raise StoreError(f"{path}: no schema_version; not a run file of an ablation store") from None


def unify(tables: Iterable[pa.Table]) -> pa.Table:
    """One table with the declared columns first and every extra column any table has; a column a table
    lacks is null there. An extra column whose type differs between files becomes text."""
    groups: dict[pa.Schema, list[pa.Table]] = {}
    for table in tables:  # most files share one schema: concatenate those first, align each group once
        groups.setdefault(table.schema.remove_metadata(), []).append(table)
    tables = [pa.concat_tables(group) for group in groups.values()]
    extra: dict[str, pa.DataType] = {}
    for table in tables:
        for f in table.schema:
            if f.name not in SCHEMA.names and f.name != FILE_COLUMN:
                known = extra.setdefault(f.name, f.type)
                if known != f.type and not pa.types.is_null(f.type):
                    extra[f.name] = f.type if pa.types.is_null(known) else pa.string()
    schema = pa.schema(
        [*SCHEMA, pa.field(FILE_COLUMN, pa.string())] + [pa.field(n, t) for n, t in extra.items()]
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


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
