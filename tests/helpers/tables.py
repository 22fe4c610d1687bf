"""Reading the markdown tables the tool prints and the published ones it reproduces."""

from __future__ import annotations


def table_rows(markdown: str) -> list[list[str]]:
    """The cells of a markdown table's rows (header and alignment rows left out)."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines[2:]]
