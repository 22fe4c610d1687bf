"""ablation: run, track and compare the spatial attention ablation study with MMDetection.

The public API is what ``__all__`` lists; the subpackages are the layers of the implementation, lowest
first: ``model`` (torch), ``grid`` (the plan), ``data``, ``run``, ``results``, ``analysis``, ``cli``, with
``errors`` and ``fsio`` under all of them. The names below load on first use, so that importing one layer
(``ablation.model.attention`` in a config's custom_imports) loads nothing of the layers above it.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that declares it
_EXPORTS = {
    **dict.fromkeys(("ALL_CODES", "FACTORS", "AttentionCode", "Factor"), "ablation.model.codes"),
    **dict.fromkeys(
        (
            "AblationError",
            "BadCodeError",
            "EnvironmentProblem",
            "InputError",
            "SweepFileError",
            "UnknownSweepError",
            "WriteError",
        ),
        "ablation.errors",
    ),
    **dict.fromkeys(("Cell", "Selection"), "ablation.grid.cells"),
    **dict.fromkeys(("Plan", "PlannedCell", "plan"), "ablation.grid.plan"),
    **dict.fromkeys(("RenderedConfig", "render"), "ablation.grid.render"),
    **dict.fromkeys(("Sweep", "available_sweeps", "load_sweep"), "ablation.grid.sweep"),
}

__version__ = "0.1.0"

__all__ = [
    "ALL_CODES",
    "FACTORS",
    "AblationError",
    "AttentionCode",
    "BadCodeError",
    "Cell",
    "EnvironmentProblem",
    "Factor",
    "InputError",
    "Plan",
    "PlannedCell",
    "RenderedConfig",
    "Selection",
    "Sweep",
    "SweepFileError",
    "UnknownSweepError",
    "WriteError",
    "__version__",
    "available_sweeps",
    "load_sweep",
    "plan",
    "render",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ablation' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
