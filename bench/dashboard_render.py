"""How long the dashboard's first render takes at study size (target: under 3 s on this machine).

    .venv/bin/python bench/dashboard_render.py [--runs 10000] [--repeat 3]

Builds one sweep with axes and seeds of about N runs and its store (bench/scale.py's ``build``: the 16 codes x
DCN x kv_stride x stages x lr and seeds; 9,640 runs of 964 cells for 10,000), then renders each page with
Streamlit's AppTest, in this process, the best of --repeat:

- first render: a fresh app session with an empty Streamlit cache, the store's cache current (as after
  ``ablation harvest``): what a person opening the dashboard waits for, server side;
- first render, store cache gone: the worst case, every run file read (once);
- rerun: the same session again (Streamlit's cache warm), as after a click.

It prints the seconds and their ratio to the 3 s target. The browser's own drawing is not included.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

import streamlit as st
from scale import build
from store_read import options
from streamlit.testing.v1 import AppTest

from ablation.results.store import CACHE_FILE, Store

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
TARGET_S = 3.0


def render(page: str, at: AppTest | None = None) -> tuple[float, AppTest]:
    if at is None:
        at = AppTest.from_file(str(APP), default_timeout=600)
        at.query_params["page"] = page
        st.cache_data.clear()  # a new session of a fresh server
    start = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - start
    if at.exception:
        raise SystemExit(f"the {page} page raised: {at.exception[0].value}")
    return seconds, at


def main() -> None:
    args = options(__doc__ or "")
    for name in list(logging.root.manager.loggerDict):  # AppTest outside a server warns at every session
        if name.startswith("streamlit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as folder:
        scale = build(Path(folder), args.runs)  # the store's cache current, as `ablation harvest` leaves it
        store = Store(scale.store)
        os.environ["ABLATION_STORE"] = str(store.path)
        os.environ["ABLATION_ROOT"] = str(scale.root)
        print(
            f"{scale.runs} runs of {scale.cells} cells of one sweep with axes and seeds; seconds (best of "
            f"{args.repeat}) and x the {TARGET_S:.0f} s target"
        )
        print(f"{'page':<12}{'first':>8}{'x':>6}{'no cache':>10}{'x':>6}{'rerun':>8}{'x':>6}")
        for page in ("trade-offs", "effects", "runs", "status", "downloads"):
            first = min(render(page)[0] for _ in range(args.repeat))
            (store.path / CACHE_FILE).unlink(missing_ok=True)
            cold = [render(page)[0]]  # once: every run file is read
            _, at = render(page)
            rerun = min(render(page, at)[0] for _ in range(args.repeat))
            print(
                f"{page:<12}{first:>8.2f}{first / TARGET_S:>6.2f}"
                f"{min(cold):>10.2f}{min(cold) / TARGET_S:>6.2f}{rerun:>8.2f}{rerun / TARGET_S:>6.2f}"
            )


if __name__ == "__main__":
    main()
