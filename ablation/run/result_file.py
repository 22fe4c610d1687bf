"""The result file of one cell: ``result.json`` in its work_dir, written atomically by the cell's job.

A job writes it when it starts (status ``running``) and when it ends (``done`` with the figures, or ``failed``
with the error and the log's tail), so that any process can tell what a cell did without asking the
executor. Memory carries its kind, because a CUDA peak of training and a CPU process' peak RSS are not the
same figure: ``cuda_peak_allocated`` (torch.cuda.max_memory_allocated over training, as mmdet logs it) or
``cpu_peak_rss`` (the training process' peak resident set size).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ablation import vocabulary
from ablation.errors import LogFormatError
from ablation.fsio import write_atomic
from ablation.grid.identity import CellIdentity
from ablation.vocabulary import COCO_METRICS, RESULT_STATUSES, STAGES

__all__ = [
    "MEMORY_KINDS",
    "METRICS",
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "STATUSES",
    "TIMINGS",
    "CellResult",
    "load_result",
    "read_result",
    "write_result",
]

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1
# Derived from the vocabulary (ablation.vocabulary), the one declaration of each: the statuses a result
# holds, the memory kinds' keys, CocoMetric's box metrics (the keys of ``metrics``, as mmdet names them after
# its "coco/" prefix) and the stages a job times in ``timings`` (beside total_s, the whole job).
STATUSES = RESULT_STATUSES
MEMORY_KINDS = tuple(kind.key for kind in vocabulary.MEMORY_KINDS)
METRICS = COCO_METRICS
TIMINGS = tuple(stage.column for stage in STAGES)


@dataclass(kw_only=True)
class CellResult(CellIdentity):
    """What one attempt of one cell (``CellIdentity``) did. Figures are None until measured (or when a step
    failed)."""

    status: str
    cell_id: str
    code: str  # a cell's own result always knows these two (an imported row may not: CellIdentity)
    dcn: bool
    config: str
    config_hash: str
    attempt: int
    host: str
    pid: int
    started: str
    finished: str | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    fps: float | None = None
    fps_device: str | None = None
    fps_images: int | None = None
    memory_mb: float | None = None
    memory_kind: str | None = None
    flops: float | None = None
    params: int | None = None
    flops_input: list[int] | None = None
    epochs: int | None = None
    iterations: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log_tail: str | None = None
    git_commit: str | None = None
    tasks: int | None = None  # processes it ran with (the torch.distributed world size); None: not recorded
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES or self.memory_kind not in (None, *MEMORY_KINDS):
            raise ValueError(f"bad result: status {self.status!r}, memory_kind {self.memory_kind!r}")

    @property
    def ap(self) -> float | None:
        return self.metrics.get("bbox_mAP")


_HINTS = typing.get_type_hints(CellResult)


def write_result(work_dir: Path, result: CellResult) -> Path:
    path = work_dir / RESULT_FILE
    write_atomic(path, json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True) + "\n")
    return path


def load_result(work_dir: Path) -> CellResult:
    """The cell's result; ``LogFormatError`` naming the file when it is missing, not JSON, not a result, of a
    newer schema version, or has a field of the wrong type (naming the field)."""
    path = work_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise LogFormatError(f"{path}: not readable JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise LogFormatError(f"{path}: not a result (a JSON object is expected)")
    version = data.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise LogFormatError(
            f"{path}: written with result schema {version}, newer than this ablation's {SCHEMA_VERSION}; "
            "upgrade ablation to read it"
        )
    fields = {f.name: f for f in dataclasses.fields(CellResult)}
    missing = [
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise LogFormatError(f"{path}: not a result (missing field {', '.join(map(repr, missing))})")
    for name in fields:
        if name in data and not _is(data[name], _HINTS[name]):
            value = data[name]
            why = "beyond 64-bit integers" if _too_big(value) else f"expected {_expected(_HINTS[name])}"
            raise LogFormatError(f"{path}: field {name!r} is {_shown(value)}, {why}")
    for name, valid in (("status", STATUSES), ("memory_kind", (None, *MEMORY_KINDS))):
        if data.get(name) not in valid:
            shown = ", ".join(json.dumps(v) for v in valid)
            raise LogFormatError(f"{path}: field {name!r} is {_shown(data[name])}, expected one of {shown}")
    try:
        return CellResult(**{k: v for k, v in data.items() if k in fields})
    except (TypeError, ValueError) as error:
        raise LogFormatError(f"{path}: not a result ({str(error).splitlines()[0]})") from None


def _is(value: object, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (an int is a float; a bool is neither)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:  # any JSON value (an axis' value)
        return True
    if origin in (Union, types.UnionType):
        return any(_is(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and _is(v, args[1]) for k, v in value.items()
        )
    if origin is list:
        return isinstance(value, list) and all(_is(v, args[0]) for v in value)
    if isinstance(value, bool):
        return hint is bool
    if _too_big(value):  # the store holds 64-bit integers (and floats no larger)
        return False
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def _too_big(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63


def _expected(hint: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_expected(arg, plural) for arg in args)
    if origin is dict:
        return "objects" if plural else f"an object of {_expected(args[1], plural=True)}"
    if origin is list:
        return "lists" if plural else f"a list of {_expected(args[0], plural=True)}"
    return _NAMES[hint][plural]


_NAMES = {
    type(None): ("null", "nulls"),
    bool: ("true or false", "true or false"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


def _shown(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_result(work_dir: Path) -> CellResult | None:
    """The cell's result, or None when there is none yet or it cannot be read (a job killed mid-write
    cannot leave half a file, but a user can)."""
    try:
        return load_result(work_dir)
    except LogFormatError:
        return None
