"""The settings of a sweep file, one frozen dataclass per section: [grid], [model] with its
[model.attention], [model.dcn] and [model.roi_align], [schedule], [dataset], [resources], [benchmark] and
[slurm].

Every setting is declared once below, with its type, default and documentation; ``schema.build`` validates a
file against them. The defaults are MMDetection's Faster R-CNN R-50 FPN 1x on COCO 2017 with 8 GPUs x 2
images, the paper's setting, so a sweep file states only what it changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ablation.grid import limits
from ablation.grid.schema import free_table, nested, setting
from ablation.model.codes import ALL_CODES, AttentionCode
from ablation.model.modules import (
    ATTENTION_IMPLEMENTATIONS,
    ATTENTION_MODULES,
    DCN_MODULES,
    ROI_ALIGN_MODULES,
)

__all__ = [
    "NAME_PATTERN",
    "OPTIMIZERS",
    "AttentionSettings",
    "BenchmarkSettings",
    "DatasetSettings",
    "DcnSettings",
    "GridSettings",
    "ModelSettings",
    "ResourceSettings",
    "RoiAlignSettings",
    "ScheduleSettings",
    "SlurmSettings",
]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_STAGES = tuple[bool, bool, bool, bool]
EARLY_LOSSES = 50  # the iterations whose median loss is [schedule] divergence_factor's reference


_check = limits.check


def _check_name(key: str, value: str) -> None:
    _check(
        bool(NAME_PATTERN.fullmatch(value)),
        f"{key} {value!r} must be letters, digits, '.' and '-' (it names files)",
    )


@dataclass(frozen=True)
class GridSettings:
    codes: tuple[AttentionCode, ...] = setting(
        ALL_CODES,
        'attention codes to run: a list such as ["0000", "0010"], or "all" for the 16',
        aliases={"all": ALL_CODES},
    )
    dcn: tuple[bool, ...] = setting((False, True), "deformable convolution settings to cross with the codes")
    seeds: tuple[int, ...] | None = setting(
        None,
        "mmengine's randomness.seed: one run of every cell per seed, e.g. [0, 1, 2] (unset: one run, "
        "seeded at random by mmengine, and no seed in names and ids)",
    )
    axes: dict[str, Any] = free_table(
        'more axes: a setting\'s dotted name -> its values, e.g. "model.attention.kv_stride" = [1, 2, 4] '
        "(settings of [model] and [schedule], or config keys under [overrides]; attention settings vary "
        "only cells with attention, DCN settings only cells with DCN)"
    )

    def __post_init__(self) -> None:
        _check(len(self.codes) > 0, "codes: give at least one code")
        _check(len(set(self.codes)) == len(self.codes), "codes: a code is listed twice")
        _check(
            len(self.dcn) > 0 and len(set(self.dcn)) == len(self.dcn), "dcn: give false, true or both, once"
        )
        if self.seeds is not None:
            _check(len(self.seeds) > 0, "seeds: give at least one seed, or leave seeds unset")
            _check(len(set(self.seeds)) == len(self.seeds), "seeds: a seed is listed twice")
            _check(
                all(0 <= seed < 2**32 for seed in self.seeds),
                f"seeds must be integers from 0 to 2**32 - 1 (numpy's range), got {list(self.seeds)}",
            )


@dataclass(frozen=True)
class AttentionSettings:
    module: str = setting(
        "ablation",
        '"ablation": ours, right for all 16 codes on any map; "mmcv": the stock module, as upstream '
        "(fails codes 0100, 0110, 1100, 1110 on non-square maps)",
    )
    implementation: str = setting(
        "reference",
        'with module "ablation": "reference" materialises every query-key energy; "sdpa" computes the same '
        "numbers from the energy's separable factors, a piece at a time on CPU and through torch's "
        "scaled_dot_product_attention on CUDA (much less memory, faster)",
    )
    stages: _STAGES = setting(
        (False, False, True, True), "ResNet stages (c2..c5) that get the attention plugin"
    )
    position: str = setting("after_conv2", "where in each block: after_conv1, after_conv2 or after_conv3")
    num_heads: int | None = setting(8, "attention heads (unset: mmcv's default, 9)")
    kv_stride: int | None = setting(2, "stride of the key/value feature map (unset: mmcv's default, 1)")
    spatial_range: int | None = setting(-1, "-1 for global attention, else a local window (unset: mmcv's -1)")
    q_stride: int | None = setting(None, "stride of the query feature map (unset: mmcv's default, 1)")
    position_embedding_dim: int | None = setting(None, "relative position embedding size (unset: mmcv's)")
    position_magnitude: int | None = setting(None, "scale of relative positions (unset: mmcv's default, 1)")

    def __post_init__(self) -> None:
        modules = ", ".join(map(repr, ATTENTION_MODULES))
        _check(self.module in ATTENTION_MODULES, f"module {self.module!r} is not one of {modules}")
        kinds = ", ".join(map(repr, ATTENTION_IMPLEMENTATIONS))
        _check(
            self.implementation in ATTENTION_IMPLEMENTATIONS,
            f"implementation {self.implementation!r} is not one of {kinds}",
        )
        _check(
            self.module == "ablation" or self.implementation == "reference",
            f'implementation {self.implementation!r} needs module = "ablation" (mmcv\'s has only its own)',
        )
        positions = ("after_conv1", "after_conv2", "after_conv3")
        _check(self.position in positions, f"position {self.position!r} is not one of {', '.join(positions)}")
        _check(any(self.stages), "stages: switch attention on in at least one stage")
        for key in ("num_heads", "kv_stride", "q_stride", "position_magnitude"):
            value = getattr(self, key)
            _check(value is None or value >= 1, f"{key} must be at least 1, got {value}")
        # mmcv's GeneralizedAttention: -1 is global, 0 or more a window; below -1 it would run global unsaid
        _check(
            self.spatial_range is None or self.spatial_range >= -1,
            f"spatial_range must be -1 (global attention) or at least 0 (a window), got {self.spatial_range}",
        )
        dim = self.position_embedding_dim
        _check(
            dim is None or (dim >= 4 and dim % 4 == 0),
            f"position_embedding_dim must be a positive multiple of 4 (sine and cosine per axis), or unset "
            f"for mmcv's (the input's channels), got {dim}",
        )

    def mmcv_args(self) -> dict[str, int]:
        """The GeneralizedAttention arguments this sweep sets (unset ones keep mmcv's defaults)."""
        keys = (
            "spatial_range",
            "num_heads",
            "kv_stride",
            "q_stride",
            "position_embedding_dim",
            "position_magnitude",
        )
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}


