"""Parsers for the log and metrics files that MMDetection and mmengine write; pure, no pandas.

Each parser reads one file and returns what it says about a run: box AP and its breakdown as fractions, as
mmdet logs them (0.400 is 40.0 AP), CUDA peak memory in MB, epochs, iterations. A figure the file does not
give is None; pycocotools' -1 (no ground truth boxes of that size) also becomes None, never -1. A file that
is missing, unreadable, truncated or of another format raises :class:`~ablation.errors.LogFormatError` with a
one-line message naming the file and, where there is one, the line.

The formats:

``.log.json`` of mmdet 2.x (:func:`mmdet2_log`), as published in the model zoo
    One JSON object per line. Logs from 2021 on start with a header line without "mode":
    ``{"env_info": "sys.platform: linux\\n...", "config": "model = dict(...)", "seed": 0, "exp_name": ...}``;
    earlier logs have none. Training lines,
    ``{"mode": "train", "epoch": 1, "iter": 50, "lr": 0.02, "memory": 8181, "loss": 1.8, "time": 0.93, ...}``,
    come every ``log_config.interval`` iterations; "iter" counts within the epoch and "memory" is the CUDA
    peak in MB (absent on CPU). After each evaluated epoch comes a validation line,
    ``{"mode": "val", "epoch": 1, "iter": 7330, "bbox_mAP": 0.214, ..., "bbox_mAP_copypaste": "0.214 ..."}``,
    whose "bbox_mAP_copypaste" holds the six :data:`~ablation.run.result_file.METRICS` in order. The zoo's
    tables read the last epoch: its val line's AP and its last training line's memory.

``vis_data/scalars.json`` of mmengine (:func:`read_scalars`); ``vis_data/<timestamp>.json`` is the same
    One JSON object per line, each with the "step" mmengine's visualizer adds. Training lines,
    ``{"lr": 0.01, "loss": 2.5, "time": 0.9, "epoch": 2, "iter": 5, "memory": 3912, "step": 5}``, have
    "iter", the global iteration (and "step" equal to it), "epoch" when training runs by epoch, "time" the
    seconds per iteration (averaged over the logging interval), and "memory" only on CUDA: the peak in MB
    since the previous line, so the run's peak is their maximum. Validation
    lines, ``{"coco/bbox_mAP": 0.002, ..., "coco/bbox_mAP_l": 0.0, "data_time": 0.003, "time": 0.2,
    "step": 2}``, have the CocoMetric figures under a "coco/" prefix and the epoch as "step".
    :func:`read_scalars` reads the file into typed lines (:class:`Scalars`); two readers build on them:
    :func:`mmengine_scalars` (the store's figures) and the dashboard's training curves
    (``ablation.results.curves``). Unlike the other parsers it keeps NaN and infinite losses and learning
    rates as they are (a diverged loss is a fact), reads an empty file as no lines, and notes an mmdet 2.x
    line (one with "mode") rather than refusing the file; :func:`mmengine_scalars` refuses both.

``<work_dir>/<timestamp>/<timestamp>.json`` of mmdet 3.x's tools/test.py (:func:`test_metrics`)
    One line, no newline at its end: ``{"coco/bbox_mAP": 0.002, ..., "data_time": 0.003, "time": 0.19}``.

Output of mmdet's tools/analysis_tools/benchmark.py (:func:`benchmark_fps`), a log file or captured stdout
    mmdet 3.x logs ``... - mmdet - INFO - Overall fps: 13.8 img/s, times per image: 72.5 ms/img``, or with
    ``--repeat-num`` > 1 ``Overall fps: [13.7, 13.9][13.8] img/s, ...`` (the runs, then their average);
    mmdet 2.x printed the same with ``img / s``. Not the inference figure, and so skipped: the per-interval
    lines (``Done image [50 / 2000], fps: 12.1 img / s``), the dataloader benchmark (``batch/s``, or
    ``img/s`` followed by ``times per batch`` in its repeat form) and the dataset benchmark (``img/s``
    followed by ``times per img``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablation.errors import LogFormatError
from ablation.run.result_file import METRICS

# METRICS is re-exported for the callers that name the keys of LogFigures.metrics.
__all__ = [
    "METRICS",
    "LogFigures",
    "Scalars",
    "TrainingLine",
    "ValidationLine",
    "benchmark_fps",
    "mmdet2_log",
    "mmengine_scalars",
    "read_json_lines",
    "read_scalars",
    "test_metrics",
]

_COCO = "coco/"
_COPYPASTE = "bbox_mAP_copypaste"
_NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"
# "Overall fps: 13.8 img/s", "Overall fps: [13.7, 13.9][13.8] img / s": the lone figure or the average.
_OVERALL_FPS = re.compile(
    rf"Overall fps:\s*(?:\[[^\]]*\]\s*\[\s*(?P<average>{_NUMBER})\s*\]|(?P<single>{_NUMBER}))\s*img\s*/\s*s\b"
)
# The dataloader's repeat form says "img/s" but "times per batch"; the dataset's says "times per img".
_NOT_INFERENCE = re.compile(r"batch|times per img\b")


@dataclass(frozen=True)
class LogFigures:
    """What one log/metrics file says about a run. None = the file does not say."""

    metrics: dict[str, float | None]  # keys from METRICS present in the file (missing ones absent or None)
    memory_mb: float | None = None  # CUDA peak in MB as mmdet logs it
    epochs: int | None = None
    iterations: int | None = None
    config: str | None = None  # mmdet 2.x header's config text, when the log has a header line
    header: dict[str, object] | None = None  # the whole header line (env_info, seed, exp_name, ...), if any


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LogFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise LogFormatError(f"{path}: is a folder, not a file") from None
    except PermissionError:
        raise LogFormatError(f"{path}: permission denied") from None
    except OSError as error:
        raise LogFormatError(f"{path}: cannot be read ({error.strerror or error})") from None


def show(value: object) -> str:
    """A value for a one-line message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_objects(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The file's JSON objects with their 1-based line numbers, blank lines skipped; none in an empty file."""
    entries: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(_read_bytes(path).split(b"\n"), start=1):
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as some editors write
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LogFormatError(f"{path}: line {number} is not UTF-8 text (binary or corrupt?)") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):
            raise LogFormatError(f"{path}: line {number} is not JSON (truncated or corrupt?)") from None
        if not isinstance(value, dict):
            kind = "an array" if isinstance(value, list) else show(value)
            raise LogFormatError(f"{path}: line {number} is {kind}, not a JSON object")
        entries.append((number, value))
    return entries


