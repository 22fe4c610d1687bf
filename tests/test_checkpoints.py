"""mmengine checkpoints load through torch's safe unpickler; a checkpoint that would run code does not."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.logging.history_buffer import HistoryBuffer

from ablation.model.checkpoints import allow_mmengine_checkpoints


class _RunsCode:
    """Unpickling this calls os.system: what weights_only=True exists to refuse."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, ("touch pwned",)


class _AsksForAnAttribute:
    def __reduce__(self) -> tuple[object, tuple[object, str]]:
        return getattr, (HistoryBuffer, "__init__")


@pytest.fixture(autouse=True)
def _no_allowlist_yet() -> Iterator[None]:
    """Each test starts from torch's own allowlist (other tests may have extended it in this process)."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    yield
    torch.serialization.clear_safe_globals()
    torch.serialization.add_safe_globals(saved)


def _save(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "checkpoint.pth"
    torch.save(payload, path)
    return path


def test_a_checkpoint_with_mmengine_s_message_hub_loads(tmp_path: Path) -> None:
    hub = MessageHub.get_instance("ablation-test")
    for value in (0.5, 0.25):
        hub.update_scalar("train/loss", value)
    hub.update_info("epoch", np.int64(3))
    meta = {"seed": np.float64(1)}
    state = {"state_dict": {"w": torch.ones(2)}, "message_hub": hub.state_dict(), "meta": meta}
    path = _save(tmp_path, state)
    with pytest.raises(pickle.UnpicklingError, match="Unsupported global"):
        torch.load(path)  # as mmengine 0.10.7 calls it, before the allowlist
    allow_mmengine_checkpoints()
    loaded = torch.load(path)
    assert loaded["message_hub"]["log_scalars"]["train/loss"].mean() == pytest.approx(0.375)
    assert loaded["message_hub"]["runtime_info"]["epoch"] == 3


@pytest.mark.parametrize("payload", [_RunsCode(), _AsksForAnAttribute()], ids=["os.system", "getattr"])
def test_a_checkpoint_that_would_run_code_is_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: object
) -> None:
    monkeypatch.chdir(tmp_path)
    path = _save(tmp_path, {"state_dict": {}, "evil": payload})
    allow_mmengine_checkpoints()
    with pytest.raises((pickle.UnpicklingError, ValueError)):
        torch.load(path)
    assert not (tmp_path / "pwned").exists()


def test_a_pointer_to_a_removed_checkpoint_moves_to_the_newest_there_is(tmp_path: Path) -> None:
    """mmengine removes the old checkpoint before writing the next: a job killed in between leaves
    last_checkpoint naming a file that is gone (seen on Slurm after a requeue)."""
    from ablation.run.job import LAST_CHECKPOINT, checkpoints, resume_point

    for name in ("epoch_9.pth", "epoch_10.pth", "iter_5.pth"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in checkpoints(tmp_path)] == ["epoch_9.pth", "epoch_10.pth", "iter_5.pth"]
    (tmp_path / "iter_5.pth").unlink()
    pointer = tmp_path / LAST_CHECKPOINT
    pointer.write_text(str(tmp_path / "epoch_11.pth"))
    assert resume_point(tmp_path) == tmp_path / "epoch_10.pth"
    assert pointer.read_text() == str(tmp_path / "epoch_10.pth")
    assert resume_point(tmp_path) == tmp_path / "epoch_10.pth"  # a valid pointer is left alone
    for checkpoint in checkpoints(tmp_path):
        checkpoint.unlink()
    pointer.write_text(str(tmp_path / "epoch_11.pth"))
    assert resume_point(tmp_path) is None and not pointer.exists()  # nothing to resume: start over
    assert resume_point(tmp_path) is None
