"""The package's shape: no import cycle between its modules, the dashboard on the library (not the CLI), every
module named in the layout table of docs/design.md, and none over 400 lines without a reason written there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from .helpers.cli import REPO

PACKAGE = REPO / "ablation"
DESIGN = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """The ablation modules a file (the module ``name``, by default its path's) imports, at module level or
    inside functions, relative imports too."""
    found: set[str] = set()
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.startswith("ablation")}


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_shipped" not in p.parts}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of ``graph`` (module -> modules it imports) meets, each as its path."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle_between_the_package_s_modules() -> None:
    known = modules()
    graph = {  # "ablation" itself is the lazy public API, which imports nothing of the package eagerly
        name: {i for i in imports(path) if i in known and i not in (name, "ablation")}
        for name, path in known.items()
    }
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """Not vacuous: the export <-> replicates cycle it was written for is found, through a function-level
    import as that one was."""
    replicates = tmp_path / "replicates.py"
    replicates.write_text("def f():\n    from ablation.results.export import SPREADS\n", encoding="utf-8")
    export, other = "ablation.results.export", "ablation.results.replicates"
    graph = {export: {other}, other: imports(replicates, other) - {"ablation.results"}}
    assert find_cycles(graph) == [[export, other, export]]


def test_the_dashboard_is_built_on_the_library_not_the_cli() -> None:
    app = REPO / "dashboard" / "app.py"
    assert not {i for i in imports(app) if i.startswith("ablation.cli")}


def layout_rows() -> dict[str, str]:
    """docs/design.md's module table: module path -> its job."""
    return dict(re.findall(r"^\| `(ablation/[^`]+\.py)` \| (.+?) \|$", DESIGN, re.M))


def test_every_module_is_named_in_the_layout_table_and_every_row_is_a_module() -> None:
    files = {p.relative_to(REPO).as_posix() for p in modules().values()}
    rows = set(layout_rows())
    assert files - rows == set(), "add these modules to docs/design.md's table"
    assert rows - files == set(), "these rows of docs/design.md name no module"


def test_no_module_is_over_400_lines_without_a_reason_in_the_layout_doc() -> None:
    reasons = dict(re.findall(r"^- `(ablation/[^`]+\.py)` \(\d+ lines\): (.+)$", DESIGN, re.M))
    long = {
        p.relative_to(REPO).as_posix()
        for p in modules().values()
        if len(p.read_text(encoding="utf-8").splitlines()) > MAX_LINES
    }
    assert long - set(reasons) == set(), "split these modules, or say in docs/design.md why not"
