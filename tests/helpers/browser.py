"""A dashboard served on a free port, and Debian's Chromium (headless, driven by playwright) to open it."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

CHROMIUM = os.environ.get("ABLATION_CHROMIUM", "/usr/bin/chromium")
# As this workplace's machines need them: no sandbox as root, no background connections to a closed network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_served(url: str, server: subprocess.Popen[bytes], log: Path, limit_s: float = 90) -> None:
    """Until streamlit's health endpoint at ``url`` answers ok; fails with the log's tail if the server
    exits first or takes longer than ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        assert server.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"the dashboard did not come up in {limit_s:.0f} s"
        time.sleep(0.5)
