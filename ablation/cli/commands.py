"""The ``ablation`` command: parses arguments, calls one library function, prints the result.

A user mistake prints one line, ``error: ...``, and exits 2; other known failures exit 1.
Set ABLATION_DEBUG=1 (or pass --debug) to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ablation import __version__
from ablation.errors import AblationError, BadCodeError, InputError
from ablation.model.codes import AttentionCode, factor_legend

if TYPE_CHECKING:
    import pandas as pd

    from ablation.grid.cells import Selection
    from ablation.grid.sweep import Sweep
    from ablation.results.store import Store
    from ablation.run.launch import CellStatus

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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


_EXECUTORS = ("local", "slurm")  # the names of executors.BACKENDS, without importing it at start-up


def _default_root() -> Path:
    return Path(os.environ.get("ABLATION_ROOT", "runs"))


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _cmd_plan(args: argparse.Namespace) -> int:
    from ablation.cli.table import grid_columns, text_table
    from ablation.grid.plan import plan
    from ablation.grid.sweep import load_sweep

    sweep = load_sweep(args.sweep)
    result = plan(sweep, args.root, _selection(args))
    extra, values = grid_columns([p.cell for p in result.cells], sweep.axes)
    rows = [
        (
            p.name,
            p.cell_id,
            p.cell.code,
            p.cell.code.label,
            "on" if p.cell.dcn else "off",
            *more,
            _shown(p.path),
        )
        for p, more in zip(result.cells, values, strict=True)
    ]
    print(text_table(("cell", "id", "code", "factors", "dcn", *extra, "config"), rows))
    cells = len({p.config.cell_name for p in result.cells})
    counted = f"{len(rows)} runs of {cells} cells" if "seed" in extra else f"{len(rows)} cells"
    print(f"\n{counted} of sweep {sweep.name}; configs in {_shown(result.directory / 'configs')}")
    print(factor_legend())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _selection(args: argparse.Namespace) -> Selection:
    from ablation.grid.cells import Selection

    return Selection(
        codes=tuple(c for group in args.codes for c in group) if args.codes else None,
        dcn=None if args.dcn == "both" else args.dcn == "on",
        where=tuple(args.where or ()),
        seeds=_seed_list(args),
    )


def _where(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected AXIS=VALUE such as kv_stride=2, got {text!r}")
    return name.strip(), value.strip()


def _seed_list(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The seeds of every --seeds given (None: no --seeds)."""
    return tuple(s for group in args.seeds for s in group) if args.seeds else None


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds such as 0,1,2, got {text!r}") from None


def _print_states(states: Sequence[CellStatus], sweep: Sweep) -> None:
    from ablation.cli.report import summary, table
    from ablation.cli.table import text_table

    print(text_table(*table(states, sweep.axes)))
    print(f"\n{summary(states)}")
    _warn_unreadable(states)


def _warn_unreadable(states: Sequence[CellStatus]) -> int:
    """Name each cell whose result file cannot be read (its state is failed); 1 if there is one, else 0."""
    problems = [f"{s.name}: {s.problem}" for s in states if s.problem]
    _warn(problems)
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
        selection=_selection(args),
    )
    if report.script is not None:
        print(report.script, end="")
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


def _root_flag(args: argparse.Namespace) -> str:
    return "" if args.root == _default_root() else f" --root {_shown(args.root)}"


def _wait_and_report(sweep: Sweep, args: argparse.Namespace, names: list[str]) -> int:
    from ablation.cli.progress import Watcher
    from ablation.cli.report import summary
    from ablation.run.launch import wait

    try:
        with Watcher(len(names)) as watcher:
            states = wait(sweep, args.root, names, on_poll=watcher.update)
    except KeyboardInterrupt:  # the jobs are not ours to stop: they go on
        print(f"\nstopped waiting; the jobs go on (ablation status --sweep {args.sweep}{_root_flag(args)})")
        return 130
    print()
    if args.command == "run":  # the study's table, from the store
        _harvest_and_export(sweep, args)
        print(f"\n{summary(states)}")
    else:
        _print_states(states, sweep)
    bad = [s.name for s in states if s.state != "done"]
    if bad:
        print(f"not done: {', '.join(bad)} (their result.json has the error; relaunch with --retry-failed)")
    return 1 if bad else 0


