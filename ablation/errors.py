"""Every exception the package raises on purpose.

    AblationError               base: a message meant for the user, shown as one line by the CLI
    ├── InputError              a user mistake (bad code, unknown sweep, bad sweep file); the CLI exits 2
    │   ├── BadCodeError        not an attention code '0000'..'1111'
    │   ├── UnknownSweepError   no sweep of that name or path
    │   ├── SweepFileError      the sweep file is unreadable or does not match the schema
    │   └── DatasetError        the dataset a sweep names is missing or malformed
    ├── EnvironmentProblem      the machine lacks something the command needs (mmdet); exit 1
    ├── StoreError              a results-store file that cannot be read (corrupt, a newer schema); exit 1
    ├── ManifestError           a sweep folder's manifest.json that cannot be read (corrupt, newer); exit 1
    ├── LogFormatError          a log or metrics file that is not what its name says (harvest, import-log)
    ├── WriteError              an output cannot be written (permissions, a file where a folder goes); exit 1
    ├── CellFailed              a cell's job failed; its result file holds the error and the log's tail
    └── Diverged                a cell's training loss diverged (NaN, infinite, too high): its job stops

    BadFigureWarning            a warning, not an error: a figure read as missing (not finite, out of range)

Messages name the offending value and the valid values, so that one line is enough to fix the mistake.
"""

from __future__ import annotations

__all__ = [
    "AblationError",
    "BadCodeError",
    "BadFigureWarning",
    "CellFailed",
    "DatasetError",
    "Diverged",
    "EnvironmentProblem",
    "InputError",
    "LogFormatError",
    "ManifestError",
    "StoreError",
    "SweepFileError",
    "UnknownSweepError",
    "WriteError",
]


class AblationError(Exception):
    """Base of the package's errors; ``str(error)`` is a complete one-line message for the user."""

    exit_code = 1


class InputError(AblationError, ValueError):
    """The user gave something invalid; nothing was changed. ``argument`` names the library argument the
    message is about (its first word: ``where kv_stride=3: ...``), so that the CLI can name its flag
    instead (``--where kv_stride=3: ...``)."""

    exit_code = 2

    def __init__(self, message: str, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class BadCodeError(InputError):
    """A string that is not a 4-bit attention code."""


class UnknownSweepError(InputError):
    """A sweep name or path that matches no sweep file."""


class SweepFileError(InputError):
    """A sweep file that cannot be read or does not follow the schema."""


class DatasetError(InputError):
    """The dataset a sweep names is missing or malformed (no file, bad JSON, a missing key)."""


class EnvironmentProblem(AblationError):
    """Something the command needs is missing from this machine."""


class StoreError(AblationError):
    """A file of the results store that cannot be read; the store's other runs are still read."""


class ManifestError(AblationError):
    """A sweep folder's manifest.json that cannot be read (corrupt, of another or a newer version): the
    command stops before it submits or cancels anything."""


class LogFormatError(AblationError):
    """A log, metrics or result file that is truncated, corrupt or of another format; the message names the
    file and, where there is one, the line."""


class WriteError(AblationError):
    """An output file or folder cannot be written; what was written before stays as it was."""


class CellFailed(AblationError):
    """A cell's job failed, after writing status=failed, the error and the log's tail to its result file."""


class Diverged(AblationError):
    """A cell's training loss diverged (``ablation.run.divergence``); ``str(error)`` is the reason the job
    records: "diverged at iteration 7: loss nan"."""


class BadFigureWarning(UserWarning):
    """A reader was given a figure that is not a finite number in its valid range, and read it as missing
    (the line names the run, the figure, its value and its valid range); the rest is computed."""
