"""The ``ablation`` command: its subcommands, and what users see (tables, reports, progress)."""

from ablation.cli.commands import main

__all__ = ["main"]
