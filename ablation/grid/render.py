"""One MMDetection config per cell: the sweep's base config plus what the cell and the sweep change.

A rendered config is an mmengine config file that mmdet's own tools/train.py runs as it is. It inherits the
base (``_base_``, usually from the installed mmdet's configs) and overrides only what the sweep sets:
the attention plugin for codes other than 0000, DCN, the schedule, the dataset and the batch. For the paper's
settings the result loads to the same Config as mmdetection's own file for that cell.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablation.errors import EnvironmentProblem, SweepFileError
from ablation.grid import owners
from ablation.grid.axes import labels
from ablation.grid.cells import Cell
from ablation.grid.pysource import Ref, assignments
from ablation.grid.settings import ScheduleSettings
from ablation.grid.sweep import Sweep
from ablation.model.modules import ATTENTION_MODULES, DCN_MODULES, ROI_ALIGN_MODULES

__all__ = ["Base", "RenderedConfig", "cell_name", "config_name", "render", "resolve_base"]

MMDET_SCOPE = "mmdet::"


@dataclass(frozen=True)
class Base:
    """The base config: as written into configs (``mmdet::...`` or an absolute path), the file, and the
    digest of its text and of every config it inherits."""

    shown: str
    path: Path
    digest: str
    given: str  # as the sweep says it ([model] base_config)


@dataclass(frozen=True)
class RenderedConfig:
    """A cell's config (its base and the overrides) and the id of everything its job trains and measures."""

    cell: Cell
    name: str  # the config's name: the cell's, with the seed of a replicate (``..._coco_seed1``)
    cell_name: str  # the cell's name, which its replicates share
    base: str
    variables: dict[str, Any]
    base_digest: str
    # what the id covers beyond the config: processes, the synthetic dataset, the benchmark (``_run_inputs``)
    inputs: dict[str, Any]

    @functools.cached_property  # frozen: computed once (status asks every cell's id at every poll)
    def config_hash(self) -> str:
        """sha256 of the config's content but the seed: the base by content (not by path) and the
        overrides. A cell's replicates share it."""
        return _digest({"base": self.base_digest, "variables": self.variables})

    @functools.cached_property
    def cell_id(self) -> str:
        """A short id of what the cell trains and measures: the config, the number of processes (each with
        the config's images per process), the synthetic dataset's settings and the benchmark's; not the
        seed, so that a cell's replicates share it. The same sweep settings give the same id on every
        re-plan and wherever the checkout lies."""
        return _digest({"config": self.config_hash, **self.inputs})[:12]

    def replicate(self, cell: Cell) -> RenderedConfig:
        """This config for another replicate of its cell (``cell``: the same cell, another seed): its hash and
        id, which leave the seed out, are not computed again."""
        other = dataclasses.replace(self, cell=cell, name=config_name(self.cell_name, cell.seed))
        other.__dict__.update(
            config_hash=self.config_hash, cell_id=self.cell_id, _assigned=self._assigned
        )  # the cached properties, which leave the seed out
        return other

    @functools.cached_property
    def _assigned(self) -> str:
        """The variables as the config's statements (without a replicate's seed)."""
        return assignments(self.variables)

    def text(self, sweep: Sweep) -> str:
        code = self.cell.code
        seed = f"  seed {self.cell.seed}" if self.cell.seed is not None else ""
        header = (
            f"# Written by `ablation plan` from {sweep.path.name}: edit the sweep, not this file.\n"
            f"# cell {self.cell_name}  id {self.cell_id}{seed}\n"
            f"# attention {code}: {code.description}; DCN {'on' if self.cell.dcn else 'off'}\n"
        )
        variables = self.variables
        if self.cell.seed is None:
            body = self._assigned
        elif "randomness" not in variables:  # mmengine's Runner seeds python, numpy and torch with it
            body = self._assigned + "\n" + assignments({"randomness": {"seed": self.cell.seed}})  # last
        else:  # [overrides] holds randomness (deterministic = true): the seed joins it, in its place
            # a new dict at both levels: the variables it came from are the cell's id
            randomness = {**variables["randomness"], "seed": self.cell.seed}
            body = assignments({**variables, "randomness": randomness})
        return f"{header}_base_ = {self.base!r}\n\n{body}"


