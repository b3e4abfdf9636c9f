"""Read the load balancer's view of the app backend from HAProxy's Prometheus endpoint.

Counters become rates between two reads; a restarted HAProxy (new process start time, or a counter that went
backwards) makes the next rate unknown rather than negative, so a restart holds the tier instead of moving it.
"""

from __future__ import annotations

import csv
import http.client
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

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
    # Sessions and queued requests now, plus requests that arrived since the previous read: a burst that
    # came and went between two reads still counts (the per-replica gauges would read 0, or not exist).
    demand: float = 0.0


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


# (gauges, server states, requests counter, process start time)
Parsed = tuple[dict[str, float], dict[str, str], float, float]


def parse_backend(text: str, backend: str) -> Parsed:
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


def parse_stats_csv(text: str, backend: str) -> Parsed:
    """The same four as parse_backend(), from the stats page's CSV scoped to the backend (a few KB instead of
    the exposition's ~120 KB). The CSV has no process start time: a restart shows as a counter that went back."""
    # csv.reader with the header's column positions: building a dict of ~100 fields per row would cost more
    # than the rest of a read (this runs several times a second).
    header, *rows = csv.reader(text.removeprefix("# ").splitlines())
    try:
        name, server, status, qcur, scur, req_tot, rtime = (
            header.index(field)
            for field in ("pxname", "svname", "status", "qcur", "scur", "req_tot", "rtime")
        )
    except ValueError as exc:
        raise ValueError(f"HAProxy's stats lack a column: {exc}") from None
    mine = [row for row in rows if len(row) > max(name, server, status, qcur, scur, req_tot, rtime)]
    mine = [row for row in mine if row[name] == backend]
    total = next((row for row in mine if row[server] == "BACKEND"), None)
    if total is None:
        raise ValueError(f"HAProxy's stats have no BACKEND row for backend {backend!r}")

    def number(row: list[str], column: int) -> float:
        try:
            return float(row[column] or 0)
        except ValueError:
            raise ValueError(
                f"HAProxy's stats: {header[column]} of {row[server]} is {row[column]!r}"
            ) from None

    servers = [row for row in mine if row[server] not in ("BACKEND", "FRONTEND")]
    gauges = {
        "sessions": number(total, scur),
        "queued_requests": number(total, qcur) + sum(number(row, qcur) for row in servers),
        "response_time_ms": number(total, rtime),
    }
    # "UP 1/3" is a server going down that still takes requests, as the exposition's state "UP" counts it.
    states = {row[server]: "UP" if row[status].startswith("UP") else row[status] for row in servers}
    return gauges, states, number(total, req_tot), 0.0


def stats_csv_url(metrics_url: str, backend: str) -> str:
    """HAProxy's stats page on the same listener as its /metrics (components/haproxy_cfg.py: `stats uri /stats`)."""
    url = urlsplit(metrics_url)
    return urlunsplit((url.scheme, url.netloc, "/stats;csv;norefresh", f"scope={backend}", ""))


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
        text = self.fetch()
        at = self.clock()
        gauges, servers, requests, started = self.parse(text)
        ready = sum(1 for state in servers.values() if state == "UP")
        metrics = {"queued_requests": gauges["queued_requests"]}
        counters = _Counters(at, started, requests)
        rate = self._rate(counters)
        arrived = rate * (at - self._previous.at) if rate is not None and self._previous else 0.0
        self._previous = counters
        demand = gauges["sessions"] + gauges["queued_requests"] + arrived
        if ready:
            metrics["sessions_per_replica"] = gauges["sessions"] / ready
            if rate is not None:
                metrics["requests_per_second_per_replica"] = rate / ready
        if rate is not None:
            # HAProxy's average covers the last 1024 requests and never decays: with no traffic in the
            # interval, the backend's response time is reported as 0 rather than a stale figure.
            metrics["response_time_ms"] = gauges["response_time_ms"] if rate > 0 else 0.0
        return BackendSample(at, ready, metrics, servers, demand)

    def fetch(self) -> str:
        response = self._client.get(self.url)
        response.raise_for_status()
        return response.text

    def parse(self, text: str) -> Parsed:
        return parse_backend(text, self.backend)

    def _rate(self, now: _Counters) -> float | None:
        before = self._previous
        if before is None or before.started != now.started or now.requests < before.requests:
            return None
        elapsed = now.at - before.at
        return (now.requests - before.requests) / elapsed if elapsed > 0 else None

    def close(self) -> None:
        self._client.close()


class HAProxyStats(HAProxyMetrics):
    """The cheap reader for several reads a second: the stats CSV scoped to the backend, same sample.

    Over one kept-alive http.client connection: an httpx request costs ~1.5 ms of CPU at four reads a second
    against ~0.7 ms for http.client (measured against HAProxy 2.6 in BENCHMARKS.md's autoscaler section), and
    that difference is most of the sampler's cost. `transport` (tests) reads through httpx instead."""

    def __init__(
        self,
        metrics_url: str,
        backend: str,
        clock: Callable[[], float],
        timeout_s: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(stats_csv_url(metrics_url, backend), backend, clock, timeout_s, transport)
        self._transport = transport
        self._timeout_s = timeout_s
        self._connection: http.client.HTTPConnection | None = None

    def fetch(self) -> str:
        if self._transport is not None:
            return super().fetch()
        url = urlsplit(self.url)
        target = f"{url.path}?{url.query}"
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    url.hostname or "", url.port, timeout=self._timeout_s
                )
            try:
                self._connection.request("GET", target)
                response = self._connection.getresponse()
                body = response.read().decode()
            except (http.client.HTTPException, OSError):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
                continue  # HAProxy closed the idle connection (a reload, a timeout): once more, on a new one
            if response.status != 200:
                raise ValueError(f"HAProxy's stats answered {response.status} at {self.url}")
            return body
        raise AssertionError("unreachable")

    def parse(self, text: str) -> Parsed:
        return parse_stats_csv(text, self.backend)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        super().close()


@dataclass(frozen=True)
class ServerRow:
    status: str  # "UP", "DOWN", "MAINT", ...
    address: str  # the IP it resolved to ("" while it has none)
    total_sessions: float  # sessions it has served since HAProxy started (stot)


def parse_server_table(text: str, backend: str) -> dict[str, ServerRow]:
    """Each server of the backend from the stats CSV: state, the address it resolved to, sessions served."""
    header, *rows = csv.reader(text.removeprefix("# ").splitlines())
    try:
        name, server, status, stot, addr = (
            header.index(field) for field in ("pxname", "svname", "status", "stot", "addr")
        )
    except ValueError as exc:
        raise ValueError(f"HAProxy's stats lack a column: {exc}") from None
    table = {}
    for row in rows:
        if len(row) <= max(name, server, status, stot, addr) or row[name] != backend:
            continue
        if row[server] in ("BACKEND", "FRONTEND"):
            continue
        state = "UP" if row[status].startswith("UP") else row[status]
        table[row[server]] = ServerRow(state, row[addr].rsplit(":", 1)[0], float(row[stot] or 0))
    return table
