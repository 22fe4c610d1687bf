"""One owner per config key: what a sweep's settings write into a cell's config, [overrides] may not write.

The renderer writes a config's variables from the sweep's settings (``[schedule] lr`` becomes
``optim_wrapper.optimizer.lr``), then merges ``[overrides]`` over them. An override of a key that a setting
writes would replace the setting's value in the config while the sweep, the cell's name and the tables still
say the setting's: ``check`` refuses it, naming the override (or the axis it came from) and the setting
that owns the key. An override may still add keys beside the settings' (``model.backbone.base_channels``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ablation.errors import SweepFileError

__all__ = ["OWNERS", "check", "owner", "paths"]

# A config key -> the setting that writes it; a key under one of these is that setting's too.
OWNERS: dict[str, str] = {
    "custom_imports": "the modules [model] chooses (add yours as custom_imports.imports)",
    "model": "[model]",
    "model.backbone.plugins": "[model.attention]",
    "model.backbone.dcn": "[model.dcn]",
    "model.backbone.stage_with_dcn": "[model.dcn] stages",
    "model.backbone.init_cfg": "[model] pretrained",
    "model.backbone.frozen_stages": "[model] pretrained",
    "model.backbone.norm_eval": "[model] pretrained",
    "model.roi_head.bbox_roi_extractor.roi_layer.type": "[model.roi_align] module",
    "model.roi_head.bbox_head.num_classes": "[dataset] classes",
    "train_pipeline": "[dataset] scale",
    "test_pipeline": "[dataset] scale",
    "train_dataloader": "[dataset]",
    "val_dataloader": "[dataset]",
    "test_dataloader": "[dataset] (the val split's loader)",
    "val_evaluator": "[dataset]",
    "test_evaluator": "[dataset] (the val split's evaluator)",
    "train_dataloader.batch_size": "[resources] images_per_gpu",
    **{
        f"{split}_dataloader.{key}": "[resources] workers_per_gpu"
        for split in ("train", "val")
        for key in ("num_workers", "persistent_workers")
    },
    "train_cfg": "[schedule]",
    "train_cfg.max_epochs": "[schedule] epochs",
    "train_cfg.val_interval": "[schedule] val_interval",
    "train_cfg.val_begin": "[schedule] val_interval",
    "param_scheduler": "[schedule] milestones and warmup_iters",
    "optim_wrapper": "[schedule]",
    "optim_wrapper.optimizer": "[schedule] optimizer",
    "optim_wrapper.optimizer.lr": "[schedule] lr",
    "optim_wrapper.optimizer.weight_decay": "[schedule] weight_decay",
    "optim_wrapper.clip_grad": "[schedule] grad_clip",
    "default_hooks": "[schedule] log_interval",
    "randomness.seed": "[grid] seeds",
}


def paths(table: Mapping[str, Any]) -> dict[str, bool]:
    """Every dotted key of a nested table -> whether it holds a value (True) or a table (False); iterative,
    so that no depth is too deep."""
    found: dict[str, bool] = {}
    stack: list[tuple[str, Mapping[str, Any]]] = [("", table)]
    while stack:
        prefix, inner = stack.pop()
        for key, value in inner.items():
            path = f"{prefix}{key}"
            found[path] = not isinstance(value, dict)
            if isinstance(value, dict):
                stack.append((f"{path}.", value))
    return found


def owner(path: str, written: Iterable[str] = ()) -> str:
    """The setting that writes the config key ``path``: the longest key of ``OWNERS`` it is or lies under,
    else the owners of the ``written`` keys under it."""
    parts = path.split(".")
    for n in range(len(parts), 0, -1):
        found = OWNERS.get(".".join(parts[:n]))
        if found is not None:
            return found
    under = sorted({owner(p) for p in written if p.startswith(path + ".")})
    return " and ".join(under) or "a setting of the sweep"


def check(
    sweep_path: Path, variables: Mapping[str, Any], overrides: Mapping[str, Any], axes: Iterable[str]
) -> None:
    """A ``SweepFileError`` when ``overrides`` (the cell's, axis values merged) would replace a key of the
    settings' ``variables`` (anything but merging a table into a table). ``axes``: the cell's axis names, to
    name the axis an override came from."""
    written = paths(variables)
    for path, is_value in paths(overrides).items():
        if path not in written or not (is_value or written[path]):
            continue  # a key of the overrides' own, or a table merged into the settings' table
        given = [a for a in axes if a.startswith("overrides.") and _under(a[len("overrides.") :], path)]
        source = f"[grid.axes] {given[0]}" if given else f"[overrides] {path}"
        by = owner(path, written)
        if is_value and not written[path]:
            raise SweepFileError(
                f"{sweep_path}: {source}: a value cannot replace the table {path}, which {by} writes into "
                f"the config; keep it a table and set keys under it ({path}.key = ...)"
            )
        raise SweepFileError(
            f"{sweep_path}: {source}: {by} writes {path} into the config; set {by}, not both "
            "(one setting, one owner)"
        )


def _under(key: str, path: str) -> bool:
    return key == path or key.startswith(path + ".")
