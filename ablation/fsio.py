"""File writes that never leave a half-written file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import WriteError

__all__ = ["write_atomic"]


def write_atomic(path: Path, text: str | bytes) -> bool:
    """Write ``text`` (UTF-8) or bytes to ``path`` through a temp file in the same folder and ``os.replace``.

    Returns False, and leaves the file (and its mtime) alone, when it already holds exactly that.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        try:
            if path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):  # disk full, ...: the old file is still whole
            raise _cannot_write(path, error) from None
        raise
    return True


def _cannot_write(path: Path, error: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {error.strerror or error}")
