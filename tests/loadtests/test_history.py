"""Real Locust, run from the project root as the docs run it: it finds its settings in pyproject.toml's
[tool.locust] by itself, and the stats history it writes has per-interval percentiles, so the scaling
timeline's p95 comes back down after a slow phase. With cumulative percentiles (a run without
--csv-full-history) the last p95 would still carry the slow phase, and this test fails."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from locust.argument_parser import parse_options

from harness.program import ROOT
from loadtests.report import read_locust_history

SLOW_S = 0.3  # each request's latency during the slow phase
SLOW_PHASE_S = 8.0  # from the first request: a tenth of the run's requests, so a cumulative p95 stays slow
RUN_S = 24  # long enough for Locust's 10 s percentile window to hold only fast requests at the end

LOCUSTFILE = """
from locust import HttpUser, constant, task


class PhaseUser(HttpUser):
    wait_time = constant(0.1)

    @task
    def phase(self) -> None:
        self.client.get("/phase")
"""


class PhasedServer(ThreadingHTTPServer):
    """Slow for SLOW_PHASE_S after its first request, fast afterwards."""

    daemon_threads = True
    first_request: float | None = None


class PhasedHandler(BaseHTTPRequestHandler):
    server: PhasedServer

    def do_GET(self) -> None:
        now = time.monotonic()
        if self.server.first_request is None:
            self.server.first_request = now
        if now - self.server.first_request < SLOW_PHASE_S:
            time.sleep(SLOW_S)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:  # quiet: one line per request otherwise
        pass


@pytest.fixture
def phased_server() -> Iterator[str]:
    server = PhasedServer(("127.0.0.1", 0), PhasedHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_history_percentiles_are_per_interval_not_cumulative(phased_server: str, tmp_path: Path) -> None:
    (tmp_path / "phased.py").write_text(LOCUSTFILE)
    # No --csv-full-history here: Locust must take it (and the CSV default) from pyproject.toml itself.
    command = [
        sys.executable, "-m", "locust", "-f", str(tmp_path / "phased.py"), "--headless", "--only-summary",
        "-u", "4", "-r", "4", "-t", f"{RUN_S}s", "-H", phased_server, "--csv", str(tmp_path / "run"),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_S + 60, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    history = read_locust_history(Path(f"{tmp_path / 'run'}_stats_history.csv"))
    start = history[0]["time"]
    slow = [
        row["p95"] for row in history if row["time"] - start < SLOW_PHASE_S and not math.isnan(row["p95"])
    ]
    last = history[-1]
    assert last["time"] - start >= RUN_S - 3, history[-1]
    assert max(slow) >= SLOW_S * 1000 * 0.8, f"the slow phase shows in its own intervals: {slow}"
    assert last["p95"] < 100, f"the last interval's p95 holds only fast requests: {last}"


def test_locust_finds_the_project_settings_in_pyproject() -> None:
    """Locust's own parser, from the project root: pyproject.toml's [tool.locust] is one of its default files."""
    previous = Path.cwd()
    os.chdir(ROOT)
    try:
        options = parse_options(args=["-f", "loadtests/benchmark.py"])
    finally:
        os.chdir(previous)
    assert (options.host, options.web_host, options.csv_prefix, options.stats_history_enabled) == (
        "http://127.0.0.1:8080", "127.0.0.1", "reports/run", True,
    )  # fmt: skip
