"""The benchmark users' exact latencies: what BENCH_LATENCIES writes keeps sub-millisecond differences that
Locust's own statistics round away, and counts failures by request name."""

from __future__ import annotations

import pytest

from loadtests.benchmark import ExactLatencies


def test_percentiles_keep_fractions_of_a_millisecond() -> None:
    latencies = ExactLatencies()
    latencies.started, latencies.stopped = 100.0, 102.0
    for value in [0.41, 0.42, 0.43, 0.44, 0.45] * 20:
        latencies.record("GET", "/healthz", value, None)
    latencies.record("GET", "/healthz", 9.0, RuntimeError("status 503"))
    (key, summary), *others = latencies.summary().items()
    assert not others
    assert key == "GET /healthz"
    assert summary["p50_ms"] == pytest.approx(0.43)
    assert 0.44 <= summary["p95_ms"] <= 0.45
    assert (summary["requests"], summary["failures"], summary["seconds"]) == (101, 1, 2.0)


def test_request_names_are_kept_apart() -> None:
    latencies = ExactLatencies()
    latencies.started, latencies.stopped = 0.0, 1.0
    latencies.record("POST", "/api/items", 30.0, None)
    latencies.record("GET", "/api/items/{id}", 2.0, None)
    latencies.record("GET", "/api/items/{id}", 4.0, None)
    summary = latencies.summary()
    assert summary["POST /api/items"]["p50_ms"] == 30.0
    assert summary["GET /api/items/{id}"]["p50_ms"] == pytest.approx(3.0)
    assert summary["GET /api/items/{id}"]["requests"] == 2
