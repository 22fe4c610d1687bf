"""What an MMDetection config's text says about its cell: attention code, DCN, backbone, epochs.

Read from the text, not by executing it: the same patterns hold for the config mmengine dumps into a 3.x
work_dir and for the config an mmdet 2.x log carries in its header, and a 2.x config would not build
under mmdet 3.x anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ablation.grid.cells import Cell
from ablation.grid.identity import CellSetting, backbone_label, schedule_label
from ablation.model.codes import AttentionCode
from ablation.results.records import RunRecord

__all__ = ["ConfigFacts", "cell_name", "config_facts", "name_facts"]

# The DCN stages of mmdet's dconv-c3-c5 configs, for the baseline cell's name.
_DCN_STAGES = (False, True, True, True)
_MODULES = {"AblationGeneralizedAttention": "ablation", "GeneralizedAttention": "mmcv"}


@dataclass(kw_only=True)
class ConfigFacts(CellSetting):
    """What a config (or a config's name) says of its cell (``CellSetting``), None where it does not say; the
    schedule follows the epochs."""

    epochs: int | None = None

    def __post_init__(self) -> None:
        if self.schedule is None:
            self.schedule = schedule_label(self.epochs)

    def record(self, dataset: str | None, **values: Any) -> RunRecord:
        """A store row of this cell; ``values`` gives the other fields (sweep, cell, run_id, source, ...)."""
        return RunRecord(**{**self.setting(), "dataset": dataset}, **values)


def config_facts(text: str) -> ConfigFacts:
    """The cell a config describes. A config with a backbone and no GeneralizedAttention plugin is the
    plain baseline, code 0000."""
    depth = re.search(r"\bdepth\s*=\s*(\d+)", text)
    kind = re.search(r"type\s*=\s*'(ResNeXt|ResNet)'", text)
    code = re.search(r"attention_type\s*=\s*['\"]([01]{4})['\"]", text)
    module = re.search(r"type\s*=\s*'((?:Ablation)?GeneralizedAttention)'", text)
    epochs = re.search(r"\b(?:max_epochs|total_epochs)\s*=\s*(\d+)", text)
    implementation = re.search(r"\bimplementation\s*=\s*'(\w+)'", text)
    backbone = None
    if depth:
        backbone = backbone_label(("x" if kind and kind[1] == "ResNeXt" else "r") + depth[1])
    return ConfigFacts(
        code=code[1] if code else ("0000" if depth else None),
        dcn=bool(re.search(r"\bdcn\s*=\s*dict\(", text)) if depth else None,
        backbone=backbone,
        epochs=int(epochs[1]) if epochs else None,
        attention_module=_MODULES[module[1]] if module else None,
        attention_impl=(implementation[1] if implementation else "reference")
        if module and _MODULES[module[1]] == "ablation"
        else None,
    )


def name_facts(name: str) -> tuple[ConfigFacts, str | None]:
    """What an mmdet config or log name says, and its dataset: 2.x names such as
    'faster_rcnn_r50_fpn_attention_1111_dcn_1x_coco_20200130_204442.log.json' and 3.x names such as
    'faster-rcnn_r50-attn1111-dcn_fpn_1x_coco'. A name with a backbone but no attention part is the
    baseline; a name without a backbone part says nothing of the cell."""
    stem = name.lower()
    code = re.search(r"(?:attention_|attn)([01]{4})", stem)
    depth = re.search(r"(?:^|[_-])([rx])(\d{2,3})(?=[_-])", stem)
    schedule = re.search(r"_(\d+)x_", stem)
    dataset = re.search(r"_\d+(?:x|e)_([a-z0-9]+)", stem)
    facts = ConfigFacts(  # a name with no backbone part is not an mmdet config name: it tells nothing
        code=code[1] if code else ("0000" if depth else None),
        dcn=bool(re.search(r"(?:^|[_-])(?:dcn|dconv)(?:[_-]|$)", stem)) if depth else None,
        backbone=backbone_label(depth[1] + depth[2]) if depth else None,
        epochs=12 * int(schedule[1]) if schedule else None,
    )
    return facts, dataset[1] if dataset else None


def cell_name(
    facts: ConfigFacts, dataset: str | None, detector: str = "faster-rcnn", neck: str = "fpn"
) -> str:
    """The cell's name as `ablation plan` and mmdetection 3.x name it:
    'faster-rcnn_r50-attn1111_fpn_1x_coco'."""
    if facts.code is None or facts.dcn is None:
        raise ValueError("a cell name needs the attention code and the DCN setting")
    backbone = (facts.backbone or "R-50").replace("-", "").lower()
    tag = Cell(AttentionCode(facts.code), facts.dcn).backbone_tag(_DCN_STAGES)
    return f"{detector}_{backbone}{tag}_{neck}_{facts.schedule or 'unknown'}_{dataset or 'unknown'}"
