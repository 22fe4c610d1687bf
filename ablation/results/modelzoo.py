"""Published MMDetection results: mmdet 2.x training logs (``.log.json``) and the model zoo's table.

``import_logs`` reads the logs the model zoo links next to each checkpoint, with the figures as mmdet
publishes them (see ``logs.mmdet2_log``): the attention code, DCN, backbone and schedule come from the log's
config header when it has one, else from the file name, and the caller's ``code``/``dcn`` override both.

``load_reference`` reads experiments/reference/*.csv, one row per published model: box AP as a fraction,
memory in GB, speed as fps or as inference time in ms per image (fps = 1000 / ms).
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

from ablation.errors import InputError
from ablation.model.codes import AttentionCode
from ablation.results import logs
from ablation.results.configtext import cell_name, config_facts, name_facts
from ablation.results.records import RunRecord
from ablation.shipped import shipped

__all__ = ["LOG_SWEEP", "REFERENCE_DIR", "import_log", "load_reference", "reference_files"]

LOG_SWEEP = "mmdet-logs"
REFERENCE_DIR = shipped("reference")
_RUN_ID = re.compile(r"\d{8}_\d{6}")
_ENV_VERSIONS = {"torch": "PyTorch", "mmcv": "MMCV", "mmdet": "MMDetection"}


def import_log(
    path: Path, sweep: str = LOG_SWEEP, code: str | None = None, dcn: bool | None = None
) -> RunRecord:
    """The store's row for one mmdet 2.x ``.log.json``; ``LogFormatError`` when it is not one, ``InputError``
    when its cell cannot be told (pass ``code``/``dcn``)."""
    figures = logs.mmdet2_log(path)
    named, dataset = name_facts(path.name.removesuffix(".json").removesuffix(".log"))
    facts = config_facts(figures.config) if figures.config else named
    if code is not None:
        AttentionCode.parse(code)
    facts = dataclasses.replace(
        facts,
        code=code or facts.code,
        dcn=facts.dcn if dcn is None else dcn,
        backbone=facts.backbone or named.backbone,
        epochs=facts.epochs or named.epochs or figures.epochs,
        schedule=None,  # follows the epochs
    )
    if facts.code is None or facts.dcn is None:
        raise InputError(f"{path}: cannot tell its attention code or DCN setting; pass --code and --dcn")
    run_id = _RUN_ID.search(path.name)
    record = facts.record(
        dataset,
        sweep=sweep,
        cell=cell_name(facts, dataset),
        run_id=run_id[0] if run_id else path.name,
        source="log",
        memory_gb=None if figures.memory_mb is None else figures.memory_mb / 1024,
        memory_kind=None if figures.memory_mb is None else "cuda_peak_allocated",
        epochs=figures.epochs,
        origin=str(path.resolve()),
    )
    record.versions(_env_versions(figures.header))
    record.set_metrics(figures.metrics)
    return record


def _env_versions(header: dict[str, object] | None) -> dict[str, str]:
    env = str((header or {}).get("env_info", ""))
    found = {key: re.search(rf"^{label}: (\S+)", env, re.M) for key, label in _ENV_VERSIONS.items()}
    return {key: match[1] for key, match in found.items() if match}


def reference_files(folder: Path = REFERENCE_DIR) -> list[Path]:
    return sorted(folder.glob("*.csv"))


_REFERENCE_COLUMNS = (
    "sweep",
    "cell",
    "run_id",
    "code",
    "dcn",
    "backbone",
    "schedule",
    "dataset",
    "bbox_mAP",
    "memory_gb",
    "fps",
    "inf_time_ms",
    "device",
    "mmdet_version",
    "config",
    "url",
)


def load_reference(paths: Iterable[Path] | None = None) -> list[RunRecord]:
    """The published rows (source=reference) of the reference CSV files; ``InputError`` naming the file and
    line of a bad row."""
    records = []
    for path in reference_files() if paths is None else paths:
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(row for row in handle if not row.startswith("#"))
                missing = [c for c in _REFERENCE_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
                for number, row in enumerate(reader, start=2):
                    try:
                        records.append(_reference_record(row, path))
                    except (ValueError, TypeError) as error:
                        raise InputError(f"{path}: data row {number - 1}: {error}") from None
        except OSError as error:
            raise InputError(f"{path}: cannot read ({error.strerror})") from None
    return records


def _reference_record(row: dict[str, str], path: Path) -> RunRecord:
    def number(key: str) -> float | None:
        text = (row.get(key) or "").strip()
        return float(text) if text else None

    def text(key: str) -> str | None:
        return (row.get(key) or "").strip() or None

    if (row.get("dcn") or "").strip() not in ("Y", "N"):
        raise ValueError(f"dcn must be Y or N, got {row.get('dcn')!r}")
    ms = number("inf_time_ms")
    record = RunRecord(
        sweep=text("sweep") or "",
        cell=text("cell") or "",
        run_id=text("run_id") or "",
        source="reference",
        code=text("code"),
        dcn=row["dcn"].strip() == "Y",
        backbone=text("backbone"),
        schedule=text("schedule"),
        dataset=text("dataset"),
        bbox_mAP=number("bbox_mAP"),
        memory_gb=number("memory_gb"),
        memory_kind="cuda_peak_allocated" if number("memory_gb") is not None else None,
        fps=number("fps") or (1000 / ms if ms else None),
        device=text("device"),
        mmdet_version=text("mmdet_version"),
        config=text("config"),
        url=text("url"),
        origin=str(path),
    )
    return record
