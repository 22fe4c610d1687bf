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
from typing import Any

from .errors import InputError
from .fsio import write_atomic

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
    job_name: str = ""  # the launch's job name: finds its jobs if the launcher died while submitting
    index: int = 0  # position in the launch's job array

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
    path = sweep_dir / MANIFEST_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Manifest(sweep=sweep)
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: cannot read the manifest: {error}") from None
    try:
        history = [Submission(**entry) for entry in data["history"]]
    except (KeyError, TypeError) as error:
        raise InputError(f"{path}: not a manifest of this version ({error})") from None
    manifest = Manifest(sweep=data.get("sweep", sweep), history=history)
    manifest._relatest()
    return manifest


def save_manifest(sweep_dir: Path, manifest: Manifest) -> None:
    data = {
        "schema_version": SCHEMA_VERSION,
        "sweep": manifest.sweep,
        "history": [dataclasses.asdict(s) for s in manifest.history],
    }
    write_atomic(sweep_dir / MANIFEST_FILE, json.dumps(data, indent=1) + "\n")
