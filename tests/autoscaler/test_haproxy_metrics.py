"""Reading HAProxy: the Prometheus exposition and the scoped stats CSV, per-replica metrics, rates between reads, demand, restarts."""

from __future__ import annotations

import csv
import http.server
import io
import threading
import time
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from autoscaler.haproxy_metrics import (
    HAProxyMetrics,
    HAProxyStats,
    ServerRow,
    parse_server_table,
    stats_csv_url,
)
from components.haproxy_cfg import IMAGE_DEFAULT, render_haproxy_cfg
from testbed.ports import free_loopback_port

# `curl '127.0.0.1:8404/stats;csv;norefresh?scope=app'` from HAProxy 2.6 (images/haproxy) with a backend of
# four servers: two UP, one DOWN (refused), one in MAINT.
STATS_CSV = (Path(__file__).parent / "haproxy_2.6_stats_scope_app.csv").read_text()


def exposition(
    requests: int,
    started: int = 1000,
    sessions: int = 6,
    rtime: float = 0.05,
    up: tuple[bool, ...] = (True, True, False),
) -> str:
    servers = "".join(
        f'haproxy_server_status{{proxy="app",server="app-{i}",state="{state}"}} {value}\n'
        for i, up in enumerate(up, start=1)
        for state, value in (("UP", int(up)), ("MAINT", int(not up)))
    )
    return (
        f"haproxy_process_start_time_seconds {started}\n"
        f'haproxy_backend_current_sessions{{proxy="app"}} {sessions}\n'
        f'haproxy_backend_current_queue{{proxy="app"}} 1\n'
        f'haproxy_server_current_queue{{proxy="app",server="app-1"}} 2\n'
        f'haproxy_backend_response_time_average_seconds{{proxy="app"}} {rtime}\n'
        "# TYPE haproxy_backend_http_requests_total counter\n"
        f'haproxy_backend_http_requests_total{{proxy="app"}} {requests}\n'
        f'haproxy_backend_http_requests_total{{proxy="other"}} 999999\n' + servers
    )


class Feed:
    def __init__(self) -> None:
        self.pages: list[str] = []
        self.now = 0.0

    def handler(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=self.pages.pop(0))


@pytest.fixture
def feed() -> Feed:
    return Feed()


def reader(feed: Feed) -> HAProxyMetrics:
    return HAProxyMetrics(
        "http://lb/metrics", "app", clock=lambda: feed.now, transport=httpx.MockTransport(feed.handler)
    )


def test_first_read_has_gauges_but_no_rates(feed: Feed) -> None:
    feed.pages = [exposition(requests=100)]
    sample = reader(feed).read()
    assert sample.ready == 2
    assert sample.servers == {"app-1": "UP", "app-2": "UP", "app-3": "MAINT"}
    assert sample.metrics == {"queued_requests": 3.0, "sessions_per_replica": 3.0}


def test_second_read_turns_the_counter_into_requests_per_second_per_replica(feed: Feed) -> None:
    feed.pages = [exposition(requests=100), exposition(requests=300)]
    source = reader(feed)
    source.read()
    feed.now = 2.0
    metrics = source.read().metrics
    assert metrics["requests_per_second_per_replica"] == 50.0  # 200 requests / 2 s / 2 ready
    assert metrics["response_time_ms"] == 50.0


def test_no_traffic_reports_zero_response_time_not_haproxys_stale_average(feed: Feed) -> None:
    feed.pages = [exposition(requests=100, rtime=0.4), exposition(requests=100, rtime=0.4)]
    source = reader(feed)
    source.read()
    feed.now = 2.0
    assert source.read().metrics["response_time_ms"] == 0.0


def test_restarted_haproxy_makes_the_rate_unknown_not_negative(feed: Feed) -> None:
    feed.pages = [exposition(requests=5000), exposition(requests=10, started=2000)]
    source = reader(feed)
    source.read()
    feed.now = 2.0
    metrics = source.read().metrics
    assert "requests_per_second_per_replica" not in metrics
    assert "response_time_ms" not in metrics


def test_backend_missing_from_the_exposition_is_an_error(feed: Feed) -> None:
    feed.pages = ['haproxy_backend_current_sessions{proxy="other"} 1\n']
    with pytest.raises(
        ValueError, match="HAProxy exposes no haproxy_backend_current_sessions for backend 'app'"
    ):
        reader(feed).read()


def test_at_zero_ready_replicas_the_per_replica_metrics_are_missing_and_demand_counts_the_waiting(
    feed: Feed,
) -> None:
    feed.pages = [exposition(requests=100, sessions=4, up=(False, False))]
    sample = reader(feed).read()
    assert (sample.ready, sample.metrics, sample.demand) == (0, {"queued_requests": 3.0}, 7.0)


def test_a_burst_that_ended_between_two_reads_still_counts_as_demand(feed: Feed) -> None:
    feed.pages = [exposition(requests=100, sessions=0), exposition(requests=105, sessions=0)]
    source = reader(feed)
    source.read()
    feed.now = 0.5
    sample = source.read()
    assert sample.metrics["sessions_per_replica"] == 0.0
    assert sample.demand == 3.0 + 5.0  # the queued requests of the page, and the five that came and went


