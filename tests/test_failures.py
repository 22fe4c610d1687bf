"""The failure contract, through the real CLI: a user mistake is one line ``error: ...`` and exit 2, with
nothing written; a bad file met while working is one line naming it, the rest of the work goes on, exit 1;
Ctrl-C is one line and exit 130; a bug is one line saying so, exit 1. Never a traceback unless --debug."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ablation.cli.commands import main
from ablation.errors import LogFormatError, ManifestError, WriteError
from ablation.results.store import Store
from ablation.run import locks, manifest
from ablation.run import result_file as results
from ablation.run.result_file import CellResult, load_result, read_result, write_result

from .helpers.cli import run_cli, venv_bin, write_sweep

plan_module = importlib.import_module("ablation.grid.plan")  # the package's attribute `plan` is the function
harvest_module = importlib.import_module("ablation.results.harvest")

HINT = "(run `ablation --debug ...` or set ABLATION_DEBUG=1 for the traceback)"
VALUES = "values may be strings, integers, finite numbers, true or false, and lists and tables of those"
NOT_A_NAME = (
    "is not a Python name (letters, digits and '_', not starting with a digit, not a keyword): "
    "the keys become names in the config"
)


def local_sweep(folder: Path, extra: str = "", name: str = "mine") -> Path:
    """A sweep whose base config is a file beside it: plans without mmdet's configs."""
    (folder / "base.py").write_text("model = dict(backbone=dict(type='ResNet', depth=50))\n")
    return write_sweep(folder, f'[model]\nbase_config = "base.py"\n{extra}', name)


# 1. [overrides] is checked when the sweep loads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('"bad-key" = 1', f"[overrides] key 'bad-key' {NOT_A_NAME}"),
        ("class = 1", f"[overrides] key 'class' {NOT_A_NAME}"),
        (
            'model."backbone.depth" = 50',
            f"[overrides] key 'backbone.depth' (under model) {NOT_A_NAME}; write nested keys unquoted, as "
            "model.backbone.depth = 50",
        ),
        ("x = nan", f"[overrides] x = nan is not a finite number; {VALUES}"),
        ("model.lr = -inf", f"[overrides] model.lr = -inf is not a finite number; {VALUES}"),
        ("y = [1, [2, inf]]", f"[overrides] y[1][1] = inf is not a finite number; {VALUES}"),
        (
            "when = 1979-05-27T07:32:00Z",
            f"[overrides] when = 1979-05-27T07:32:00+00:00 is a TOML date-time; {VALUES}",
        ),
        ("a.day = 1979-05-27", f"[overrides] a.day = 1979-05-27 is a TOML date; {VALUES}"),
        ("a = [{t = 07:32:00}]", f"[overrides] a[0].t = 07:32:00 is a TOML time; {VALUES}"),
        ('_base_ = "other.py"', "[overrides] key '_base_': set the base config with [model] base_config"),
    ],
)
def test_a_bad_override_is_one_line_and_exit_2_before_anything_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, body: str, message: str
) -> None:
    sweep = local_sweep(tmp_path, f"[overrides]\n{body}\n")
    code, out, err = run_cli("plan", "--sweep", str(sweep), "--root", str(tmp_path / "runs"), capsys=capsys)
    assert (code, out) == (2, "")
    assert err == f"error: {sweep}: {message}\n"
    assert not (tmp_path / "runs").exists()


def test_good_overrides_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    body = '[overrides]\nmodel.test_cfg.rcnn.score_thr = 0.0\nx_1 = [1, 2.5, "s", true, {_delete_ = true}]\n'
    sweep = local_sweep(tmp_path, body + '[grid]\ncodes = ["0010"]\ndcn = [false]\n')
    code, _, err = run_cli("plan", "--sweep", str(sweep), "--root", str(tmp_path / "runs"), capsys=capsys)
    assert (code, err) == (0, "")
    (config,) = (tmp_path / "runs" / "mine" / "configs").glob("*.py")
    assert "x_1 = [1, 2.5, 's', True, dict(_delete_=True)]" in config.read_text()


# 2. A bad result.json is named in one line; the other runs are harvested; exit 1 ----------------------------


def good_result(**changes: object) -> dict[str, object]:
    result = CellResult(
        status="done",
        sweep="mine",
        cell="faster-rcnn_r50-attn0010_fpn_1x_coco",
        cell_id="0123456789ab",
        code="0010",
        dcn=False,
        config="c.py",
        config_hash="f" * 64,
        attempt=1,
        host="h",
        pid=1,
        started="2025-01-01T00:00:00+00:00",
        finished="2025-01-01T01:00:00+00:00",
        metrics={"bbox_mAP": 0.4},
        epochs=12,
    )
    return {**dataclasses.asdict(result), **changes}