def _numbered_json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The file's JSON objects with their 1-based line numbers, blank lines skipped; an empty file ->
    LogFormatError."""
    entries = _json_objects(path)
    if not entries:
        raise LogFormatError(f"{path}: empty file")
    return entries


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line; blank lines skipped; any other line that is not a JSON object ->
    LogFormatError naming the line number; an empty file -> LogFormatError."""
    return [entry for _, entry in _numbered_json_lines(path)]


def figure(value: object, path: Path, number: int, key: str) -> float | None:
    """A logged float; None for pycocotools' -1 and for NaN or infinity, which measure nothing."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LogFormatError(f"{path}: line {number}: {key} is {show(value)}, not a number")
    try:
        result = float(value)
    except OverflowError:  # an integer with hundreds of digits
        return None
    return result if math.isfinite(result) and result >= 0 else None


def _as_logged(value: object, path: Path, number: int, key: str) -> float:
    """A logged float as it is: NaN and infinity kept (a diverged loss is a fact)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LogFormatError(f"{path}: line {number}: {key} is {show(value)}, not a number")
    try:
        return float(value)
    except OverflowError:  # an integer with hundreds of digits
        return math.inf if value > 0 else -math.inf


def whole_number(value: object, path: Path, number: int, key: str) -> int:
    """A logged epoch or iteration: a whole number (1.0 as well as 1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise LogFormatError(f"{path}: line {number}: {key} is {show(value)}, not a whole number")


def _copypaste(value: object, path: Path, number: int) -> dict[str, float | None]:
    """The six METRICS of mmdet 2.x's "bbox_mAP_copypaste" string, "0.214 0.391 0.215 0.120 0.235 0.281"."""
    words = value.split() if isinstance(value, str) else []
    try:
        figures = [float(word) for word in words]
    except ValueError:
        figures = []
    if len(figures) != len(METRICS):
        raise LogFormatError(
            f"{path}: line {number}: {_COPYPASTE} is {show(value)}, not {len(METRICS)} numbers"
        )
    return {key: figure(value, path, number, key) for key, value in zip(METRICS, figures, strict=True)}


def _mmdet2_metrics(entry: dict[str, Any], path: Path, number: int) -> dict[str, float | None]:
    """A val line's box figures: its numeric keys, any missing one filled from its copypaste string."""
    metrics = {key: figure(entry[key], path, number, key) for key in METRICS if key in entry}
    if len(metrics) < len(METRICS) and _COPYPASTE in entry:
        pasted = _copypaste(entry[_COPYPASTE], path, number)
        metrics = {key: metrics[key] if key in metrics else pasted[key] for key in METRICS}
    return metrics


