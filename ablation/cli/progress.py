"""Progress of long work: a live bar on a terminal; elsewhere (CI logs) one line per finished cell, and
nothing per item for quick loops (their summary line says what happened)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ablation import vocabulary

if TYPE_CHECKING:
    from ablation.run.launch import CellStatus

__all__ = ["Watcher", "counted"]

_FINISHED = ("done", "failed", "lost")
T = TypeVar("T")


def counted(items: Sequence[T], label: str) -> Iterator[T]:
    """``items``, with a progress bar on a terminal."""
    if not sys.stderr.isatty() or len(items) < 2:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=label, console=_stderr_console(), transient=True)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


class Watcher:
    """Shows how many of ``total`` cells have finished and when all should have (``ablation.run.eta``; with
    ``array_parallelism``, the sweep's, for cells on Slurm); feed it each poll's states with ``update``."""

    def __init__(self, total: int, array_parallelism: int | None = None) -> None:
        self.total = total
        self.array_parallelism = array_parallelism
        self.reported: set[str] = set()
        self.live = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Watcher:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
            )
            self._progress.start()
            self._task = self._progress.add_task("cells", total=self.total)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, states: Sequence[CellStatus]) -> None:
        counts = Counter(s.state for s in states)
        finished = sum(counts[state] for state in _FINISHED)
        if self._progress is not None:
            running = f"{counts['running']} running, {counts['pending']} pending{self._finish(states)}"
            self._progress.update(self._task, completed=finished, description=f"cells ({running})")
            return
        for s in states:
            if s.state in _FINISHED and s.name not in self.reported:
                self.reported.add(s.name)
                ap = s.result.ap if s.result is not None else None
                box = vocabulary.metric("bbox_mAP")
                figure = f" {box.name} {box.format(box.display(ap))}" if ap is not None else ""
                print(
                    f"[{len(self.reported)}/{self.total}] {s.state} {s.name}{figure}{self._finish(states)}",
                    file=sys.stderr,
                    flush=True,
                )

    def _finish(self, states: Sequence[CellStatus]) -> str:
        """'; all in ~3m' while cells run or wait and their finish can be told, else ''."""
        from ablation.run.eta import parallelism, sweep_eta
        from ablation.run.status_table import duration

        eta = sweep_eta(states, parallelism(states, self.array_parallelism))
        if eta.left_s is None or not (eta.running or eta.waiting):
            return ""
        return f"; all in ~{duration(eta.left_s)}"