def _digest(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``: equal values, equal digests."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _run_inputs(sweep: Sweep) -> dict[str, Any]:
    """What changes a cell's training or measurement without being in its config."""
    b = sweep.benchmark
    return {
        "processes": sweep.resources.task_count(),  # x the config's batch_size: the effective batch
        "synthetic": sweep.dataset.synthetic,  # the generated dataset's size (None: a dataset on disk)
        "benchmark": [b.warmup_images, b.timed_images, list(sweep.dataset.test_size)],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Ref):
        return {"$ref": value.name}
    raise TypeError(f"not JSON: {value!r}")


def cell_name(sweep: Sweep, cell: Cell) -> str:
    """mmdetection's naming, faster-rcnn_r50-attn0010-dcn_fpn_1x_coco, then a label per extra axis that
    varies the cell (``_kv-stride-2``); the seed is not part of it (see ``config_name``)."""
    sweep = sweep.for_cell(cell)
    m = sweep.model
    backbone = m.backbone + cell.backbone_tag(m.dcn.stages)
    name = f"{m.detector}_{backbone}_{m.neck}_{sweep.schedule.name}_{sweep.dataset.name}"
    by_name = {axis.name: axis for axis in sweep.axes}
    return "_".join([name, *(labels(by_name[axis])[value] for axis, value in cell.axes)])


def config_name(cell_name: str, seed: int | None) -> str:
    """The name of one replicate's config (and job): the cell's name, with ``_seed<N>`` when seeded."""
    return cell_name if seed is None else f"{cell_name}_seed{seed}"


def resolve_base(sweep: Sweep) -> Base:
    """The sweep's base config; a missing base is an error."""
    base = sweep.model.base_config
    path = _config_path(base, sweep.path.parent).resolve()
    shown = base if base.startswith(MMDET_SCOPE) else str(path)
    if not path.is_file():
        raise SweepFileError(f"{sweep.path}: [model] base_config {base!r}: no such config ({path})")
    return Base(shown=shown, path=path, digest=_inherited_digest(path), given=base)


def _config_path(name: str, folder: Path) -> Path:
    """The file a config name means: ``mmdet::x.py`` in the installed mmdet's configs, else relative to
    ``folder`` (where the sweep or the inheriting config lies)."""
    if not name.startswith(MMDET_SCOPE):
        return folder / name
    spec = importlib.util.find_spec("mmdet")
    if spec is None or spec.origin is None:
        raise EnvironmentProblem("mmdet is not installed here: run `bash .ci/setup` (see README)")
    return Path(spec.origin).parent / ".mim" / "configs" / name[len(MMDET_SCOPE) :]


def _inherited_digest(path: Path) -> str:
    """sha256 over the text of ``path`` and of the configs it inherits (``_base_``, depth first, each once):
    the same base gives the same digest wherever it lies. Inherited files that are missing are left out
    (mmengine names them when it loads the config)."""
    digest = hashlib.sha256()
    seen: set[Path] = set()

    def add(file: Path) -> None:
        if file in seen or not file.is_file():
            return
        seen.add(file)
        text = file.read_bytes()
        digest.update(hashlib.sha256(text).digest())
        for name in _bases(text):
            add(_config_path(name, file.parent))

    add(path.resolve())
    return digest.hexdigest()


def _bases(text: bytes) -> list[str]:
    """The names in a config's ``_base_ = '...'`` or ``_base_ = [...]`` (none when it does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_base_" for t in node.targets
        ):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            return [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return []


def render(sweep: Sweep, cell: Cell, base: Base | None = None) -> RenderedConfig:
    """The config of ``cell`` in ``sweep`` (its axis values set); ``base`` as returned by ``resolve_base``
    (looked up when None, or when the cell's base config is another: an axis of [model] base_config)."""
    sweep = sweep.for_cell(cell)
    if base is None or base.given != sweep.model.base_config:
        base = resolve_base(sweep)
    variables: dict[str, Any] = {}
    overrides = dict(sweep.overrides)
    imports = _imports(sweep, cell)
    for module in overrides.pop("custom_imports", {}).get("imports", []):  # the user's, after the tool's
        imports += [module] if module not in imports else []
    if imports:  # mmengine imports these when it loads the config, so mmdet's own tools can run it
        variables["custom_imports"] = dict(imports=imports, allow_failed_imports=False)
    variables["model"] = _model(sweep, cell)
    variables.update(_data(sweep))
    variables.update(_schedule(sweep))
    # the seed a replicate's config adds (RenderedConfig.text) is [grid] seeds', as the settings' keys are
    written = {**variables, "randomness": {"seed": cell.seed}} if cell.seed is not None else variables
    owners.check(sweep.path, written, overrides, (name for name, _ in cell.axes))
    _merge(variables, overrides)
    name = cell_name(sweep, cell)
    return RenderedConfig(
        cell=cell,
        name=config_name(name, cell.seed),
        cell_name=name,
        base=base.shown,
        variables=variables,
        base_digest=base.digest,
        inputs=_run_inputs(sweep),
    )


def _merge(into: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Merge nested ``overrides`` into ``into``, tables key by key, other values replacing."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _imports(sweep: Sweep, cell: Cell) -> list[str]:
    """The Python modules that register what the cell's config names."""
    _, attention = ATTENTION_MODULES[sweep.model.attention.module]
    _, dcn = DCN_MODULES[sweep.model.dcn.module]
    _, roi_align = ROI_ALIGN_MODULES[sweep.model.roi_align.module]
    wanted = (attention, not cell.code.is_baseline), (dcn, cell.dcn), (roi_align, True)
    return [module for module, used in wanted if module is not None and used]


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
        registered, _ = DCN_MODULES[m.dcn.module]
        backbone["dcn"] = dict(
            type=registered, deform_groups=m.dcn.deform_groups, fallback_on_stride=m.dcn.fallback_on_stride
        )
        backbone["stage_with_dcn"] = m.dcn.stages
    if not m.pretrained:  # as mmdet's from-scratch configs: nothing frozen, batch statistics trained
        backbone.update(init_cfg=None, frozen_stages=-1, norm_eval=False)
    model: dict[str, Any] = {"backbone": backbone}
    roi_head: dict[str, Any] = {}
    registered, imported = ROI_ALIGN_MODULES[m.roi_align.module]
    if imported is not None:  # another type for the base's RoI layer, its arguments kept (mmcv's: unchanged)
        roi_head["bbox_roi_extractor"] = dict(roi_layer=dict(type=registered))
    if sweep.dataset.classes is not None:
        roi_head["bbox_head"] = dict(num_classes=len(sweep.dataset.classes))
    if roi_head:
        model["roi_head"] = roi_head
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


def _optimizer(s: ScheduleSettings) -> dict[str, Any]:
    """The base config's SGD with the sweep's lr (and weight decay), or another optimizer in its place."""
    optimizer: dict[str, Any] = dict(lr=s.lr)
    if s.optimizer != "SGD":  # the base's SGD arguments (momentum) would not fit it: replaced, not merged
        optimizer = dict(_delete_=True, type=s.optimizer, lr=s.lr)
    if s.weight_decay is not None:
        optimizer["weight_decay"] = s.weight_decay
    return optimizer


def _schedule(sweep: Sweep) -> dict[str, Any]:
    s = sweep.schedule
    warmup = [dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=s.warmup_iters)]
    steps = dict(
        type="MultiStepLR", begin=0, end=s.epochs, by_epoch=True, milestones=list(s.milestones), gamma=0.1
    )
    variables: dict[str, Any] = dict(
        train_cfg=dict(max_epochs=s.epochs, val_interval=s.val_interval)
        if s.val_interval
        else dict(max_epochs=s.epochs, val_interval=s.epochs, val_begin=s.epochs + 1),  # mmengine's "never"
        param_scheduler=(warmup if s.warmup_iters else []) + [steps],
        optim_wrapper=dict(optimizer=_optimizer(s)),
    )
    if s.grad_clip is not None:
        variables["optim_wrapper"]["clip_grad"] = dict(max_norm=s.grad_clip, norm_type=2)
    if s.log_interval is not None:
        variables["default_hooks"] = dict(logger=dict(interval=s.log_interval))
    return variables
