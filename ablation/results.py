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
from typing import Any

from .fsio import write_atomic

__all__ = ["METRICS", "RESULT_FILE", "SCHEMA_VERSION", "CellResult", "read_result", "write_result"]

RESULT_FILE = "result.json"
SCHEMA_VERSION = 1
# CocoMetric's box metrics, as mmdet names them after the "coco/" prefix.
METRICS = ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l")
STATUSES = ("running", "done", "failed")
MEMORY_KINDS = ("cuda_peak_allocated", "cpu_peak_rss")


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


def read_result(work_dir: Path) -> CellResult | None:
    """The cell's result, or None when there is none yet or it cannot be read (a job killed mid-write
    cannot leave half a file, but a user can)."""
    try:
        data: dict[str, Any] = json.loads((work_dir / RESULT_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in dataclasses.fields(CellResult)}
        return CellResult(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError):
        return None
