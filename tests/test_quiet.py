"""The quiet timing of local jobs: a timing waits for other jobs' iterations in flight and holds off new ones,
across real processes and real ``flock`` locks."""

from __future__ import annotations

import select
import subprocess
import sys
import threading
from pathlib import Path

from ablation.run.quiet import Quiet

_ITERATE = """
import sys, time
from pathlib import Path
from ablation.run.quiet import Quiet
quiet = Quiet(Path(sys.argv[1]))
quiet.begin_iteration()
print("iterating", flush=True)
sys.stdin.readline()
quiet.end_iteration()
print("done", flush=True)
"""


def _iterating(folder: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _ITERATE, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    return process


def test_timing_waits_for_an_iteration_in_flight(tmp_path: Path) -> None:
    other = _iterating(tmp_path)
    assert other.stdout is not None and other.stdin is not None
    assert other.stdout.readline().strip() == "iterating"
    timed = threading.Event()

    def time_alone() -> None:
        with Quiet(tmp_path).alone():
            timed.set()

    thread = threading.Thread(target=time_alone)
    thread.start()
    assert not timed.wait(1.0)  # the other job is mid-iteration
    out, _ = other.communicate("\n", timeout=30)
    assert out.strip() == "done" and other.returncode == 0
    assert timed.wait(30)
    thread.join()


def test_no_iteration_starts_while_one_times(tmp_path: Path) -> None:
    quiet = Quiet(tmp_path)
    with quiet.alone():
        other = _iterating(tmp_path)
        assert other.stdout is not None and other.stdin is not None
        ready, _, _ = select.select([other.stdout], [], [], 2.0)
        assert not ready  # it has not begun its iteration: it waits on the lock
    assert other.stdout.readline().strip() == "iterating"
    out, _ = other.communicate("\n", timeout=30)
    assert out.strip() == "done" and other.returncode == 0


def test_its_own_iteration_does_not_block_a_timing(tmp_path: Path) -> None:
    quiet = Quiet(tmp_path)
    quiet.begin_iteration()
    with quiet.alone():  # would wait for itself if it kept its shared lock
        pass
    quiet.begin_iteration()
    quiet.end_iteration()
