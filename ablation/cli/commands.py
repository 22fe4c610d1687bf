"""The ``ablation`` command: parses arguments, calls one library function, prints the result.

A user mistake prints one line, ``error: ...``, and exits 2; other known failures exit 1.
Set ABLATION_DEBUG=1 (or pass --debug) to see the traceback instead. The subcommands are in
``sweep_commands`` (on a sweep's cells) and ``result_commands`` (on the results store); their arguments
in ``parser``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from ablation.cli.parser import build_parser
from ablation.cli.result_commands import COMMANDS as RESULT_COMMANDS
from ablation.cli.sweep_commands import COMMANDS as SWEEP_COMMANDS
from ablation.cli.table import one_line
from ablation.errors import AblationError, InputError

__all__ = ["main"]

COMMANDS = {**SWEEP_COMMANDS, **RESULT_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure is one line on stderr: ``error: ...`` with the error's exit status (2
    for a user mistake, 1 otherwise), ``interrupted`` and 130 on Ctrl-C, and ``internal error: ...`` and 1
    for a bug. --debug or ABLATION_DEBUG shows the traceback instead."""
    given = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in given or bool(os.environ.get("ABLATION_DEBUG"))
    try:
        args = build_parser().parse_args(given)
        debug = bool(args.debug or debug)
        return int(COMMANDS[args.command](args))
    except AblationError as error:
        if debug:
            raise
        print(f"error: {_flagged(error)}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # the reader stopped early (`ablation plan ... | head`): no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: one line saying so, and how to see where
        if debug:
            raise
        if getattr(signal.getsignal(signal.SIGINT), "came", False):  # Ctrl-C, turned into a library's error
            # (numpy's ImportError mid-import): the entry point's handler (ablation.cli.main) saw it
            print("interrupted", file=sys.stderr)
            return 130
        print(
            f"internal error: {type(error).__name__}: {one_line(error)} "
            "(run `ablation --debug ...` or set ABLATION_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _flagged(error: AblationError) -> str:
    """The error's line, naming the command's flag where the library named its argument (``where ...`` ->
    ``--where ...``)."""
    line = one_line(error)
    argument = error.argument if isinstance(error, InputError) else None
    if argument and line.startswith(argument):
        return "--" + argument.replace("_", "-") + line.removeprefix(argument)
    return line


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
