"""The commands on results: ``harvest``, ``import-log``, ``export``, ``effects``, ``report`` and
``dashboard``, and ``run``'s ending (harvest, table, report).

Each names every problem it met on the way in a ``warning:`` line (a run file it could not read, a cache it
rebuilt, a figure it left out) and then exits 1, having computed and written the rest. A ``--store`` or
``--root`` that names a file, or a ``--root`` to harvest that is missing, is a user's mistake: one line, exit
2, before anything is read or written (``checked_store``).
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ablation.cli.parser import seed_list, store_of
from ablation.cli.table import one_line, shown, warn
from ablation.errors import AblationError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from ablation.grid.sweep import Sweep
    from ablation.results.store import Store

__all__ = ["COMMANDS", "checked_store", "harvest_and_export"]


def checked_store(args: argparse.Namespace, root: bool = False) -> Store:
    """The command's store (``--store``, $ABLATION_STORE, or ``--root``'s store/). ``InputError`` naming the
    flag when it, or the ``--root`` it is under, is a file (or under one); ``root`` True checks ``--root`` in
    any case (the folder harvest searches)."""
    from ablation.results.store import not_a_folder

    store, env, given_root = store_of(args), os.environ.get("ABLATION_STORE"), getattr(args, "root", None)
    if args.store is not None:
        flag, given = "--store", Path(args.store)
    elif env:
        flag, given = "$ABLATION_STORE", Path(env)
    else:
        flag, given = "--root", Path(given_root if given_root is not None else store.path.parent)
    checks = []  # (flag, its value, the folder it must give, what to give instead)
    if given_root is not None and (root or flag == "--root"):
        checks.append(("--root", Path(given_root), Path(given_root), "give the folder of the sweep folders"))
    checks.append((flag, given, store.runs_dir, "give the store's folder (made by the first harvest)"))
    for name, value, folder, hint in checks:
        blocker = not_a_folder(folder)
        if blocker is not None:
            what = "a file" if blocker == value else f"{blocker} is a file"
            raise InputError(f"{name} {value}: {what}, not a folder; {hint}")
    return store


def harvest_and_export(sweep: Sweep, args: argparse.Namespace) -> int:
    """``ablation run``'s ending: the sweep's runs into the store, then its results table. 1 when a problem
    was named on the way (a run or store file not read, a figure left out), else 0."""
    from ablation.grid.plan import sweep_dir
    from ablation.results.export import render
    from ablation.results.harvest import HarvestReport, find_runs, harvest
    from ablation.results.select import select
    from ablation.results.table import TableOptions, results_table

    store = checked_store(args)
    report = harvest(store, find_runs(sweep_dir(args.root, sweep)), sweep.name, HarvestReport())
    read = store.read()
    problems = [*report.lines, *read.problems]
    warn(problems)
    frame = read.frame()
    chosen = select(frame[frame["sweep"] == sweep.name], sources=["run"])
    table = results_table(chosen, TableOptions(relative_to=store.path.parent))
    print(render(table, "markdown"), end="")
    where = shown(store.path)
    again = f"ablation export --sweep {sweep.name}" + ("" if where == "runs/store" else f" --store {where}")
    print(
        f"\n{report.summary()} into {where}; this table again: {again} (--format csv or latex, --breakdown)"
    )
    _write_run_report(frame, sweep.name, store)
    return 1 if problems else 0


def _write_run_report(frame: pd.DataFrame, sweep: str, store: Store) -> None:
    """The end of ``ablation run``'s ending: the sweep's report beside the store, and a line saying where; a
    report that cannot be made (no cell finished) is a warning, never the run's failure."""
    from ablation.analysis.report import report_path, write_report

    path = report_path(store.path, sweep)
    try:
        report = write_report(frame, sweep, path)
    except AblationError as error:
        warn([f"no report of sweep {sweep}: {one_line(error)}"])
        return
    for words in report.verdict:  # what of the table is noise, as the report opens
        print("\n" + textwrap.fill(words, width=110))
    print(f"report: {shown(path)}")


