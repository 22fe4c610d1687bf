"""Timing on a quiet machine: the local jobs of a launch pause their iterations while one of them times its
inference speed.

Local cells compute side by side, one per core, and a cell timed while another trains reads slower than it
is (the study's 1110 read 14.2 fps beside a training cell and faster with DCN than without). So every
iteration of a local job (train, val, test) runs holding a shared lock, and the timing holds it exclusively:
it waits for the iterations in flight to end, and no other iteration starts until it is done. A second
lock, the intent, keeps a stream of iterations from starving the timing: the timing takes the intent first,
and an iteration passes through the intent before it takes the shared lock.

Both are ``flock`` locks (``locks``), released by the kernel when a process dies, in the launch's slots
folder; jobs without local slots (Slurm gives each its own CPUs) time without them.
"""

from __future__ import annotations

import fcntl
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ablation.run.locks import open_lock

__all__ = ["Quiet"]

_INTENT, _COMPUTING = "timing-intent.lock", "computing.lock"


class Quiet:
    """One process's side of the protocol, on the lock files in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self._intent = open_lock(folder / _INTENT)
        self._computing = open_lock(folder / _COMPUTING)
        self.close = weakref.finalize(self, _close, self._intent, self._computing)  # closed when dropped

    def begin_iteration(self) -> None:
        """Wait while another job times, then hold the shared lock for this iteration."""
        fcntl.flock(self._intent, fcntl.LOCK_SH)
        try:
            fcntl.flock(self._computing, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._intent, fcntl.LOCK_UN)

    def end_iteration(self) -> None:
        fcntl.flock(self._computing, fcntl.LOCK_UN)

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Hold the machine: no other job of the launch computes until the block ends."""
        self.end_iteration()  # this process's own shared lock would keep its exclusive one waiting
        fcntl.flock(self._intent, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._computing, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._computing, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._intent, fcntl.LOCK_UN)

    def hook(self) -> Any:
        """An mmengine hook that holds the shared lock through each train, val and test iteration."""
        from mmengine.hooks import Hook

        quiet = self

        class _Iterations(Hook):  # type: ignore[misc]
            priority = "VERY_HIGH"

            def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
                quiet.begin_iteration()

            def after_train_iter(self, runner: Any, batch_idx: int, *args: Any, **kwargs: Any) -> None:
                quiet.end_iteration()

            before_val_iter = before_test_iter = before_train_iter
            after_val_iter = after_test_iter = after_train_iter

        return _Iterations()


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)
