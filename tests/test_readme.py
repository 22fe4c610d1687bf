"""The README's promises: its two opening commands, and the settings reference it carries."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ablation.cli.table import markdown_table
from ablation.grid.schema import describe
from ablation.grid.sweep import SweepFile

from .conftest import REPO, run_script

README = (REPO / "README.md").read_text(encoding="utf-8")
SETUP = "bash .ci/setup && "


def opening_commands() -> dict[str, str]:
    block = README.split("```", 2)[1]
    commands = {}
    for line in block.splitlines()[1:]:
        command, _, tag = line.partition("#")
        commands[tag.strip()] = command.strip()
    return commands


def test_the_readme_opens_with_the_main_job_and_the_tests_both_setting_up_first() -> None:
    commands = opening_commands()
    assert set(commands) == {"the main job", "the tests"}
    assert all(c.startswith(SETUP) for c in commands.values())
    assert README.index("```") < README.index("## ")  # before any section


def test_ci_runs_the_readme_s_test_command() -> None:
    found = subprocess.run(
        ["bash", ".ci/run", "--print"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert found.stdout == opening_commands()["the tests"] + "\n"


def test_the_main_job_runs(tmp_path: Path) -> None:
    """The README's main command, on one of its cells (test_run.py runs more; the whole sweep is measured
    by hand, see the README)."""
    command = opening_commands()["the main job"].removeprefix(SETUP)
    program, *args = command.split()
    assert args == ["run", "--sweep", "smoke"]
    env = {**os.environ, "ABLATION_ROOT": str(tmp_path / "runs")}
    done = run_script(Path(program).name, *args, "--codes", "1100", "--dcn", "off", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "submitted 1 of 1 cells of sweep smoke (local)"
    assert done.stdout.splitlines()[-1] == "1 cell: 1 done"
    assert (tmp_path / "data" / "smoke" / "annotations" / "train.json").is_file()
    work = tmp_path / "runs" / "smoke" / "work"
    assert len(list(work.glob("*/*/result.json"))) == 1
    assert not list(work.glob("*/*/*.pth"))  # keep_checkpoints = "none": removed once the cell is done


def test_the_settings_reference_is_current() -> None:
    found = re.search(r"<!-- sweep-schema:start -->\n(.*?)\n<!-- sweep-schema:end -->", README, re.S)
    assert found, "README.md lost its sweep-schema markers"
    expected = markdown_table(("key", "default", "meaning"), describe(SweepFile))
    assert found.group(1) == expected, "refresh with: ablation sweeps --schema --markdown"