def _cmd_status(args: argparse.Namespace) -> int:
    import time

    from ablation.grid.sweep import load_sweep
    from ablation.run.launch import UNFINISHED, status

    sweep = load_sweep(args.sweep)
    while True:
        states = _on_executor(status(sweep, args.root, _selection(args)), args.executor)
        if args.watch and sys.stdout.isatty():
            print("\033[2J\033[H", end="")  # a live view: redraw in place
        _print_states(states, sweep)
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
    states = _on_executor(status(sweep, args.root, _selection(args)), args.executor)
    cancelled = cancel(states)
    for s in cancelled:
        print(f"cancelled {s.name} (job {s.submission.job_id if s.submission else '?'})")
    print(f"{len(cancelled)} job{'s' if len(cancelled) != 1 else ''} cancelled")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    args.executor, args.wait = "local", True
    return _cmd_launch(args)


def _store(args: argparse.Namespace) -> Store:
    from ablation.results.store import Store

    if args.store is not None:
        return Store(args.store)
    return Store(Path(os.environ.get("ABLATION_STORE") or args.root / "store"))


def _warn(problems: Sequence[str]) -> None:
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)


def _harvest_and_export(sweep: Sweep, args: argparse.Namespace) -> None:
    """``ablation run``'s ending: the sweep's runs into the store, then its results table."""
    from ablation.grid.plan import sweep_dir
    from ablation.results.export import TableOptions, render, results_table, select
    from ablation.results.harvest import HarvestReport, find_runs, harvest

    store = _store(args)
    report = harvest(store, find_runs(sweep_dir(args.root, sweep)), sweep.name, HarvestReport())
    read = store.read()
    _warn([*report.problems, *read.problems])
    frame = read.frame()
    table = results_table(select(frame[frame["sweep"] == sweep.name], sources=["run"]), TableOptions())
    print(render(table, "markdown"), end="")
    where = _shown(store.path)
    again = f"ablation export --sweep {sweep.name}" + ("" if where == "runs/store" else f" --store {where}")
    print(
        f"\n{report.summary()} into {where}; this table again: {again} (--format csv or latex, --breakdown)"
    )
    _write_run_report(frame, sweep.name, store)


def _write_run_report(frame: pd.DataFrame, sweep: str, store: Store) -> None:
    """The end of ``ablation run``'s ending: the sweep's report beside the store, and a line saying where; a
    report that cannot be made (no cell finished) is a warning, never the run's failure."""
    from ablation.analysis.report import report_path, write_report

    path = report_path(store.path, sweep)
    try:
        write_report(frame, sweep, path)
    except AblationError as error:
        _warn([f"no report of sweep {sweep}: {_one_line(error)}"])
        return
    print(f"report: {_shown(path)}")


