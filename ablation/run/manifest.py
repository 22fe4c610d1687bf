"""The manifest of a sweep folder: which job runs, or ran, each cell.

``<sweep folder>/manifest.json`` maps each cell to its latest submission (executor, job id, submitit folder,
attempt, time) and keeps every earlier one, so that ``ablation status`` and a second ``ablation launch`` find
the jobs from any process. It is rewritten atomically after each submission, under the launch lock.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ablation.errors import ManifestError
from ablation.fsio import write_atomic

__all__ = ["MANIFEST_FILE", "Manifest", "Submission", "load_manifest", "save_manifest"]

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Submission:
    """One job submitted for one cell."""

    cell: str
    cell_id: str
    executor: str
    job_id: str
    folder: str  # submitit's folder of the job (pickles and logs)
    work_dir: str
    attempt: int
    submitted: str
    job_name: str = ""  # its job array's name (one per array of a launch): finds its job if the launch died
    index: int = 0  # position in that job array

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.cell, self.job_name, self.index)

    @property
    def recorded(self) -> bool:
        """False for the intent written just before submitting, until the job id is known."""
        return self.job_id != ""


@dataclass
class Manifest:
    sweep: str
    latest: dict[str, Submission] = field(default_factory=dict)  # cell name -> its latest submission
    history: list[Submission] = field(default_factory=list)

    def record(self, submission: Submission) -> None:
        """Add a submission, or complete the intent recorded for it (same cell, launch and index)."""
        same = [i for i, s in enumerate(self.history) if s.job_name and s.key == submission.key]
        if same:
            self.history[same[0]] = submission
        else:
            self.history.append(submission)
        self._relatest()

    def forget(self, submission: Submission) -> None:
        """Drop an intent whose job was never submitted."""
        self.history = [s for s in self.history if s.key != submission.key or not s.job_name]
        self._relatest()

    def _relatest(self) -> None:
        self.latest = {}
        for s in self.history:
            self.latest[s.cell] = s

    def attempts(self, cell: str, cell_id: str) -> int:
        """How many jobs were submitted for this cell with this config."""
        return sum(1 for s in self.history if s.cell == cell and s.cell_id == cell_id)


def load_manifest(sweep_dir: Path, sweep: str) -> Manifest:
    """The sweep folder's manifest (empty when there is none); ``ManifestError`` naming the file when it
    cannot be read, is not a manifest, or was written by a newer version."""
    path = sweep_dir / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Manifest(sweep=sweep)
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: cannot read the manifest: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("history"), list):
        raise ManifestError(f'{path}: not a manifest (a JSON object with a "history" list is expected)')
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{path}: not a manifest (schema_version {json.dumps(version)} is not a number)")
    if version > SCHEMA_VERSION:
        raise ManifestError(
            f"{path}: written with manifest schema {version}, newer than this ablation's {SCHEMA_VERSION}; "
            "upgrade ablation to read it"
        )
    history = [_submission(entry, path, i) for i, entry in enumerate(data["history"])]
    manifest = Manifest(sweep=str(data.get("sweep", sweep)), history=history)
    manifest._relatest()
    return manifest


_FIELDS = {f.name: f for f in dataclasses.fields(Submission)}
_TYPES = {name: (int if f.type == "int" else str) for name, f in _FIELDS.items()}


def _submission(entry: object, path: Path, index: int) -> Submission:
    where = f"{path}: history entry {index}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where} is not a JSON object")
    missing = [n for n, f in _FIELDS.items() if n not in entry and f.default is dataclasses.MISSING]
    if missing:
        raise ManifestError(f"{where} has no {', '.join(map(repr, missing))}")
    for name, value in entry.items():
        kind = _TYPES.get(name)
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            expected = "an integer" if kind is int else "a string"
            raise ManifestError(f"{where}: {name!r} is {json.dumps(value)}, expected {expected}")
    return Submission(**{k: v for k, v in entry.items() if k in _FIELDS})


def save_manifest(sweep_dir: Path, manifest: Manifest) -> None:
    data = {
        "schema_version": SCHEMA_VERSION,
        "sweep": manifest.sweep,
        "history": [dataclasses.asdict(s) for s in manifest.history],
    }
    write_atomic(sweep_dir / MANIFEST_FILE, json.dumps(data, indent=1) + "\n")