def _harvest_targets(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(folder, sweep name) of each --sweep (a folder, or a sweep's name or file), or every sweep folder."""
    from ablation.fsio import root_dir
    from ablation.grid.plan import sweep_dir
    from ablation.grid.sweep import load_sweep

    if not args.sweep:
        if not args.root.exists() and not os.environ.get("ABLATION_ROOT") and args.root == root_dir():
            print(f"note: no folder {shown(args.root)} yet: nothing ran here", file=sys.stderr)
            return []  # the default root, before any run: the reference rows alone
        if not args.root.is_dir():
            raise InputError(
                f"--root {args.root}: no such folder; give the folder the sweeps ran under, or --sweep FOLDER"
            )
        store = store_of(args).path.resolve()
        folders = sorted(p for p in args.root.glob("*") if p.is_dir() and p.resolve() != store)
        return [(p, p.name) for p in folders]
    targets = []
    for given in args.sweep:
        if Path(given).is_dir():
            targets.append((Path(given), args.as_name or Path(given).resolve().name))
            continue
        sweep = load_sweep(given)
        folder = sweep_dir(args.root, sweep)
        if not folder.is_dir():
            raise InputError(
                f"no runs of sweep {sweep.name} under {shown(args.root)} (no folder {shown(folder)}); "
                f"give a folder, or run the sweep first"
            )
        targets.append((folder, args.as_name or sweep.name))
    return targets


def _cmd_harvest(args: argparse.Namespace) -> int:
    from ablation.cli.progress import counted
    from ablation.results.harvest import HarvestReport, find_runs, harvest
    from ablation.results.modelzoo import load_reference

    store, report = checked_store(args, root=not args.sweep), HarvestReport()
    for folder, name in _harvest_targets(args):
        harvest(store, counted(list(find_runs(folder)), f"harvesting {name}"), name, report)
    if not args.no_reference:
        for record in load_reference():
            report.put(store, record)
    read = store.read()  # also brings the store's cache up to date for the dashboard
    print(f"{report.summary()} into {shown(store.path)} ({read.table.num_rows} runs in the store)")
    warn([*report.lines, *read.problems])
    return 1 if report.lines or read.problems else 0


def _cmd_import_log(args: argparse.Namespace) -> int:
    from ablation.results.harvest import HarvestReport
    from ablation.results.modelzoo import LOG_SWEEP, import_log

    store, report = checked_store(args), HarvestReport()
    dcn = None if args.dcn is None else args.dcn == "on"
    code = str(args.code[0][0]) if args.code else None
    for path in args.files:
        try:
            report.put(store, import_log(path, args.as_name or LOG_SWEEP, code=code, dcn=dcn))
        except AblationError as error:
            report.problems.append(str(error))
    read = store.read()
    print(f"{report.summary().replace('harvested', 'imported')} into {shown(store.path)}")
    warn([*report.lines, *read.problems])
    return 1 if report.lines or read.problems else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ablation.fsio import write_atomic
    from ablation.results.export import render
    from ablation.results.select import select
    from ablation.results.table import TableOptions, results_table

    store = checked_store(args)
    read = store.read()
    warn(read.problems)
    options = TableOptions(
        breakdown=args.breakdown,
        complexity=args.complexity,
        timing=args.timing,
        cost=args.cost,
        baseline=args.baseline,
        spread=args.spread,
        relative_to=store.path.parent,
    )
    chosen = select(
        read.frame(),
        sweeps=args.sweep,
        sources=args.source,
        where=tuple(args.where or ()),
        seeds=seed_list(args),
    )
    table = results_table(chosen, options)
    if not table.rows:
        print(
            f"note: no finished run to show in {shown(store.path)}; fill the store with `ablation harvest` "
            "(or `ablation run --sweep smoke`)",
            file=sys.stderr,
        )
    text = render(table, args.format)
    if args.output is None:
        print(text, end="")
    else:
        write_atomic(args.output, text)
        print(f"wrote {len(table.rows)} rows to {shown(args.output)}", file=sys.stderr)
    return 1 if read.problems else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ablation.analysis.report import report_path, write_report

    store = checked_store(args)
    read = store.read()
    warn(read.problems)
    path = args.output if args.output is not None else report_path(store.path, args.sweep)
    report = write_report(read.frame(), args.sweep, path, sources=args.source)
    print(f"report: {shown(path)} ({report.runs} runs of {report.cells} cells, {report.charts} charts)")
    return 1 if read.problems else 0


def _cmd_dashboard(args: argparse.Namespace) -> NoReturn:
    from ablation.cli.arguments import serving_address
    from ablation.errors import EnvironmentProblem
    from ablation.shipped import shipped

    app = shipped("dashboard") / "app.py"
    if not app.is_file():
        raise EnvironmentProblem(
            f"the dashboard app is not at {app}; reinstall ablation (pip install . in a checkout)"
        )
    note = serving_address(args.address, args.port)  # before the server: one line, exit 2, if it cannot
    store = store_of(args)
    env = {
        **os.environ,
        "ABLATION_STORE": str(store.path.resolve()),
        "ABLATION_ROOT": str(args.root.resolve()),
    }
    command = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", args.address, "--server.port", str(args.port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # a local tool: the toolbar without developer options, so no "Deploy" button
        "--client.toolbarMode", "viewer",
    ]  # fmt: skip
    host = f"[{args.address}]" if ":" in args.address else args.address  # an IPv6 address: in brackets
    print(
        f"dashboard: http://{host}:{args.port}/ (store {shown(store.path)}; Ctrl-C stops it)",
        flush=True,
    )
    if note:
        print(note, flush=True)
    # Streamlit takes this process' place: a signal to `ablation dashboard` (Ctrl-C, a service manager's
    # TERM) reaches the server itself, and no server outlives the command.
    os.execve(sys.executable, command, env)


def _cmd_effects(args: argparse.Namespace) -> int:
    from ablation.analysis.effects_text import render_effects
    from ablation.analysis.runs import Runs
    from ablation.results.select import select
    from ablation.vocabulary import metric

    store = checked_store(args)
    read = store.read()
    warn(read.problems)
    runs = Runs(select(read.frame(), sweeps=[args.sweep], sources=args.source))
    if not len(runs):
        raise InputError(f"sweep {args.sweep!r} has no finished run in {shown(store.path)}")
    wanted = {metric(name).column for name in args.metric} if args.metric else None
    sections = [
        (f"{args.sweep} ({source})", analysis)
        for source in runs.sources
        for analysis in runs.where("source", source).analyses()
        if wanted is None or analysis.metric.column in wanted
    ]
    print(render_effects(sections, args.format), end="")
    return 1 if read.problems else 0


COMMANDS = {
    "harvest": _cmd_harvest,
    "import-log": _cmd_import_log,
    "export": _cmd_export,
    "effects": _cmd_effects,
    "report": _cmd_report,
    "dashboard": _cmd_dashboard,
}
