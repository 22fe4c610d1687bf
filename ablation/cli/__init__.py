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
        import signal

        signal.signal(signal.SIGINT, _CtrlC())
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


class _CtrlC:
    """Python's SIGINT handler (a KeyboardInterrupt), which also records that Ctrl-C came (``came``): the
    command's error is Ctrl-C's when a library turned the KeyboardInterrupt into its own (numpy raises an
    ImportError when Ctrl-C comes while it loads)."""

    came = False

    def __call__(self, signum: int, frame: object) -> None:
        self.came = True
        raise KeyboardInterrupt


def _ignore_ctrl_c() -> None:
    """Ignore Ctrl-C from here on, and have CPython forget a KeyboardInterrupt that escaped an ``exec`` or
    ``eval`` of a string before a handler caught it (Ctrl-C while a dataclass or namedtuple was being made):
    under ``python -m`` it would end the process by SIGINT, not with its exit status. Running a string
    resets that record."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exec("")