def _harvest_targets(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(folder, sweep name) of each --sweep (a folder, or a sweep's name or file), or every sweep folder."""
    from ablation.grid.plan import sweep_dir
    from ablation.grid.sweep import load_sweep

    if not args.sweep:
        store = _store(args).path.resolve()
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
                f"no runs of sweep {sweep.name} under {_shown(args.root)} (no folder {_shown(folder)}); "
                f"give a folder, or run the sweep first"
            )
        targets.append((folder, args.as_name or sweep.name))
    return targets


def _cmd_harvest(args: argparse.Namespace) -> int:
    from ablation.cli.progress import counted
    from ablation.results.harvest import HarvestReport, find_runs, harvest
    from ablation.results.modelzoo import load_reference

    store, report = _store(args), HarvestReport()
    for folder, name in _harvest_targets(args):
        harvest(store, counted(list(find_runs(folder)), f"harvesting {name}"), name, report)
    if not args.no_reference:
        for record in load_reference():
            report.put(store, record)
    read = store.read()  # also brings the store's cache up to date for the dashboard
    print(f"{report.summary()} into {_shown(store.path)} ({read.table.num_rows} runs in the store)")
    _warn([*report.problems, *read.problems])
    return 1 if report.problems else 0


def _cmd_import_log(args: argparse.Namespace) -> int:
    from ablation.results.harvest import HarvestReport
    from ablation.results.modelzoo import LOG_SWEEP, import_log

    store, report = _store(args), HarvestReport()
    dcn = None if args.dcn is None else args.dcn == "on"
    code = str(args.code[0][0]) if args.code else None
    for path in args.files:
        try:
            report.put(store, import_log(path, args.as_name or LOG_SWEEP, code=code, dcn=dcn))
        except AblationError as error:
            report.problems.append(str(error))
    store.read()
    print(f"{report.summary().replace('harvested', 'imported')} into {_shown(store.path)}")
    _warn(report.problems)
    return 1 if report.problems else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from ablation.fsio import write_atomic
    from ablation.results.export import TableOptions, render, results_table, select

    store = _store(args)
    read = store.read()
    _warn(read.problems)
    options = TableOptions(
        breakdown=args.breakdown,
        complexity=args.complexity,
        timing=args.timing,
        baseline=args.baseline,
        spread=args.spread,
    )
    chosen = select(
        read.frame(),
        sweeps=args.sweep,
        sources=args.source,
        where=tuple(args.where or ()),
        seeds=_seed_list(args),
    )
    table = results_table(chosen, options)
    if not table.rows:
        print(
            f"note: no finished run to show in {_shown(store.path)}; fill the store with `ablation harvest` "
            "(or `ablation run --sweep smoke`)",
            file=sys.stderr,
        )
    text = render(table, args.format)
    if args.output is None:
        print(text, end="")
    else:
        write_atomic(args.output, text)
        print(f"wrote {len(table.rows)} rows to {_shown(args.output)}", file=sys.stderr)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from ablation.analysis.report import report_path, write_report

    store = _store(args)
    read = store.read()
    _warn(read.problems)
    path = args.output if args.output is not None else report_path(store.path, args.sweep)
    report = write_report(read.frame(), args.sweep, path, sources=args.source)
    print(f"report: {_shown(path)} ({report.runs} runs of {report.cells} cells, {report.charts} charts)")
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 1..65535, got {text!r}")
    return int(text)


def _cmd_dashboard(args: argparse.Namespace) -> NoReturn:
    from ablation.errors import EnvironmentProblem
    from ablation.shipped import shipped

    app = shipped("dashboard") / "app.py"
    if not app.is_file():
        raise EnvironmentProblem(
            f"the dashboard app is not at {app}; reinstall ablation (pip install . in a checkout)"
        )
    store = _store(args)
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
    print(
        f"dashboard: http://{args.address}:{args.port}/ (store {_shown(store.path)}; Ctrl-C stops it)",
        flush=True,
    )
    # Streamlit takes this process' place: a signal to `ablation dashboard` (Ctrl-C, a service manager's
    # TERM) reaches the server itself, and no server outlives the command.
    os.execve(sys.executable, command, env)


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

    def axis_filters(p: argparse.ArgumentParser, things: str, unseeded: str) -> None:
        """--where and --seeds (``Selection``, and ``export.select``)."""
        p.add_argument(
            "--where",
            type=_where,
            action="append",
            metavar="AXIS=VALUE",
            help=f"only {things} with this value on an axis of [grid.axes], e.g. kv_stride=2 (repeatable; "
            f"{things} the axis does not vary, such as 0000 for attention settings, stay)",
        )
        p.add_argument(
            "--seeds",
            type=_seeds,
            action="append",
            metavar="SEED[,SEED...]",
            help=f"only these replicates{unseeded}",
        )

    def cells_of_a_sweep(p: argparse.ArgumentParser) -> None:
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
        axis_filters(p, "cells", "")
        p.add_argument(
            "--root",
            type=Path,
            default=_default_root(),
            help="folder of sweep folders (default: $ABLATION_ROOT or ./runs)",
        )

    def executor_filter(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--executor",
            choices=_EXECUTORS,
            help="only the cells whose latest job went to this executor (each job is judged where it runs)",
        )

    def executing(p: argparse.ArgumentParser, executor: bool = True) -> None:
        if executor:
            p.add_argument(
                "--executor",
                choices=_EXECUTORS,
                help="where new jobs go (default: where the sweep's jobs already are; local for a new "
                "sweep); existing jobs are always judged where they run",
            )
            slurm = p.add_argument_group("Slurm (override the sweep's [slurm] and [resources])")
            slurm.add_argument("--partition")
            slurm.add_argument("--gpus", type=_positive, metavar="N", help="GPUs per job (one task per GPU)")
            slurm.add_argument("--cpus", type=_positive, metavar="N", help="CPUs per task")
            slurm.add_argument("--mem-gb", type=_positive, metavar="GB", help="memory per job")
            slurm.add_argument("--time-min", type=_positive, metavar="MIN", help="time limit per job")
            slurm.add_argument("--array-parallelism", type=_positive, metavar="N", help="array tasks at once")
            slurm.add_argument("--account")
            slurm.add_argument("--qos")
            slurm.add_argument(
                "--dry-run", action="store_true", help="print the sbatch script, submit nothing"
            )
        p.add_argument(
            "--retry-failed",
            action="store_true",
            help="also resubmit failed, lost (timed out, cancelled) cells",
        )
        p.add_argument(
            "--parallel",
            type=_positive,
            metavar="N",
            help="local cells computing at once (default: CPU cores)",
        )

    def command(
        name: str, summary: str, description: str, *parts: Callable[[argparse.ArgumentParser], None]
    ) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=summary, description=description)
        for part in parts:
            part(p)
        return p

    def watching(p: argparse.ArgumentParser) -> None:
        p.add_argument("--watch", action="store_true", help="redraw until no cell is pending or running")
        p.add_argument("--interval", type=_positive, default=10, metavar="S", help="seconds between redraws")

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--wait", action="store_true", help="wait for the cells, with progress, and print results"
        )

    def store_option(p: argparse.ArgumentParser, root: bool = True) -> None:
        p.add_argument(
            "--store", type=Path, metavar="DIR", help="results store (default: $ABLATION_STORE or ROOT/store)"
        )
        if root:
            p.add_argument(
                "--root", type=Path, default=_default_root(), help="folder of sweep folders (default: ./runs)"
            )

    command(
        "plan",
        "write one MMDetection config per cell and list the cells",
        "Write one MMDetection config per cell of a sweep and list the cells.",
        cells_of_a_sweep,
    ).set_defaults(run=_cmd_plan)
    command(
        "launch",
        "submit the cells that need a job, and return",
        "Plan a sweep, check its dataset and submit every cell that has no live or finished job.",
        cells_of_a_sweep,
        executing,
        waiting,
    ).set_defaults(run=_cmd_launch)
    command(
        "status",
        "a table of the cells, their states and figures",
        "Show each cell's state (planned, pending, running, done, failed, lost) and figures.",
        cells_of_a_sweep,
        executor_filter,
        watching,
    ).set_defaults(run=_cmd_status)
    command(
        "cancel",
        "cancel the jobs of pending and running cells",
        "Cancel the jobs of a sweep's pending and running cells (they become lost).",
        cells_of_a_sweep,
        executor_filter,
    ).set_defaults(run=_cmd_cancel)

    command(
        "run",
        "plan, launch locally, wait and print the results (the smoke sweep end to end)",
        "Plan a sweep, run its cells as local jobs, wait with a progress bar, print the results.",
        cells_of_a_sweep,
        lambda p: executing(p, executor=False),
        lambda p: store_option(p, root=False),
    ).set_defaults(run=_cmd_run)

    def listing(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--schema", action="store_true", help="print every sweep setting with its default instead"
        )
        p.add_argument("--markdown", action="store_true", help="with --schema: as a markdown table")

    command("sweeps", "list the sweep files", "List the sweep files.", listing).set_defaults(run=_cmd_sweeps)

    def harvesting(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--sweep",
            action="append",
            metavar="NAME|DIR",
            help="a sweep (name or .toml) or any folder of work_dirs, e.g. mmdet's work_dirs/ (repeatable; "
            "default: every sweep under ROOT)",
        )
        p.add_argument("--as", dest="as_name", metavar="NAME", help="sweep name for runs mmengine wrote")
        p.add_argument("--no-reference", action="store_true", help="leave out the model-zoo reference rows")

    command(
        "harvest",
        "read the runs' results into the store",
        "Read every run's figures into the parquet store: cells' result.json files, and work_dirs that "
        "mmdet's tools/train.py, tools/test.py and benchmark.py wrote. Also loads the model-zoo reference "
        "rows. A run that cannot be read is named and skipped; the exit status is then 1.",
        harvesting,
        store_option,
    ).set_defaults(run=_cmd_harvest)

    def importing(p: argparse.ArgumentParser) -> None:
        p.add_argument("files", nargs="+", type=Path, metavar="FILE.log.json", help="mmdet 2.x training logs")
        p.add_argument("--as", dest="as_name", metavar="NAME", help="sweep name (default: mmdet-logs)")
        p.add_argument(
            "--code", type=_codes, action="append", metavar="CODE", help="the logs' attention code"
        )
        p.add_argument("--dcn", choices=("on", "off"), help="whether the logs' model has DCN")

    command(
        "import-log",
        "import mmdet 2.x .log.json files (the model zoo's logs) into the store",
        "Import mmdet 2.x training logs: memory from the last training line, box AP from the last epoch's "
        "validation. The cell comes from the log's config header or its file name; --code/--dcn override.",
        importing,
        store_option,
    ).set_defaults(run=_cmd_import_log)

    def exporting(p: argparse.ArgumentParser) -> None:
        from ablation.results.export import FORMATS, SPREADS
        from ablation.results.records import SOURCES

        p.add_argument("--format", choices=FORMATS, default="markdown")
        p.add_argument("--sweep", action="append", metavar="NAME", help="only this sweep (repeatable)")
        p.add_argument("--source", action="append", choices=SOURCES, help="only this source (repeatable)")
        p.add_argument("--breakdown", action="store_true", help="add AP50, AP75, APs, APm, APl")
        p.add_argument("--complexity", action="store_true", help="add GFLOPs and parameters")
        p.add_argument(
            "--timing",
            action="store_true",
            help="add the seconds of each cell's training, test, fps and FLOPs",
        )
        p.add_argument(
            "--baseline",
            type=lambda text: str(_codes(text)[0]),
            metavar="CODE",
            help="add the box AP difference to the row with this code, the same DCN setting and axis values, "
            "e.g. 0000 (with replicates: Welch's 95%% interval, (ns) where it contains 0)",
        )
        p.add_argument(
            "--spread",
            choices=SPREADS,
            default="ci",
            help="with replicates, what ± shows: the 95%% confidence interval of the mean (ci, the default) "
            "or the standard deviation (sd)",
        )
        axis_filters(p, "runs", " (unseeded runs stay)")
        p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write here instead of stdout")

    command(
        "export",
        "print the results table (markdown, CSV, LaTeX)",
        "Print the results table in mmdetection's README layout, rows ordered by attention code then DCN.",
        exporting,
        store_option,
    ).set_defaults(run=_cmd_export)

    def reporting(p: argparse.ArgumentParser) -> None:
        from ablation.results.records import SOURCES

        p.add_argument("--sweep", required=True, metavar="NAME", help="the sweep, as the store names it")
        p.add_argument("--source", action="append", choices=SOURCES, help="only this source (repeatable)")
        p.add_argument(
            "--output",
            "-o",
            type=Path,
            metavar="FILE",
            help="the HTML file to write (default: NAME-report.html beside the store)",
        )

    command(
        "report",
        "write a sweep's report: one HTML file that opens offline",
        "Write one self-contained HTML file (no server, opens offline) of a sweep: the trade-off charts, the "
        "factor effects with their 95% intervals, and the results table.",
        reporting,
        store_option,
    ).set_defaults(run=_cmd_report)

    def serving(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", type=_port, default=8501, help="port to serve on (default: 8501)")
        p.add_argument(
            "--address", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
        )

    command(
        "dashboard",
        "serve the dashboard of the store (Streamlit)",
        "Serve the Streamlit dashboard of the results store: trade-offs, factor effects, runs, status of the "
        "sweeps under ROOT, downloads.",
        serving,
        store_option,
    ).set_defaults(run=_cmd_dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every failure is one line on stderr: ``error: ...`` with the error's exit status (2
    for a user mistake, 1 otherwise), ``interrupted`` and 130 on Ctrl-C, and ``internal error: ...`` and 1
    for a bug. --debug or ABLATION_DEBUG shows the traceback instead."""
    args = build_parser().parse_args(argv)
    debug = bool(args.debug or os.environ.get("ABLATION_DEBUG"))
    try:
        return int(args.run(args))
    except AblationError as error:
        if debug:
            raise
        print(f"error: {_one_line(error)}", file=sys.stderr)
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
        print(
            f"internal error: {type(error).__name__}: {_one_line(error)} "
            "(run `ablation --debug ...` or set ABLATION_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (its lines joined)."""
    return " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or "(no message)"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
