"""Every view of one big sweep with axes and seeds, timed side by side at study sizes (issue 29's targets).

    .venv/bin/python bench/scale.py [--sizes 1000,10000] [--repeat 3] [--views plan,status,...]

For each size, ``build`` writes into a temporary folder ONE sweep file crossing the 16 attention codes x DCN
with ``[grid.axes]`` (``model.attention.kv_stride``, ``model.attention.stages`` and ``schedule.lr``; the
10,000-run size adds more strides and ``model.attention.position``) and seeds, and a results store holding one
done run per planned cell and seed of that sweep: its cell names, ids, axis values and seeds exactly as the
planner gives them, every figure filled, box AP with planted effects of the factors, DCN and the axes plus
seeded noise. The store's cache is left current, as ``ablation harvest`` leaves it.

Then it times, each the median of --repeat:

- ``ablation plan`` first (no configs written yet) and again (configs there), ``ablation status`` (nothing
  launched), ``ablation launch --dry-run`` (the local executor), ``ablation export``, ``ablation report`` and
  ``ablation effects``: the whole command in a fresh process, as a user waits for it;
- the store's read, cold (``Store.read(cache=False)``: every run file) and warm (the cache current), in
  this process, and (once) the read right after ``build`` wrote every run, which is what ``ablation
  harvest`` ends with;
- the dashboard's first render of every page: Streamlit's AppTest as in bench/dashboard_render.py, a new
  session with Streamlit's cache empty and the store's cache current.

and prints one table: each view's seconds per size, the target at each size and the ratio to it. Other
benches import ``build`` (``from scale import build`` with bench/ on sys.path) for a store of this shape.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ablation.data.dataset import prepare
from ablation.grid.plan import PlannedCell, plan
from ablation.grid.sweep import load_sweep
from ablation.model.codes import FACTORS
from ablation.results.harvest import run_id
from ablation.results.records import RunRecord
from ablation.results.store import Store

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
SWEEP = "scale"
PAGES = ("trade-offs", "effects", "runs", "status", "downloads")

# The two designs: [grid.axes] as TOML lines and the seeds. 1,000: 122 cells per lr (30 attention cells x 2
# strides x 2 stage sets, and the two 0000 cells) x 2 lr = 244 cells x 4 seeds = 976 runs. 10,000: 482 cells
# per lr (30 x 4 strides x 2 stage sets x 2 positions, + 2) x 2 lr = 964 cells x 10 seeds = 9,640 runs.
_STAGES = '"model.attention.stages" = [[false, false, true, true], [false, false, false, true]]'
_LR = '"schedule.lr" = [0.01, 0.02]'
DESIGNS: dict[int, tuple[list[str], int]] = {
    1_000: (['"model.attention.kv_stride" = [1, 2]', _STAGES, _LR], 4),
    10_000: (
        [
            '"model.attention.kv_stride" = [1, 2, 4, 8]',
            _STAGES,
            '"model.attention.position" = ["after_conv2", "after_conv3"]',
            _LR,
        ],
        10,
    ),
}

# Planted effects in AP points (box AP is stored as a fraction): the factors, DCN, one interaction, the axes.
_BASE_AP = 37.4
_FACTOR_AP = {"query_key_content": 0.4, "query_content_position": 0.3, "key_content": 0.9,
              "relative_position": 0.2}  # fmt: skip
_DCN_AP = 2.5
_KEY_DCN_AP = -0.5
_NOISE_AP = 0.25


@dataclass(frozen=True)
class Scale:
    """A built sweep and store: the sweep file, the runs' root (its sweep folder is not written yet), the
    store (under the root, its cache current), the folder that holds them, and the grid's size."""

    folder: Path
    sweep_file: Path
    root: Path
    store: Path
    sweep: str
    cells: int
    runs: int
    harvest_read_s: float  # the store's read right after writing every run, as a harvest ends


def sweep_text(size: int) -> str:
    """The sweep file of about ``size`` runs: the nearest preset design, its seeds scaled to ``size``."""
    preset = min(DESIGNS, key=lambda s: abs(math.log(size / s)))
    axes, seeds = DESIGNS[preset]
    seeds = max(1, round(seeds * size / preset))
    return "\n".join(
        [
            f'description = "issue 29\'s scale bench: one sweep with axes and seeds, about {size} runs"',
            "[grid]",
            'codes = "all"',
            "dcn = [false, true]",
            f"seeds = {list(range(seeds))}",
            "[grid.axes]",
            *axes,
            "[model]",
            "pretrained = false",
            "[schedule]",
            'name = "2e"',
            "epochs = 2",
            "milestones = []",
            "[dataset]",
            'name = "shapes"',
            'data_root = "data/scale/"',
            'train_ann = "annotations/train.json"',
            'train_images = "train/"',
            'val_ann = "annotations/val.json"',
            'val_images = "val/"',
            'classes = ["rectangle", "ellipse", "triangle"]',
            "scale = [192, 128]",
            "synthetic = [6, 3]",
            "[resources]",
            "gpus = 0",
            "workers_per_gpu = 0",
            "",
        ]
    )


