"""A real mmdet detector built from a planned config."""

from __future__ import annotations

from pathlib import Path

from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn


def build(config: Path) -> nn.Module:
    cfg = Config.fromfile(str(config))  # imports ablation.model.attention through custom_imports
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)  # type: ignore[no-any-return]