def mmdet2_log(path: Path) -> LogFigures:
    """An mmdet 2.x `.log.json` as published in the model zoo.

    epochs: the last training epoch; memory_mb: "memory" of that epoch's last training line, as the zoo's
    tables give it (not the maximum over the run); metrics: that epoch's val line (the last one if there are
    several), {} when the last epoch was not evaluated, never an earlier epoch's figures. iterations stays
    None: the training lines come every few iterations, so the log does not give the exact count.
    """
    entries = _numbered_json_lines(path)
    first = entries[0][1]
    header = first if "mode" not in first else None
    config = header.get("config") if header is not None else None
    train: list[tuple[int, int, dict[str, Any]]] = []  # (epoch, line number, line)
    val: list[tuple[int, int, dict[str, Any]]] = []
    for number, entry in entries:
        mode = entry.get("mode")
        if mode not in ("train", "val"):
            continue
        if "epoch" not in entry:
            raise LogFormatError(f"{path}: line {number} (mode {mode!r}) has no epoch")
        epoch = whole_number(entry["epoch"], path, number, "epoch")
        (train if mode == "train" else val).append((epoch, number, entry))
    if not train:
        raise LogFormatError(f"{path}: no training line (mode 'train'); is this an mmdet 2.x .log.json?")
    last_epoch = max(epoch for epoch, _, _ in train)
    number, last_train = [(number, entry) for epoch, number, entry in train if epoch == last_epoch][-1]
    memory = last_train.get("memory")
    memory_mb = None if memory is None else figure(memory, path, number, "memory")
    last_val = [(number, entry) for epoch, number, entry in val if epoch == last_epoch]
    metrics = _mmdet2_metrics(last_val[-1][1], path, last_val[-1][0]) if last_val else {}
    return LogFigures(
        metrics=metrics,
        memory_mb=memory_mb,
        epochs=last_epoch,
        config=config if isinstance(config, str) else None,
        header=header,
    )


def _coco_metrics(entry: dict[str, Any], path: Path, number: int) -> dict[str, float | None]:
    """The box figures of a line of mmengine's, "coco/" prefix stripped."""
    found = [key for key in METRICS if _COCO + key in entry]
    return {key: figure(entry[_COCO + key], path, number, _COCO + key) for key in found}


@dataclass(frozen=True)
class TrainingLine:
    """A training line of mmengine's scalars.json: one with "iter" and no "coco/" box figure."""

    line: int  # its 1-based line number in the file
    iteration: int  # "iter", the global iteration
    epoch: int | None  # None: the line has none (training by iteration)
    loss: float | None  # None: the line has none; NaN and infinity kept (a diverged loss is a fact)
    lr: float | None  # None: the line has none; NaN and infinity kept
    memory_mb: float | None  # "memory": the CUDA peak in MB since the previous line; None on CPU
    seconds: float | None = None  # "time": seconds per iteration over the logging interval; None: none


@dataclass(frozen=True)
class ValidationLine:
    """A validation line of mmengine's scalars.json: one with a "coco/" box figure."""

    line: int  # its 1-based line number in the file
    step: int | None  # the epoch (the iteration when training runs by iteration); None: the line has none
    metrics: dict[str, float | None]  # its "coco/" figures of METRICS, prefix stripped; the others absent


@dataclass(frozen=True)
class Scalars:
    """What one scalars.json holds, read by :func:`read_scalars`; its lines in file order."""

    records: int  # the JSON objects in the file; 0 for an empty file (one mmengine has just created)
    training: tuple[TrainingLine, ...]
    validation: tuple[ValidationLine, ...]
    mmdet2_line: int | None = None  # the first line with mmdet 2.x's "mode" (train, val); mmengine has none


