"""A real mmdet detector built from a planned config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn


def build(config: Path) -> nn.Module:
    cfg = Config.fromfile(str(config))  # imports ablation.model.attention through custom_imports
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return MODELS.build(cfg.model)  # type: ignore[no-any-return]


def in_a_fresh_process(config: Path, show: str) -> list[str]:
    """What ``show`` (an expression of the built ``model``) prints in a fresh Python process that builds the
    config's model as mmdet's tools/train.py loads a config: nothing imports ablation but the config's
    custom_imports."""
    script = (
        "import sys\n"
        "from mmengine.config import Config\n"
        "from mmengine.registry import init_default_scope\n"
        "cfg = Config.fromfile(sys.argv[1])\n"
        "init_default_scope(cfg.default_scope)\n"
        "from mmdet.registry import MODELS\n"
        "model = MODELS.build(cfg.model)\n"
        f"print(*({show}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()
