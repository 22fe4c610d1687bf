"""A run's training and validation curves for the dashboard, as pandas frames, from the
``vis_data/scalars.json`` files mmengine writes in a run's work_dir (each read by
:func:`ablation.results.logs.read_scalars`), and the work_dir of a run from the store's ``origin``.

A work_dir holds a folder per start of the run, named by its start time (:data:`RUN_FOLDER`,
``20240101_120000``); a resumed run adds one, whose lines supersede what the earlier ones logged from where it
starts (:func:`training_curves`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ablation.errors import LogFormatError
from ablation.results.logs import read_scalars
from ablation.run.result_file import METRICS, RESULT_FILE

__all__ = [
    "RUN_FOLDER",
    "SCALARS",
    "SECONDS",
    "TRAIN_COLUMNS",
    "VAL_COLUMNS",
    "training_curves",
    "work_dir_of",
]

TRAIN_COLUMNS = ("iter", "epoch", "loss", "lr")
SECONDS = "time"  # the training frame's seconds per iteration, with ``seconds=True``
VAL_COLUMNS = ("epoch", *METRICS)
RUN_FOLDER = re.compile(r"\d{8}_\d{6}")  # mmengine's run folders in a work_dir (fullmatch)
SCALARS = Path("vis_data") / "scalars.json"  # a run folder's scalars file

_TrainRow = tuple[int, int | None, float, float, float]  # iter, epoch, loss, lr, time
_ValRow = tuple[float, ...]  # epoch, *METRICS


def work_dir_of(origin: str | None, bases: Iterable[Path] = ()) -> Path | None:
    """The work_dir of a run from the store's ``origin``: the folder of a cell's ``result.json``, or the
    folder itself for an mmengine work_dir; None for other files (imported logs, the model zoo's CSV), a
    missing origin, or a folder that does not exist (any more, or on this machine).

    An absolute origin is taken as it is. A relative one (harvest stored them relative to the folder it ran
    in) is looked for under each of ``bases`` and their parent folders in turn (the dashboard gives its
    --root and its store's folder, under or beside which the runs lie), then under the current folder; the
    first that exists wins, as an absolute path."""
    if not origin:
        return None
    path = Path(origin)
    if path.is_absolute():
        return _work_dir(path)
    for base in bases:
        base = base.absolute()
        for folder in (base, *base.parents):
            found = _work_dir(folder / path)
            if found is not None:
                return found
    return _work_dir(Path.cwd() / path)


def _work_dir(path: Path) -> Path | None:
    if path.name == RESULT_FILE:
        folder = path.parent
    elif path.is_dir():
        folder = path
    else:
        return None
    return folder if folder.is_dir() else None


def training_curves(work_dir: Path, *, seconds: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's training and validation curves from mmengine's ``<work_dir>/<YYYYmmdd_HHMMSS>/vis_data/
    scalars.json`` files, the timestamp folders read in name order (a resumed run adds a folder).

    train: columns iter, epoch, loss, lr, one row per training line (one with "iter" and "loss"), sorted by
    iter; epoch and lr are missing (NA, NaN) where the line has none. With ``seconds``, one more column,
    :data:`SECONDS` ("time"): the seconds per iteration that mmengine logs with the line (averaged over its
    logging interval), NaN where it has none. val: columns epoch, bbox_mAP,
    bbox_mAP_50, bbox_mAP_75, bbox_mAP_s, bbox_mAP_m, bbox_mAP_l from the lines with "coco/bbox_mAP" ("coco/"
    stripped; the epoch is the line's "step"; pycocotools' -1 becomes NaN), sorted by epoch.

    A resumed run supersedes what the earlier folders logged from where it starts: a folder whose training
    lines start at iteration i (epoch e) drops the earlier folders' training lines from iteration i on (and
    their validation lines from epoch e on), so repeated iterations keep the later folder's figures and a
    crashed run's lines beyond its last checkpoint are not shown. Within one file a repeated iteration or
    epoch keeps its last line.

    No work_dir, no timestamp folder or no scalars.json: two empty frames with those columns; an empty
    scalars.json (a run that has just started) adds nothing. A corrupt file raises LogFormatError.
    """
    train_rows: list[_TrainRow] = []
    val_rows: list[_ValRow] = []
    folders = sorted(d for d in work_dir.iterdir() if d.is_dir()) if work_dir.is_dir() else []
    for folder in folders:
        path = folder / SCALARS
        if not RUN_FOLDER.fullmatch(folder.name) or not path.is_file():
            continue
        train, val = _rows(path)
        if train:
            start_iter = min(row[0] for row in train)
            train_rows = [row for row in train_rows if row[0] < start_iter]
            epochs = [row[1] for row in train if row[1] is not None]
            if epochs:
                val_rows = [row for row in val_rows if row[0] < min(epochs)]
        train_rows += train
        val_rows += val
    train_frame = pd.DataFrame(train_rows, columns=[*TRAIN_COLUMNS, SECONDS])
    train_frame = train_frame.astype(
        {"iter": "int64", "epoch": "Int64", "loss": "float64", "lr": "float64", SECONDS: "float64"}
    )
    if not seconds:
        train_frame = train_frame.drop(columns=SECONDS)
    val_frame = pd.DataFrame(val_rows, columns=list(VAL_COLUMNS)).astype("float64").astype({"epoch": "int64"})
    train_frame = train_frame.drop_duplicates("iter", keep="last").sort_values("iter", kind="stable")
    val_frame = val_frame.drop_duplicates("epoch", keep="last").sort_values("epoch", kind="stable")
    return train_frame.reset_index(drop=True), val_frame.reset_index(drop=True)


def _rows(path: Path) -> tuple[list[_TrainRow], list[_ValRow]]:
    """One scalars.json: its training rows (iter, epoch, loss, lr, time) and validation rows (epoch,
    *METRICS)."""
    scalars = read_scalars(path)
    train = [
        (line.iteration, line.epoch, line.loss, _nan(line.lr), _nan(line.seconds))
        for line in scalars.training
        if line.loss is not None
    ]
    val: list[_ValRow] = []
    for line in scalars.validation:
        if "bbox_mAP" not in line.metrics:
            continue
        if line.step is None:
            raise LogFormatError(f"{path}: line {line.line} (a validation line) has no 'step' (its epoch)")
        val.append((float(line.step), *(_nan(line.metrics.get(key)) for key in METRICS)))
    return train, val


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
