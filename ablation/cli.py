"""The ``ablation`` command: parses arguments, calls one library function, prints the result.

A user mistake prints one line, ``error: ...``, and exits 2; other known failures exit 1.
Set ABLATION_DEBUG=1 (or pass --debug) to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .codes import AttentionCode, factor_legend
from .errors import AblationError, BadCodeError, InputError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the problem (argparse already lists valid choices)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _codes(text: str) -> list[AttentionCode]:
    try:
        return [AttentionCode.parse(part.strip()) for part in text.split(",")]
    except BadCodeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _default_root() -> Path:
    return Path(os.environ.get("ABLATION_ROOT", "runs"))


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _cmd_plan(args: argparse.Namespace) -> int:
    from .plan import plan
    from .sweep import load_sweep
    from .table import text_table

    sweep = load_sweep(args.sweep)
    codes = [c for group in args.codes for c in group] if args.codes else None
    dcn = None if args.dcn == "both" else args.dcn == "on"
    result = plan(sweep, args.root, codes=codes, dcn=dcn)
    rows = [
        (p.name, p.cell_id, p.cell.code, p.cell.code.label, "on" if p.cell.dcn else "off", _shown(p.path))
        for p in result.cells
    ]
    print(text_table(("cell", "id", "code", "factors", "dcn", "config"), rows))
    print(f"\n{len(rows)} cells of sweep {sweep.name}; configs in {_shown(result.directory / 'configs')}")
    print(factor_legend())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _cmd_sweeps(args: argparse.Namespace) -> int:
    from .sweep import SweepFile, available_sweeps, load_sweep
    from .table import text_table

    if args.schema:
        from .schema import describe
        from .table import markdown_table

        fmt = markdown_table if args.markdown else text_table
        print(fmt(("key", "default", "meaning"), describe(SweepFile)))
        return 0
    rows: list[tuple[object, ...]] = []
    for name, path in available_sweeps().items():
        try:
            sweep = load_sweep(path)
        except InputError as error:  # one broken file does not hide the others
            rows.append((name, "-", f"INVALID: {str(error).removeprefix(f'{path}: ')}", _shown(path)))
            continue
        rows.append((name, len(sweep.cells), sweep.settings.description, _shown(path)))
    print(text_table(("sweep", "cells", "description", "file"), rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ablation", description="Run, track and compare the spatial attention ablation grid."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also ABLATION_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    p = commands.add_parser(
        "plan",
        help="write one MMDetection config per cell and list the cells",
        description="Write one MMDetection config per cell of a sweep and list the cells.",
    )
    p.add_argument("--sweep", required=True, help="a sweep name (see `ablation sweeps`) or a .toml file")
    p.add_argument(
        "--codes",
        type=_codes,
        action="append",
        metavar="CODE[,CODE...]",
        help="only these attention codes, e.g. 0010,1111 (repeatable)",
    )
    p.add_argument(
        "--dcn", choices=("on", "off", "both"), default="both", help="only cells with DCN on or off"
    )
    p.add_argument(
        "--root",
        type=Path,
        default=_default_root(),
        help="folder of sweep folders (default: $ABLATION_ROOT or ./runs)",
    )
    p.set_defaults(run=_cmd_plan)

    p = commands.add_parser("sweeps", help="list the sweep files", description="List the sweep files.")
    p.add_argument("--schema", action="store_true", help="print every sweep setting with its default instead")
    p.add_argument("--markdown", action="store_true", help="with --schema: as a markdown table")
    p.set_defaults(run=_cmd_sweeps)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except AblationError as error:
        if args.debug or os.environ.get("ABLATION_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # the reader stopped early (`ablation plan ... | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
