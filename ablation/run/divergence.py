"""The divergence stop: a cell whose training loss is no longer a number stops at that iteration.

After every training iteration ``DivergenceStop`` reads the iteration's total loss (mmengine's ``loss``: the
sum of the model's losses that the optimizer stepped on). When it is NaN or infinite, or, with a ``factor``,
above ``factor`` x the median of the losses of the first ``warmup`` iterations, the hook writes the reason
to the run's log and raises ``Diverged`` ("diverged at iteration 7: loss nan"), which ends mmengine's
training at once; the job records the cell as failed with that reason (``job``), and ``--retry-failed``
runs it again like any failed cell.

A cell of several processes decides on the mean of its ranks' losses (one all-reduce of one number per
iteration, only when the group has more than one process; a NaN or an infinity on any rank makes the mean
one too), so every rank stops at the same iteration and none is left waiting in a collective.

The factor's reference is the first ``warmup`` iterations that this attempt trains: a resumed attempt takes
its own. The hook also calls ``on_iteration`` after every iteration (rank 0's heartbeat of its attempt
record, ``attempts.beat``), with or without the stop.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import Any

import torch
from mmengine.hooks import Hook

from ablation.errors import Diverged
from ablation.grid.settings import EARLY_LOSSES

__all__ = ["DivergenceStop", "verdict"]


def verdict(loss: float, early: list[float], factor: float | None, warmup: int) -> str | None:
    """Why ``loss`` is a divergence ("loss nan", "loss 1234.5 (over 10 x the early median 2.31)"), or None.
    ``early`` holds the losses of the first iterations so far; the factor applies once it has ``warmup``."""
    if not math.isfinite(loss):
        return f"loss {loss}"
    if factor is not None and len(early) >= warmup:
        median = statistics.median(early[:warmup])
        if loss > factor * median:
            return f"loss {loss} (over {factor:g} x the early median {median:.3g})"
    return None


class DivergenceStop(Hook):  # type: ignore[misc]
    """Raises ``Diverged`` after the first training iteration whose loss diverged (when ``stop``)."""

    def __init__(
        self,
        *,
        stop: bool = True,
        factor: float | None = None,
        warmup: int = EARLY_LOSSES,
        on_iteration: Callable[[], None] | None = None,
    ) -> None:
        self.stop, self.factor, self.warmup = stop, factor, warmup
        self.on_iteration = on_iteration
        self.early: list[float] = []

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        if self.on_iteration is not None:
            self.on_iteration()
        if not self.stop or not outputs or "loss" not in outputs:
            return
        loss = _mean_over_ranks(outputs["loss"])
        reason = verdict(loss, self.early, self.factor, self.warmup)
        if reason is None:
            if len(self.early) < self.warmup:
                self.early.append(loss)
            return
        message = f"diverged at iteration {runner.iter + 1}: {reason}"  # runner.iter counts from 0
        runner.logger.error(message)
        raise Diverged(message)


def _mean_over_ranks(loss: Any) -> float:
    """The iteration's loss, averaged over the ranks of a distributed run (on the loss' own device: NCCL
    reduces CUDA tensors only)."""
    value = torch.as_tensor(loss).detach().float().reshape(1).clone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        if world > 1:
            torch.distributed.all_reduce(value)
            value /= world
    return float(value.item())
