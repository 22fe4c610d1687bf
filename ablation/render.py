"""One MMDetection config per cell: the sweep's base config plus what the cell and the sweep change.

A rendered config is an mmengine config file that mmdet's own tools/train.py runs as it is. It inherits the
base (``_base_``, usually from the installed mmdet's configs) and overrides only what the sweep sets:
the attention plugin for codes other than 0000, DCN, the schedule, the dataset and the batch. For the paper's
settings the result loads to the same Config as mmdetection's own file for that cell.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EnvironmentProblem, SweepFileError
from .grid import Cell
from .pysource import Ref, assignments
from .sweep import ATTENTION_MODULES, Sweep

__all__ = ["RenderedConfig", "cell_name", "render", "resolve_base"]

MMDET_SCOPE = "mmdet::"


@dataclass(frozen=True)
class RenderedConfig:
    """A cell's config: its base, the overrides, and the id derived from both."""

    cell: Cell
    name: str
    base: str
    variables: dict[str, Any]

    @property
    def config_hash(self) -> str:
        """sha256 of the canonical JSON of base and overrides: equal configs, equal hashes."""
        canonical = json.dumps(
            {"base": self.base, "variables": self.variables},
            sort_keys=True,
            separators=(",", ":"),
            default=_jsonable,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def cell_id(self) -> str:
        """A short, stable id: the same sweep settings give the same id on every re-plan."""
        return self.config_hash[:12]

    def text(self, sweep: Sweep) -> str:
        code = self.cell.code
        header = (
            f"# Written by `ablation plan` from {sweep.path.name}: edit the sweep, not this file.\n"
            f"# cell {self.name}  id {self.cell_id}\n"
            f"# attention {code}: {code.description}; DCN {'on' if self.cell.dcn else 'off'}\n"
        )
        return f"{header}_base_ = {self.base!r}\n\n{assignments(self.variables)}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Ref):
        return {"$ref": value.name}
    raise TypeError(f"not JSON: {value!r}")


def cell_name(sweep: Sweep, cell: Cell) -> str:
    """mmdetection's naming: faster-rcnn_r50-attn0010-dcn_fpn_1x_coco."""
    m = sweep.model
    backbone = m.backbone + cell.backbone_tag(m.dcn.stages)
    return f"{m.detector}_{backbone}_{m.neck}_{sweep.schedule.name}_{sweep.dataset.name}"


def resolve_base(sweep: Sweep) -> tuple[str, Path]:
    """The base as written into configs, and the file it names; a missing base is an error."""
    base = sweep.model.base_config
    if base.startswith(MMDET_SCOPE):
        spec = importlib.util.find_spec("mmdet")
        if spec is None or spec.origin is None:
            raise EnvironmentProblem("mmdet is not installed here: run `bash .ci/setup` (see README)")
        path = Path(spec.origin).parent / ".mim" / "configs" / base[len(MMDET_SCOPE) :]
        shown = base
    else:
        path = (sweep.path.parent / base).resolve()
        shown = str(path)
    if not path.is_file():
        raise SweepFileError(f"{sweep.path}: [model] base_config {base!r}: no such config ({path})")
    return shown, path


def render(sweep: Sweep, cell: Cell, base: str | None = None) -> RenderedConfig:
    """The config of ``cell`` in ``sweep``; ``base`` as returned by ``resolve_base`` (looked up when None)."""
    if base is None:
        base, _ = resolve_base(sweep)
    variables: dict[str, Any] = {}
    imports = _imports(sweep, cell)
    if imports:  # mmengine imports these when it loads the config, so mmdet's own tools can run it
        variables["custom_imports"] = dict(imports=imports, allow_failed_imports=False)
    variables["model"] = _model(sweep, cell)
    variables.update(_data(sweep))
    variables.update(_schedule(sweep))
    _merge(variables, sweep.overrides)
    return RenderedConfig(cell=cell, name=cell_name(sweep, cell), base=base, variables=variables)


def _merge(into: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Merge nested ``overrides`` into ``into``, tables key by key, other values replacing."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _imports(sweep: Sweep, cell: Cell) -> list[str]:
    """The Python modules that register what the cell's config names."""
    _, module = ATTENTION_MODULES[sweep.model.attention.module]
    return [module] if module is not None and not cell.code.is_baseline else []


def _model(sweep: Sweep, cell: Cell) -> dict[str, Any]:
    m = sweep.model
    backbone: dict[str, Any] = {}
    if not cell.code.is_baseline:
        registered, _ = ATTENTION_MODULES[m.attention.module]
        attention = {
            "type": registered,
            **m.attention.mmcv_args(),
            "attention_type": str(cell.code),
        }
        if m.attention.implementation != "reference":  # the default stays out: today's configs and ids hold
            attention["implementation"] = m.attention.implementation
        backbone["plugins"] = [dict(cfg=attention, stages=m.attention.stages, position=m.attention.position)]
    if cell.dcn:
        backbone["dcn"] = dict(
            type="DCN", deform_groups=m.dcn.deform_groups, fallback_on_stride=m.dcn.fallback_on_stride
        )
        backbone["stage_with_dcn"] = m.dcn.stages
    if not m.pretrained:
        backbone["init_cfg"] = None
    model: dict[str, Any] = {"backbone": backbone}
    if sweep.dataset.classes is not None:
        model["roi_head"] = dict(bbox_head=dict(num_classes=len(sweep.dataset.classes)))
    return model


def _pipelines(scale: tuple[int, int]) -> dict[str, Any]:
    """mmdet's standard detection pipelines (as in its coco_detection base) at another scale."""
    load = dict(type="LoadImageFromFile", backend_args=None)
    annotations = dict(type="LoadAnnotations", with_bbox=True)
    resize = dict(type="Resize", scale=scale, keep_ratio=True)
    meta = ("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")
    return {
        "train_pipeline": [
            load,
            annotations,
            resize,
            dict(type="RandomFlip", prob=0.5),
            dict(type="PackDetInputs"),
        ],
        "test_pipeline": [load, resize, annotations, dict(type="PackDetInputs", meta_keys=meta)],
    }


def _data(sweep: Sweep) -> dict[str, Any]:
    d, r = sweep.dataset, sweep.resources
    variables: dict[str, Any] = _pipelines(d.scale) if d.scale is not None else {}

    def dataset(ann: str, images: str, pipeline: str) -> dict[str, Any]:
        spec: dict[str, Any] = dict(data_root=d.data_root, ann_file=ann, data_prefix=dict(img=images))
        if d.classes is not None:
            spec["metainfo"] = dict(classes=d.classes)
        if pipeline in variables:
            spec["pipeline"] = Ref(pipeline)
        return spec

    workers = dict(num_workers=r.workers_per_gpu, persistent_workers=r.workers_per_gpu > 0)
    variables.update(
        train_dataloader=dict(
            batch_size=r.images_per_gpu,
            **workers,
            dataset=dataset(d.train_ann, d.train_images, "train_pipeline"),
        ),
        val_dataloader=dict(**workers, dataset=dataset(d.val_ann, d.val_images, "test_pipeline")),
        test_dataloader=Ref("val_dataloader"),
        val_evaluator=dict(ann_file=posixpath.join(d.data_root, d.val_ann)),
        test_evaluator=Ref("val_evaluator"),
    )
    return variables


def _schedule(sweep: Sweep) -> dict[str, Any]:
    s = sweep.schedule
    warmup = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=s.warmup_iters)]
    steps = dict(
        type="MultiStepLR", begin=0, end=s.epochs, by_epoch=True, milestones=list(s.milestones), gamma=0.1
    )
    variables: dict[str, Any] = dict(
        train_cfg=dict(max_epochs=s.epochs, val_interval=s.val_interval),
        param_scheduler=(warmup if s.warmup_iters else []) + [steps],
        optim_wrapper=dict(optimizer=dict(lr=s.lr)),
    )
    if s.log_interval is not None:
        variables["default_hooks"] = dict(logger=dict(interval=s.log_interval))
    return variables