@dataclass(frozen=True)
class DcnSettings:
    module: str = setting(
        "mmcv",
        '"mmcv": mmcv\'s DeformConv2dPack (type DCN), as upstream; "ablation": the same layer and '
        "parameters, computed with torch ops on CPU (4-9x faster there than mmcv's op at R-50's shapes, "
        "bench/dcn.py) and with mmcv's op on CUDA",
    )
    stages: _STAGES = setting(
        (False, True, True, True), "ResNet stages (c2..c5) whose 3x3 convs are deformable"
    )
    deform_groups: int = setting(1, "offset groups of each deformable convolution")
    fallback_on_stride: bool = setting(False, "use a plain conv where the 3x3 conv has a stride")

    def __post_init__(self) -> None:
        modules = ", ".join(map(repr, DCN_MODULES))
        _check(self.module in DCN_MODULES, f"module {self.module!r} is not one of {modules}")
        _check(any(self.stages), "stages: switch DCN on in at least one stage")
        _check(self.deform_groups >= 1, f"deform_groups must be at least 1, got {self.deform_groups}")


@dataclass(frozen=True)
class RoiAlignSettings:
    module: str = setting(
        "mmcv",
        '"mmcv": mmcv\'s RoIAlign (type RoIAlign), as upstream; "ablation": the same layer computed with '
        "torch ops on CPU (6-8x faster there than mmcv's op, bench/roi_align.py) and with mmcv's op on CUDA",
    )

    def __post_init__(self) -> None:
        modules = ", ".join(map(repr, ROI_ALIGN_MODULES))
        _check(self.module in ROI_ALIGN_MODULES, f"module {self.module!r} is not one of {modules}")


@dataclass(frozen=True)
class ModelSettings:
    base_config: str = setting(
        "mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
        "MMDetection config every cell starts from ('mmdet::' = the installed mmdet's configs, or a path)",
    )
    detector: str = setting("faster-rcnn", "detector part of the cell names")
    backbone: str = setting("r50", "backbone part of the cell names")
    neck: str = setting("fpn", "neck part of the cell names")
    pretrained: bool = setting(
        True,
        "start from the base config's ImageNet backbone; false: from scratch (then nothing is frozen and "
        "BatchNorm trains its statistics, as mmdet's from-scratch configs)",
    )
    attention: AttentionSettings = nested(
        AttentionSettings, "the GeneralizedAttention plugin of cells with code != 0000", varies="attention"
    )
    dcn: DcnSettings = nested(
        DcnSettings, "the deformable convolution of cells with dcn = true", varies="dcn"
    )
    roi_align: RoiAlignSettings = nested(RoiAlignSettings, "the RoI layer of the box head's RoI extractor")

    def __post_init__(self) -> None:
        for key in ("detector", "backbone", "neck"):
            _check_name(key, getattr(self, key))


