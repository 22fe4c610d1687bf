"""Processes of one gloo group on this machine, for code that runs on every rank of a multi-task cell."""

from __future__ import annotations

import multiprocessing
import socket
from types import SimpleNamespace
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def divergence_on_rank(rank: int, world: int, port: int, runs: list[list[float]], out: Any) -> None:
    """One rank training ``runs`` one after the other, each with a new ``DivergenceStop`` fed its losses
    one per iteration as mmengine's loop would; puts (rank, [(the iteration it stopped at, the reason) or
    (None, None) for each run]) on ``out``."""
    import torch
    import torch.distributed as dist
    from mmengine.logging import MMLogger

    from ablation.errors import Diverged
    from ablation.run.divergence import DivergenceStop

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        logger = MMLogger.get_instance(f"rank{rank}", log_level="CRITICAL")
        answers: list[tuple[int | None, str | None]] = []
        for losses in runs:
            hook = DivergenceStop()
            stopped: tuple[int | None, str | None] = (None, None)
            for i, loss in enumerate(losses):
                runner = SimpleNamespace(iter=i, logger=logger)  # what the hook reads of mmengine's Runner
                try:
                    hook.after_train_iter(runner, i, outputs={"loss": torch.tensor(loss)})
                except Diverged as error:
                    stopped = (i + 1, str(error))
                    break
            answers.append(stopped)
        out.put((rank, answers))
    finally:
        dist.destroy_process_group()


def run_ranks(runs_by_rank: list[list[list[float]]], timeout_s: float = 120) -> list[tuple[int, Any]]:
    """Every rank's answers, in rank order; the processes are gone when it returns."""
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    port = free_port()
    world = len(runs_by_rank)
    procs = [
        context.Process(target=divergence_on_rank, args=(rank, world, port, runs, out))
        for rank, runs in enumerate(runs_by_rank)
    ]
    try:
        for p in procs:
            p.start()
        answers = [out.get(timeout=timeout_s) for _ in procs]
        for p in procs:
            p.join(timeout=timeout_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    return sorted(answers)