BAD_RESULTS = {
    "epochs-text": ({"epochs": "two"}, "field 'epochs' is \"two\", expected an integer or null"),
    "metrics-list": ({"metrics": [1]}, "field 'metrics' is [1], expected an object of numbers or nulls"),
    "dcn-text": ({"dcn": "yes"}, "field 'dcn' is \"yes\", expected true or false"),
    "params-float": ({"params": 1.5}, "field 'params' is 1.5, expected an integer or null"),
    "status": (
        {"status": "finished"},
        'field \'status\' is "finished", expected one of "running", "done", "failed"',
    ),
    "code": (
        {"code": "12"},
        "not a run of the store: bad attention code '12': a code is 4 characters, each 0 or 1 "
        "('0000'..'1111')",
    ),
    "newer": (
        {"schema_version": results.SCHEMA_VERSION + 1},
        f"written with result schema {results.SCHEMA_VERSION + 1}, newer than this ablation's "
        f"{results.SCHEMA_VERSION}; upgrade ablation to read it",
    ),
    "no-sweep": ({"sweep": None}, "field 'sweep' is null, expected a string"),
    "huge": ({"params": 10**30}, f"field 'params' is {10**30}, beyond 64-bit integers"),
}


def test_load_result_checks_the_fields_types_and_version(tmp_path: Path) -> None:
    for name, (changes, message) in BAD_RESULTS.items():
        if name == "code":  # a string, as the field says: the store rejects it (below)
            continue
        folder = tmp_path / name
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps(good_result(**changes)))
        with pytest.raises(LogFormatError) as error:
            load_result(folder)
        assert str(error.value) == f"{folder / 'result.json'}: {message}"
        assert read_result(folder) is None
    del_status = good_result()
    del del_status["status"]
    (tmp_path / "result.json").write_text(json.dumps(del_status))
    with pytest.raises(LogFormatError, match=r"result.json: not a result \(missing field 'status'\)$"):
        load_result(tmp_path)


def test_harvest_names_each_bad_result_and_harvests_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    for name, (changes, _) in {"good": ({}, ""), **BAD_RESULTS}.items():
        (runs / name).mkdir(parents=True)
        cell = {"cell": f"cell-{name}"}
        (runs / name / "result.json").write_text(json.dumps(good_result(**cell, **changes)))
    store = tmp_path / "store"
    code, out, err = run_cli(
        "harvest", "--sweep", str(runs), "--store", str(store), "--no-reference", capsys=capsys
    )
    assert code == 1
    summary = f"harvested 1 run: 1 new, 0 updated, 0 unchanged; {len(BAD_RESULTS)} not readable"
    assert out == f"{summary} into {store} (1 runs in the store)\n"
    expected = [
        f"warning: {runs / name / 'result.json'}: {message}"
        for name, (_, message) in sorted(BAD_RESULTS.items())
    ]
    assert err.splitlines() == expected
    code, out, _ = run_cli("export", "--store", str(store), "--format", "csv", capsys=capsys)
    assert code == 0 and len(out.splitlines()) == 2  # the good run


# The manifest: a bad or newer one is one line naming it, exit 1 ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "cannot read the manifest: Expecting property name enclosed in double quotes"),
        ("[]", 'not a manifest (a JSON object with a "history" list is expected)'),
        (
            json.dumps({"schema_version": manifest.SCHEMA_VERSION + 1, "history": []}),
            f"written with manifest schema {manifest.SCHEMA_VERSION + 1}, newer than this ablation's "
            f"{manifest.SCHEMA_VERSION}; upgrade ablation to read it",
        ),
        (json.dumps({"schema_version": 1, "history": [{"cell": "c"}]}), "history entry 0 has no 'cell_id'"),
        (
            json.dumps(
                {
                    "history": [
                        {
                            **dict.fromkeys(("cell", "cell_id", "executor", "job_id"), "x"),
                            **dict.fromkeys(("folder", "work_dir", "submitted"), "x"),
                            "attempt": "1",
                        }
                    ]
                }
            ),
            "history entry 0: 'attempt' is \"1\", expected an integer",
        ),
    ],
)
def test_a_bad_manifest_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, message: str
) -> None:
    sweep = local_sweep(tmp_path)
    folder = tmp_path / "runs" / "mine"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(text)
    with pytest.raises(ManifestError) as error:
        manifest.load_manifest(folder, "mine")
    assert str(error.value).startswith(f"{folder / 'manifest.json'}: {message}")
    code, out, err = run_cli("status", "--sweep", str(sweep), "--root", str(tmp_path / "runs"), capsys=capsys)
    assert (code, out) == (1, "")
    assert err.startswith(f"error: {folder / 'manifest.json'}: {message}") and err.count("\n") == 1


# 3. Ctrl-C and bugs -----------------------------------------------------------------------------------------


def _raise(error: BaseException) -> object:
    def raising(*args: object, **kwargs: object) -> object:
        raise error

    return raising


