"""The command line as issue #31's campaign tried it, as tests: Ctrl-C at random moments into real
``ablation`` processes, launches that must write nothing, and the dashboard's address.

Ctrl-C at any moment ends a command with ``interrupted`` and exit 130 (or it had already finished, exit 0);
never a traceback. The one exception the package cannot reach is Python's own start-up, before the console
script calls ``ablation.cli.main`` (the interpreter's site packages, the editable install's finder, finding
the package): a signal landing there is Python's to report, and is counted apart. A signal before Python
installs its handler kills the process outright (-SIGINT, no output), as it does any program.
"""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ablation.cli.arguments import serving_address
from tests.helpers.cli import REPO, run_script, venv_bin
from tests.helpers.store import grid_runs, store_with

PACKAGE = REPO / "ablation"
SIGNALS = 60
SEED = 31


def _commands(tmp: Path) -> list[list[str]]:
    """The commands Ctrl-C is tried on: planning, reading the store, launching (a dry run), listing."""
    store = str(store_with(tmp, grid_runs()).path)
    return [
        ["plan", "--sweep", "smoke", "--root", str(tmp / "R")],
        ["status", "--sweep", "smoke", "--root", str(tmp / "R")],
        ["sweeps"],
        ["export", "--store", store],
        ["effects", "--sweep", "grid", "--store", store],
        ["launch", "--sweep", "smoke", "--executor", "local", "--dry-run", "--root", str(tmp / "R")],
    ]


def _interrupt(argv: Sequence[str], delay: float, cwd: Path) -> tuple[int, str]:
    """Start ``argv``, send SIGINT after ``delay`` seconds (unless it ended), and return its exit status and
    stderr."""
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)  # the moment under test, not a wait for something
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def _outcome(code: int, err: str) -> str:
    """The class of one interrupted (or finished) run."""
    if "Traceback" not in err:
        if code == 130 and err.endswith("interrupted\n"):
            return "interrupted"
        if code == 0:
            return "finished"
        if code == -signal.SIGINT and not err:
            return "killed before Python's handler"
        return f"unexpected: exit {code}: {err[-200:]!r}"
    frames = [Path(file) for file, _ in re.findall(r'File "([^"]+)", line \d+, in (\S+)', err)]
    ours = [file for file in frames if file.is_relative_to(PACKAGE)]
    if any(file not in _IMPORTED_FIRST for file in ours) or re.search(
        r"ablation/cli/__init__.py.*in main", err
    ):
        return "traceback from the command"  # the entry point was running: the package's to catch
    if ours:
        return "traceback importing the entry point"
    return "traceback in Python's start-up"


# what the console script runs of the package before it calls main: its imports, kept tiny
_IMPORTED_FIRST = {PACKAGE / "__init__.py", PACKAGE / "errors.py", PACKAGE / "cli" / "__init__.py"}


def test_ctrl_c_at_random_moments_is_interrupted_and_130_never_a_traceback(tmp_path: Path) -> None:
    commands = _commands(tmp_path)
    rng = random.Random(SEED)
    entries = [[venv_bin("ablation")], [sys.executable, "-m", "ablation"]]
    runs = []
    for k in range(SIGNALS):
        entry = entries[k % 7 == 6]  # one in seven through `python -m ablation`
        delay = rng.uniform(0, 1.5)
        runs.append(([*entry, *rng.choice(commands)], delay))
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda run: _interrupt(run[0], run[1], tmp_path), runs))
    classes = Counter(_outcome(code, err) for code, err in outcomes)
    print(
        f"Ctrl-C: {SIGNALS} signals, {classes['traceback from the command']} tracebacks from the command; "
        + ", ".join(f"{n} {name}" for name, n in sorted(classes.items()))
    )
    odd = [(run, outcome) for run, outcome in zip(runs, outcomes, strict=True) if _bad(*outcome)]
    assert not odd, odd[:3]
    assert classes["interrupted"] >= SIGNALS // 5  # many land while a command runs


def _bad(code: int, err: str) -> bool:
    outcome = _outcome(code, err)
    return outcome == "traceback from the command" or outcome.startswith("unexpected")


def test_the_console_script_imports_only_the_entry_point_before_main() -> None:
    """What loads before ``main`` can catch Ctrl-C is all of the package a signal can interrupt with a
    traceback: the package's and the entry point's modules, not the commands (typing, argparse, pandas)."""
    code = "import sys, ablation.cli; print(sorted(m for m in sys.modules if m.startswith('ablation')))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == "['ablation', 'ablation.cli', 'ablation.errors']"


# --- a launch writes nothing before everything is checked -----------------------------------------------