def stats_page(requests: int, sessions: int, queued: int, app_1: str = "UP") -> str:
    """The captured page with the BACKEND row's counters, and app-1's state, set."""
    header, *lines = STATS_CSV.removeprefix("# ").splitlines()
    rows = list(csv.DictReader([header, *lines]))
    for row in rows:
        if row["svname"] == "BACKEND":
            row.update(req_tot=str(requests), scur=str(sessions), qcur=str(queued), rtime="40")
        if row["svname"] == "app-1":
            row["status"] = app_1
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header.split(","), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return "# " + out.getvalue()


def stats_reader(feed: Feed) -> HAProxyStats:
    return HAProxyStats(
        "http://lb:8404/metrics", "app", clock=lambda: feed.now, transport=httpx.MockTransport(feed.handler)
    )


def test_the_stats_page_is_read_on_the_metrics_listener_scoped_to_the_backend() -> None:
    assert stats_csv_url("http://127.0.0.1:8404/metrics", "app") == (
        "http://127.0.0.1:8404/stats;csv;norefresh?scope=app"
    )


def test_the_stats_csv_gives_the_same_sample_as_the_exposition(feed: Feed) -> None:
    feed.pages = [stats_page(100, 6, 1), stats_page(300, 6, 1)]
    source = stats_reader(feed)
    first = source.read()
    assert (first.ready, first.servers) == (
        2,
        {"app-1": "UP", "app-2": "UP", "app-3": "DOWN", "app-4": "MAINT"},
    )
    assert first.metrics == {"queued_requests": 1.0, "sessions_per_replica": 3.0}
    feed.now = 2.0
    second = source.read()
    assert second.metrics == {
        "queued_requests": 1.0,
        "sessions_per_replica": 3.0,
        "requests_per_second_per_replica": 50.0,
        "response_time_ms": 40.0,
    }
    assert second.demand == 6 + 1 + 200


def test_a_server_going_down_still_counts_as_up_until_it_is_down(feed: Feed) -> None:
    feed.pages = [stats_page(0, 0, 0, app_1="UP 1/3")]
    assert stats_reader(feed).read().ready == 2


def test_a_restart_seen_in_the_stats_csv_makes_the_rate_unknown(feed: Feed) -> None:
    feed.pages = [stats_page(5000, 0, 0), stats_page(10, 0, 0)]
    source = stats_reader(feed)
    source.read()
    feed.now = 1.0
    assert "requests_per_second_per_replica" not in source.read().metrics


def test_stats_without_the_backend_are_an_error(feed: Feed) -> None:
    feed.pages = [STATS_CSV.replace("\napp,", "\nother,")]
    with pytest.raises(ValueError, match="HAProxy's stats have no BACKEND row for backend 'app'"):
        stats_reader(feed).read()


def test_stats_without_a_column_used_are_an_error(feed: Feed) -> None:
    feed.pages = ["# pxname,svname,scur\napp,BACKEND,1\n"]
    with pytest.raises(ValueError, match="HAProxy's stats lack a column: 'status' is not in list"):
        stats_reader(feed).read()


class StatsPage(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as HAProxy's stats listener
    page = stats_page(100, 2, 0)
    connections: ClassVar[list[int]] = []  # requests answered on each connection
    drop_after: int = 3  # then close the connection without saying so, as HAProxy does with an idle one

    def setup(self) -> None:
        super().setup()
        self.connections.append(0)

    def do_GET(self) -> None:
        body = self.page.encode()
        self.send_response(200 if self.path == "/stats;csv;norefresh?scope=app" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.connections[-1] += 1
        self.close_connection = self.connections[-1] >= self.drop_after

    def log_message(self, *args: object) -> None:
        pass


def serve(port: int) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), StatsPage)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_fast_reader_keeps_one_connection_and_reconnects_when_it_was_closed() -> None:
    port = free_loopback_port()
    server = serve(port)
    source = HAProxyStats(f"http://127.0.0.1:{port}/metrics", "app", clock=time.monotonic)
    try:
        readies = [source.read().ready for _ in range(5)]
    finally:
        source.close()
        server.shutdown()
        server.server_close()
    assert readies == [2] * 5
    assert StatsPage.connections == [3, 2]  # the fourth read found its connection closed and opened another


def test_the_server_table_has_each_servers_state_address_and_sessions_served() -> None:
    """With `stats show-legends` (components/haproxy_cfg.py) HAProxy fills addr; the power-on phases find a new
    task's server by it."""
    text = (
        "# pxname,svname,stot,status,addr\n"
        "app,app-1,266,UP,10.0.1.4:8000\n"
        "app,app-2,6,MAINT (resolution),\n"
        "app,app-3,0,UP 1/3,10.0.1.10:8000\n"
        "app,BACKEND,541,UP,\n"
        "other,o-1,9,UP,10.0.9.9:80\n"
    )
    assert parse_server_table(text, "app") == {
        "app-1": ServerRow("UP", "10.0.1.4", 266.0),
        "app-2": ServerRow("MAINT (resolution)", "", 6.0),
        "app-3": ServerRow("UP", "10.0.1.10", 0.0),
    }


def test_the_rendered_stats_page_shows_the_servers_addresses() -> None:
    stats = render_haproxy_cfg(IMAGE_DEFAULT).split("frontend stats", 1)[1]
    assert "\n    stats show-legends\n" in stats
