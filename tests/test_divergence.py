"""The divergence stop and the job's attempt records.

The hook on a real mmengine Runner training a one-weight model whose loss is whatever each sample says (NaN,
infinite, high), then real smoke cells through the CLI, given an absurd learning rate: the cell stops a few
iterations into a schedule of 40, failed with the reason, and ``--retry-failed`` runs it again; with the
stop turned off the same cell trains to its end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

from ablation import load_sweep, plan
from ablation.errors import Diverged
from ablation.run.attempts import read_attempts
from ablation.run.divergence import DivergenceStop, verdict
from ablation.run.result_file import RESULT_FILE

from .helpers.cli import REPO, in_folder, replaced, run_cli, run_script, write_sweep
from .helpers.ranks import run_ranks

# 1. The rule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "early", "factor", "warmup", "reason"),
    [
        (math.nan, [], None, 3, "loss nan"),
        (math.inf, [], None, 3, "loss inf"),
        (-math.inf, [2.0, 2.0, 2.0], 10.0, 3, "loss -inf"),
        (1234.5, [2.0, 2.31, 2.5], 10.0, 3, "loss 1234.5 (over 10 x the early median 2.31)"),
        (23.0, [2.0, 2.31, 2.5], 10.0, 3, None),  # under 10 x 2.31
        (1234.5, [2.0, 2.31], 10.0, 3, None),  # the reference is not complete yet
        (1234.5, [2.0, 2.31, 2.5], None, 3, None),  # no factor: only NaN and infinities
        (30.0, [2.0, 2.0, 2.0, 100.0], 10.0, 3, "loss 30.0 (over 10 x the early median 2)"),  # the first 3
    ],
)
def test_the_rule(
    loss: float, early: list[float], factor: float | None, warmup: int, reason: str | None
) -> None:
    assert verdict(loss, early, factor, warmup) == reason


# 1b. The settings: job settings, outside the configs --------------------------------------------------------


def test_the_settings_change_no_config_cell_id_or_name(tmp_path: Path) -> None:
    smoke = (REPO / "experiments/sweeps/smoke.toml").read_text()
    tuned = replaced(
        smoke, ("[schedule]\n", "[schedule]\nstop_on_divergence = false\ndivergence_factor = 5.0\n")
    )
    for name in "ab":
        (tmp_path / name).mkdir()
    sweeps = [
        load_sweep(write_sweep(tmp_path / n, text, "smoke")) for n, text in [("a", smoke), ("b", tuned)]
    ]
    assert (sweeps[0].schedule.stop_on_divergence, sweeps[1].schedule.stop_on_divergence) == (True, False)
    cells = [
        [(p.name, p.cell_id, p.path.read_text()) for p in plan(sweep, tmp_path / "runs" / name).cells]
        for sweep, name in zip(sweeps, "ab", strict=True)
    ]
    assert cells[0] == cells[1] and len(cells[0]) == 32


@pytest.mark.parametrize("value", ["1", "0.5", "-2.0"])
def test_a_factor_of_one_or_less_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
) -> None:
    path = write_sweep(tmp_path, f"[schedule]\ndivergence_factor = {value}\n")
    code, out, err = run_cli("plan", "--sweep", str(path), "--root", str(tmp_path / "runs"), capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {path}: [schedule] divergence_factor must be > 1\n"
    assert not (tmp_path / "runs").exists()


# 2. The hook in a real mmengine training loop ---------------------------------------------------------------


class Scripted(BaseModel):  # type: ignore[misc]
    """One weight, and a loss that is the sample's value (gradients flow through the weight, times 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, inputs: torch.Tensor, data_samples: Any = None, mode: str = "tensor") -> Any:
        return {"loss": (self.weight * 0).sum() + inputs.mean()}


def train(tmp_path: Path, losses: list[float], hook: DivergenceStop) -> Runner:
    """Trains one epoch of one iteration per loss, the hook registered as the job registers it."""
    runner = Runner(
        model=Scripted(),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.tensor([v])) for v in losses],
            sampler=dict(type="DefaultSampler", shuffle=False),
            collate_fn=dict(type="default_collate"),
            batch_size=1,
        ),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        default_hooks=dict(checkpoint=None, logger=dict(type="LoggerHook", interval=1)),
        default_scope="mmengine",
        experiment_name=f"scripted-{tmp_path.name}",  # one logger per run: mmengine keys them by name
    )
    runner.register_hook(hook, priority="LOW")
    runner.train()
    return runner


