"""Advisory file locks (``flock``): held while the process lives, released by the kernel when it dies.

That last property is why they are used for anything a crash must not leave behind: the lock that keeps two
launchers from editing one manifest, the lock a cell's job holds while it runs (so a second job for the same
cell steps aside), and the slots that cap how many local jobs compute at once.

A lock file is created as ``open()`` creates a file: mode 0o666 less the process' umask, like every other
file the package writes (``ablation.fsio``), so that a shared runs/ folder's locks are as shared as its files.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ablation.errors import WriteError

__all__ = ["exclusive", "one_slot_of", "open_lock", "try_exclusive"]


def open_lock(path: Path) -> int:
    """The lock file's descriptor, creating the file (and its folders); ``WriteError`` naming it when it
    cannot be (a read-only folder, a file where a folder goes, a folder where the lock goes)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        reason = f"{error.filename} is not a folder" if isinstance(error, FileExistsError) else error.strerror
        raise WriteError(f"cannot write the lock file {path}: {reason or error}") from None


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the lock on ``path``, waiting for it."""
    fd = open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def try_exclusive(path: Path) -> Iterator[bool]:
    """Hold the lock on ``path`` if it is free; yields whether it was."""
    fd = open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


@contextmanager
def one_slot_of(folder: Path, count: int, poll_s: float = 0.5) -> Iterator[int]:
    """Hold one of ``count`` slot locks in ``folder``, waiting until one is free; yields its number."""
    fds = []
    try:
        while True:
            for slot in range(count):
                fd = open_lock(folder / f"slot-{slot}.lock")
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                fds.append(fd)
                yield slot
                return
            time.sleep(poll_s)
    finally:
        for fd in fds:
            os.close(fd)
