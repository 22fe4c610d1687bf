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
from dataclasses import dataclass, field
from pathlib import Path

from .errors import LogFormatError
from .fsio import write_atomic
from .records import MEMORY_KINDS, METRICS, STATUSES

__all__ = [
    "METRICS",
    "RESULT_FILE",
    "SCHEMA_VERSION",
    "CellResult",
    "load_result",
    "read_result",
    "write_result",
]

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1


@dataclass
class CellResult:
    """What one attempt of one cell did. Figures are None until measured (or when a step failed)."""

    status: str
    sweep: str
    cell: str
    cell_id: str
    code: str
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
    backbone: str | None = None
    schedule: str | None = None
    dataset: str | None = None
    attention_module: str | None = None
    attention_impl: str | None = None
    git_commit: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES or self.memory_kind not in (None, *MEMORY_KINDS):
            raise ValueError(f"bad result: status {self.status!r}, memory_kind {self.memory_kind!r}")

    @property
    def ap(self) -> float | None:
        return self.metrics.get("bbox_mAP")


def write_result(work_dir: Path, result: CellResult) -> Path:
    path = work_dir / RESULT_FILE
    write_atomic(path, json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True) + "\n")
    return path


def load_result(work_dir: Path) -> CellResult:
    """The cell's result; ``LogFormatError`` naming the file when it is missing, not JSON or not a result."""
    path = work_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise LogFormatError(f"{path}: not readable JSON ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise LogFormatError(f"{path}: not a result (a JSON object is expected)")
    known = {f.name for f in dataclasses.fields(CellResult)}
    try:
        return CellResult(**{k: v for k, v in data.items() if k in known})
    except (TypeError, ValueError) as error:
        raise LogFormatError(f"{path}: not a result ({str(error).splitlines()[0]})") from None


def read_result(work_dir: Path) -> CellResult | None:
    """The cell's result, or None when there is none yet or it cannot be read (a job killed mid-write
    cannot leave half a file, but a user can)."""
    try:
        return load_result(work_dir)
    except LogFormatError:
        return None
