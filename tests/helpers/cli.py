"""The ``ablation`` command as a user meets it, and what a test gives it: the checkout's paths, sweep files,
the console scripts run as processes, ``main`` run in this process with its output captured."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from ablation.cli.commands import main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
GOLDEN = REPO / "tests" / "golden"


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


def run_cli(*argv: str, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str, str]:
    """``ablation ARGV`` in this process: its exit code (argparse's usage errors and --help included) and
    what it wrote to stdout and stderr. With ``capsys``, the output is what the fixture captured since it was
    last read (anything the test printed before included); without, ``main``'s own output redirected."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if capsys is None:
            stack.enter_context(contextlib.redirect_stdout(out))
            stack.enter_context(contextlib.redirect_stderr(err))
        try:
            code = main(list(argv))
        except SystemExit as stop:  # argparse's usage errors and --help
            code = int(stop.code or 0)
    if capsys is None:
        return code, out.getvalue(), err.getvalue()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_sweep(folder: Path, text: str, name: str = "mine") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def replaced(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        assert old in text, f"the smoke sweep no longer has {old!r}"
        text = text.replace(old, new)
    return text


@contextlib.contextmanager
def in_folder(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
