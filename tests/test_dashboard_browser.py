"""The dashboard as a person sees it: `ablation dashboard` serving, Debian's Chromium (headless, driven by
playwright with no browser download) opening the trade-off page, a screenshot that is not blank, and no
"Deploy" button in the toolbar."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ablation.results.modelzoo import load_reference

from .helpers.browser import CHROMIUM, FLAGS, free_port, wait_until_served
from .helpers.cli import venv_bin
from .helpers.store import grid_runs, store_with

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    store = store_with(tmp_path, [*grid_runs(), *load_reference()])
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            venv_bin("ablation"),
            "dashboard",
            "--store",
            str(store.path),
            "--root",
            str(tmp_path),
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_served(url, server, tmp_path / "server.log")
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
