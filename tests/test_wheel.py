"""The package as people install it on a cluster: a wheel (``pip install .``, not editable) in a fresh
environment, run from an empty folder. The sweeps, the model-zoo reference rows and the dashboard app come
from the wheel's package data, not from this checkout.

The fresh environment reuses this one's torch/mmcv/mmdet stack through a .pth line naming its site-packages:
a folder named that way is only put on sys.path (its own .pth files are not run), so the editable install of
this checkout in it stays out of sight, as the test checks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ablation.shipped import SHIPPED, shipped

from .helpers.browser import CHROMIUM, FLAGS, free_port, wait_until_served
from .helpers.cli import FIXTURES, GOLDEN, REPO
from .helpers.tables import table_rows


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path  # the fresh environment's scripts
    site: Path  # its site-packages, where the wheel went
    cwd: Path  # an empty folder, far from the checkout
    env: dict[str, str]

    def ablation(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "ablation"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert not check or done.returncode == 0, f"ablation {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    # pip builds in the source tree (build/, *.egg-info), so the wheel is built from a copy of what it packs
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("ablation", "experiments", "dashboard"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", work / "dist", source)
    (wheel,) = (work / "dist").glob("ablation-*.whl")

    # a fresh environment from the base interpreter, seeing this environment's packages through a .pth line
    prefix = work / "env"
    base = getattr(sys, "_base_executable", sys.executable)
    _run(base, "-m", "venv", "--without-pip", prefix)
    python = prefix / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    ours = dict.fromkeys(sysconfig.get_path(key) for key in ("purelib", "platlib"))
    (site / "zz-stack.pth").write_text("".join(f"{path}\n" for path in ours), encoding="utf-8")
    _run(*pip, "--python", python, "install", "--no-deps", "--no-index", wheel)

    cwd = work / "empty"
    cwd.mkdir()
    hidden = ("PYTHONPATH", "VIRTUAL_ENV", "ABLATION_ROOT", "ABLATION_STORE", "ABLATION_DEBUG")
    env = {key: value for key, value in os.environ.items() if key not in hidden}
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(wheel=wheel, bin=prefix / "bin", site=site, cwd=cwd, env=env)


def test_the_checkout_uses_its_own_files() -> None:
    """Run from this checkout (the editable install), an edit to experiments/ or dashboard/ shows at once."""
    assert all(shipped(name) == REPO / folder for name, folder in SHIPPED.items())


def test_the_wheel_has_every_module_and_the_shipped_files(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "ablation").rglob("*.py")}
    assert modules - names == set(), "a subpackage is missing from [tool.setuptools] packages in pyproject"
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    mapped = {f"ablation._shipped.{name}": folder for name, folder in SHIPPED.items()}
    assert config["package-dir"] == mapped
    wanted = {
        f"ablation/_shipped/{name}/{p.name}"
        for name, pattern in (("sweeps", "*.toml"), ("reference", "*.csv"), ("dashboard", "app.py"))
        for p in (REPO / SHIPPED[name]).glob(pattern)
    }
    assert len(wanted) >= 4 and wanted <= names
    assert not {n for n in names if n.startswith(("experiments/", "dashboard/"))}


def test_the_fresh_environment_runs_the_wheel_not_the_checkout(installed: Installed) -> None:
    where = _run(
        installed.bin / "python",
        "-c",
        "import sys, ablation, ablation.shipped as s; print(ablation.__file__); print(s.shipped('sweeps'));"
        "print(any('editable' in repr(f).lower() for f in sys.meta_path))",
        cwd=installed.cwd,
    ).split()
    assert where == [
        str(installed.site / "ablation" / "__init__.py"),
        str(installed.site / "ablation" / "_shipped" / "sweeps"),
        "False",
    ]


def test_sweeps_plan_harvest_and_export_from_the_wheel(installed: Installed) -> None:
    listed = installed.ablation("sweeps").stdout
    shipped_sweeps = installed.site / "ablation" / "_shipped" / "sweeps"
    names = sorted(p.stem for p in (REPO / "experiments" / "sweeps").glob("*.toml"))
    assert {"smoke", "coco-1x"} <= set(names)
    for name in names:
        assert f"{shipped_sweeps / name}.toml" in listed, listed
    assert "INVALID" not in listed

    # a user's own sweeps: in ./experiments/sweeps (listed with the shipped ones), and by path
    mine = installed.cwd / "experiments" / "sweeps"
    mine.mkdir(parents=True)
    smoke = (REPO / "experiments" / "sweeps" / "smoke.toml").read_text(encoding="utf-8")
    (mine / "mine.toml").write_text(smoke.replace('codes = "all"', 'codes = ["0000", "0010"]'))
    elsewhere = installed.cwd.parent / "elsewhere.toml"
    elsewhere.write_text(smoke.replace('codes = "all"', 'codes = ["1111"]'))
    listed = installed.ablation("sweeps").stdout
    assert "experiments/sweeps/mine.toml" in listed and f"{shipped_sweeps / 'smoke'}.toml" in listed

    planned = installed.ablation("plan", "--sweep", "smoke").stdout
    assert "32 cells of sweep smoke; configs in runs/smoke/configs" in planned
    assert len(list((installed.cwd / "runs" / "smoke" / "configs").glob("*.py"))) == 32
    assert "4 cells of sweep mine" in installed.ablation("plan", "--sweep", "mine").stdout
    assert "2 cells of sweep elsewhere" in installed.ablation("plan", "--sweep", str(elsewhere)).stdout

    # no cell has run: the store gets the wheel's model-zoo reference rows
    harvested = installed.ablation("harvest")
    assert "6 new" in harvested.stdout and "(6 runs in the store)" in harvested.stdout, harvested
    out = installed.ablation("export", "--source", "reference").stdout
    ours = {(row[1], row[2]): row for row in table_rows(out)}
    published = table_rows((FIXTURES / "mmdet3-empirical-attention-README.md").read_text())
    assert len(published) == 4
    # Backbone | Attention Component | DCN | Lr schd | Mem (GB) | Mem kind | Inf time (fps) | box AP
    for row in published:
        mine = ours[row[1], row[2]]
        assert mine[:4] == row[:4] and float(mine[4]) == float(row[4]) and mine[6:8] == row[5:7]
    assert out == (GOLDEN / "export-reference.md").read_text()

    # the Python API and the effects, from the wheel in its own environment
    count = "import ablation; print(len(ablation.open_store('runs/store').runs(sweep='mmdet-model-zoo')))"
    python = subprocess.run(
        [str(installed.bin / "python"), "-c", count], cwd=installed.cwd, env=installed.env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (python.returncode, python.stdout) == (0, "6\n"), python.stderr
    effects = installed.ablation("effects", "--sweep", "mmdet-model-zoo", "--metric", "box AP")
    assert "effects on box AP (AP points)" in effects.stdout and "| factor | effect |" in effects.stdout


@pytest.fixture
def dashboard(installed: Installed) -> Iterator[tuple[str, int]]:
    """``ablation dashboard`` of the wheel, serving the store of the empty folder (the reference rows)."""
    root = installed.cwd / "dash-runs"
    root.mkdir()  # a --root that does not exist is a mistake (exit 2): an empty one holds no sweep yet
    installed.ablation("harvest", "--root", str(root))
    port = free_port()
    log = (installed.cwd / "dashboard.log").open("w")
    server = subprocess.Popen(
        [str(installed.bin / "ablation"), "dashboard", "--root", str(root), "--port", str(port)],
        cwd=installed.cwd,
        env=installed.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped whole below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(url, server, installed.cwd / "dashboard.log")
        yield url, server.pid
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(30)
        except ProcessLookupError:
            pass
        log.close()


@pytest.mark.browser
def test_the_dashboard_serves_the_wheels_app(installed: Installed, dashboard: tuple[str, int]) -> None:
    from playwright.sync_api import sync_playwright

    url, pid = dashboard
    # the command became streamlit (exec) running the app file inside the wheel's package
    app = installed.site / "ablation" / "_shipped" / "dashboard" / "app.py"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"streamlit" in argv and str(app).encode() in argv, argv
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200 and b"<html" in answer.read().lower()

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: `bash .ci/setup` installs Debian's as root"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("Accuracy against efficiency").first.wait_for(timeout=90_000)
        text = page.inner_text("body")
        browser.close()
    assert "Traceback" not in text and "Error:" not in text, text[:2000]
    assert f"store: {installed.cwd / 'dash-runs' / 'store'} (6 runs)" in text, text[:2000]
