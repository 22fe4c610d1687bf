"""ablation: run, track and compare the spatial attention ablation study with MMDetection.

The public API is what ``__all__`` lists: planning (``load_sweep``, ``plan``, ``render``), the results
(``open_store`` -> ``ResultStore``, its ``Runs`` selections, ``effects``, ``results_table``, ``status``), the
vocabulary of figures (``METRICS``, ``metric``) and every exception. The subpackages are the layers of the
implementation, lowest first: ``model`` (torch), ``grid`` (the plan), ``data``, ``run``, ``results``,
``analysis``, ``cli``, with ``errors`` and ``fsio`` under all of them. The names below load on first use, so
that importing one layer (``ablation.model.attention`` in a config's custom_imports) loads nothing of the
layers above it.
"""

from __future__ import annotations

import importlib

from ablation import errors as _errors

# not `from typing import ...`: the console script imports this package before its Ctrl-C handling is in
# place, so what loads here is kept to the least (typing takes 2 ms); type checkers read this as True
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# name -> the module that declares it
_EXPORTS = {
    **dict.fromkeys(("ALL_CODES", "FACTORS", "AttentionCode", "Factor"), "ablation.model.codes"),
    **dict.fromkeys(_errors.__all__, "ablation.errors"),
    **dict.fromkeys(("Cell", "Selection"), "ablation.grid.cells"),
    **dict.fromkeys(("Plan", "PlannedCell", "plan"), "ablation.grid.plan"),
    **dict.fromkeys(("RenderedConfig", "render"), "ablation.grid.render"),
    **dict.fromkeys(("Sweep", "available_sweeps", "load_sweep"), "ablation.grid.sweep"),
    **dict.fromkeys(("METRICS", "Metric", "metric"), "ablation.vocabulary"),
    **dict.fromkeys(("ResultStore", "effects", "open_store", "results_table", "status"), "ablation.api"),
    **dict.fromkeys(("Analysis", "Runs"), "ablation.analysis.runs"),
    **dict.fromkeys(("FactorialAnalysis",), "ablation.analysis.effects"),
    **dict.fromkeys(("ResultsTable", "TableOptions"), "ablation.results.table"),
}

__version__ = "0.1.0"

__all__ = sorted([*_EXPORTS, "__version__"])


def __dir__() -> list[str]:
    return list(__all__)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ablation' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
