"""Files that ship with the package: the sweep files, the model-zoo reference rows and the dashboard app.

They live at the top of the checkout (``experiments/sweeps``, ``experiments/reference``, ``dashboard``) and a
wheel carries them as package data under ``ablation/_shipped/`` (the package-dir mapping in pyproject.toml;
nothing is copied in git). Installed from a wheel, the package's copy is used; run from a checkout (the
editable install, or ``python -m ablation`` in it), the checkout's own files, so an edit shows at once.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

__all__ = ["SHIPPED", "shipped"]

# name under ablation/_shipped/ -> the checkout's folder it is built from (as pyproject.toml's package-dir)
SHIPPED = {"sweeps": "experiments/sweeps", "reference": "experiments/reference", "dashboard": "dashboard"}


def shipped(name: str) -> Path:
    """The folder of shipped files ``name`` (a key of ``SHIPPED``): the installed package's copy when it has
    one, else the checkout's folder (pip unpacks wheels, so either is a folder on disk)."""
    installed = importlib.resources.files("ablation").joinpath("_shipped", name)
    if isinstance(installed, Path) and installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[1] / SHIPPED[name]
