"""Reading HAProxy's Prometheus exposition: per-replica metrics, rates between reads, restarts."""

from __future__ import annotations

import httpx
import pytest

from autoscaler.haproxy_metrics import HAProxyMetrics


def exposition(requests: int, started: int = 1000, sessions: int = 6, rtime: float = 0.05) -> str:
    servers = "".join(
        f'haproxy_server_status{{proxy="app",server="app-{i}",state="{state}"}} {value}\n'
        for i, up in ((1, True), (2, True), (3, False))
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