OPTIMIZERS = ("SGD", "AdamW")  # torch.optim's names, as mmengine's configs give them


@dataclass(frozen=True)
class ScheduleSettings:
    name: str = setting("1x", "schedule part of the cell names")
    epochs: int = setting(12, "training epochs")
    optimizer: str = setting(
        "SGD", '"SGD" (the base config\'s: momentum 0.9, weight decay 1e-4) or "AdamW" (torch\'s defaults)'
    )
    lr: float = setting(0.02, "learning rate for the whole batch (gpus x images_per_gpu)")
    weight_decay: float | None = setting(None, "the optimizer's weight decay (unset: as optimizer says)")
    grad_clip: float | None = setting(
        None, "clip the gradients' L2 norm to at most this (unset: no clipping, as the base config)"
    )
    milestones: tuple[int, ...] = setting((8, 11), "epochs after which the learning rate drops 10x")
    warmup_iters: int = setting(500, "iterations of linear warm-up from 0.001 x lr")
    val_interval: int = setting(1, "validate every this many epochs (0: never; the test still scores val)")
    log_interval: int | None = setting(None, "log every this many iterations (unset: the base config's, 50)")
    stop_on_divergence: bool = setting(True, "fail a cell at the first iteration whose loss is NaN or inf")
    divergence_factor: float | None = setting(None, f"also stop at this x the first {EARLY_LOSSES}'s median")

    def __post_init__(self) -> None:
        _check_name("name", self.name)
        _check(self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}")
        optimizers = ", ".join(map(repr, OPTIMIZERS))
        _check(self.optimizer in OPTIMIZERS, f"optimizer {self.optimizer!r} is not one of {optimizers}")
        _check(self.lr > 0, f"lr must be positive, got {self.lr}")
        _check(
            self.weight_decay is None or self.weight_decay >= 0,
            f"weight_decay must be 0 or more, got {self.weight_decay}",
        )
        _check(
            self.grad_clip is None or self.grad_clip > 0, f"grad_clip must be positive, got {self.grad_clip}"
        )
        ms = self.milestones
        _check(
            list(ms) == sorted(set(ms)) and all(0 < m < self.epochs for m in ms),
            f"milestones must rise strictly and lie between 0 and epochs ({self.epochs}), got {list(ms)}",
        )
        _check(self.warmup_iters >= 0, f"warmup_iters must be at least 0, got {self.warmup_iters}")
        _check(
            0 <= self.val_interval <= self.epochs, f"val_interval must be 0..epochs, got {self.val_interval}"
        )
        _check(self.log_interval is None or self.log_interval >= 1, "log_interval must be at least 1")
        _check(self.divergence_factor is None or self.divergence_factor > 1, "divergence_factor must be > 1")


@dataclass(frozen=True)
class DatasetSettings:
    name: str = setting("coco", "dataset part of the cell names")
    data_root: str = setting("data/coco/", "dataset folder, relative to where training runs or absolute")
    train_ann: str = setting("annotations/instances_train2017.json", "training annotations, under data_root")
    train_images: str = setting("train2017/", "training images folder, under data_root")
    val_ann: str = setting("annotations/instances_val2017.json", "validation annotations, under data_root")
    val_images: str = setting("val2017/", "validation images folder, under data_root")
    classes: tuple[str, ...] | None = setting(
        None, "class names, when not COCO's 80 (sets the box head's size)"
    )
    scale: tuple[int, int] | None = setting(
        None, "[long, short] image scale of mmdet's standard train/test pipelines (unset: the base's)"
    )
    synthetic: tuple[int, int] | None = setting(
        None, "[train, val] image counts: generate the synthetic shapes dataset into data_root when missing"
    )

    @property
    def test_size(self) -> tuple[int, int]:
        """(height, width) of a landscape image at the test scale: the FLOPs input (mmdet's 1333 x 800)."""
        long, short = self.scale if self.scale is not None else (1333, 800)
        return min(long, short), max(long, short)

    def __post_init__(self) -> None:
        _check_name("name", self.name)
        _check(self.classes is None or len(self.classes) > 0, "classes: give at least one class")
        _check(
            self.classes is None or len(set(self.classes)) == len(self.classes),
            f"classes: a class is listed twice in {list(self.classes or ())}",
        )
        for key in ("data_root", "train_ann", "train_images", "val_ann", "val_images"):
            limits.check_path(key, getattr(self, key))
        _check(
            self.synthetic is None or self.classes is not None,
            'synthetic: also set classes (the synthetic shapes are ["rectangle", "ellipse", "triangle"])',
        )
        _check(
            self.scale is None or min(self.scale) >= 32, f"scale must be at least 32 pixels, got {self.scale}"
        )
        _check(
            self.synthetic is None or min(self.synthetic) >= 1,
            f"synthetic must be at least 1 image per split, got {self.synthetic}",
        )


