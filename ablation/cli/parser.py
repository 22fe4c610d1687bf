"""The ``ablation`` command's arguments: the parser of every subcommand (their value types are in
``arguments``), and what the commands make of them (the cell selection, the seeds, the store)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ablation import __version__
from ablation.cli.arguments import Parser, axis_value, codes, port, positive, seeds

if TYPE_CHECKING:
    from ablation.grid.cells import Selection
    from ablation.results.store import Store

__all__ = ["build_parser", "seed_list", "selection", "store_of"]


_EXECUTORS = ("local", "slurm")  # the names of executors.BACKENDS, without importing it at start-up


def _default_root() -> Path:
    from ablation.fsio import root_dir

    return root_dir()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ablation", description="Run, track and compare the spatial attention ablation grid."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks (also ABLATION_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)

    def axis_filters(p: argparse.ArgumentParser, things: str, unseeded: str) -> None:
        """--where and --seeds (``Selection``, and ``export.select``)."""
        p.add_argument(
            "--where",
            type=axis_value,
            action="append",
            metavar="AXIS=VALUE",
            help=f"only {things} with this value on an axis of [grid.axes], e.g. kv_stride=2 (repeatable; "
            f"{things} the axis does not vary, such as 0000 for attention settings, stay)",
        )
        p.add_argument(
            "--seeds",
            type=seeds,
            action="append",
            metavar="SEED[,SEED...]",
            help=f"only these replicates{unseeded}",
        )

    def cells_of_a_sweep(p: argparse.ArgumentParser) -> None:
        p.add_argument("--sweep", required=True, help="a sweep name (see `ablation sweeps`) or a .toml file")
        p.add_argument(
            "--codes",
            type=codes,
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
            slurm.add_argument("--gpus", type=positive, metavar="N", help="GPUs per job (one task per GPU)")
            slurm.add_argument("--cpus", type=positive, metavar="N", help="CPUs per task")
            slurm.add_argument("--mem-gb", type=positive, metavar="GB", help="memory per job")
            slurm.add_argument("--time-min", type=positive, metavar="MIN", help="time limit per job")
            slurm.add_argument("--array-parallelism", type=positive, metavar="N", help="array tasks at once")
            slurm.add_argument("--account")
            slurm.add_argument("--qos")
            slurm.add_argument(
                "--dry-run",
                action="store_true",
                help="submit nothing: print the sbatch script (slurm), or how many jobs would start (local)",
            )
        p.add_argument(
            "--retry-failed",
            action="store_true",
            help="also resubmit failed, lost (timed out, cancelled) cells",
        )
        p.add_argument(
            "--parallel",
            type=positive,
            metavar="N",
            help="local cells computing at once (default: CPU cores)",
        )

    def command(
        name: str, summary: str, description: str, *parts: Callable[[argparse.ArgumentParser], None]
    ) -> argparse.ArgumentParser:
        # argparse %-formats help texts: "95% intervals" would read as a format
        p = commands.add_parser(name, help=summary.replace("%", "%%"), description=description)
        p.defer(*parts)  # added when this command is the one used
        return p

    def listing_cells(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--cells",
            action="store_true",
            help="list every cell (every run, with seeds); by default a grid of over 100 is summed up by "
            "code, DCN, axis value and seed",
        )

    def watching(p: argparse.ArgumentParser) -> None:
        p.add_argument("--watch", action="store_true", help="redraw until no cell is pending or running")
        p.add_argument("--interval", type=positive, default=10, metavar="S", help="seconds between redraws")

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
        listing_cells,
    )
    command(
        "launch",
        "submit the cells that need a job, and return",
        "Plan a sweep, check its dataset and submit every cell that has no live or finished job.",
        cells_of_a_sweep,
        executing,
        waiting,
        listing_cells,
    )
    command(
        "status",
        "a table of the cells, their states and figures",
        "Show each cell's state (planned, pending, running, done, failed, lost) and figures.",
        cells_of_a_sweep,
        executor_filter,
        watching,
        listing_cells,
    )
    command(
        "cancel",
        "cancel the jobs of pending and running cells",
        "Cancel the jobs of a sweep's pending and running cells (they become lost).",
        cells_of_a_sweep,
        executor_filter,
    )

    command(
        "run",
        "plan, launch locally, wait and print the results (the smoke sweep end to end)",
        "Plan a sweep, run its cells as local jobs, wait with a progress bar, print the results.",
        cells_of_a_sweep,
        lambda p: executing(p, executor=False),
        lambda p: store_option(p, root=False),
    )

    def listing(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--schema", action="store_true", help="print every sweep setting with its default instead"
        )
        p.add_argument("--markdown", action="store_true", help="with --schema: as a markdown table")

    command("sweeps", "list the sweep files", "List the sweep files.", listing)

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
    )

    def importing(p: argparse.ArgumentParser) -> None:
        p.add_argument("files", nargs="+", type=Path, metavar="FILE.log.json", help="mmdet 2.x training logs")
        p.add_argument("--as", dest="as_name", metavar="NAME", help="sweep name (default: mmdet-logs)")
        p.add_argument("--code", type=codes, action="append", metavar="CODE", help="the logs' attention code")
        p.add_argument("--dcn", choices=("on", "off"), help="whether the logs' model has DCN")

    command(
        "import-log",
        "import mmdet 2.x .log.json files (the model zoo's logs) into the store",
        "Import mmdet 2.x training logs: memory from the last training line, box AP from the last epoch's "
        "validation. The cell comes from the log's config header or its file name; --code/--dcn override.",
        importing,
        store_option,
    )

    def exporting(p: argparse.ArgumentParser) -> None:
        from ablation.results.export import FORMATS
        from ablation.results.records import SOURCES
        from ablation.results.replicates import SPREADS

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
            "--cost",
            action="store_true",
            help="add each cell's compute over all attempts of its jobs (attempts, GPU-hours, CPU-hours, "
            "wall hours; summed over its runs) and each sweep's total",
        )
        p.add_argument(
            "--baseline",
            type=lambda text: str(codes(text)[0]),
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
    )

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
    )

    def analysing(p: argparse.ArgumentParser) -> None:
        from ablation.analysis.effects_text import EFFECT_FORMATS
        from ablation.results.records import SOURCES
        from ablation.vocabulary import metrics

        names = [m.name for m in metrics("effects")]
        p.add_argument("--sweep", required=True, metavar="NAME", help="the sweep, as the store names it")
        p.add_argument(
            "--metric",
            action="append",
            choices=names,
            help=f"only this metric (repeatable; default: all of {', '.join(names)}, memory per memory kind)",
        )
        p.add_argument("--source", action="append", choices=SOURCES, help="only this source (repeatable)")
        p.add_argument("--format", choices=EFFECT_FORMATS, default="markdown")

    command(
        "effects",
        "print a sweep's factor effects with their 95% intervals",
        "Print the factor effects of a sweep's runs (one design per source): each effect with its 95% "
        "interval and whether it is resolved from noise, the method's sentence, and Lenth's PSE/ME/SME or "
        "the "
        "ANOVA table; the numbers of `ablation report` and the dashboard.",
        analysing,
        store_option,
    )

    def serving(p: argparse.ArgumentParser) -> None:
        p.add_argument("--port", type=port, default=8501, help="port to serve on (default: 8501)")
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
    )
    return parser


def selection(args: argparse.Namespace) -> Selection:
    from ablation.grid.cells import Selection

    return Selection(
        codes=tuple(c for group in args.codes for c in group) if args.codes else None,
        dcn=None if args.dcn == "both" else args.dcn == "on",
        where=tuple(args.where or ()),
        seeds=seed_list(args),
    )


def seed_list(args: argparse.Namespace) -> tuple[int, ...] | None:
    """The seeds of every --seeds given (None: no --seeds)."""
    return tuple(s for group in args.seeds for s in group) if args.seeds else None


def store_of(args: argparse.Namespace) -> Store:
    from ablation.results.store import Store, locate

    return Store(locate(args.store, args.root))
