from __future__ import annotations

import os
from pathlib import Path

import pytest

from .helpers.cli import REPO


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


os.environ.setdefault("PYTHONHASHSEED", "0")
