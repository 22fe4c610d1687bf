"""The dashboard as a person sees it: `ablation dashboard` serving, Debian's Chromium (headless, driven by
playwright with no browser download) opening the trade-off page, a screenshot that is not blank, and no
"Deploy" button in the toolbar; and the Live curves page on a local grid that runs, its curve gaining points
as the page refreshes itself, with the Status page's expected finish."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ablation.results.modelzoo import load_reference

from .helpers.browser import CHROMIUM, FLAGS, free_port, wait_until_served
from .helpers.cli import venv_bin
from .helpers.live_grid import running_grid
from .helpers.store import grid_runs, store_with

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    store = store_with(tmp_path, [*grid_runs(), *load_reference()])
    with serving(store.path, tmp_path, tmp_path / "server.log") as url:
        yield url


@contextlib.contextmanager
def serving(store: Path, root: Path, log_path: Path) -> Iterator[str]:
    """``ablation dashboard`` on a free port, for the store and root; its URL, and stopped at the end."""
    port = free_port()
    log = log_path.open("w")
    server = subprocess.Popen(
        [venv_bin("ablation"), "dashboard", "--store", str(store), "--root", str(root), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(url, server, log_path)
        # the command became the server (exec), so stopping it stops the server: none outlives the test
        assert b"streamlit" in Path(f"/proc/{server.pid}/cmdline").read_bytes()
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def screenshot(url: str, path: Path, width: int = 1400, height: int = 1000) -> tuple[str, int]:
    """Open ``url``, wait for the Plotly charts to draw, save a PNG; returns the page's text and how many
    "Deploy" buttons its toolbar has."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(url)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=90_000)
        page.wait_for_timeout(2000)  # let WebGL points and the legend settle
        page.screenshot(path=str(path))
        text = page.inner_text("body")
        toolbar = page.locator('[data-testid="stToolbar"]')
        toolbar.wait_for(state="attached", timeout=30_000)
        deploy = toolbar.get_by_role("button", name="Deploy").count()
        deploy += page.locator('[data-testid="stAppDeployButton"]').count()
        browser.close()
    return text, deploy


def test_the_trade_off_page_in_headless_chromium(served: str, tmp_path: Path) -> None:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: `bash .ci/setup` installs Debian's as root"
    png = tmp_path / "trade-offs.png"
    text, deploy = screenshot(f"{served}/?page=trade-offs", png)
    assert "Accuracy against efficiency" in text and "Pareto" in text
    assert deploy == 0 and "Deploy" not in text  # a local tool: no Streamlit Cloud button
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int32)
    assert pixels.shape == (1000, 1400, 3)
    inked = float((pixels.sum(axis=2) < 720).mean())  # not near-white
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert inked > 0.03 and colours > 100, (inked, colours)

    def near(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(rgb)).max(axis=2) < 30).sum())

    assert near((0x1F, 0x77, 0xB4)) > 50 and near((0xD6, 0x27, 0x28)) > 50  # the DCN off and on points


# The points of the Live curves chart: every trace's x values, read from plotly's own figure in the page.
POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .reduce((n, plot) => n + (plot.data || []).reduce((m, trace) => m + (trace.x || []).length, 0), 0)"""


def test_live_curves_grow_on_a_running_grid(tmp_path: Path) -> None:
    """A local grid of one long cell runs; the Live curves page draws its curves and, as it refreshes
    itself, they gain points; the Status page says when the grid should finish."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("ABLATION_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with (
        running_grid(tmp_path) as root,
        serving(tmp_path / "store", root, tmp_path / "server.log") as url,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{url}/?page=live")
            page.get_by_text("Live curves").first.wait_for(timeout=30_000)
            first = grown(page, 0, limit_s=60)  # the cell has started and logged
            page.wait_for_timeout(1000)  # let the lines draw
            second = grown(page, first, limit_s=30)  # the page read the logs again, by itself
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "live-curves.png"))
            text = page.inner_text("body")
            assert "training loss" in text and "seconds per iteration" in text and "while a cell runs" in text
            print(f"live curves: {first} then {second} points; screenshot {shots / 'live-curves.png'}")
            page.goto(f"{url}/?page=status")
            page.get_by_text("expected to finish in ~").first.wait_for(timeout=30_000)
            page.get_by_text("compute so far: 1 attempt").first.wait_for(timeout=30_000)
            page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shots / "status-eta.png"))
        finally:
            browser.close()


def grown(page: Any, than: int, limit_s: float) -> int:
    """The Live curves chart's points once there are more than ``than``, polled for ``limit_s`` at most."""
    until = time.monotonic() + limit_s
    count = 0
    while time.monotonic() < until:
        count = int(page.evaluate(POINTS))
        if count > than:
            return count
        time.sleep(0.5)
    raise AssertionError(f"the chart has {count} points, not more than {than}, after {limit_s:.0f} s")
