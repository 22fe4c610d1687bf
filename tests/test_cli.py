"""The CLI as a user meets it: exact output, one-line errors, exit codes."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ablation.cli.commands import main
from ablation.grid.settings import ScheduleSettings

from .helpers.cli import REPO, run_cli, run_script, venv_bin, write_sweep

GOLDEN_PLAN = REPO / "tests" / "golden" / "plan-coco-1x.txt"


def test_plan_prints_the_grid_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins the table. After an intended change, in an empty folder:

    ablation plan --sweep coco-1x > tests/golden/plan-coco-1x.txt
    """
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("plan", "--sweep", str(REPO / "experiments/sweeps/coco-1x.toml"), capsys=capsys)
    assert (code, err) == (0, "")
    assert out == GOLDEN_PLAN.read_text(), "refresh: see this test's docstring (run it in an empty folder)"
    lines = out.splitlines()
    assert lines[0].split() == ["cell", "id", "code", "factors", "dcn", "config"]
    assert len(lines) == 2 + 32 + 3
    assert lines[-2] == "32 cells of sweep coco-1x; configs in runs/coco-1x/configs"
    assert len(list((tmp_path / "runs" / "coco-1x" / "configs").glob("*.py"))) == 32


def test_plan_selects_codes_and_dcn(capsys: pytest.CaptureFixture[str], awkward_dir: Path) -> None:
    code, out, _ = run_cli(
        "plan",
        "--sweep",
        "coco-1x",
        "--codes",
        "0010,1111",
        "--codes",
        "0100",
        "--dcn",
        "on",
        "--root",
        str(awkward_dir),
        capsys=capsys,
    )
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:5]]
    assert [(r[2], r[4]) for r in rows] == [("0010", "on"), ("0100", "on"), ("1111", "on")]
    assert "3 cells of sweep coco-1x" in out
    assert sorted(p.name for p in (awkward_dir / "coco-1x" / "configs").iterdir()) == [
        "faster-rcnn_r50-attn0010-dcn_fpn_1x_coco.py",
        "faster-rcnn_r50-attn0100-dcn_fpn_1x_coco.py",
        "faster-rcnn_r50-attn1111-dcn_fpn_1x_coco.py",
    ]


@pytest.mark.parametrize(("codes", "warned"), [("0100,1110,0010", True), ("0010,1111", False)])
def test_planning_mmcv_s_module_warns_of_the_codes_it_cannot_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, codes: str, warned: bool
) -> None:
    sweep = write_sweep(tmp_path, '[model.attention]\nmodule = "mmcv"\n')
    code, _, err = run_cli(
        "plan", "--sweep", str(sweep), "--codes", codes, "--root", str(tmp_path), capsys=capsys
    )
    assert code == 0
    expected = (
        "warning: mmcv's stock GeneralizedAttention crashes on non-square feature maps for codes 0100, 1110 "
        '(mmdetection issue #8179); set [model.attention] module = "ablation" to run them\n'
    )
    assert err == (expected if warned else "")


