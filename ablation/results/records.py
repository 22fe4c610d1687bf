"""One row of the results store: what one run of one cell measured, wherever it came from.

A run is keyed by (sweep, cell, run_id). ``source`` says where its figures come from: ``run`` (a cell's own
result file, or a work_dir that mmengine's tools/train.py and tools/test.py wrote), ``log`` (an imported
mmdet 2.x ``.log.json``) or ``reference`` (the published model-zoo numbers in experiments/reference/).

Figures are as mmdet reports them: box AP and its breakdown as fractions (0.400 is 40.0 AP), memory in GB
(MB / 1024) together with its kind, fps in images per second at batch 1. A figure nobody measured is None,
never 0. Every metric and stage of ``ablation.vocabulary`` has a field here (tests/test_vocabulary.py ties
them), so a harvested figure always reaches the store.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ablation.grid.identity import CellIdentity
from ablation.model.codes import FACTORS, AttentionCode
from ablation.run.result_file import MEMORY_KINDS, METRICS, STATUSES
from ablation.vocabulary import STAGES

__all__ = [
    "KEY",
    "SOURCES",
    "VERSIONED",
    "RunRecord",
    "is_axis_column",
]

KEY = ("sweep", "cell", "run_id")
SOURCES = ("run", "log", "reference")
# The packages whose versions a run records, each in its own column "<name>_version".
VERSIONED = ("torch", "mmcv", "mmdet", "mmengine", "ablation")


@dataclass(kw_only=True)
class RunRecord(CellIdentity):
    """A run: its cell (``CellIdentity``), its id and source, its outcome and its figures."""

    run_id: str
    source: str
    cell_id: str | None = (
        None  # the cell's id, which its replicates share: runs of one config (all but the seed)
    )
    status: str = "done"
    bbox_mAP: float | None = None
    bbox_mAP_50: float | None = None
    bbox_mAP_75: float | None = None
    bbox_mAP_s: float | None = None
    bbox_mAP_m: float | None = None
    bbox_mAP_l: float | None = None
    fps: float | None = None
    device: str | None = None  # what the fps was measured on
    memory_gb: float | None = None
    memory_kind: str | None = None
    flops: float | None = None
    params: int | None = None
    epochs: int | None = None
    iterations: int | None = None
    train_s: float | None = (
        None  # seconds of the job's stages (vocabulary.STAGES): training, test, fps, FLOPs
    )
    test_s: float | None = None
    fps_s: float | None = None
    flops_s: float | None = None
    error: str | None = None
    log_tail: str | None = None
    config: str | None = None  # the config's path or address
    config_hash: str | None = None
    torch_version: str | None = None
    mmcv_version: str | None = None
    mmdet_version: str | None = None
    mmengine_version: str | None = None
    ablation_version: str | None = None
    git_commit: str | None = None
    host: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    origin: str | None = None  # the file (or folder) the figures were read from
    url: str | None = None  # where the published model and log are
    # The four factors of ``code``, derived from it (never given).
    query_key_content: bool | None = field(default=None, init=False)
    query_content_position: bool | None = field(default=None, init=False)
    key_content: bool | None = field(default=None, init=False)
    relative_position: bool | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        for name in KEY:
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"a run needs a non-empty {name}")
        _one_of("source", self.source, SOURCES)
        _one_of("status", self.status, STATUSES)
        _one_of("memory_kind", self.memory_kind, (None, *MEMORY_KINDS))
        if self.code is not None:
            flags = AttentionCode.parse(self.code).flags  # raises BadCodeError on a bad code
            for factor in FACTORS:
                setattr(self, factor.key, flags[factor.key])

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        """A record from a store row; axis columns go back into ``axes``, derived and unknown columns are
        left out."""
        given = {f.name for f in fields(cls) if f.init} - {"axes"}
        axes = {k: v for k, v in data.items() if is_axis_column(k) and v is not None}
        return cls(**{k: v for k, v in data.items() if k in given}, axes=axes)

    def row(self) -> dict[str, Any]:
        """The store's columns of this run: every field but ``axes``, then one column per axis, named by
        its dotted setting name, holding a plain value (a list as its JSON text)."""
        row = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "axes"}
        for name, value in self.axes.items():
            row[name] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
        return row

    def set_metrics(self, metrics: Mapping[str, float | None]) -> None:
        """Set the box AP columns from a {metric: value} mapping (missing: None)."""
        for name in METRICS:
            self._set(name, metrics.get(name))

    def set_timings(self, timings: Mapping[str, float]) -> None:
        """Set the seconds of the job's stages (``vocabulary.STAGES``) from a result file's timings."""
        for stage in STAGES:
            self._set(stage.column, timings.get(stage.column))

    def _set(self, name: str, value: object) -> None:
        """Set a figure's field; a name of the vocabulary without a field here is an error, never dropped."""
        if name not in _FIELDS:
            raise TypeError(f"RunRecord has no field {name!r}: add it (and bump the store's schema)")
        setattr(self, name, value)

    def versions(self, versions: Mapping[str, str]) -> None:
        """Set the ``<package>_version`` columns from a {package: version} mapping."""
        for name in VERSIONED:
            setattr(self, f"{name}_version", versions.get(name))


_FIELDS = frozenset(f.name for f in fields(RunRecord))


def is_axis_column(name: str) -> bool:
    """Whether a store column holds an axis of a sweep's grid: axes are named by a setting's dotted name
    (``model.attention.kv_stride``), and no other column has a dot."""
    return "." in name


def _one_of(name: str, value: object, valid: tuple[object, ...]) -> None:
    if value not in valid:
        raise ValueError(f"bad {name} {value!r}; valid: {', '.join(map(str, valid))}")
