"""Read the load balancer's view of the app backend from HAProxy's Prometheus endpoint.

Counters become rates between two reads; a restarted HAProxy (new process start time, or a counter that went
backwards) makes the next rate unknown rather than negative, so a restart holds the tier instead of moving it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class BackendSample:
    """One read of the backend's state."""

    at: float
    ready: int  # servers UP: starting or draining replicas are not capacity
    metrics: dict[str, float]
    servers: dict[str, str]  # server slot -> state, for /status and the timeline


@dataclass(frozen=True)
class _Counters:
    at: float
    started: float
    requests: float


def _series(samples: Iterable[Sample], name: str, backend: str) -> list[Sample]:
    return [s for s in samples if s.name == name and s.labels.get("proxy") == backend]


_WANTED = (
    "haproxy_process_start_time_seconds",
    "haproxy_backend_current_sessions",
    "haproxy_backend_current_queue",
    "haproxy_backend_response_time_average_seconds",
    "haproxy_backend_http_requests_total",
    "haproxy_server_status",
    "haproxy_server_current_queue",
)


def parse_backend(text: str, backend: str) -> tuple[dict[str, float], dict[str, str], float, float]:
    """(gauges, server states, requests counter, process start time) of one backend from the exposition."""
    # The exposition is ~120 KB (40-odd series per server slot); parsing only the series used here cuts a
    # read from ~35 ms to a few ms of CPU. HELP/TYPE lines go too: every series is then an untyped sample.
    relevant = "\n".join(line for line in text.splitlines() if line.startswith(_WANTED)) + "\n"
    samples = [sample for family in text_string_to_metric_families(relevant) for sample in family.samples]

    def value(name: str) -> float:
        found = _series(samples, name, backend)
        if not found:
            raise ValueError(f"HAProxy exposes no {name} for backend {backend!r}")
        return float(found[0].value)

    servers = {
        s.labels["server"]: s.labels["state"]
        for s in _series(samples, "haproxy_server_status", backend)
        if s.value == 1
    }
    started = [s.value for s in samples if s.name == "haproxy_process_start_time_seconds"]
    server_queue = sum(s.value for s in _series(samples, "haproxy_server_current_queue", backend))
    gauges = {
        "sessions": value("haproxy_backend_current_sessions"),
        "queued_requests": value("haproxy_backend_current_queue") + server_queue,
        "response_time_ms": value("haproxy_backend_response_time_average_seconds") * 1000,
    }
    requests = value("haproxy_backend_http_requests_total")
    return gauges, servers, requests, float(started[0]) if started else 0.0


class HAProxyMetrics:
    def __init__(
        self,
        url: str,
        backend: str,
        clock: Callable[[], float],
        timeout_s: float = 2.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.backend = backend
        self.clock = clock
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._previous: _Counters | None = None

    def read(self) -> BackendSample:
        """One sample; raises (httpx.HTTPError, ValueError) when HAProxy cannot be read or makes no sense."""
        response = self._client.get(self.url)
        response.raise_for_status()
        at = self.clock()
        gauges, servers, requests, started = parse_backend(response.text, self.backend)
        ready = sum(1 for state in servers.values() if state == "UP")
        metrics = {"queued_requests": gauges["queued_requests"]}
        counters = _Counters(at, started, requests)
        rate = self._rate(counters)
        self._previous = counters
        if ready:
            metrics["sessions_per_replica"] = gauges["sessions"] / ready
            if rate is not None:
                metrics["requests_per_second_per_replica"] = rate / ready
        if rate is not None:
            # HAProxy's average covers the last 1024 requests and never decays: with no traffic in the
            # interval, the backend's response time is reported as 0 rather than a stale figure.
            metrics["response_time_ms"] = gauges["response_time_ms"] if rate > 0 else 0.0
        return BackendSample(at, ready, metrics, servers)

    def _rate(self, now: _Counters) -> float | None:
        before = self._previous
        if before is None or before.started != now.started or now.requests < before.requests:
            return None
        elapsed = now.at - before.at
        return (now.requests - before.requests) / elapsed if elapsed > 0 else None

    def close(self) -> None:
        self._client.close()