def test_the_root_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABLATION_ROOT", str(tmp_path / "elsewhere"))
    from ablation.cli.parser import build_parser

    args = build_parser().parse_args(["plan", "--sweep", "smoke", "--dcn", "off"])
    assert args.root == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--sweep", "nope"], "error: unknown sweep 'nope'; valid sweeps: coco-1x, smoke"),
        (
            ["plan", "--sweep", "coco-1x", "--codes", "10a1"],
            "error: argument --codes: bad attention code '10a1': a code is 4 characters, each 0 or 1",
        ),
        (
            ["plan", "--sweep", "coco-1x", "--codes", "11111"],
            "error: argument --codes: bad attention code '11111'",
        ),
        (
            ["launch", "--sweep", "smoke", "--parallel", "0"],
            "error: argument --parallel: expected a whole number of at least 1, got '0'",
        ),
        (
            ["plan", "--sweep", "coco-1x", "--dcn", "maybe"],
            "error: argument --dcn: invalid choice: 'maybe' (choose from 'on', 'off', 'both')",
        ),
        (["plan"], "error: the following arguments are required: --sweep"),
        (
            ["frobnicate"],
            "error: argument COMMAND: invalid choice: 'frobnicate' (choose from 'plan', 'launch', 'status', "
            "'cancel', 'run', 'sweeps', 'harvest', 'import-log', 'export', 'report', 'effects', 'dashboard')",
        ),
        (
            ["export", "--format", "html"],
            "error: argument --format: invalid choice: 'html' (choose from 'markdown', 'csv', 'latex')",
        ),
        (
            ["export", "--source", "mine"],
            "error: argument --source: invalid choice: 'mine' (choose from 'run', 'log', 'reference')",
        ),
        (["export", "--baseline", "12"], "error: argument --baseline: bad attention code '12'"),
        (["import-log"], "error: the following arguments are required: FILE.log.json"),
        (
            ["dashboard", "--port", "99999"],
            "error: argument --port: expected a port number 1..65535, got '99999'",
        ),
        (["import-log", "x.log.json", "--dcn", "yes"], "error: argument --dcn: invalid choice: 'yes'"),
    ],
)
def test_user_mistakes_get_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    code, out, err = run_cli(
        *argv, *(["--root", str(tmp_path)] if argv[0] == "plan" and len(argv) > 1 else []), capsys=capsys
    )
    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_code_outside_the_grid_gets_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sweep = write_sweep(tmp_path, '[grid]\ncodes = ["0000", "0010", "1111"]\n')
    code, out, err = run_cli(
        "plan", "--sweep", str(sweep), "--codes", "0100", "--root", str(tmp_path / "r"), capsys=capsys
    )
    assert (code, out) == (2, "")
    assert err == "error: code 0100 not in this sweep's grid; its codes: 0000, 0010, 1111\n"
    assert not (tmp_path / "r").exists()


def test_a_bad_sweep_file_gets_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_sweep(tmp_path, "[schedule]\nepoch = 3\n")
    code, _, err = run_cli("plan", "--sweep", str(path), "--root", str(tmp_path / "runs"), capsys=capsys)
    assert code == 2
    valid = ", ".join(f.name for f in dataclasses.fields(ScheduleSettings))
    assert valid.startswith("name, epochs, optimizer, lr, ")
    assert err == f"error: {path}: [schedule] unknown key 'epoch'; valid keys: {valid}\n"
    assert not (tmp_path / "runs").exists()


def test_debug_shows_the_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ablation import UnknownSweepError

    monkeypatch.setenv("ABLATION_DEBUG", "1")
    with pytest.raises(UnknownSweepError):
        main(["plan", "--sweep", "nope", "--root", str(tmp_path)])


def test_sweeps_lists_the_files(capsys: pytest.CaptureFixture[str], in_repo: Path) -> None:
    code, out, _ = run_cli("sweeps", capsys=capsys)
    assert code == 0
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:]}
    assert rows == {"coco-1x": "32", "smoke": "32", "study": "32"}