def test_a_nan_loss_stops_training_at_its_iteration(tmp_path: Path) -> None:
    seen: list[int] = []
    hook = DivergenceStop(on_iteration=lambda: seen.append(1))
    with pytest.raises(Diverged, match=r"^diverged at iteration 4: loss nan$"):
        train(tmp_path, [3.0, 2.0, 1.0, math.nan, 1.0, 1.0, 1.0], hook)
    assert len(seen) == 4  # no iteration after the fourth
    (log,) = tmp_path.glob("*/*.log")
    assert log.read_text().splitlines()[-1].endswith("diverged at iteration 4: loss nan")


def test_an_infinite_loss_stops_training(tmp_path: Path) -> None:
    with pytest.raises(Diverged, match=r"^diverged at iteration 2: loss inf$"):
        train(tmp_path, [3.0, math.inf, 1.0], DivergenceStop())


def test_the_factor_stops_a_loss_far_above_the_early_median_after_the_warmup(tmp_path: Path) -> None:
    hook = DivergenceStop(factor=10.0, warmup=3)
    losses = [50.0, 4.0, 3.0, 2.0, 35.0, 41.0, 1.0]  # median of the first 3: 4; 50 is inside the warm-up
    with pytest.raises(
        Diverged, match=r"^diverged at iteration 6: loss 41.0 \(over 10 x the early median 4\)$"
    ):
        train(tmp_path, losses, hook)


def test_with_the_stop_off_training_goes_on_to_its_end(tmp_path: Path) -> None:
    seen: list[int] = []
    runner = train(
        tmp_path,
        [1.0, math.nan, math.inf, 1.0],
        DivergenceStop(stop=False, on_iteration=lambda: seen.append(1)),
    )
    assert runner.iter == 4 and len(seen) == 4


def test_a_healthy_run_trains_to_its_end(tmp_path: Path) -> None:
    runner = train(tmp_path, [3.0, 2.5, 2.0, 25.0], DivergenceStop(factor=20.0, warmup=2))  # 25 < 20 x 2.75
    assert runner.iter == 4


# 3. Real cells through the CLI ------------------------------------------------------------------------------

ITERATIONS = 40  # 20 epochs of 2 iterations (4 images, 2 per batch): finishing would take minutes
SWEEP = replaced(
    (REPO / "experiments/sweeps/smoke.toml").read_text(),
    ('codes = "all"', 'codes = ["0000"]'),
    ("dcn = [false, true]", "dcn = [false]"),
    ("lr = 0.01", "lr = 1e6"),  # NaN by the third iteration
    ("epochs = 2", "epochs = 20"),
    ("log_interval = 2", "log_interval = 1\nval_interval = 0"),  # every iteration logged; no validation
    ("synthetic = [6, 3]", "synthetic = [4, 2]"),
)
REASON = re.compile(r"diverged at iteration (\d+): loss (nan|-?inf|\S+ \(over .*\))")
TRAIN_LINE = re.compile(r"Epoch\(train\)\s+\[(\d+)\]\[(\d+)/(\d+)\]")


@dataclasses.dataclass
class Cell:
    folder: Path
    sweep: Path
    root: Path
    code: int

    def result(self) -> dict[str, Any]:
        (path,) = self.root.glob(f"*/work/*/*/{RESULT_FILE}")
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def work_dir(self) -> Path:
        (path,) = self.root.glob(f"*/work/*/*/{RESULT_FILE}")
        return path.parent

    def launch(self, *args: str) -> tuple[int, str]:
        with in_folder(self.folder):  # data_root is relative: the data is generated here
            code, out, _ = run_cli(
                "launch", "--sweep", str(self.sweep), "--root", str(self.root), "--executor", "local",
                "--parallel", "1", "--wait", *args,
            )  # fmt: skip
        return code, out


def launched(folder: Path, text: str) -> Cell:
    cell = Cell(folder, write_sweep(folder, text, "diverging"), folder / "runs", 0)
    cell.code, _ = cell.launch()
    return cell


@pytest.fixture(scope="module")
def diverged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cell]:
    yield launched(tmp_path_factory.mktemp("diverged"), SWEEP)


