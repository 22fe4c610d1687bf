"""A real local grid that runs while a test looks at it: launched without --wait, cancelled at the end, and
every job's controller gone before the test ends (``job_pids``, ``alive``)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from .cli import REPO, replaced, venv_bin, write_sweep

# One cell of the smoke sweep, logging every iteration for long enough to be watched (it is cancelled).
LONG_SWEEP = replaced(
    (REPO / "experiments/sweeps/smoke.toml").read_text(),
    ('codes = "all"', 'codes = ["0000"]'),
    ("dcn = [false, true]", "dcn = [false]"),
    ("epochs = 2", "epochs = 40"),
    ("log_interval = 2", "log_interval = 1\nstop_on_divergence = false"),  # 80 iterations may reach a NaN
    ("synthetic = [6, 3]", "synthetic = [4, 2]"),
)


@contextlib.contextmanager
def running_grid(folder: Path, text: str = LONG_SWEEP, name: str = "live") -> Iterator[Path]:
    """The sweep ``text`` launched on the local executor under ``folder``/runs (the synthetic data generated
    in ``folder``); yields the root. At the end its jobs are cancelled and waited for (20 s at most)."""
    sweep = write_sweep(folder, text, name)
    root = folder / "runs"
    args = ("--sweep", str(sweep), "--root", str(root))
    log = folder / "launch.log"
    try:
        with log.open("w") as out:  # a file, not a pipe: the jobs it starts keep it open
            done = subprocess.run(
                [venv_bin("ablation"), "launch", *args, "--executor", "local", "--parallel", "1"],
                cwd=folder,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        assert done.returncode == 0, log.read_text()
        yield root
    finally:
        with log.open("a") as out:
            cancel = [venv_bin("ablation"), "cancel", *args]
            subprocess.run(cancel, cwd=folder, stdout=out, stderr=subprocess.STDOUT, check=False)
        pids = job_pids(root / name)
        until = time.monotonic() + 20
        while time.monotonic() < until and any(alive(pid) for pid in pids):
            time.sleep(0.5)
        assert not any(alive(pid) for pid in pids), f"jobs left running: {pids}"


def job_pids(folder: Path) -> list[int]:
    """The local jobs' controllers (a local job's id is its pid) that the sweep's manifest recorded."""
    from ablation.run.manifest import load_manifest

    if not (folder / "manifest.json").exists():
        return []
    return [int(s.job_id) for s in load_manifest(folder, folder.name).history if s.job_id]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of this process is gone for good: reap it
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0
