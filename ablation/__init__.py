"""ablation: run, track and compare the spatial attention ablation study with MMDetection.

The public API is what ``__all__`` lists; the submodules are the implementation.
"""

from .codes import ALL_CODES, FACTORS, AttentionCode, Factor
from .errors import (
    AblationError,
    BadCodeError,
    EnvironmentProblem,
    InputError,
    SweepFileError,
    UnknownSweepError,
    WriteError,
)
from .grid import Cell
from .plan import Plan, PlannedCell, plan
from .render import RenderedConfig, render
from .sweep import Sweep, available_sweeps, load_sweep

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
