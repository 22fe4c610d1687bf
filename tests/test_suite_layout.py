"""The test suite's own habits: shared code lives in tests/helpers/ (a test module imports nothing from
another test module, nor from conftest.py, which holds fixtures), and every marker a test uses is one that
pyproject.toml registers (``-m "not slurm and not browser and not slow"`` then means what it says)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .helpers.cli import REPO

TESTS = REPO / "tests"
# what each of the suite's own markers says of a test: pyproject.toml's [tool.pytest.ini_options] markers
OURS = ("slurm", "browser", "slow")


def modules() -> list[Path]:
    """The suite's Python files: test modules, conftest.py and the helpers."""
    return sorted(p for p in TESTS.rglob("*.py") if not {"golden", "fixtures"} & set(p.parts))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, function-level ones included; relative
    imports resolved against the file's package (``tests`` or ``tests.helpers``)."""
    package = ".".join(path.parent.relative_to(REPO).parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from . import test_x` names the module in the alias
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def forbidden(module: str) -> bool:
    """Whether ``module`` (or a name in it) is a test module or conftest."""
    parts = module.split(".")
    return parts[0] == "tests" and len(parts) > 1 and (parts[1] == "conftest" or parts[1].startswith("test_"))


def test_imports_are_resolved_as_written() -> None:
    """The check below reads what it should: a few imports of known files, resolved."""
    cli = imported(TESTS / "test_cli.py")
    assert any(name.startswith("tests.helpers.cli.") for _, name in cli)
    assert forbidden("tests.conftest.REPO") and forbidden("tests.test_run.in_folder")
    assert not forbidden("tests.helpers.cli.REPO") and not forbidden("ablation.cli.commands.main")


def test_no_module_imports_from_a_test_module_or_conftest() -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in modules()
        for line, module in imported(path)
        if forbidden(module)
    ]
    assert wrong == [], "shared code goes in tests/helpers/: " + "; ".join(wrong)


def markers_used(path: Path) -> set[str]:
    """The NAMEs of every ``pytest.mark.NAME`` in ``path`` (decorators, pytestmark, pytest.param's marks)."""
    return {
        node.attr
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "mark"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "pytest"
    }


def test_every_marker_used_is_registered(pytestconfig: pytest.Config) -> None:
    registered = {line.split(":")[0].split("(")[0].strip() for line in pytestconfig.getini("markers")}
    assert set(OURS) <= registered
    used = {
        name: sorted(str(p.relative_to(REPO)) for p in modules() if name in markers_used(p)) for name in OURS
    }
    assert all(used.values()), used  # each marks some test
    unregistered = {
        f"{path.relative_to(REPO)}: {name}"
        for path in modules()
        for name in markers_used(path)
        if name not in registered
    }
    assert unregistered == set()