@pytest.mark.parametrize(
    ("target", "argv"),
    [
        ((plan_module, "plan"), ["plan", "--sweep", "smoke"]),
        ((harvest_module, "harvest"), ["harvest", "--no-reference"]),
        ((Store, "read"), ["export"]),
    ],
)
def test_ctrl_c_anywhere_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    target: tuple[object, str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "some-sweep").mkdir(parents=True)
    monkeypatch.setattr(*target, _raise(KeyboardInterrupt()))
    assert run_cli(*argv, capsys=capsys) == (130, "", "interrupted\n")
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", *argv])


def test_a_bug_is_one_line_saying_so_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(plan_module, "plan", _raise(RuntimeError("it broke\n  here, too")))
    code, out, err = run_cli("plan", "--sweep", "smoke", capsys=capsys)
    assert (code, out) == (1, "")
    assert err == f"internal error: RuntimeError: it broke here, too {HINT}\n"
    with pytest.raises(RuntimeError, match="it broke"):
        main(["--debug", "plan", "--sweep", "smoke"])
    monkeypatch.setenv("ABLATION_DEBUG", "1")
    with pytest.raises(RuntimeError, match="it broke"):
        main(["plan", "--sweep", "smoke"])


def test_a_real_ctrl_c_during_harvest_exits_130_with_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    count = 1500
    for i in range(count):
        (runs / f"c{i:04d}").mkdir(parents=True)
        (runs / f"c{i:04d}" / "result.json").write_text(json.dumps(good_result(cell=f"c{i:04d}")))
    store = tmp_path / "store"
    argv = [venv_bin("ablation"), "harvest", "--sweep", str(runs), "--store", str(store), "--no-reference"]
    env = {k: v for k, v in os.environ.items() if k != "ABLATION_DEBUG"}
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's Ctrl-C finds it
    )
    try:
        deadline = time.monotonic() + 120
        while not any((store / "runs").glob("*.parquet")):  # harvesting has begun
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()  # reaped whatever happened: no process outlives the test
    assert (process.returncode, out, err) == (130, "", "interrupted\n")
    written = list((store / "runs").iterdir())
    assert 0 < len(written) < count  # stopped part way, and no temp file left behind
    assert all(p.suffix == ".parquet" for p in written)


# 4. Lock files that cannot be made are one line, exit 1 -----------------------------------------------------


def test_a_lock_that_cannot_be_created_is_a_write_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for path in (blocker / "x.lock", blocker / "sub" / "x.lock", tmp_path):  # under a file; a folder
        with pytest.raises(WriteError, match=rf"^cannot write the lock file {path}: "), locks.exclusive(path):
            pass
        with pytest.raises(WriteError), locks.try_exclusive(path):
            pass
    slot = rf"^cannot write the lock file {blocker}/slot-0.lock: {blocker} is not a folder$"
    with pytest.raises(WriteError, match=slot), locks.one_slot_of(blocker, 2):
        pass


def test_launch_with_an_unwritable_lock_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data = '[dataset]\ndata_root = "data/tiny/"\nclasses = ["rectangle", "ellipse", "triangle"]\n'
    sweep = local_sweep(tmp_path, data + "synthetic = [1, 1]\n")
    lock = tmp_path / "runs" / "mine" / ".launch.lock"
    lock.mkdir(parents=True)  # a folder where the lock file goes: fails as root too
    code, out, err = run_cli(
        "launch", "--sweep", str(sweep), "--root", "runs", "--codes", "0010", capsys=capsys
    )
    assert (code, out) == (1, "")
    assert err == f"error: cannot write the lock file {lock}: Is a directory\n"
    assert not (tmp_path / "runs" / "mine" / "manifest.json").exists()


# 5. Files are created as open() would: mode 0o666 less the umask --------------------------------------------


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_honour_the_umask(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, umask: int
) -> None:
    want = 0o666 & ~umask
    sweep = local_sweep(tmp_path, '[grid]\ncodes = ["0010"]\ndcn = [false]\n')
    root, store = tmp_path / "runs", tmp_path / "store"
    assert run_cli("plan", "--sweep", str(sweep), "--root", str(root), capsys=capsys)[0] == 0
    (config,) = (root / "mine" / "configs").glob("*.py")
    work = root / "mine" / "work"
    result = write_result(work, CellResult(**good_result()))  # type: ignore[arg-type]
    manifest.save_manifest(root / "mine", manifest.Manifest(sweep="mine"))
    code, _, err = run_cli(
        "harvest", "--root", str(root), "--store", str(store), "--no-reference", capsys=capsys
    )
    assert (code, err) == (0, "")
    output = tmp_path / "table.md"
    output.write_text("an older file, 0600")
    output.chmod(0o600)
    assert run_cli("export", "--store", str(store), "-o", str(output), capsys=capsys)[0] == 0
    written = [config, result, root / "mine" / "manifest.json", output, store / "_cache.parquet"]
    written += list((store / "runs").iterdir())
    assert len(written) == 6
    assert {path.name: oct(_mode(path)) for path in written} == {path.name: oct(want) for path in written}
