"""Lint and strict typing of the package, run as tests so that the README's test command covers them."""

from __future__ import annotations

from .helpers.cli import run_script


def test_ruff() -> None:
    done = run_script("ruff", "check", "ablation", "tests")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_strict() -> None:
    done = run_script("mypy")
    assert done.returncode == 0, done.stdout + done.stderr
