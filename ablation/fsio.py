"""File writes that never leave a half-written file behind, with the permissions ``open()`` would give, and
the root folder of the runs (``root_dir``).

The temp file is created with mode 0o666 and the kernel applies the process' umask (and a folder's default
ACL), as for any file ``open()`` creates: under umask 022 a shared runs/ folder and store stay readable to
the group and others. ``tempfile.mkstemp`` would make every file 0600 whatever the umask.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ablation.errors import WriteError

__all__ = ["root_dir", "write_atomic"]


def write_atomic(path: Path, text: str | bytes, durable: bool = True) -> bool:
    """Write ``text`` (UTF-8) or bytes to ``path`` through a temp file in the same folder and ``os.replace``.

    Returns False, and leaves the file (and its mtime) alone, when it already holds exactly that.
    ``durable`` False skips the fsync, for files that are made again from others whenever they differ (the
    planned configs: one fsync each was most of planning 10,000 cells); a reader still never sees half of
    one.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        try:
            if path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
    except OSError as error:
        raise _cannot_write(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):  # disk full, ...: the old file is still whole
            raise _cannot_write(path, error) from None
        raise
    return True


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``path`` (a random name, never an existing file), open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp file name beside {path}")


def _cannot_write(path: Path, error: OSError) -> WriteError:
    return WriteError(f"cannot write {path}: {error.strerror or error}")


def root_dir(root: Path | str | None = None) -> Path:
    """The folder under which sweeps run and the results store lives: ``root`` when given, else
    $ABLATION_ROOT, else ``runs``."""
    return Path(root if root is not None else os.environ.get("ABLATION_ROOT") or "runs")
