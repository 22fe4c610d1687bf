"""The commands on a sweep's cells: ``plan``, ``launch``, ``status``, ``cancel``, ``run`` and ``sweeps``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ablation.cli.parser import _default_root, selection
from ablation.cli.result_commands import checked_store, harvest_and_export
from ablation.cli.table import shown, warn
from ablation.errors import InputError
from ablation.model.codes import factor_legend

if TYPE_CHECKING:
    from ablation.grid.sweep import Sweep
    from ablation.run.launch import CellStatus, LaunchReport

__all__ = ["COMMANDS"]


def _cmd_plan(args: argparse.Namespace) -> int:
    from ablation.cli.table import text_table
    from ablation.grid.plan import plan
    from ablation.grid.sweep import load_sweep
    from ablation.run.status_table import breakdown, grid_columns

    sweep = load_sweep(args.sweep)
    result = plan(sweep, args.root, selection(args))
    planned = [p.cell for p in result.cells]
    if _listed(args, len(planned)):
        extra, values = grid_columns(planned, sweep.axes)
        rows = [
            (
                p.name,
                p.cell_id,
                p.cell.code,
                p.cell.code.label,
                "on" if p.cell.dcn else "off",
                *more,
                shown(p.path),
            )
            for p, more in zip(result.cells, values, strict=True)
        ]
        print(text_table(("cell", "id", "code", "factors", "dcn", *extra, "config"), rows))
    else:
        print(text_table(*breakdown(planned, sweep.axes)))
    cells = len({p.config.cell_name for p in result.cells})
    seeded = any(c.seed is not None for c in planned)
    counted = f"{len(planned)} runs of {cells} cells" if seeded else f"{len(planned)} cells"
    print(f"\n{counted} of sweep {sweep.name}; configs in {shown(result.directory / 'configs')}")
    _every_cell(args, len(planned))
    print(factor_legend())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _listed(args: argparse.Namespace, rows: int) -> bool:
    """Whether a command lists every cell: asked to (``--cells``), or few enough to read."""
    from ablation.run.status_table import LIST_AT_MOST

    return bool(getattr(args, "cells", False)) or rows <= LIST_AT_MOST


def _every_cell(args: argparse.Namespace, rows: int) -> None:
    """Under a summary, how to see every cell."""
    if not _listed(args, rows):
        print(f"(the {rows} rows by code, DCN, axis value and seed; --cells lists each one)")


def _print_states(states: Sequence[CellStatus], sweep: Sweep, args: argparse.Namespace) -> None:
    """Each cell's row (or, for a grid of more than ``LIST_AT_MOST``, the counts of its states by code, DCN,
    axis value and seed), when the sweep should finish and what it costs, then the summary line."""
    from ablation.cli.table import text_table
    from ablation.run.status_table import breakdown, summary, sweep_lines, table

    if _listed(args, len(states)):
        print(text_table(*table(states, sweep.axes)))
    else:
        print(text_table(*breakdown([s.planned.cell for s in states], sweep.axes, [s.state for s in states])))
    print()
    for line in sweep_lines(states, sweep.slurm.array_parallelism):  # the summary stays last: scripts read it
        print(line)
    print(summary(states))
    _every_cell(args, len(states))
    _warn_unreadable(states)


def _warn_unreadable(states: Sequence[CellStatus]) -> int:
    """Name each cell whose result file cannot be read (its state is failed); 1 if there is one, else 0."""
    problems = [f"{s.name}: {s.problem}" for s in states if s.problem]
    warn(problems)
    return 1 if problems else 0


def _cmd_launch(args: argparse.Namespace) -> int:
    from ablation.grid.sweep import load_sweep
    from ablation.run.launch import launch

    sweep = load_sweep(args.sweep)
    options = {
        key: getattr(args, key, None)
        for key in ("partition", "gpus", "cpus", "mem_gb", "time_min", "array_parallelism", "account", "qos")
    }
    report = launch(
        sweep,
        args.root,
        executor=args.executor,
        retry_failed=args.retry_failed,
        parallel=args.parallel,
        options={k: v for k, v in options.items() if v is not None},
        dry_run=getattr(args, "dry_run", False),
        selection=selection(args),
    )
    if report.dry_run:  # Slurm: the sbatch scripts; local: what it would do, in one line
        print(report.script or _dry_run_line(report), end="")
        return 0
    skipped = ", ".join(f"{n} {state}" for state, n in sorted(report.skipped.items()))
    again = (
        " (--retry-failed resubmits them)"
        if not args.retry_failed and set(report.skipped) & {"failed", "lost"}
        else ""
    )
    print(
        f"submitted {len(report.submitted)} of {len(report.before)} cells of sweep {sweep.name} "
        f"({report.executor})" + (f"; left alone: {skipped}{again}" if skipped else "")
    )
    if not args.wait:
        print(f"follow with: ablation status --sweep {args.sweep}" + _root_flag(args))
        return _warn_unreadable(report.before)
    return _wait_and_report(sweep, args, [s.name for s in report.before])


def _dry_run_line(report: LaunchReport) -> str:
    """What a local launch would do: generate the dataset, write the configs, start the cells."""
    cells, todo = len(report.before), len(report.would_submit)
    steps = [f"generate the synthetic dataset in {shown(report.generates)}"] if report.generates else []
    steps.append(
        f"write {cells} config{'s' if cells != 1 else ''} to {shown(report.plan.directory / 'configs')}"
    )
    at_once = f", {report.parallel} at a time" if report.parallel and todo > 1 else ""
    steps.append(
        f"start {todo} of {cells} cells of sweep {report.plan.sweep.name} ({report.executor}{at_once})"
    )
    return f"dry run: would {', '.join(steps[:-1])} and {steps[-1]}; nothing written or started\n"


def _root_flag(args: argparse.Namespace) -> str:
    return "" if args.root == _default_root() else f" --root {shown(args.root)}"


def _wait_and_report(sweep: Sweep, args: argparse.Namespace, names: list[str]) -> int:
    from ablation.cli.progress import Watcher
    from ablation.run.launch import wait
    from ablation.run.status_table import summary

    try:
        with Watcher(len(names), sweep.slurm.array_parallelism) as watcher:
            states = wait(sweep, args.root, names, on_poll=watcher.update)
    except KeyboardInterrupt:  # the jobs are not ours to stop: they go on
        print(f"\nstopped waiting; the jobs go on (ablation status --sweep {args.sweep}{_root_flag(args)})")
        return 130
    print()
    problems = 0
    if args.command == "run":  # the study's table, from the store
        problems = harvest_and_export(sweep, args)
        print(f"\n{summary(states)}")
    else:
        _print_states(states, sweep, args)
    bad = [s.name for s in states if s.state != "done"]
    if bad:
        print(f"not done: {', '.join(bad)} (their result.json has the error; relaunch with --retry-failed)")
    return 1 if bad or problems else 0


def _cmd_status(args: argparse.Namespace) -> int:
    import time

    from ablation.grid.sweep import load_sweep
    from ablation.run.launch import UNFINISHED, status

    sweep = load_sweep(args.sweep)
    while True:
        states = _on_executor(status(sweep, args.root, selection(args)), args.executor)
        if args.watch and sys.stdout.isatty():
            print("\033[2J\033[H", end="")  # a live view: redraw in place
        _print_states(states, sweep, args)
        if states and all(s.submission is None and s.result is None for s in states):
            print(
                f"no run of sweep {sweep.name!r} under {args.root.resolve()} "
                "(launched elsewhere? --root DIR or $ABLATION_ROOT)"
            )
        unreadable = 1 if any(s.problem for s in states) else 0
        if not args.watch or not any(s.state in UNFINISHED for s in states):
            return unreadable
        time.sleep(args.interval)  # Ctrl-C stops watching: exit 130, as everywhere
        print()


def _on_executor(states: list[CellStatus], executor: str | None) -> list[CellStatus]:
    """``--executor`` of status and cancel: only the cells whose latest job went there."""
    if executor is None:
        return states
    return [s for s in states if s.submission is not None and s.submission.executor == executor]


def _cmd_cancel(args: argparse.Namespace) -> int:
    from ablation.grid.sweep import load_sweep
    from ablation.run.launch import cancel, status

    sweep = load_sweep(args.sweep)
    states = _on_executor(status(sweep, args.root, selection(args)), args.executor)
    cancelled = cancel(states)
    for s in cancelled:
        print(f"cancelled {s.name} (job {s.submission.job_id if s.submission else '?'})")
    print(f"{len(cancelled)} job{'s' if len(cancelled) != 1 else ''} cancelled")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    checked_store(args)  # a --store or --root that is a file: exit 2 before any cell runs
    args.executor, args.wait = "local", True
    return _cmd_launch(args)


def _cmd_sweeps(args: argparse.Namespace) -> int:
    from ablation.cli.table import text_table
    from ablation.grid.sweep import SweepFile, available_sweeps, load_sweep

    if args.schema:
        from ablation.cli.table import markdown_table
        from ablation.grid.schema import describe

        fmt = markdown_table if args.markdown else text_table
        print(fmt(("key", "default", "meaning"), describe(SweepFile)))
        return 0
    rows: list[tuple[object, ...]] = []
    for name, path in available_sweeps().items():
        try:
            sweep = load_sweep(path)
        except InputError as error:  # one broken file does not hide the others
            rows.append((name, "-", f"INVALID: {str(error).removeprefix(f'{path}: ')}", shown(path)))
            continue
        rows.append((name, len(sweep.cells), sweep.settings.description, shown(path)))
    print(text_table(("sweep", "cells", "description", "file"), rows))
    return 0


COMMANDS = {
    "plan": _cmd_plan,
    "launch": _cmd_launch,
    "status": _cmd_status,
    "cancel": _cmd_cancel,
    "run": _cmd_run,
    "sweeps": _cmd_sweeps,
}