def test_the_console_script_runs_outside_the_checkout(awkward_dir: Path) -> None:
    done = run_script("ablation", "plan", "--sweep", "smoke", "--codes", "0010", cwd=awkward_dir)
    assert done.returncode == 0, done.stderr
    assert "2 cells of sweep smoke; configs in runs/smoke/configs" in done.stdout
    failed = run_script("ablation", "plan", "--sweep", "smoke", "--codes", "2", cwd=awkward_dir)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    """`true` exits before ablation prints, so every write meets a closed pipe (as `| head` can)."""
    done = subprocess.run(
        f"'{venv_bin('ablation')}' plan --sweep coco-1x --root '{tmp_path}' | true",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stderr == ""
    assert len(list(tmp_path.glob("coco-1x/configs/*.py"))) == 32


def test_launching_without_the_dataset_gets_one_line_and_submits_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("launch", "--sweep", "coco-1x", "--root", "runs", capsys=capsys)
    assert (code, out) == (2, "")
    missing = tmp_path / "data" / "coco"
    assert err == (
        f"error: dataset 'coco': {missing}: no such folder (data_root 'data/coco/' is taken relative to "
        f"{tmp_path}; point [dataset] data_root at a COCO 2017 with annotations/, train2017/, val2017/)\n"
    )
    assert not (tmp_path / "runs" / "coco-1x" / "manifest.json").exists()
    assert not (tmp_path / "runs" / "coco-1x" / "jobs").exists()


def test_an_unwritable_root_gets_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the sweep folders should go")
    code, out, err = run_cli("plan", "--sweep", "smoke", "--root", str(blocker), capsys=capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: cannot write {blocker}/smoke/configs/") and err.count("\n") == 1
    assert blocker.read_text() == "a file where the sweep folders should go"


def test_sweeps_reports_a_broken_file_and_lists_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "experiments" / "sweeps"
    folder.mkdir(parents=True)
    write_sweep(folder, "[grid]\nmodes = 1\n", name="broken")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("sweeps", capsys=capsys)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert "INVALID: [grid] unknown key 'modes'" in rows["broken"]
    assert rows["coco-1x"].split()[1] == "32"


GOLDEN_SBATCH = REPO / "tests" / "golden" / "sbatch-smoke.txt"


def test_a_slurm_dry_run_prints_the_sbatch_script_exactly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins the job array's sbatch script. After an intended change, in an empty folder:

    ablation launch --sweep smoke --executor slurm --codes 0000,1111 --dry-run --root R \\
      | sed "s|$PWD/R|<root>|g; s|$(which python)|<python>|g" > tests/golden/sbatch-smoke.txt

    It runs without scontrol on PATH, as one array: a cluster whose MaxArraySize is under 4 (slurm/cluster's
    is 3) would split the 4 cells into several (tests/test_slurm_arrays.py, tests/test_slurm.py).
    """
    monkeypatch.chdir(tmp_path)
    only_srun = tmp_path / "bin"  # submitit's SlurmExecutor wants srun on PATH
    only_srun.mkdir()
    if srun := shutil.which("srun"):
        (only_srun / "srun").symlink_to(srun)
    monkeypatch.setenv("PATH", str(only_srun))
    argv = (
        "launch",
        "--sweep",
        "smoke",
        "--executor",
        "slurm",
        "--codes",
        "0000,1111",
        "--dry-run",
        "--root",
        "R",
    )
    code, out, err = run_cli(*argv, capsys=capsys)
    assert (code, err) == (0, "")
    shown = out.replace(str(tmp_path / "R"), "<root>").replace(sys.executable, "<python>")
    assert shown == GOLDEN_SBATCH.read_text(), "refresh: see this test's docstring"
    assert not (tmp_path / "R" / "smoke" / "manifest.json").exists()  # nothing submitted


def test_the_executor_flags_name_every_backend() -> None:
    from ablation.cli.parser import _EXECUTORS
    from ablation.run.executors import BACKENDS

    assert tuple(BACKENDS) == _EXECUTORS


def test_the_command_s_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """A subcommand's summary with a '%' ('95% intervals') once broke argparse's help."""
    code, out, _ = run_cli("--help", capsys=capsys)
    assert code == 0
    for name in ("plan", "launch", "status", "export", "effects", "report", "dashboard"):
        assert f"\n    {name}" in out
    assert "95% intervals" in out


def test_plan_and_status_do_not_load_the_results_layer(tmp_path: Path) -> None:
    """Their arguments come first; export's and effects' (which load pandas) only when those are run."""
    script = (
        "import sys\nfrom ablation.cli.commands import main\n"
        f"for argv in (['plan', '--sweep', 'smoke', '--root', {str(tmp_path)!r}],"
        f" ['status', '--sweep', 'smoke', '--root', {str(tmp_path)!r}]):\n"
        "    assert main(argv) == 0\n"
        "heavy = ('pandas', 'ablation.results.table', 'submitit', 'cv2')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