def build(folder: Path, size: str | int) -> Scale:
    """Write the sweep file of about ``size`` runs under ``folder`` (``folder/scale.toml``; its synthetic
    dataset in ``folder/data``) and a store of one done run per planned cell and seed of it
    (``folder/runs/store``, its cache current). Configs are not written: ``ablation plan`` does that."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{SWEEP}.toml"
    path.write_text(sweep_text(int(size)), encoding="utf-8")
    sweep = load_sweep(path)
    prepare(sweep.dataset, folder, sweep.dataset.synthetic)  # launch finds it there, as after a first launch
    root = folder / "runs"
    store = Store(root / "store")
    planned = plan(sweep, root, write=False)
    rng = random.Random(29)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i, p in enumerate(planned.cells):
        store.put(_record(p, rng, start + timedelta(minutes=10 * i)))
    start = time.perf_counter()
    store.read()  # what `ablation harvest` ends with: the cache brought up to date with what it wrote
    harvest_read = time.perf_counter() - start
    return Scale(
        folder=folder,
        sweep_file=path,
        root=root,
        store=store.path,
        sweep=sweep.name,
        cells=len({p.config.cell_name for p in planned.cells}),
        runs=len(planned.cells),
        harvest_read_s=harvest_read,
    )


def _record(p: PlannedCell, rng: random.Random, started: datetime) -> RunRecord:
    """A done run of the planned cell ``p`` with plausible figures, the planted effects and noise."""
    cell = p.cell
    flags = {f.key: cell.code.bits[f.bit - 1] == "1" for f in FACTORS}
    axes = dict(cell.axes)
    stride = axes.get("model.attention.kv_stride", 2)
    ap = _BASE_AP + sum(_FACTOR_AP[k] for k, on in flags.items() if on)
    ap += _DCN_AP * cell.dcn + _KEY_DCN_AP * (cell.dcn and flags["key_content"])
    ap += -0.15 * math.log2(stride) if cell.attention else 0.0
    ap += -0.3 * (axes.get("model.attention.stages") == (False, False, False, True))  # c5 only
    ap += -0.1 * (axes.get("model.attention.position") == "after_conv3")
    ap += 0.4 * (axes.get("schedule.lr") == 0.02)
    ap += rng.gauss(0, _NOISE_AP)
    factors = sum(flags.values())
    fps = (21.4 - 3.6 * cell.dcn - factors * 1.2 / math.sqrt(stride)) * rng.uniform(0.97, 1.03)
    memory = 4.0 + 0.1 * cell.dcn + factors * 1.0 / stride**2 + rng.uniform(-0.02, 0.02)
    flops = (2.07e11 + 0.15e11 * cell.dcn + factors * 0.3e11 / stride**2) * rng.uniform(0.999, 1.001)
    work = p.path.parent.parent / "work" / p.name / p.cell_id
    record = RunRecord(
        **p.identity.identity(),
        run_id=run_id(p.cell_id, cell.seed),
        cell_id=p.cell_id,
        source="run",
        status="done",
        fps=fps,
        device="NVIDIA H100",
        memory_gb=memory,
        memory_kind="cuda_peak_allocated",
        flops=flops,
        params=41_500_000 + 700_000 * factors + 1_200_000 * cell.dcn,
        epochs=2,
        iterations=6,
        train_s=rng.uniform(3e4, 6e4),
        test_s=rng.uniform(300, 400),
        fps_s=rng.uniform(20, 40),
        flops_s=rng.uniform(5, 10),
        config=str(p.path),
        config_hash=p.config.config_hash,
        git_commit="0" * 40,
        host="node-01",
        started=started,
        finished=started + timedelta(hours=10),
        origin=str(work / "result.json"),
    )
    record.versions({"torch": "2.13.0", "mmcv": "2.1.0", "mmdet": "3.3.0", "mmengine": "0.10.7",
                     "ablation": "0.1.0"})  # fmt: skip
    ap_50, ap_75 = ap + 20.0 + rng.gauss(0, 0.3), ap + 3.0 + rng.gauss(0, 0.3)
    record.set_metrics({"bbox_mAP": ap / 100, "bbox_mAP_50": ap_50 / 100, "bbox_mAP_75": ap_75 / 100,
                        "bbox_mAP_s": (ap - 16) / 100, "bbox_mAP_m": (ap + 3.5) / 100,
                        "bbox_mAP_l": (ap + 11) / 100})  # fmt: skip
    return record


# ----------------------------------------------------------------------------------------------- timing


def median(repeat: int, action: Callable[[], object], before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def command(scale: Scale, *args: str) -> Callable[[], None]:
    """A run of ``ablation ARGS`` in a fresh process, in the scale's folder; its failure stops the bench."""

    def run() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "ablation", *args],
            cwd=scale.folder,
            capture_output=True,
            text=True,
            env={**os.environ, "ABLATION_ROOT": str(scale.root), "ABLATION_STORE": str(scale.store)},
        )
        if done.returncode != 0:
            raise SystemExit(f"ablation {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")

    return run