@dataclass(frozen=True)
class ResourceSettings:
    gpus: int = setting(8, "GPUs per cell, one node's: 0 to 64 (0: one CPU process)")
    tasks: int | None = setting(
        None,
        "processes per cell, training as one (Slurm tasks; batch tasks x images_per_gpu): unset, one per "
        "GPU; with gpus = 0, this many CPU processes (gloo) instead of one; with gpus > 0, equal to gpus",
    )
    images_per_gpu: int = setting(2, "training images per GPU (per process on CPU)")
    workers_per_gpu: int = setting(2, "data loading worker processes per GPU")
    time_limit_min: int = setting(24 * 60, "wall-clock limit of one cell's job, in minutes")
    keep_checkpoints: str = setting(
        "all",
        '"all": every epoch\'s (mmdet\'s default); "last": the newest (and the one before while the cell '
        'runs, so that a job killed while saving can resume); "none": as "last" while the cell runs, none '
        "once it is done",
    )

    def __post_init__(self) -> None:
        for key in ("gpus", "tasks", "images_per_gpu", "workers_per_gpu", "time_limit_min"):
            if getattr(self, key) is not None:
                limits.check_bounds(key, getattr(self, key))
        _check(
            self.tasks is None or not self.gpus or self.tasks == self.gpus,
            f"tasks must equal gpus (one process per GPU), got tasks = {self.tasks} with gpus = {self.gpus}",
        )
        _check(
            self.keep_checkpoints in ("all", "last", "none"),
            f"keep_checkpoints {self.keep_checkpoints!r} is not one of 'all', 'last', 'none'",
        )

    def task_count(self, gpus: int | None = None) -> int:
        """Processes of one cell (Slurm tasks): one per GPU, else ``tasks`` (1 when unset); ``gpus``, when
        given, replaces the sweep's (``--gpus``)."""
        gpus = self.gpus if gpus is None else gpus
        return gpus if gpus else self.tasks or 1


@dataclass(frozen=True)
class BenchmarkSettings:
    warmup_images: int = setting(5, "images run before the timed ones (mmdet's benchmark: 5)")
    timed_images: int = setting(200, "images timed, one at a time, for the inference speed")

    def __post_init__(self) -> None:
        _check(self.warmup_images >= 0, f"warmup_images must be at least 0, got {self.warmup_images}")
        _check(self.timed_images >= 1, f"timed_images must be at least 1, got {self.timed_images}")


@dataclass(frozen=True)
class SlurmSettings:
    partition: str | None = setting(
        None, "partition of the cells' jobs, or a comma-separated list (unset: the cluster's default)"
    )
    cpus_per_task: int | None = setting(
        None, "CPUs per task (unset: workers_per_gpu + 1 per GPU, at least 1)"
    )
    mem_gb: int | None = setting(None, "memory per job in GB (unset: the partition's default)")
    array_parallelism: int = setting(64, "cells of one job array running at once")
    account: str | None = setting(None, "account to charge (sbatch --account)")
    qos: str | None = setting(None, "quality of service (sbatch --qos)")
    signal_delay_s: int = setting(
        120, "seconds before the time limit at which a job checkpoints and requeues"
    )
    sbatch: tuple[str, ...] = setting(
        (),
        'extra sbatch options, e.g. ["--constraint=volta32gb"] (not those the launch or a setting writes: '
        "--array, --mem, --partition, ...)",
    )
    setup: tuple[str, ...] = setting((), 'shell lines run before the job, e.g. ["module load cuda/12.1"]')

    def __post_init__(self) -> None:
        for key in ("partition", "account", "qos"):
            if getattr(self, key) is not None:
                limits.check_slurm_name(key, getattr(self, key))
        for key in ("cpus_per_task", "mem_gb", "array_parallelism", "signal_delay_s"):
            if getattr(self, key) is not None:
                limits.check_bounds(key, getattr(self, key))
        for option in self.sbatch:
            limits.check_sbatch_option(option)
        for line in self.setup:
            limits.check_line("setup", line)

    def sbatch_options(self) -> dict[str, str | bool]:
        """The extra options as submitit's additional_parameters: '--key=value' -> {key: value}."""
        options: dict[str, str | bool] = {}
        for option in self.sbatch:
            key, has_value, value = option[2:].partition("=")
            options[key] = value if has_value else True
        return options
