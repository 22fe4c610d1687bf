"""The package's layers (pyproject.toml's [tool.importlinter] contract), checked by import-linter on every
import, function-level ones included; and what loading one layer brings in at run time."""

from __future__ import annotations

import json
import subprocess
import sys

from .helpers.cli import REPO, venv_bin

LAYERS = ("cli", "analysis", "results", "run", "data", "grid", "model")


def test_no_layer_imports_a_higher_one() -> None:
    done = subprocess.run([venv_bin("lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def _loaded_by(module: str) -> dict[str, bool]:
    """Which layers (and torch) a fresh interpreter holds after importing ``module``."""
    probe = (
        f"import importlib, json, sys; importlib.import_module({module!r}); "
        f"print(json.dumps({{name: 'ablation.' + name in sys.modules for name in {list(LAYERS)!r}}} "
        "| {'torch': 'torch' in sys.modules}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True
    )
    loaded: dict[str, bool] = json.loads(done.stdout)
    return loaded


def test_the_attention_module_loads_no_tool_above_the_model() -> None:
    """A config's custom_imports loads ``ablation.model.attention`` into every training process."""
    loaded = _loaded_by("ablation.model.attention")
    assert loaded["model"] and loaded["torch"]
    assert [name for name in LAYERS if loaded[name]] == ["model"]


def test_planning_imports_no_torch() -> None:
    loaded = _loaded_by("ablation.grid.plan")
    assert loaded["grid"] and not loaded["torch"]
    assert not any(loaded[name] for name in ("cli", "analysis", "results", "run", "data"))


def test_every_folder_of_the_package_is_a_regular_package() -> None:
    """A folder without ``__init__.py`` would still import (as a namespace package) from a checkout, and
    then be missing from the layer contract or the wheel."""
    folders = {path.parent for path in (REPO / "ablation").rglob("*.py") if "__pycache__" not in path.parts}
    assert {f.relative_to(REPO).as_posix() for f in folders if not (f / "__init__.py").is_file()} == set()
    assert {f.name for f in folders} >= {"ablation", *LAYERS}