def trained_iterations(work_dir: Path) -> list[int]:
    """The global iterations of the training lines of the cell's mmengine logs."""
    found = []
    for log in work_dir.glob("*/*.log"):
        for epoch, i, per_epoch in TRAIN_LINE.findall(log.read_text()):
            found.append((int(epoch) - 1) * int(per_epoch) + int(i))
    return found


@pytest.mark.slow
def test_a_diverging_cell_stops_early_failed_with_the_reason(diverged: Cell) -> None:
    r = diverged.result()
    assert diverged.code == 1 and r["status"] == "failed"
    found = REASON.fullmatch(r["error"])
    assert found, r["error"]
    x = int(found[1])
    assert x <= 10 < ITERATIONS  # a few iterations into a schedule of 40
    assert r["iterations"] == x - 1 and r["epochs"] < 20  # those it completed before the diverged one
    logged = trained_iterations(diverged.work_dir())
    assert logged and max(logged) <= x  # log_interval 1: nothing trained past it
    assert r["log_tail"].splitlines()[-1] == r["error"]
    assert "Traceback" not in r["log_tail"]


@pytest.mark.slow
def test_status_shows_the_diverged_cell_failed(diverged: Cell) -> None:
    shown = run_script("ablation", "status", "--sweep", str(diverged.sweep), "--root", str(diverged.root))
    assert shown.returncode == 0, shown.stderr
    (row,) = [line for line in shown.stdout.splitlines() if line.startswith("faster-rcnn")]
    assert row.split()[3] == "failed"


@pytest.mark.slow
def test_the_attempt_record_of_a_real_cell(diverged: Cell) -> None:
    (attempt,) = read_attempts(diverged.work_dir())
    assert (attempt.attempt, attempt.executor, attempt.processes, attempt.gpus) == (1, "local", 1, 0)
    assert attempt.threads == max(1, os.cpu_count() or 1)  # --parallel 1: every core
    assert attempt.ended is not None and attempt.wall_s > 0
    assert attempt.job_id  # submitit's local job id


@pytest.mark.slow
def test_retry_failed_runs_the_diverged_cell_again(diverged: Cell, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(diverged.folder, folder)
    again = dataclasses.replace(
        diverged, folder=folder, sweep=folder / diverged.sweep.name, root=folder / "runs"
    )
    code, out = again.launch("--retry-failed")
    assert out.startswith("submitted 1 of 1 cells"), out
    r = again.result()
    assert (code, r["attempt"], r["status"]) == (1, 2, "failed")  # it diverges again, from its checkpoint
    assert REASON.fullmatch(r["error"]), r["error"]
    records = read_attempts(again.work_dir())
    assert [a.attempt for a in records] == [1, 2] and all(a.ended for a in records)


@pytest.mark.slow
def test_with_the_stop_off_the_same_cell_trains_on(tmp_path: Path) -> None:
    text = replaced(
        SWEEP,
        ("epochs = 20", "epochs = 2"),
        ("warmup_iters = 4", "warmup_iters = 4\nstop_on_divergence = false"),
    )
    cell = launched(tmp_path, text)
    r = cell.result()
    assert r["iterations"] == 4, (r["error"], r["log_tail"])  # every iteration of its 2 epochs, NaN or not
    assert r["error"] is None or not r["error"].startswith("diverged")
    assert any(" loss: nan" in log.read_text() for log in cell.work_dir().glob("*/*.log"))
    (attempt,) = read_attempts(cell.work_dir())  # a cell that ran to its end: one attempt, ended
    assert attempt.ended is not None and attempt.wall_s > 0 and attempt.processes == 1


# 4. Every rank of a multi-task cell stops at the same iteration ---------------------------------------------


@pytest.mark.slow
def test_every_rank_stops_at_the_iteration_where_one_rank_diverged() -> None:
    """Two gloo processes, each feeding the hook its own losses: one rank's NaN stops both at its iteration
    (they decide on the ranks' mean); finite losses, however different, stop neither."""
    diverging = [[2.0, 1.5, 1.0, 0.9, 0.8], [2.1, 1.6, math.nan, 0.9, 0.8]]
    healthy = [[2.0, 1.0, 1e30], [2.0, 1.0, 3.0]]
    answers = run_ranks([[diverging[0], healthy[0]], [diverging[1], healthy[1]]])
    reason = "diverged at iteration 3: loss nan"
    assert answers == [(0, [(3, reason), (None, None)]), (1, [(3, reason), (None, None)])]
