"""The results table (:mod:`ablation.results.table`) written in one of ``FORMATS``.

``markdown`` is a centred, padded table whose pipes line up (``|`` in a value escaped), and below a table
with spreads or with a difference marked † (no interval: a side has one run), after a blank line, the
table's note saying what ± and † are. ``csv`` has the same headers with the numbers rounded as the table
shows them, the config as a plain path or address, the memory kind in its own column and missing values as
empty fields; a column with spreads becomes two, ``<header>`` (the mean) and ``<header> ±`` (the half-width
or sd, empty where there is none); with a baseline, ``Δ box AP no interval`` follows Δ box AP's columns,
``yes`` where the difference is marked †. ``latex`` is a booktabs ``table`` with a caption naming the
sweep, the dataset and how many runs and cells (and, with a difference marked †, ending with the note):
text columns left-aligned, numbers right-aligned in their own columns, LaTeX's special characters escaped,
± as ``$\\pm$`` and † as ``\\textdagger{}``, without the Config column (papers do not link configs).

With the cost columns (``TableOptions.cost``, ``export --cost``: a row's sums over its runs), the note saying
what they hold, with each sweep's total, follows the markdown table (after a blank line) and ends LaTeX's
caption; CSV ends with a row per sweep, ``total of sweep <name>`` in its first column and the sweep's totals
in the cost columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ablation.errors import InputError
from ablation.results.table import CONFIG, DELTA, NO_INTERVAL, PLUS_MINUS, ResultsTable

__all__ = ["FORMATS", "NO_INTERVAL_COLUMN", "latex_escape", "render"]

FORMATS = ("markdown", "csv", "latex")
_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "Δ": r"$\Delta$",
    PLUS_MINUS: r"$\pm$",
    NO_INTERVAL.strip(): r"\textdagger{}",
}
NO_INTERVAL_COLUMN = f"{DELTA} no interval"  # CSV's flag of a difference marked NO_INTERVAL


def render(table: ResultsTable, fmt: str) -> str:
    """The table in ``fmt`` (one of FORMATS), ending in a newline."""
    if fmt == "markdown":
        return _markdown(table)
    if fmt == "csv":
        return _csv(table)
    if fmt == "latex":
        return _latex(table)
    raise InputError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def _markdown(table: ResultsTable) -> str:
    lines = [[cell.replace("|", "\\|") for cell in line] for line in (table.headers, *table.rows)]
    widths = [max(3, *(len(line[i]) for line in lines)) for i in range(len(table.headers))]

    def join(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    out = [join([c.center(w) for c, w in zip(lines[0], widths, strict=True)])]
    out.append(join([":" + "-" * (w - 2) + ":" for w in widths]))
    out += [join([c.center(w) for c, w in zip(line, widths, strict=True)]) for line in lines[1:]]
    for note in (table.note, table.cost_note):  # a blank line first: it would read as a row of the table
        out += ["", note] if note else []
    return "\n".join(out) + "\n"


def _csv(table: ResultsTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    carries = [header in table.spread_headers for header in table.headers]
    headers: list[str] = []
    flagged = table.no_interval is not None
    for header, spread in zip(table.headers, carries, strict=True):
        headers += [header, f"{header} {PLUS_MINUS}"] if spread else [header]
        headers += [NO_INTERVAL_COLUMN] if flagged and header == DELTA else []
    writer.writerow(headers)
    for i, row in enumerate(table.values):
        halves = table.spreads[i] if table.spreads else (None,) * len(row)
        fields: list[object] = []
        for header, value, half, spread in zip(table.headers, row, halves, carries, strict=True):
            fields.append("" if value is None else value)
            if spread:
                fields.append("" if half is None else half)
            if flagged and header == DELTA:
                fields.append("yes" if table.no_interval and table.no_interval[i] else "")
        writer.writerow(fields)
    for total in table.totals:  # a sweep's cost: its name first, its totals in the cost columns
        fields = []
        for header, value, spread in zip(table.headers, total, carries, strict=True):
            fields += ["" if value is None else value] + ([""] if spread else [])
            fields += [""] if flagged and header == DELTA else []
        writer.writerow(fields)
    return buffer.getvalue()


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def _latex(table: ResultsTable) -> str:
    keep = [i for i, header in enumerate(table.headers) if header != CONFIG]
    spec = "".join("r" if table.numeric(table.headers[i]) else "l" for i in keep)

    def line(cells: Sequence[str]) -> str:
        return " & ".join(latex_escape(cells[i]) for i in keep) + r" \\"

    out = [r"\begin{table}", r"\centering"]
    marked = table.note if table.note and any(table.no_interval or ()) else ""  # what † means, said there
    caption = " ".join(part for part in (table.caption, marked, table.cost_note) if part)
    if caption:
        out.append(f"\\caption{{{latex_escape(caption)}}}")
    out += [f"\\begin{{tabular}}{{{spec}}}", r"\toprule", line(table.headers), r"\midrule"]
    out += [line(row) for row in table.rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"
