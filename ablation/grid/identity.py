"""A cell's identity: which cell of which sweep, and the settings its figures depend on, as the results
tables show them. Declared once here; the job spec (``run.job.CellJob``), the result file
(``run.result_file.CellResult``), the store row (``results.records.RunRecord``) and what a config's text says
(``results.configtext.ConfigFacts``) all inherit it, and pass it on with ``setting()`` / ``identity()``
instead of field by field. Adding a field here adds it to all four (and a store column: see the store's
``SCHEMA_VERSION``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["CellIdentity", "CellSetting", "backbone_label", "schedule_label"]


@dataclass(kw_only=True)
class CellSetting:
    """What a cell is. None where the source does not say (an imported log, a model-zoo row)."""

    code: str | None = None  # the attention code, "0010"
    dcn: bool | None = None
    backbone: str | None = None  # "R-50", as mmdet's tables write it
    schedule: str | None = None  # "1x", "2e", ...
    dataset: str | None = None
    attention_module: str | None = None  # "ablation" or "mmcv": which GeneralizedAttention computed it
    attention_impl: str | None = None  # ablation's implementation: "reference" or "sdpa"
    # the cell's value on each extra axis of its sweep ([grid.axes]): dotted setting name -> value (JSON:
    # a list for a list); an axis that does not vary the cell (attention settings of 0000) is left out
    axes: dict[str, Any] = field(default_factory=dict)

    def setting(self) -> dict[str, Any]:
        """The setting's fields and values, to build another of the classes above from this one."""
        return {f.name: getattr(self, f.name) for f in fields(CellSetting)}


@dataclass(kw_only=True)
class CellIdentity(CellSetting):
    """A cell of a sweep: its sweep, its name (``faster-rcnn_r50-attn0010-dcn_fpn_1x_coco``), its setting,
    and which of its replicates (the seed; the replicates of a cell share its name and id)."""

    sweep: str
    cell: str
    seed: int | None = None  # the replicate's randomness.seed ([grid] seeds); None: unseeded (mmengine's)

    def identity(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(CellIdentity)}


def backbone_label(name: str | None) -> str | None:
    """mmdet's tables write a ResNet-50 as 'R-50': 'r50' -> 'R-50', 'x101' -> 'X-101'; others unchanged."""
    if name is None:
        return None
    match = re.fullmatch(r"([rx])(\d+)", name.lower())
    return f"{match[1].upper()}-{match[2]}" if match else name


def schedule_label(epochs: int | None) -> str | None:
    """mmdet's names for 12-epoch multiples ('1x' = 12 epochs, '2x' = 24), else '<n>e'."""
    if epochs is None:
        return None
    return f"{epochs // 12}x" if epochs % 12 == 0 else f"{epochs}e"