def read_scalars(path: Path) -> Scalars:
    """mmengine's `vis_data/scalars.json` (also `vis_data/<timestamp>.json`, same content), read once.

    A line with a "coco/" figure of METRICS is a validation line; any other line with "iter" is a training
    line; the rest (none that mmengine writes) are counted in ``records`` only. The figures a line has are
    checked as they are read: iter, epoch and step must be whole numbers (1.0 as well as 1), loss, lr, time,
    memory and the box figures numbers, else LogFormatError naming the file and the line. Box figures, time
    and memory go through :func:`figure` (pycocotools' -1, NaN and infinity become None); loss and lr keep
    NaN and infinity. An epoch, lr, time or box figure of null is none. A line of mmdet 2.x (with "mode") is
    read like the others; ``mmdet2_line`` says where the first one is. An empty file (or one of blank lines)
    has no lines: ``records`` 0.
    """
    training: list[TrainingLine] = []
    validation: list[ValidationLine] = []
    mmdet2_line: int | None = None
    entries = _json_objects(path)
    for number, entry in entries:
        if mmdet2_line is None and entry.get("mode") in ("train", "val"):
            mmdet2_line = number
        found = {key: entry[_COCO + key] for key in METRICS if _COCO + key in entry}
        if found:
            step = None if "step" not in entry else whole_number(entry["step"], path, number, "step")
            metrics = {k: None if v is None else figure(v, path, number, _COCO + k) for k, v in found.items()}
            validation.append(ValidationLine(line=number, step=step, metrics=metrics))
        elif "iter" in entry:
            epoch, loss, lr, memory, seconds = (
                entry.get(key) for key in ("epoch", "loss", "lr", "memory", "time")
            )
            training.append(
                TrainingLine(
                    line=number,
                    iteration=whole_number(entry["iter"], path, number, "iter"),
                    epoch=None if epoch is None else whole_number(epoch, path, number, "epoch"),
                    loss=None if "loss" not in entry else _as_logged(loss, path, number, "loss"),
                    lr=None if lr is None else _as_logged(lr, path, number, "lr"),
                    memory_mb=None if "memory" not in entry else figure(memory, path, number, "memory"),
                    seconds=None if seconds is None else figure(seconds, path, number, "time"),
                )
            )
    return Scalars(
        records=len(entries), training=tuple(training), validation=tuple(validation), mmdet2_line=mmdet2_line
    )


def mmengine_scalars(path: Path) -> LogFigures:
    """mmengine's `vis_data/scalars.json` (also `vis_data/<timestamp>.json`, same content).

    metrics: the last validation line's "coco/" box figures; epochs and iterations: the largest "epoch" and
    "iter" of the training lines; memory_mb: the largest "memory" (None on CPU, where none is logged). A file
    of validation lines only is fine; one with neither kind, an empty one or one with mmdet 2.x's "mode"
    raises LogFormatError.
    """
    scalars = read_scalars(path)
    if not scalars.records:
        raise LogFormatError(f"{path}: empty file")
    if scalars.mmdet2_line is not None:
        raise LogFormatError(
            f"{path}: line {scalars.mmdet2_line} has a 'mode'; this is an mmdet 2.x .log.json, not mmengine "
            "scalars"
        )
    if not scalars.training and not scalars.validation:
        raise LogFormatError(
            f"{path}: no training line (with 'iter') and no validation line (with 'coco/bbox_mAP'); "
            "is this mmengine's vis_data/scalars.json?"
        )
    training = scalars.training
    return LogFigures(
        metrics=scalars.validation[-1].metrics if scalars.validation else {},
        memory_mb=max((t.memory_mb for t in training if t.memory_mb is not None), default=None),
        epochs=max((t.epoch for t in training if t.epoch is not None), default=None),
        iterations=max((t.iteration for t in training), default=None),
    )


def test_metrics(path: Path) -> LogFigures:
    """the one-line JSON mmengine writes at `<work_dir>/<timestamp>/<timestamp>.json` after tools/test.py

    metrics: the "coco/" box figures of the last line that has "coco/bbox_mAP"; the other fields are None.
    """
    found = [(number, entry) for number, entry in _numbered_json_lines(path) if _COCO + "bbox_mAP" in entry]
    if not found:
        raise LogFormatError(f"{path}: no coco/bbox_mAP; not a tools/test.py metrics file")
    number, entry = found[-1]
    return LogFigures(metrics=_coco_metrics(entry, path, number))


def benchmark_fps(path: Path) -> float | None:
    """the inference fps in the text output of mmdet's tools/analysis_tools/benchmark.py; None if the file has
    no such line.

    The last "Overall fps" line of the inference benchmark wins; with --repeat-num > 1, its average.
    """
    text = _read_bytes(path).decode("utf-8", errors="replace")
    fps: float | None = None
    for line in text.splitlines():
        matches = list(_OVERALL_FPS.finditer(line))
        if matches and not _NOT_INFERENCE.search(line, matches[-1].end()):
            fps = float(matches[-1].group("average") or matches[-1].group("single"))
    return fps
