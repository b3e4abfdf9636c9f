"""Benchmark users: each hammers one endpoint with no think time, to measure throughput and latency.

Run one class at a time (benchmarks/request_path.py does), e.g.:
    locust -f loadtests/benchmark.py --headless -u 32 -r 32 -t 20s -H http://127.0.0.1:8080 HealthzUser

With BENCH_LATENCIES=FILE every response time is kept as measured (Locust's own statistics round them to whole
milliseconds) and FILE gets, per request name, the count, failures, the run's length and exact percentiles.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task
from locust.env import Environment


class ExactLatencies:
    """Every response time of a run by request name, in milliseconds as FastHttpUser measured them."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.failures: dict[str, int] = defaultdict(int)
        self.started = self.stopped = 0.0

    def record(self, request_type: str, name: str, response_time: float, exception: Any, **_: Any) -> None:
        key = f"{request_type} {name}"
        if exception is not None:
            self.failures[key] += 1
        self.times[key].append(response_time)

    def summary(self) -> dict[str, dict[str, float]]:
        seconds = max(self.stopped - self.started, 1e-9)
        result = {}
        for key, times in self.times.items():
            cuts = statistics.quantiles(times, n=100, method="inclusive") if len(times) > 1 else times * 99
            result[key] = {
                "requests": len(times),
                "failures": self.failures[key],
                "seconds": seconds,
                "p50_ms": cuts[49],
                "p95_ms": cuts[94],
                "mean_ms": statistics.fmean(times),
            }
        return result


_LATENCIES_FILE = os.environ.get("BENCH_LATENCIES")
if _LATENCIES_FILE:
    _latencies_path = Path(_LATENCIES_FILE)
    _latencies = ExactLatencies()
    events.request.add_listener(_latencies.record)

    @events.test_start.add_listener
    def _started(environment: Environment, **_: Any) -> None:
        _latencies.started = time.monotonic()

    @events.test_stop.add_listener
    def _stopped(environment: Environment, **_: Any) -> None:
        _latencies.stopped = time.monotonic()

    @events.quitting.add_listener
    def _write(environment: Environment, **_: Any) -> None:
        _latencies_path.write_text(json.dumps(_latencies.summary()))


class HealthzUser(FastHttpUser):
    """The cheapest request the app serves: no database, no work. Measures the HTTP path itself."""

    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        with self.client.get("/healthz", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")


class ReadItemUser(FastHttpUser):
    """Reads one item by id: one indexed SELECT through the connection pool."""

    wait_time = constant(0)
    item_id = 0

    def on_start(self) -> None:
        response = self.client.post("/api/items", json={"name": "benchmark", "payload": {"k": "v" * 100}})
        self.item_id = response.json()["id"]

    @task
    def read(self) -> None:
        with self.client.get(
            f"/api/items/{self.item_id}", name="/api/items/{id}", catch_response=True
        ) as response:
            if response.status_code != 200 or response.json()["id"] != self.item_id:
                response.failure(f"status {response.status_code}")


class CreateItemUser(FastHttpUser):
    """Creates items: one INSERT ... RETURNING per request, committed."""

    wait_time = constant(0)

    @task
    def create(self) -> None:
        body = {"name": "benchmark", "payload": {"k": "v" * 100}}
        with self.client.post("/api/items", json=body, catch_response=True) as response:
            if response.status_code != 201:
                response.failure(f"status {response.status_code}")
