"""File writes that never leave a half-written file behind, with the permissions ``open()`` would give, and
the root folder of the runs (``root_dir``).

The temp file is created with mode 0o666 and the kernel applies the process' umask (and a folder's default
ACL), as for any file ``open()`` creates: under umask 022 a shared runs/ folder and store stay readable to
the group and others. ``tempfile.mkstemp`` would make every file 0600 whatever the umask.

A writer killed between creating its temp file and moving it into place (kill -9, a lost node) leaves the
temp file behind: ``.<name>.<owner>-<pid>.<random>.tmp``, the owner being a hash of the host's name and its
pid namespace. ``remove_stale_temps`` removes those of a folder that no live writer can still be writing:
one of this host (and pid namespace) whose pid is gone, or any, of any host or of an older version's naming,
last written more than ``STALE_AFTER_S`` ago (a write takes milliseconds; another host's pids cannot be
checked). A pid reused since only keeps its dead writer's file until that age.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ablation.errors import WriteError

__all__ = ["STALE_AFTER_S", "remove_stale_temps", "root_dir", "write_atomic", "write_new"]

STALE_AFTER_S = 3600.0
# a temp file of write_atomic: this version's (owner and pid) and an older one's (only the random part)
_TEMP = re.compile(r"\..+?(?:\.(?P<owner>[0-9a-f]{8})-(?P<pid>[0-9]+))?\.[0-9a-f]{8}\.tmp")


def write_atomic(path: Path, text: str | bytes, durable: bool = True) -> bool:
    """Write ``text`` (UTF-8) or bytes to ``path`` through a temp file in the same folder and ``os.replace``.

    Returns False, and leaves the file (and its mtime) alone, when it already holds exactly that.
    ``durable`` False skips the fsync, for files that are made again from others whenever they differ (the
    planned configs: one fsync each was most of planning 10,000 cells); a reader still never sees half of
    one.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as error:
        raise _cannot_write(path, error) from None
    _place(path, data, durable, os.replace)
    return True


def write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` as ``write_atomic`` does, but only if no file is there: True when this call
    created it, False (nothing changed) when a file was there, even one another process moved into place a
    moment before. The file appears whole, by a hard link of the temp file, which fails if the name is taken
    (where the file system has no hard links, it is moved into place: True)."""
    return _place(path, data, True, _link)


def _link(tmp: Path, path: Path) -> bool:
    try:
        os.link(tmp, path)
        os.unlink(tmp)  # at once: a Ctrl-C between the two is the only way the second name stays
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network and FUSE file systems): move it, as write_atomic
        os.replace(tmp, path)
        return True
    return True


def _place(path: Path, data: bytes, durable: bool, move: Callable[[Path, Path], object]) -> bool:
    """Write ``data`` to a temp file beside ``path`` and ``move`` it there; the temp file never stays."""
    try:
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
        return move(tmp, path) is not False
    except OSError as error:  # disk full, ...: the old file is still whole
        raise _cannot_write(path, error) from None
    finally:
        with contextlib.suppress(FileNotFoundError):  # moved or linked (gone), or failed
            os.unlink(tmp)


def remove_stale_temps(folder: Path, names: Iterable[str] | None = None) -> list[str]:
    """Remove the temp files in ``folder`` that killed writers left (see the module's text); ``names`` are
    the folder's entries when the caller has listed it already. Returns the names removed; a file that
    cannot be removed (another user's, a read-only folder) stays, silently."""
    if names is None:
        try:
            names = os.listdir(folder)
        except OSError:
            return []
    removed = []
    for name in names:
        if name.endswith(".tmp") and (match := _TEMP.fullmatch(name)) and _stale(folder / name, match):
            try:
                (folder / name).unlink()
            except OSError:
                continue
            removed.append(name)
    return removed


def _stale(path: Path, match: re.Match[str]) -> bool:
    if match["owner"] == _owner() and not _alive(int(match["pid"])):
        return True
    try:
        return time.time() - path.stat().st_mtime > STALE_AFTER_S
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process, or not a pid: keep it
        return True
    return True


@functools.cache
def _owner() -> str:
    """This host and pid namespace, in 8 hex digits: whose pids a temp file's name can be checked against."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temp file beside ``path`` (a random name, never an existing file), open for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        # the name's first 200 characters: a long name's temp name stays under the usual 255
        tmp = path.with_name(f".{path.name[:200]}.{_owner()}-{os.getpid()}.{secrets.token_hex(4)}.tmp")
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