SMOKE = (REPO / "experiments" / "sweeps" / "smoke.toml").read_text(encoding="utf-8")


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize(
    ("sweep_text", "flags", "expected"),
    [
        (
            re.sub(r"\nsynthetic = .*", "", SMOKE).replace(
                'data_root = "data/smoke/"', 'data_root = "nodata/"'
            ),
            (),
            r"error: dataset 'shapes': .*nodata: no such folder \(data_root 'nodata/' is taken relative to",
        ),
        (
            SMOKE,
            ("--partition", "gpu\n#SBATCH --x"),
            r"error: --partition 'gpu\\n#SBATCH --x' is not a Slurm name",
        ),
        (
            SMOKE,
            ("--mem-gb", "-4"),
            r"error: argument --mem-gb: expected a whole number of at least 1, got '-4'",
        ),
        (
            SMOKE,
            ("--gpus", "1000000000000"),
            r"error: --gpus must be an integer from 0 to \d+, got 1000000000000",
        ),
        (SMOKE, ("--qos", "x;y"), r"error: --qos 'x;y' is not a Slurm name"),
    ],
    ids=["missing-data-root", "partition-newline", "mem-gb-negative", "gpus-huge", "qos-semicolon"],
)
def test_a_refused_launch_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, sweep_text: str, flags: tuple[str, ...], expected: str
) -> None:
    (tmp_path / "mine.toml").write_text(sweep_text, encoding="utf-8")
    before = _tree(tmp_path)
    argv = ("launch", "--sweep", "mine.toml", "--executor", "local", "--codes", "0000", "--root", "R", *flags)
    result = run_script("ablation", *argv, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr.count("\n")) == (2, "", 1), result.stderr
    assert re.match(expected, result.stderr), result.stderr
    assert _tree(tmp_path) == before  # no configs, dataset, lock or manifest


def test_a_local_dry_run_writes_nothing_and_says_what_the_launch_would_do(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text(SMOKE, encoding="utf-8")
    argv = (
        "launch",
        "--sweep",
        "mine.toml",
        "--executor",
        "local",
        "--codes",
        "0000",
        "--dry-run",
        "--root",
        "R",
    )
    result = run_script("ablation", *argv, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert re.fullmatch(
        r"dry run: would generate the synthetic dataset in data/smoke, write 2 configs to R/mine/configs and "
        r"start 2 of 2 cells of sweep mine \(local, \d+ at a time\); nothing written or started\n",
        result.stdout,
    ), result.stdout
    assert "#SBATCH" not in result.stdout
    assert _tree(tmp_path) == ["mine.toml"]


# --- the dashboard's address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "--address '' is empty"),
        (" ", "--address ' ' is empty"),
        ("999.1.1.1", "--address '999.1.1.1' is not an IP address"),
        ("10.1", "--address '10.1' is not an IP address"),
        (
            "192.0.2.1",
            "--address '192.0.2.1': cannot listen on 192.0.2.1 port",
        ),  # TEST-NET-1: not this machine
    ],
)
def test_an_unusable_dashboard_address_is_one_line_exit_2_before_any_server(
    tmp_path: Path, address: str, problem: str
) -> None:
    result = run_script("ablation", "dashboard", "--address", address, "--store", "S", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr.count("\n")) == (2, "", 1), result.stderr
    assert result.stderr.startswith(f"error: {problem}")
    assert "127.0.0.1 (the default: this machine only)" in result.stderr  # the valid values
    assert list(tmp_path.iterdir()) == []


def test_a_dashboard_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = run_script("ablation", "dashboard", "--port", port, "--store", "S", cwd=tmp_path)
    assert (result.returncode, result.stderr.count("\n")) == (2, 1), result.stderr
    assert f"cannot listen on 127.0.0.1 port {port} (Address already in use)" in result.stderr


def test_only_an_address_beyond_this_machine_says_it_is_reachable_from_others() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert serving_address("127.0.0.1", port) is None
    assert serving_address("localhost", port) is None
    note = serving_address("0.0.0.0", port)
    assert note is not None and "reachable from other machines" in note and "\n" not in note


def test_ctrl_c_that_a_library_turns_into_its_own_error_is_still_interrupted() -> None:
    """numpy turns a KeyboardInterrupt during its import into an ImportError (with no trace of it): the
    entry point's SIGINT handler saw Ctrl-C, so the command ends ``interrupted``, 130, not ``internal
    error``."""
    code = (
        "import signal, sys\n"
        "import ablation.cli.commands as commands\n"
        "def loading(args):\n"
        "    try:\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        raise ImportError('Unable to import required dependency numpy') from None\n"
        "commands.COMMANDS['sweeps'] = loading\n"
        "from ablation.cli import main\n"
        "sys.exit(main(['sweeps']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (result.returncode, result.stderr) == (130, "interrupted\n")
