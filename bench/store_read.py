"""How long reading the results store takes, cold and warm, beside pyarrow's plain directory read.

    .venv/bin/python bench/store_read.py [--runs 10000] [--repeat 3]

Writes a store of N synthetic runs (every column filled) into a temporary folder, then measures in this one
process, each the best of --repeat:

- cold: ``Store.read(cache=False)``: every run file read and unified;
- warm: ``Store.read()`` with its cache up to date (what the dashboard and ``ablation export`` see);
- one changed: ``Store.read()`` after one run was rewritten (the cache re-reads that file only);
- pyarrow: ``pyarrow.parquet.read_table(folder)``, the plain directory read (which keeps one file's columns).

and prints the times with their ratios to the warm read.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from ablation.results.records import RunRecord
from ablation.results.store import Store


def fill(store: Store, runs: int) -> None:
    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(runs):
        code = f"{i % 16:04b}"
        store.put(
            RunRecord(
                sweep=f"sweep-{i // 320}",
                cell=f"cell-{code}-{i % 2}",
                run_id=f"{i:06d}",
                source="run",
                code=code,
                dcn=bool(i % 2),
                backbone="R-50",
                schedule="1x",
                dataset="coco",
                attention_module="ablation",
                bbox_mAP=rng.uniform(0.3, 0.45),
                bbox_mAP_50=rng.uniform(0.5, 0.65),
                bbox_mAP_75=rng.uniform(0.3, 0.45),
                bbox_mAP_s=rng.uniform(0.1, 0.3),
                bbox_mAP_m=rng.uniform(0.3, 0.5),
                bbox_mAP_l=rng.uniform(0.4, 0.6),
                fps=rng.uniform(5, 25),
                device="NVIDIA H100",
                memory_gb=rng.uniform(3, 9),
                memory_kind="cuda_peak_allocated",
                flops=rng.uniform(1.8e11, 2.4e11),
                params=rng.randint(41_000_000, 48_000_000),
                epochs=12,
                iterations=87_960,
                train_s=rng.uniform(3e4, 6e4),
                config=f"runs/sweep/configs/cell-{i}.py",
                config_hash=f"{rng.getrandbits(64):016x}",
                host="node-01",
                started=start + timedelta(hours=i),
                finished=start + timedelta(hours=i + 10),
                origin=f"runs/sweep/work/cell/{i}/result.json",
            )
        )


def best(repeat: int, action: Callable[[], object], before: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if before:
            before()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def options(doc: str) -> argparse.Namespace:
    """The benchmarks' command line: --runs (store size) and --repeat (best of)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args()


def main() -> None:
    args = options(__doc__ or "")
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        start = time.perf_counter()
        fill(store, args.runs)
        written = time.perf_counter() - start
        store.read()  # builds the cache
        counter = iter(range(10**9))

        def touch() -> None:
            store.put(
                RunRecord(sweep="sweep-0", cell="changing", run_id="0", source="run", fps=next(counter))
            )

        timings = {
            "cold (every file)": best(args.repeat, lambda: store.read(cache=False)),
            "warm (cache current)": best(args.repeat, store.read),
            "warm, one run changed": best(args.repeat, store.read, before=touch),
            "pyarrow directory read": best(args.repeat, lambda: pq.read_table(store.runs_dir)),
        }
        rows = store.read().table.num_rows
    warm = timings["warm (cache current)"]
    print(f"{rows} runs ({args.runs} written in {written:.1f} s, {written / args.runs * 1e3:.2f} ms each)")
    print(f"{'read':<26}{'seconds':>10}{'x warm':>10}")
    for name, seconds in timings.items():
        print(f"{name:<26}{seconds:>10.3f}{seconds / warm:>10.1f}")


if __name__ == "__main__":
    main()
