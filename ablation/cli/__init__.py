"""The ``ablation`` command: its subcommands, and what users see (tables, reports, progress).

``main`` is the console script's entry point (and ``python -m ablation``'s). This module stays tiny: the
script imports it before anything can catch Ctrl-C, so everything else loads inside ``main``, where Ctrl-C
at any moment, imports included, is ``interrupted`` and exit 130. In-process callers (tests) use
``ablation.cli.commands.main``, which leaves the process' signal handling alone.
"""

from __future__ import annotations

import os
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run one command as a process; returns its exit status. Once the command is over, Ctrl-C is
    ignored: the status is decided, and the interpreter's shutdown has nothing to interrupt."""
    code = 130
    try:
        from ablation.cli.commands import main as command

        code = command(argv)
        _ignore_ctrl_c()
    except KeyboardInterrupt:  # while the command's modules load, before its own handling is in place
        if "--debug" in (sys.argv[1:] if argv is None else argv) or os.environ.get("ABLATION_DEBUG"):
            raise
        _ignore_ctrl_c()
        print("interrupted", file=sys.stderr)
    except SystemExit:  # argparse's --help and usage errors
        _ignore_ctrl_c()
        raise
    return code


def _ignore_ctrl_c() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