def dashboard(scale: Scale, page: str) -> Callable[[], None]:
    """The first render of a dashboard page: a new AppTest session with Streamlit's cache cleared."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def render() -> None:
        os.environ["ABLATION_STORE"] = str(scale.store)
        os.environ["ABLATION_ROOT"] = str(scale.root)
        at = AppTest.from_file(str(APP), default_timeout=600)
        at.query_params["page"] = page
        st.cache_data.clear()
        at.run()
        if at.exception:
            raise SystemExit(f"the dashboard's {page} page raised: {at.exception[0].value}")

    return render


def views(scale: Scale) -> dict[str, tuple[Callable[[], None], Callable[[], None] | None]]:
    """Each view: what is timed, and what runs untimed before each repeat."""
    where = ["--sweep", str(scale.sweep_file), "--root", str(scale.root)]
    configs = scale.root / scale.sweep / "configs"
    store = Store(scale.store)
    timed: dict[str, tuple[Callable[[], None], Callable[[], None] | None]] = {
        "plan (first)": (command(scale, "plan", *where), lambda: shutil.rmtree(configs, ignore_errors=True)),
        "plan (again)": (command(scale, "plan", *where), None),
        "status (nothing launched)": (command(scale, "status", *where), None),
        "launch --dry-run (local)": (
            command(scale, "launch", *where, "--executor", "local", "--dry-run"),
            None,
        ),
        "store read, cold": (lambda: store.read(cache=False), None),
        "store read, warm": (lambda: store.read(), None),
        "export": (command(scale, "export", "--sweep", scale.sweep), None),
        "report": (
            command(scale, "report", "--sweep", scale.sweep, "-o", str(scale.folder / "r.html")),
            None,
        ),
        "effects": (command(scale, "effects", "--sweep", scale.sweep), None),
    }
    for page in PAGES:
        timed[f"dashboard {page}, first render"] = (dashboard(scale, page), None)
    return timed


def target(view: str, size: int) -> float | None:
    """Issue 29's target for ``view`` at ``size`` runs (None: none stated)."""
    if view.startswith(("plan", "status", "launch")):
        return 1.0 if size <= 1_000 else 5.0
    if view.startswith("dashboard"):
        return 3.0
    return {"report": 10.0, "store read, cold": 5.0, "store read, after a harvest": 5.0}.get(view)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="runs of each sweep, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="median of this many (default 3)")
    parser.add_argument(
        "--views", help="only the views whose name starts with one of these (comma-separated)"
    )
    parser.add_argument("--keep", type=Path, help="build here and keep it (default: a temporary folder)")
    args = parser.parse_args()
    os.environ["STREAMLIT_LOGGER_LEVEL"] = "error"  # AppTest outside a server warns at every session
    sizes = [int(s) for s in args.sizes.split(",")]
    wanted = tuple(args.views.split(",")) if args.views else ()
    seconds: dict[str, dict[int, float]] = {}
    shapes = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as temporary:
            folder = args.keep / str(size) if args.keep else Path(temporary)
            start = time.perf_counter()
            scale = build(folder, size)
            built = time.perf_counter() - start
            shapes.append(f"{size}: {scale.runs} runs of {scale.cells} cells (built in {built:.0f} s)")
            print(shapes[-1], file=sys.stderr, flush=True)
            if not wanted or "store read, after a harvest".startswith(wanted):
                seconds.setdefault("store read, after a harvest", {})[size] = scale.harvest_read_s
            for view, (action, before) in views(scale).items():
                if wanted and not view.startswith(wanted):
                    continue
                seconds.setdefault(view, {})[size] = median(args.repeat, action, before)
                print(f"  {view}: {seconds[view][size]:.2f} s", file=sys.stderr, flush=True)
    print("; ".join(shapes) + f"; seconds, median of {args.repeat}")
    head = f"{'view':<34}" + "".join(f"{f'{s:,} s':>10}{'target':>8}{'x':>7}" for s in sizes)
    print(head)
    for view, by_size in seconds.items():
        line = f"{view:<34}"
        for size in sizes:
            value, goal = by_size.get(size), target(view, size)
            line += f"{value:>10.2f}" if value is not None else f"{'':>10}"
            line += f"{goal:>8.0f}{value / goal:>7.2f}" if goal and value is not None else f"{'-':>8}{'-':>7}"
        print(line)


if __name__ == "__main__":
    main()
