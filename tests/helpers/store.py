"""Run records as the tests make them, and real parquet stores of them."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.model.codes import ALL_CODES
from ablation.results.records import RunRecord
from ablation.results.store import Store


def record(code: str | None, dcn: bool | None, **fields: Any) -> RunRecord:
    """A done run of the cell (code, dcn): cell '{code}-{dcn}' of sweep 's', run 'r1' from source 'run',
    finished on 2024-01-01, unless ``fields`` say otherwise."""
    defaults: dict[str, Any] = {
        "sweep": "s",
        "cell": f"{code}-{dcn}",
        "run_id": "r1",
        "source": "run",
        "finished": datetime(2024, 1, 1, tzinfo=UTC),
    }
    defaults.update(fields)
    return RunRecord(code=code, dcn=dcn, **defaults)


def store_with(folder: Path, records: Iterable[RunRecord]) -> Store:
    """The store ``folder / "store"`` with ``records`` put in it, one by one."""
    store = Store(folder / "store")
    for one in records:
        store.put(one)
    return store


def stored(folder: Path, records: Iterable[RunRecord]) -> pd.DataFrame:
    """The frame ``records`` read back from a real store under ``folder``."""
    return store_with(folder, records).read().frame()


def framed(records: Iterable[RunRecord]) -> pd.DataFrame:
    """The frame of ``records`` as they are, with no store between."""
    return pd.DataFrame([dataclasses.asdict(r) for r in records])


def ap_of(code: str, dcn: bool) -> float:
    """A known surface: key content +2 points, DCN +1, query-key content x DCN +0.5 each way."""
    k, q = code[2] == "1", code[0] == "1"
    return 0.30 + 0.02 * k + 0.01 * dcn + 0.005 * (1 if q == dcn else -1)


def grid_runs(sweep: str = "grid", skip: tuple[tuple[str, bool], ...] = ()) -> list[RunRecord]:
    """One done run of every cell of the paper's grid but those in ``skip``: box AP from ``ap_of``, fps,
    memory and FLOPs that grow with the attention factors (and DCN)."""
    runs = []
    for code, dcn in itertools.product((str(c) for c in ALL_CODES), (False, True)):
        if (code, dcn) in skip:
            continue
        ones = code.count("1")
        runs.append(
            RunRecord(
                sweep=sweep,
                cell=f"cell-{code}-{int(dcn)}",
                run_id="r1",
                source="run",
                code=code,
                dcn=dcn,
                backbone="R-50",
                schedule="1x",
                bbox_mAP=ap_of(code, dcn),
                fps=20.0 - 2 * ones - 3 * dcn,
                memory_gb=4.0 + ones + 0.5 * dcn,
                memory_kind="cuda_peak_allocated",
                flops=2e11 + 1e10 * ones,
            )
        )
    return runs


STRIDE = "model.attention.kv_stride"


def axis_runs(sweep: str = "axes", strides: tuple[int, ...] = (1, 2, 4)) -> list[RunRecord]:
    """``grid_runs`` with every attention cell run at each kv_stride of ``strides`` (an axis the 0000 cells
    do not have): 2 + 30 x len(strides) cells (92 by default), box AP lower by 0.002 per stride step."""
    runs = []
    for base in grid_runs(sweep):
        for step, stride in enumerate(strides if base.code != "0000" else (None,)):
            axes = {} if stride is None else {STRIDE: stride}
            runs.append(
                dataclasses.replace(
                    base,
                    cell=base.cell + ("" if stride is None else f"-kv{stride}"),
                    axes=axes,
                    bbox_mAP=(base.bbox_mAP or 0.0) - 0.002 * step,
                )
            )
    return runs


# what a cell's job writes besides its figures
_JOB: dict[str, Any] = {"config": "c.py", "config_hash": "f" * 64, "attempt": 1, "host": "h", "pid": 1}
_JOB.update(started="2025-01-01T00:00:00+00:00", finished="2025-01-01T01:00:00+00:00")


def write_cells(folder: Path, sweep: str, count: int = 32, fps: float | None = None) -> list[Path]:
    """The result.json files that ``count`` done cells of ``sweep`` leave under ``folder`` (one work_dir
    each): the paper's grid in order (16 codes x DCN), then again as further cells, box AP from ``ap_of``,
    fps ``fps`` or growing with the attention factors. Returns their paths, in the cells' order."""
    from ablation.run.result_file import CellResult, write_result

    grid = list(itertools.product((str(c) for c in ALL_CODES), (False, True)))
    paths = []
    for i in range(count):
        code, dcn = grid[i % len(grid)]
        lap = f"-again{i // len(grid)}" if i >= len(grid) else ""
        result = CellResult(
            status="done",
            sweep=sweep,
            cell=f"faster-rcnn_r50-attn{code}{'-dcn' if dcn else ''}_fpn_1x_coco{lap}",
            cell_id=f"{i:012x}",
            code=code,
            dcn=dcn,
            backbone="R-50",
            schedule="1x",
            dataset="coco",
            **_JOB,
            metrics={"bbox_mAP": ap_of(code, dcn)},
            fps=fps if fps is not None else 20.0 - 2 * code.count("1") - 3 * dcn,
            epochs=12,
        )
        paths.append(write_result(folder / f"cell{i:04d}", result))
    return paths
