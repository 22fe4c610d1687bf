"""How a launch is split into job arrays under the cluster's MaxArraySize, without a cluster: the split, the
reading of ``scontrol show config``, and the sbatch scripts a dry run prints (test_slurm.py runs them on
the real cluster)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ablation.errors import EnvironmentProblem
from ablation.grid.sweep import load_sweep
from ablation.run.slurm import (
    arrays,
    max_array_size,
    parameters,
    parse_max_array_size,
    sacct_jobs,
    sbatch_script,
    sbatch_scripts,
)

# An excerpt of Slurm 22.05's `scontrol show config`, around the line that counts.
CONFIG = """Configuration data as of 2026-12-02T01:13:02
AccountingStorageBackupHost = (null)
MailProg                = /bin/true
MaxArraySize            = 3
MaxDBDMsgs              = 20004
MaxJobCount             = 10000
MaxStepCount            = 40000
"""


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (4, None, [("n", 4)]),  # no scontrol: one array, as on a laptop's dry run
        (4, 1001, [("n", 4)]),  # Slurm's default: the launch's name unchanged
        (3, 3, [("n", 3)]),  # exactly the limit: indices 0-2 are allowed
        (4, 3, [("n-1", 3), ("n-2", 1)]),
        (7, 3, [("n-1", 3), ("n-2", 3), ("n-3", 1)]),
        (3, 0, [("n-1", 1), ("n-2", 1), ("n-3", 1)]),  # arrays disabled: plain one-cell jobs
        (2, 1, [("n-1", 1), ("n-2", 1)]),  # only index 0: one-cell jobs too
        (1, 0, [("n", 1)]),  # a single cell is a plain job anyway
        (0, 3, []),
    ],
)
def test_a_launch_goes_out_as_arrays_of_at_most_max_array_size_cells(
    count: int, limit: int | None, expected: list[tuple[str, int]]
) -> None:
    cells = [f"cell{i}" for i in range(count)]
    split = arrays("n", cells, limit)
    assert [(name, len(part)) for name, part in split] == expected
    assert [cell for _, part in split for cell in part] == cells  # every cell once, in order


def test_max_array_size_is_read_from_scontrol_show_config() -> None:
    assert parse_max_array_size(CONFIG) == 3
    assert parse_max_array_size(CONFIG.replace("= 3\n", "= 0\n")) == 0
    with pytest.raises(EnvironmentProblem, match="no MaxArraySize"):
        parse_max_array_size(CONFIG.replace("MaxArraySize", "MaxArrayWidth"))


def test_without_scontrol_the_max_array_size_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it: a laptop without Slurm
    assert max_array_size() is None


def test_a_dry_run_prints_each_array_s_script_after_a_line_naming_it(tmp_path: Path) -> None:
    params = parameters(load_sweep("smoke"), {})
    split = arrays("ablation-smoke-DRYRUN", list(range(4)), 3)
    shown = sbatch_scripts(tmp_path, split, params)
    assert shown == (
        "# array 1 of 2: 3 cells\n"
        + sbatch_script(tmp_path, "ablation-smoke-DRYRUN-1", params, 3)
        + "# array 2 of 2: 1 cell\n"
        + sbatch_script(tmp_path, "ablation-smoke-DRYRUN-2", params, 1)
    )
    first, second = shown.split("# array 2 of 2")
    assert "#SBATCH --array=0-2%" in first and "--array" not in second  # one cell: a plain job
    one = sbatch_scripts(tmp_path, [("ablation-smoke-DRYRUN", [0, 1])], params)
    assert one == sbatch_script(tmp_path, "ablation-smoke-DRYRUN", params, 2)  # as before: no comment


def test_one_sacct_call_answers_for_every_array(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks of two arrays and a plain job in one ``-j`` list, a pending range expanded (the only fake is
    the sacct executable, which records its arguments; test_slurm.py counts the real calls)."""
    calls, output = tmp_path / "calls", tmp_path / "output"
    output.write_text(
        "12_0|COMPLETED|5|cpu=1\n12_1|RUNNING|3|cpu=1\n12_2|FAILED|1|cpu=1\n13_[0-2%3]|PENDING|0|\n"
        "14|CANCELLED by 0|0|\n"
    )
    script = tmp_path / "sacct"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{calls}"\ncat "{output}"\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    ids = ["12_0", "12_1", "12_2", "13_0", "13_1", "13_2", "14"]
    jobs = sacct_jobs(ids)
    assert calls.read_text().splitlines() == [
        "-n -X -P -D --format=JobID,State,ElapsedRaw,AllocTRES -j 12,13,14"
    ]
    assert [jobs[i].state for i in ids] == [
        "COMPLETED", "RUNNING", "FAILED", "PENDING", "PENDING", "PENDING", "CANCELLED",
    ]  # fmt: skip
