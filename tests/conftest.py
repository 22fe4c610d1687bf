from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see the CLI as a user does: one-line errors, not tracebacks."""
    monkeypatch.delenv("ABLATION_DEBUG", raising=False)
    monkeypatch.delenv("ABLATION_ROOT", raising=False)
    monkeypatch.delenv("ABLATION_STORE", raising=False)


@pytest.fixture
def awkward_dir(tmp_path: Path) -> Path:
    """A folder whose path has spaces and quotes, as users' paths sometimes do."""
    path = tmp_path / "my runs 'v1' \"x\""
    path.mkdir()
    return path


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


def write_sweep(folder: Path, text: str, name: str = "mine") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def venv_bin(name: str) -> str:
    """A console script of the environment running the tests."""
    return str(Path(sys.executable).parent / name)


def run_script(
    name: str, *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> CompletedProcess[str]:
    """Run one of the environment's console scripts (ablation, ruff, mypy) as a user would."""
    return subprocess.run(
        [venv_bin(name), *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


os.environ.setdefault("PYTHONHASHSEED", "0")
